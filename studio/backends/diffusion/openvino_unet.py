"""OpenVINO for the two heavy parts of a diffusion run on a CPU: the UNet and TAESD's decoder.

On a CPU without native bf16, OpenVINO's CPU plugin runs SD-Turbo's UNet step 1.1-1.35x faster than
torch in fp32 on its own, more inside a run (torch faults its freed buffers back in at every call),
and TAESD's decoder 2.4x faster: a 512 px picture takes 3.96 s instead of 6.10 s
(benchmarks/image_components.py, image_speed.py). Only the modules are swapped: schedulers,
callbacks, previews and Stop stay diffusers' own.

A UNet is converted once per set of weights and kept as OpenVINO IR (fp16 weights, computed in fp32)
under the studio's cache folder, with its config and the files it came from; later launches read it in
seconds and never load the torch UNet at all. The conversion takes 45-55 s for SD-Turbo's UNet, so the
user is told (PREPARING, with progress), and conversions of weights that changed since are deleted. TAESD is small enough to convert each time it loads. Imported only where OpenVINO is used: it imports torch.

SDXL's and SDXL-Turbo's UNets ("text_time": a pooled text embedding and six size/crop ids beside the text)
convert with those two as more inputs. SDXL-Turbo's real-size UNet (2.57 B parameters), one 512 px step on a
shared 2-core AVX-512 box: torch fp32 12.8-14.9 s, OpenVINO fp32 15.9-25.4 s, int8 weights 9.6-9.9 s (1.3-1.5x
torch, 7602 MB peak RSS against 10534 MB); its conversion takes 201 s and 11397 MB at peak, the int8
compression 104 s
(benchmarks/sdxl_openvino.py). So only the "fastest" speed converts it (`pays_off`). LCM's guidance
embedding and other extra conditioning stay on torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from studio.runtime import StageCallback, no_stage

log = logging.getLogger(__name__)

# Bump when the export changes, so that IR made by an older studio is not reused.
IR_FORMAT = "1"
# Latents traced at odd sizes, which no UNet's down-sampling divides: the UNet then passes each
# up-sampling its exact output size, so one IR serves every width and height (multiples of 64 px
# included). Not square, so that no height is ever taken for a width.
TRACE_LATENT_SIZE = (37, 45)


# What the user reads while a UNet is converted for the first time.
PREPARING = "Preparing this model for your CPU: once, about a minute"
# SD-Turbo's UNet (865 M parameters) converts in 45-55 s on 2 cores: the progress shown is paced by
# this rate, as OpenVINO's converter reports nothing while it works.
SECONDS_PER_MILLION_PARAMETERS = 55 / 865
# Shares of the progress bar: the conversion itself, then writing the IR, then compiling it.
CONVERTED, SAVED = 85, 95
SOURCE_FILE = "source.json"  # the weight files a conversion came from, to tell when it is stale


# This path is the studio's fp32 one: OpenVINO's CPU plugin would otherwise run in bf16 on CPUs
# with native bf16, and the pictures would move away from torch's by more than rounding.
CPU_CONFIG = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
MADV_DONTNEED = 4  # Linux's madvise advice: drop these pages now
# The "fastest" speed's UNet: its weights compressed to int8 beside the exact conversion (NNCF).
COMPRESSED_FILE = "unet-int8.xml"
TIME_IDS = 6  # SDXL's size and crop conditioning: original (h, w), crop (top, left), target (h, w)


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str:
    import openvino

    return openvino.__version__.split("-")[0]


def unet_is_supported(unet: Any) -> bool:
    """SD 1.x / 2.x-style UNets (text conditioning only) and SDXL's (text plus the pooled text embedding
    and the size and crop ids, `addition_embed_type` "text_time"). Others (LCM's guidance embedding,
    class labels, image embeddings) stay on torch."""
    config = unet.config
    return (
        getattr(config, "addition_embed_type", None) in (None, "text_time")
        and getattr(config, "time_cond_proj_dim", None) is None
        and getattr(config, "class_embed_type", None) is None
        and getattr(config, "encoder_hid_dim", None) is None
        and getattr(config, "num_class_embeds", None) is None
    )


# SDXL's UNet on OpenVINO, measured on its real-size architecture (benchmarks/sdxl_openvino.py, 2 cores, 512 px):
# in fp32 a step took 1.2-1.7x torch's time, with 5 GB more at load; in int8 it ran 1.3-1.5x faster in 72% of
# torch's memory. So its exact path stays on torch and only the "fastest" speed converts it. The conversion
# is exact to rounding (tests/test_openvino_sdxl.py) should a CPU where fp32 pays be measured.
EXACT_SDXL_ON_OPENVINO = False


def pays_off(config: Any, fastest: bool) -> bool:
    """Whether OpenVINO should take this (supported) UNet for the exact or the fastest speed."""
    return fastest or not takes_text_time(config) or EXACT_SDXL_ON_OPENVINO


def takes_text_time(config: Any) -> bool:
    """SDXL's UNet: besides the text, a pooled text embedding and six size and crop ids
    (added_cond_kwargs "text_embeds" and "time_ids")."""
    return getattr(config, "addition_embed_type", None) == "text_time"


def text_time_example(config: Any, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A pooled text embedding and size/crop ids of the widths this UNet's added embedding takes: its
    input is the pooled embedding beside one `addition_time_embed_dim` wide embedding per id. SDXL and
    SDXL-Turbo pass six ids (original size, crop corner, target size); the IR's widths stay dynamic, so a
    refiner's five ids (an aesthetic score in place of the target size) fit as well."""
    time_width = TIME_IDS * config.addition_time_embed_dim
    pooled = config.projection_class_embeddings_input_dim - time_width
    if pooled <= 0:
        raise ValueError(f"this UNet's added embedding ({config.projection_class_embeddings_input_dim} wide) "
                         f"has no room for {TIME_IDS} time ids")
    return torch.zeros(batch, pooled), torch.zeros(batch, TIME_IDS)


def weights_key(weights: list[Path]) -> str:
    """Names, sizes and modification times of the files the UNet came from, and the OpenVINO
    version: new weights or a new OpenVINO make a new conversion."""
    import openvino

    facts = [IR_FORMAT, openvino.__version__]
    for path in sorted(weights):
        stat = path.stat()
        facts.append(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:20]


class OpenVinoUNet:
    """Stands in for a diffusers UNet2DConditionModel: same call, same config, no torch weights."""

    def __init__(self, ir_file: Path, config: Any, cpu_config: dict[str, Any] | None = None):
        import openvino as ov

        self.config = config
        self.dtype = torch.float32
        self.device = torch.device("cpu")
        self.text_time = takes_text_time(config)
        if self.text_time:
            # SDXL's pipelines check the width of the added embedding's first layer against the ids they made.
            width = config.projection_class_embeddings_input_dim
            self.add_embedding = SimpleNamespace(linear_1=SimpleNamespace(in_features=width))
        # fp16 on disk is fp32 in use; int8 weights stay int8.
        grows = 1 if ir_file.name == COMPRESSED_FILE else 2
        self.memory_mb = grows * ir_file.with_suffix(".bin").stat().st_size / 2**20
        self._compiled = ov.Core().compile_model(str(ir_file), "CPU", cpu_config or CPU_CONFIG)
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request; concurrent runs take turns
        self._settle(ir_file.with_suffix(".bin"))

    def _settle(self, weights_file: Path) -> None:
        """OpenVINO reads the IR's weights through a memory map and makes its own copy to compute with at
        the first call, keeping the map: the file's pages would stay resident beside that copy (1.7 GB
        for SD-Turbo's UNet). A tiny first call here makes the copy now, while the rest of the model is
        not loaded yet, and the map's pages are then handed back; were any read again, the kernel would
        read them from the file."""
        config = self.config
        # A small latent every down-sampling divides.
        side = max(8, 2 ** (len(getattr(config, "block_out_channels", (0, 0, 0, 0))) - 1))
        added = None
        if self.text_time:
            text_embeds, time_ids = text_time_example(config)
            added = {"text_embeds": text_embeds, "time_ids": time_ids}
        with torch.inference_mode():
            self(torch.zeros(1, config.in_channels, side, side), torch.tensor([1.0]),
                 torch.zeros(1, 77, config.cross_attention_dim), added_cond_kwargs=added)
        drop_mapped_pages(weights_file)

    def __call__(
        self,
        sample,
        timestep,
        encoder_hidden_states,
        timestep_cond=None,
        cross_attention_kwargs=None,
        added_cond_kwargs=None,
        return_dict: bool = True,
        **extra: Any,
    ):
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        unsupported = [name for name, value in extra.items() if value is not None]
        added = dict(added_cond_kwargs or {})
        inputs = [
            sample.detach().float().cpu().numpy(),
            np.asarray(torch.as_tensor(timestep).detach().cpu(), dtype=np.float32).reshape(-1),
            encoder_hidden_states.detach().float().cpu().numpy(),
        ]
        if self.text_time and {"text_embeds", "time_ids"} <= added.keys():
            inputs += [added.pop(name).detach().float().cpu().numpy() for name in ("text_embeds", "time_ids")]
        elif self.text_time:
            raise RuntimeError("This SDXL UNet needs added_cond_kwargs with text_embeds and time_ids.")
        if timestep_cond is not None or cross_attention_kwargs or any(v is not None for v in added.values()) \
                or unsupported:
            raise RuntimeError("This pipeline feature needs the torch UNet: start the studio with STUDIO_OPENVINO=0.")
        with self._lock:
            result = self._request.infer(inputs)
            out = torch.from_numpy(np.array(result[0]))  # a copy: the request reuses its buffers
        return UNet2DConditionOutput(sample=out) if return_dict else (out,)

    # What diffusers asks of a component besides calling it.
    def to(self, *args: Any, **kwargs: Any) -> OpenVinoUNet:
        return self

    def eval(self) -> OpenVinoUNet:
        return self

    def parameters(self):
        return iter(())

    def modules(self):
        return iter(())


class _UNetForExport(torch.nn.Module):
    """The inputs the studio passes as plain tensors, one tensor out: what OpenVINO's tracer wants. SDXL's
    UNet takes two more, its added_cond_kwargs."""

    def __init__(self, unet: Any):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states, text_embeds=None, time_ids=None):
        added = None if text_embeds is None else {"text_embeds": text_embeds, "time_ids": time_ids}
        return self.unet(sample, timestep, encoder_hidden_states, added_cond_kwargs=added, return_dict=False)[0]


def export_unet(unet: Any, ir_file: Path, report: Callable[[int], None] = lambda percent: None,
                fp16_weights: bool = True) -> None:
    """Convert a torch UNet to IR at `ir_file`, its config beside it. Written under temporary names,
    the .xml last, so a killed conversion leaves nothing that looks finished. `report(percent)` hears
    how far along it is. `fp16_weights`: stored in fp16 (the studio's choice: half the disk, computed in
    fp32 all the same), else as they are."""
    import openvino as ov

    config = unet.config
    example = (
        torch.randn(1, config.in_channels, *TRACE_LATENT_SIZE),
        torch.tensor([999.0]),
        torch.randn(1, 77, config.cross_attention_dim),
    )
    if takes_text_time(config):
        text_embeds, time_ids = text_time_example(config)
        # Ids of the size they stand for: the size embedding's sines see real magnitudes.
        example += (torch.randn_like(text_embeds), time_ids + torch.tensor([[512.0, 512.0, 0.0, 0.0, 512.0, 512.0]]))
    ir_file.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".converting-", dir=ir_file.parent))
    try:
        expected = sum(p.numel() for p in unet.parameters()) / 1e6 * SECONDS_PER_MILLION_PARAMETERS
        with torch.no_grad(), warnings.catch_warnings(), _paced(report, 0, CONVERTED, expected):
            # The tracer warns at every shape check in diffusers; the odd trace size makes them moot.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            model = ov.convert_model(_UNetForExport(unet), example_input=example)
        report(CONVERTED)
        ov.save_model(model, scratch / ir_file.name, compress_to_fp16=fp16_weights)
        report(SAVED)
        del model
        (scratch / "config.json").write_text(json.dumps(dict(config), default=str), encoding="utf-8")
        for name in (ir_file.with_suffix(".bin").name, "config.json", ir_file.name):
            os.replace(scratch / name, ir_file.parent / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def _paced(report: Callable[[int], None], start: int, end: int, seconds: float) -> Iterator[None]:
    """Report from `start` towards `end` (never reaching it) at the pace of `seconds`, while the body runs."""
    finished = threading.Event()
    began = time.monotonic()

    def tick() -> None:
        while not finished.wait(0.5):
            share = min((time.monotonic() - began) / max(seconds, 0.1), 0.95)
            report(start + int((end - start) * share))

    ticker = threading.Thread(target=tick, name="openvino-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        finished.set()
        ticker.join()


def converted_unet_file(cache_root: Path, weights: list[Path]) -> Path:
    """Where the conversion of the UNet from these weight files is kept."""
    return cache_root / weights_key(weights) / "unet.xml"


def load_converted_unet(ir_file: Path, fastest: bool = False, native_bf16: bool = False) -> OpenVinoUNet | None:
    """The kept conversion with its config, or None if there is none yet. `fastest`: its int8 twin
    (made once from it, see `compress_unet`), computed in bf16 where the CPU has `native_bf16`."""
    from diffusers.configuration_utils import FrozenDict

    config_file = ir_file.with_name("config.json")
    if not (ir_file.exists() and config_file.exists()):
        return None
    config = FrozenDict(json.loads(config_file.read_text(encoding="utf-8")))
    if not fastest:
        return OpenVinoUNet(ir_file, config)
    return OpenVinoUNet(compress_unet(ir_file), config, fastest_config(native_bf16))


def fastest_config(native_bf16: bool) -> dict[str, Any]:
    """The "fastest" speed's CPU settings: bf16 compute where the CPU runs it natively."""
    return {**CPU_CONFIG, "INFERENCE_PRECISION_HINT": "bf16" if native_bf16 else "f32"}


def fastest_available() -> bool:
    try:
        import nncf  # noqa: F401
    except ImportError:
        return False
    return True


def compress_unet(ir_file: Path) -> Path:
    """The kept conversion's twin with int8 weights (NNCF's asymmetric per-channel compression of every
    matrix multiplication and convolution), written once beside it and pruned with it. Half the fp16
    file; the CPU plugin keeps the weights int8 and widens them as it computes."""
    target = ir_file.with_name(COMPRESSED_FILE)
    if target.exists():
        return target
    import nncf
    import openvino as ov

    log.info("compressing the UNet's weights to int8 in %s (once per model)", ir_file.parent)
    nncf.set_log_level(logging.WARNING)  # its statistics table would land in the CLI's --json output
    scratch = Path(tempfile.mkdtemp(prefix=".compressing-", dir=ir_file.parent))
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # and so would its progress bar
            compressed = nncf.compress_weights(ov.Core().read_model(str(ir_file)),
                                               mode=nncf.CompressWeightsMode.INT8_ASYM)
        ov.save_model(compressed, scratch / target.name, compress_to_fp16=False)
        del compressed
        for name in (target.with_suffix(".bin").name, target.name):  # the .xml last: only then is it finished
            os.replace(scratch / name, target.parent / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        release_freed_memory()
    return target


def accelerate_unet(pipe: Any, ir_file: Path, weights: list[Path] | None = None,
                    stage: StageCallback = no_stage, fastest: bool = False, native_bf16: bool = False) -> OpenVinoUNet:
    """Swap `pipe.unet` for its OpenVINO twin, converting it first if this is its first use (told to
    `stage` as PREPARING, with progress; `weights` are recorded, and older conversions of them pruned).
    The torch UNet is freed before OpenVINO compiles, so the two never sit in memory together.
    `fastest`: the int8 twin (see `load_converted_unet`)."""
    converting = not ir_file.exists()
    told = preparing_message(sum(p.numel() for p in pipe.unet.parameters()), fastest)
    if converting:
        log.info("converting the UNet for OpenVINO into %s (once per model)", ir_file.parent)
        stage(told, 0, 100)
        export_unet(pipe.unet, ir_file, lambda percent: stage(told, percent, 100))
        if weights is not None:
            record_source(ir_file, weights)
            prune_stale_conversions(ir_file.parent.parent)
    pipe.unet = None
    release_freed_memory()
    twin = load_converted_unet(ir_file, fastest, native_bf16)
    if twin is None:
        raise RuntimeError(f"the conversion in {ir_file.parent} is incomplete")
    pipe.unet = twin
    if converting:
        stage(told, 100, 100)
    return twin


def preparing_message(parameters: int, fastest: bool = False) -> str:
    """What the user reads while a UNet converts: PREPARING for SD-sized UNets, the minutes it will take for
    bigger ones (SDXL's 2.57 B parameters: about 3.5 min, plus about 1.5 min for the int8 twin)."""
    minutes = parameters / 1e6 * SECONDS_PER_MILLION_PARAMETERS * (1.5 if fastest else 1.0) / 60
    if minutes < 1.5:
        return PREPARING
    return f"Preparing this model for your CPU: once, about {round(minutes)} minutes"


def record_source(ir_file: Path, weights: list[Path]) -> None:
    """Note beside a conversion which files it came from."""
    paths = sorted(str(path.resolve()) for path in weights)
    (ir_file.parent / SOURCE_FILE).write_text(json.dumps({"weights": paths}), encoding="utf-8")


def is_stale(folder: Path) -> bool:
    """True for a conversion that can never be used again: a file it came from is gone or changed, or
    OpenVINO or the export changed (its key, the folder's name, would differ). A conversion without
    a record of its source (made by an older studio) is not judged."""
    try:
        weights = [Path(path) for path in json.loads((folder / SOURCE_FILE).read_text(encoding="utf-8"))["weights"]]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not weights or not all(path.is_file() for path in weights):
        return True
    return weights_key(weights) != folder.name


def prune_stale_conversions(cache_root: Path) -> list[Path]:
    """Delete the conversions `is_stale` finds (each holds a UNet's weights: 1.7 GB for SD-Turbo's);
    the folders deleted."""
    pruned = []
    for folder in sorted(cache_root.iterdir()) if cache_root.is_dir() else ():
        if folder.is_dir() and not folder.name.startswith(".") and is_stale(folder):
            log.info("deleting the OpenVINO conversion of changed weights in %s", folder)
            shutil.rmtree(folder, ignore_errors=True)
            pruned.append(folder)
    return pruned


class OpenVinoModule(torch.nn.Module):
    """A one-tensor-in, one-tensor-out torch module run by a compiled OpenVINO model."""

    def __init__(self, compiled: Any):
        super().__init__()
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()

    def forward(self, x):
        with self._lock:
            result = self._request.infer([x.detach().float().cpu().numpy()])
            return torch.from_numpy(np.array(result[0]))  # a copy: the request reuses its buffers


def accelerate_taesd(vae: Any) -> None:
    """Give an AutoencoderTiny an OpenVINO decoder; its encoder stays torch (img2img only)."""
    import openvino as ov

    example = torch.randn(1, vae.config.latent_channels, *TRACE_LATENT_SIZE)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        model = ov.convert_model(vae.decoder, example_input=(example,))
    compiled = ov.Core().compile_model(model, "CPU", CPU_CONFIG)
    vae.decoder = OpenVinoModule(compiled)


def drop_mapped_pages(path: Path) -> int:
    """Tell the kernel this process no longer needs the resident pages of its read-only maps of `path`
    (they are dropped at once and read from the file again if touched). The number of maps told."""
    target = str(path.resolve())
    told = 0
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            regions = [line.split(maxsplit=5) for line in maps]
        for fields in regions:
            # Only read-only maps: a private writable one may hold changes the file does not.
            if len(fields) == 6 and fields[5].strip() == target and "w" not in fields[1]:
                start, end = (int(value, 16) for value in fields[0].split("-"))
                if libc.madvise(start, end - start, MADV_DONTNEED) == 0:
                    told += 1
    return told


def release_freed_memory() -> None:
    """Hand memory freed by Python back to the system now (glibc keeps freed heap otherwise)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
