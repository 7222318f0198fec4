"""Load on the hosted studio: many API clients at once doing mixed work on the built-in models.

Starts the real app (`app.py --hosted`, rate limit off since every client here shares one address)
and runs two phases:
1. `--clients` (20) gradio_client clients, each looping over a mixed list of tasks (style transfer,
   patterns, a short text reply, a melody, a gallery listing) for `--minutes`; every reply is
   checked (a file that opens, text that is not empty). Prints requests, failures, p50/p95
   latency per task and the server's peak memory.
2. `--repeats` (200) identical style requests one after another, sampling the server's memory
   after each, to show it stays flat: prints the resident size after the first quarter and at
   the end, and the growth between them.

Run: `make bench` or `.venv/bin/python benchmarks/load_test.py [--clients 20 --minutes 3 --repeats 200]`.
Exits non-zero if any request failed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradio_client import Client, handle_file  # noqa: E402
from PIL import Image  # noqa: E402

from tests.running_app import RunningApp  # noqa: E402

PHOTO = ROOT / "assets" / "examples" / "coffee.jpg"
SMOLLM = "smollm2-135m-instruct-gguf"


def stylize(client: Client, n: int) -> None:
    path, info, *_ = client.predict(handle_file(str(PHOTO)), "Built-in style", n % 26, -1, 0.5, None, 1.0, False,
                                    256, True, api_name="/stylize")
    assert max(Image.open(path).size) == 256 and "gallery #" in info


def patterns(client: Client, n: int) -> None:
    path, info = client.predict(n, "sunset", 128, 128, 1.0, True, api_name="/patterns")
    assert Image.open(path).size == (128, 128)


def write(client: Client, n: int) -> None:
    _, info, text, *_ = client.predict("The lighthouse keeper", SMOLLM, 0.8, 0.95, 40, 0.05, 1.1, 24, "", n,
                                       True, api_name="/write")
    assert text.strip() and "tokens" in info


def melody(client: Client, n: int) -> None:
    roll, wav, files, abc, info, *_ = client.predict("Nothing: a new tune", None, "", None, False, "G", "major",
                                                     "4/4", 110, 4, 0.9, 0.95, 2.0, False, n, "piano",
                                                     api_name="/melody")
    assert Image.open(roll).size[0] > 0 and any(str(f).endswith(".mid") for f in files) and "K:" in abc


def gallery(client: Client, n: int) -> None:
    listing, *_ = client.predict("All", api_name="/gallery_list")
    assert isinstance(listing, list)


TASKS = (stylize, patterns, write, melody, gallery)


def resident_mb(pid: int) -> float:
    """The server's resident memory, children included (the app runs in one process)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class MemoryWatch(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0.0, True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, resident_mb(self.pid))
            time.sleep(0.2)


def make_client(url: str, timeout: float | None = None) -> Client:
    """A gradio_client Client; with `timeout`, its HTTP calls wait that long (gradio_client's own default,
    httpx's 5 s, is shorter than a request waits in the queue of an overloaded server)."""
    if timeout is None:
        return Client(url, verbose=False)
    import httpx

    return Client(url, verbose=False, httpx_kwargs={"timeout": httpx.Timeout(timeout)})


def client_loop(url: str, index: int, until: float, latencies: dict, failures: list, lock: threading.Lock,
                timeout: float | None = None) -> None:
    client = make_client(url, timeout)
    n = index
    while time.monotonic() < until:
        task = TASKS[n % len(TASKS)]
        started = time.monotonic()
        try:
            task(client, n)
        except Exception as exc:  # every failure is counted and shown, none stops the run
            with lock:
                failures.append(f"{task.__name__}: {type(exc).__name__}: {str(exc)[:200]}")
        else:
            with lock:
                latencies[task.__name__].append(time.monotonic() - started)
        n += 1


def run_clients(url: str, clients: int, minutes: float,
                timeout: float | None = None) -> tuple[dict[str, list[float]], list[str], float]:
    """`clients` looping over the tasks for `minutes`: latencies per task, failures, and seconds taken;
    `timeout` is each client's HTTP timeout (see make_client)."""
    latencies: dict[str, list[float]] = defaultdict(list)
    failures: list[str] = []
    lock = threading.Lock()
    until = time.monotonic() + minutes * 60
    started = time.monotonic()
    threads = [threading.Thread(target=client_loop, args=(url, i, until, latencies, failures, lock, timeout))
               for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, failures, time.monotonic() - started


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="studio-load-")) / "data"
    env = {"STUDIO_RATE_LIMIT_PER_MINUTE": "0", "STUDIO_MAX_QUEUE": str(4 * args.clients)}
    with RunningApp(data, "--hosted", env=env) as app:
        pid = app.process.pid
        warm = Client(app.url, verbose=False)
        for task in TASKS:  # load every model once, so the figures are about serving, not loading
            task(warm, 0)
        watch = MemoryWatch(pid)
        watch.start()
        latencies, failures, elapsed = run_clients(app.url, args.clients, args.minutes)
        watch.running = False
        done = sum(len(v) for v in latencies.values())

        print(f"{args.clients} clients for {elapsed:.0f} s: {done} requests delivered, {len(failures)} failed")
        print(f"{'task':<10} {'requests':>8} {'p50 s':>7} {'p95 s':>7}")
        for task in TASKS:
            values = latencies.get(task.__name__, [])
            if values:
                print(f"{task.__name__:<10} {len(values):>8} {percentile(values, 50):>7.2f} "
                      f"{percentile(values, 95):>7.2f}")
        print(f"server peak resident memory: {watch.peak:.0f} MB")
        for failure in failures[:10]:
            print("  failed:", failure)

        repeat = Client(app.url, verbose=False)
        samples = []
        for _ in range(args.repeats):
            stylize(repeat, 3)
            samples.append(resident_mb(pid))
        quarter = samples[len(samples) // 4 - 1]
        print(f"{args.repeats} repeated style requests: {quarter:.0f} MB after {len(samples) // 4}, "
              f"{samples[-1]:.0f} MB after {len(samples)} (growth {samples[-1] - quarter:+.0f} MB, "
              f"max {max(samples):.0f} MB)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
