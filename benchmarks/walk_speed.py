"""A 512 px SD-Turbo prompt/seed walk: in-between frames batched through the UNet against one at a time.

The walk is the Interpolate tab's own code path (studio.backends.diffusion.walks.prompt_walk: 1 step,
guidance 0, TAESD decode as the studio's default decoder) on SD-Turbo's real-size architecture with
random weights (built by image_speed.py; speed does not depend on weight values). Two keyframes and
8 frames between them; the only difference between the runs is `PromptWalkRequest.batch`, the
in-between frames per UNet call. After a short warm-up walk the batch sizes take turns, so a busy
machine slows them alike; the median of the repeats is shown. Printed per batch size:
- wall seconds per frame over the whole walk, and over the in-between frames alone (the keyframes
  are made one by one by the Image tab's `generate` in every run, so only those frames can differ);
- CPU seconds per in-between frame (all threads of this process; on a busy machine it grows too,
  as threads wait for each other, but less than the wall clock);
- peak RSS during that batch size's walks (the high-water mark is reset before each walk);
and then, to show why, the UNet step and the TAESD decode alone at each batch size.
Every batch size's frames are checked against one-at-a-time frames, as latents (what the UNet made,
caught on their way into the decoder) and as pixels: batching must not change a picture beyond float
rounding, and the script fails if it does. (With random weights TAESD's pictures are nearly black,
so the latents are the telling comparison.)

    nice -n 5 python benchmarks/walk_speed.py [--repeats 3] [--batches 1,2,4,8] [--threads N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import itertools
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # the sibling image_speed.py, and the studio

from image_speed import DECODER_ID, MODEL_ID, SIZE, build_random_sd_turbo, studio_backend  # noqa: E402

from studio.backends.diffusion import DiffusionBackend, ImageRequest  # noqa: E402
from studio.backends.diffusion.walks import Keyframe, PromptWalkRequest, prompt_walk  # noqa: E402

KEYFRAMES = (("a lighthouse on a cliff at sunset, oil painting", 1), ("a lighthouse in a storm at night", 2))
FRAMES_BETWEEN = 8
STUDIO_BATCH = PromptWalkRequest(keyframes=()).batch  # the walk's default in-between frames per UNet call
# How far batched frames may be from one-at-a-time ones: the same sums in another order round differently.
MAX_LATENT_DIFFERENCE = 1e-4  # of the latents' largest magnitude (float32 rounding measured ~3e-7)
MAX_PIXEL_DIFFERENCE = 2  # per channel, 0-255


@dataclass
class Measured:
    """The runs of one batch size."""

    batch: int
    walk_seconds: list[float] = field(default_factory=list)  # wall, whole walk
    between_seconds: list[float] = field(default_factory=list)  # wall, in-between frames only
    between_cpu_seconds: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    frames: list[np.ndarray] = field(default_factory=list)  # pictures of the first timed run
    latents: list[np.ndarray] = field(default_factory=list)  # what its UNet made, frame by frame

    def median(self, name: str) -> float:
        return statistics.median(getattr(self, name))


def reset_peak_rss() -> bool:
    """Start a new high-water mark at the current RSS (Linux: /proc/self/clear_refs, value 5), after
    handing memory freed by earlier walks back to the system: glibc would otherwise keep it, and a
    walk after a bigger batch would start from that batch's RSS. False where this cannot be done."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


@contextlib.contextmanager
def decoder_inputs(backend: DiffusionBackend) -> Iterator[list[np.ndarray]]:
    """The latents the walk hands its decoder, one per frame in the order they are made (the two
    keyframes, then the in-between frames): the UNet's output before it is rounded to pixels."""
    decoder = backend.decoder(DECODER_ID, backend.load(MODEL_ID).pipe.unet.dtype).decoder
    seen: list[np.ndarray] = []
    handle = decoder.register_forward_pre_hook(
        lambda _module, args: seen.extend(latent.float().cpu().numpy() for latent in args[0])
    )
    try:
        yield seen
    finally:
        handle.remove()


def walk_request(batch: int, frames_between: int = FRAMES_BETWEEN) -> PromptWalkRequest:
    settings = ImageRequest(prompt=KEYFRAMES[0][0], model=MODEL_ID, decoder=DECODER_ID, steps=1, guidance=0.0,
                            width=SIZE, height=SIZE)
    return PromptWalkRequest(keyframes=tuple(Keyframe(p, s) for p, s in KEYFRAMES), frames_between=frames_between,
                             settings=settings, batch=batch)


def timed_walk(backend: DiffusionBackend, batch: int, measured: Measured) -> None:
    """One walk; its times, peak RSS and (the first time) frames are added to `measured`."""
    marks: list[tuple[float, float]] = []  # (wall, cpu) as each frame is done; keyframes come first

    def progress(_done: int, _total: int, _preview) -> None:
        marks.append((time.perf_counter(), time.process_time()))

    request = walk_request(batch)
    peak_is_own = reset_peak_rss()
    with decoder_inputs(backend) as latents:
        wall = time.perf_counter()
        result = prompt_walk(backend, request, progress=progress)
        end_wall, end_cpu = time.perf_counter(), time.process_time()
    assert len(result.frames) == FRAMES_BETWEEN + len(KEYFRAMES) and not result.stopped
    assert result.params["decoder"] == DECODER_ID and result.params["batch"] == batch
    keys_wall, keys_cpu = marks[len(KEYFRAMES) - 1]
    measured.walk_seconds.append(end_wall - wall)
    measured.between_seconds.append(end_wall - keys_wall)
    measured.between_cpu_seconds.append(end_cpu - keys_cpu)
    measured.peak_rss_mb = max(measured.peak_rss_mb, peak_rss_mb()) if peak_is_own else float("nan")
    if not measured.frames:
        measured.frames = [np.asarray(frame, dtype=np.int16) for frame in result.frames]
        measured.latents = latents


def largest_difference(frames: list[np.ndarray], reference: list[np.ndarray]) -> float:
    return max(float(np.abs(a - b).max()) for a, b in zip(frames, reference, strict=True))


def smallest_step(frames: list[np.ndarray]) -> float:
    """The largest change between two neighbouring frames, for the pair that changes least."""
    return min(float(np.abs(a - b).max()) for a, b in itertools.pairwise(frames))


def machine_line() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text(encoding="ascii", errors="ignore")
                 .splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return (f"{os.cpu_count()} cores ({cpu}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"CPU capability {torch.backends.cpu.get_cpu_capability()}, load average "
            f"{os.getloadavg()[0]:.1f}")


def report(results: dict[int, Measured], frames: int) -> int:
    """Print the table and the ratios against one frame at a time; 1 if batching changed the frames."""
    one = results[1]
    scale = max(float(np.abs(latent).max()) for latent in one.latents)
    latent_differences = {b: largest_difference(r.latents, one.latents) / scale for b, r in results.items()}
    pixel_differences = {b: largest_difference(r.frames, one.frames) for b, r in results.items()}
    print(f"{'frames per UNet call':>20} {'s/frame, walk':>14} {'s/frame, between':>17} "
          f"{'CPU s/frame, between':>21} {'peak RSS':>10} {'latent diff':>12} {'pixel diff':>11}")
    for batch, r in results.items():
        print(f"{batch:>20} {r.median('walk_seconds') / frames:>14.2f} "
              f"{r.median('between_seconds') / FRAMES_BETWEEN:>17.2f} "
              f"{r.median('between_cpu_seconds') / FRAMES_BETWEEN:>21.2f} "
              f"{r.peak_rss_mb:>7.0f} MB {latent_differences[batch]:>12.1e} {pixel_differences[batch]:>11.0f}")
    for batch, r in results.items():
        if batch != 1:
            print(f"batch {batch} against 1: the walk {one.median('walk_seconds') / r.median('walk_seconds'):.2f}x "
                  f"as fast; in-between frames {one.median('between_seconds') / r.median('between_seconds'):.2f}x "
                  f"(wall), {one.median('between_cpu_seconds') / r.median('between_cpu_seconds'):.2f}x (CPU); "
                  f"peak RSS {r.peak_rss_mb - one.peak_rss_mb:+.0f} MB")
    # The in-between latents come in walk order; if they hardly moved, matching would prove nothing.
    step = smallest_step(one.latents[len(KEYFRAMES):]) / scale
    print(f"latent diff: the largest difference from the one-at-a-time latents, as a share of their largest "
          f"value (neighbouring frames differ by at least {step:.2f}); pixel diff: per channel, 0-255")
    failures = [
        f"batch {batch} changed the frames: latents differ by {latent_differences[batch]:.1e} (allowed "
        f"{MAX_LATENT_DIFFERENCE:.0e}), pixels by {pixel_differences[batch]:.0f} (allowed {MAX_PIXEL_DIFFERENCE})"
        for batch in results
        if latent_differences[batch] > MAX_LATENT_DIFFERENCE or pixel_differences[batch] > MAX_PIXEL_DIFFERENCE
    ]
    if step <= 100 * MAX_LATENT_DIFFERENCE:
        failures.append(f"the walk's frames hardly change ({step:.1e}), so matching them says nothing")
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


def time_parts(backend: DiffusionBackend, batches: list[int], repeats: int) -> None:
    """Where an in-between frame's time goes: the UNet step and the decoder alone, called on the studio's
    cached modules at each batch size, taking turns. Per frame, medians: wall seconds, CPU seconds in
    user and kernel mode, and page faults (the kernel handing the process fresh memory)."""
    import torch

    unet = backend.load(MODEL_ID).pipe.unet
    decoder = backend.decoder(DECODER_ID, unet.dtype)
    most = max(batches)
    latents = torch.randn(most, unet.config.in_channels, SIZE // 8, SIZE // 8, dtype=unet.dtype)
    text = torch.randn(most, 77, unet.config.cross_attention_dim, dtype=unet.dtype)
    timestep = torch.tensor([999])
    parts: dict[str, Callable[[int], object]] = {
        "UNet step": lambda n: unet(latents[:n], timestep, text[:n]),
        "TAESD decode": lambda n: decoder.decode(latents[:n]),
    }
    samples: dict[tuple[str, int], list[tuple[float, float, float, float]]] = defaultdict(list)
    with torch.inference_mode():
        for call in parts.values():
            call(most)
        for _ in range(repeats):
            for name, call in parts.items():
                for batch in batches:
                    before, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
                    call(batch)
                    wall, after = time.perf_counter() - wall, resource.getrusage(resource.RUSAGE_SELF)
                    samples[name, batch].append((wall / batch, (after.ru_utime - before.ru_utime) / batch,
                                                 (after.ru_stime - before.ru_stime) / batch,
                                                 (after.ru_minflt - before.ru_minflt) / batch))
    print(f"{'part, per frame':>20} {'batch':>6} {'wall s':>8} {'user s':>8} {'system s':>9} {'page faults':>12}")
    for (name, batch), runs in samples.items():
        wall, user, system, faults = (statistics.median(column) for column in zip(*runs, strict=True))
        print(f"{name:>20} {batch:>6} {wall:>8.2f} {user:>8.2f} {system:>9.2f} {faults:>12.0f}")


def batch_sizes(text: str) -> list[int]:
    """`--batches`: comma-separated whole numbers the walk accepts; 1 (the reference) is always added."""
    try:
        sizes = {int(part) for part in text.split(",")}
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of whole numbers: {text!r}") from None
    if not all(1 <= size <= 16 for size in sizes):
        raise argparse.ArgumentTypeError("batch sizes are between 1 and 16")
    return sorted(sizes | {1})


def main() -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed walks per batch size")
    parser.add_argument("--batches", type=batch_sizes, default=[1, STUDIO_BATCH],
                        help=f"in-between frames per UNet call to compare, comma-separated; 1 is always included "
                             f"(default: 1,{STUDIO_BATCH}, the studio's default)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--keep", type=Path, help="build the random models here once and reuse them")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    folder = args.keep or Path(tempfile.mkdtemp(prefix="walk-bench-"))
    try:
        if not (folder / "taesd" / "config.json").exists():
            print(f"building SD-Turbo-sized random models in {folder} ...", flush=True)
            build_random_sd_turbo(folder)
        backend = studio_backend(folder)
        dtype = str(backend.load(MODEL_ID).pipe.unet.dtype).removeprefix("torch.")
        print(machine_line())
        frames = FRAMES_BETWEEN + len(KEYFRAMES)
        print(f"walk: {len(KEYFRAMES)} keyframes, {frames} frames ({FRAMES_BETWEEN} in between), {SIZE}x{SIZE}, "
              f"1 step, guidance 0, TAESD decode, {dtype}; median of {args.repeats}, batch sizes taking turns",
              flush=True)
        results = {batch: Measured(batch) for batch in args.batches}
        # Loads the models into the studio's cache and runs each part of the path once.
        prompt_walk(backend, walk_request(args.batches[-1], frames_between=1))
        for _ in range(args.repeats):
            for batch in args.batches:
                timed_walk(backend, batch, results[batch])

        failed = report(results, frames)
        time_parts(backend, args.batches, args.repeats)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        return failed
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
