"""The hosted studio under load in-process against Ray Serve with 1 and 2 replicas per family, and the
per-request overhead of going through Ray for a small job.

1. The load test of benchmarks/load_test.py (`--clients` gradio_client clients looping over style
   transfer, patterns, a short text reply, a melody and a gallery listing, for `--minutes`) against
   the real app three times: in-process, `--ray local` with 1 replica per family, and with 2. The
   front end's heavy concurrency is the same in all three (`--heavy`), so the runs differ only in
   where the model work runs. Prints requests served, failures, p50/p95 per run, failures per kind
   (task and error), and the throughput ratio 2 replicas / 1. Each client's HTTP timeout fits the
   workload (`--client-timeout`, by default from each task's time alone on the warmed server: the
   longest a request can wait behind every other client's), so a failure is a real error, not a
   read timeout of a client that waited its turn on an overloaded machine.
2. A Style job at 256 px (`--repeats` times) in-process and through a 1-replica Ray deployment, in this
   process: the median time of each and the difference, the overhead per request (target < 50 ms).

Run: `.venv/bin/python benchmarks/ray_load.py [--clients 20 --minutes 1 --heavy 4 --repeats 30]`.
Needs requirements-ray.txt (`make test` installs it). Exits non-zero if any request failed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradio_client import Client  # noqa: E402

from benchmarks.load_test import TASKS, make_client, percentile, run_clients  # noqa: E402
from tests.running_app import RunningApp  # noqa: E402

PHOTO = ROOT / "assets" / "examples" / "coffee.jpg"
WARM_TIMEOUT_S = 600.0  # the first requests load every model on every replica
# The families the load test's tasks use run on Ray; image and music have no built-in model to load here.
CLUSTER = "[image]\nremote = false\n\n[music]\nremote = false\n" + "".join(
    f"\n[{family}]\nreplicas = {{replicas}}\nnum_cpus = 0.25\n" for family in ("style", "text", "melody", "walks"))


def load_run(label: str, args: argparse.Namespace, extra: list[str]) -> dict:
    data = Path(tempfile.mkdtemp(prefix="studio-ray-load-")) / "data"
    env = {"STUDIO_RATE_LIMIT_PER_MINUTE": "0", "STUDIO_MAX_QUEUE": str(4 * args.clients),
           "STUDIO_HEAVY_CONCURRENCY": str(args.heavy)}
    started_app = time.monotonic()
    with RunningApp(data, "--hosted", *extra, env=env) as app:
        start_seconds = time.monotonic() - started_app
        # Every model loaded on every replica before the clock starts (Serve spreads concurrent requests over
        # the replicas), so the figures are about serving, not loading.
        def warm(index: int) -> None:
            client = make_client(app.url, WARM_TIMEOUT_S)
            for n, task in enumerate(TASKS * 2):
                task(client, index + n)

        first = make_client(app.url, WARM_TIMEOUT_S)
        for task in TASKS:  # once alone first: concurrent first saves of one input photo race in the gallery
            task(first, 0)
        warmers = [threading.Thread(target=warm, args=(i,)) for i in range(4)]
        for thread in warmers:
            thread.start()
        for thread in warmers:
            thread.join()
        timeout = args.client_timeout or client_timeout(first, args.clients)
        latencies, failures, elapsed = run_clients(app.url, args.clients, args.minutes, timeout)
    every = [v for values in latencies.values() for v in values]
    done = len(every)
    print(f"{label:<22} {done:>8} {len(failures):>8} {percentile(every, 50):>7.2f} {percentile(every, 95):>7.2f} "
          f"{done / elapsed * 60:>10.1f} {start_seconds:>9.0f} {timeout:>9.0f}", flush=True)
    for kind, count in failure_kinds(failures).most_common():
        print(f"    {count:>4} x {kind}   e.g. {next(f for f in failures if f.startswith(kind))[:160]}")
    return {"done": done, "failures": len(failures), "elapsed": elapsed, "per_task": dict(latencies)}


def client_timeout(client: Client, clients: int) -> float:
    """The HTTP timeout the load needs: each task once alone on the warmed server; a request can wait behind
    every other client's slowest one, and the machine slows under load, so twice that, at least 30 s."""
    slowest = 0.0
    for task in TASKS:
        started = time.monotonic()
        task(client, 1)
        slowest = max(slowest, time.monotonic() - started)
    return max(30.0, 2 * clients * slowest)


def failure_kinds(failures: list[str]) -> Counter:
    """Failures counted by task and error type ("write: ReadTimeout"): client_loop writes them so."""
    return Counter(": ".join(failure.split(": ")[:2]) for failure in failures)


def overhead(repeats: int) -> None:
    import ray

    from studio.backends.stylize import StyleRequest
    from studio.services import Studio
    from studio.settings import Settings

    folder = Path(tempfile.mkdtemp(prefix="studio-ray-overhead-"))
    ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, object_store_memory=150 * 1024 * 1024,
             log_to_driver=False)
    try:
        (folder / "cluster.toml").write_text("".join(f"[{f}]\nremote = false\n" for f in
                                                     ("image", "text", "music", "melody", "walks")))
        remote = Studio(Settings(data_dir=folder / "ray", ray_address="local", cluster_config=folder / "cluster.toml"))
        assert isinstance(remote.cluster.handles, dict) and list(remote.cluster.handles) == ["style"]
        local = Studio(Settings(data_dir=folder / "local"))
        photo = local.open_image(PHOTO)
        request = StyleRequest(style=3, size=256)

        def medians(studio: Studio) -> tuple[float, float]:
            """Median wall time of a request, and median time outside the backend's own work (the call's
            wall time less the seconds the backend measured itself): the cost of getting there and back."""
            for _ in range(3):  # warm: the model loaded, the route known
                studio.stylize(photo, request, keep=False)
            walls, outside = [], []
            for _ in range(repeats):
                started = time.perf_counter()
                result = studio.stylize(photo, request, keep=False).result
                walls.append(time.perf_counter() - started)
                outside.append(walls[-1] - result.seconds)
            return statistics.median(walls), statistics.median(outside)

        # Alternate the two, so a busy moment on the machine does not fall on one side only.
        local_r, ray_r = [], []
        for _ in range(3):
            local_r.append(medians(local))
            ray_r.append(medians(remote))
        (wall_local, out_local), (wall_ray, out_ray) = min(local_r), min(ray_r)
        print(f"Style 256 px, median of {repeats} requests, best of 3 rounds: in-process {wall_local * 1000:.1f} ms, "
              f"through Ray {wall_ray * 1000:.1f} ms (the replica runs onnxruntime on its one CPU's threads)")
        print(f"  time outside the model: in-process {out_local * 1000:.1f} ms, through Ray {out_ray * 1000:.1f} ms: "
              f"overhead {(out_ray - out_local) * 1000:+.1f} ms per request (target < 50 ms)")
    finally:
        from ray import serve

        serve.shutdown()
        ray.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--heavy", type=int, default=4, help="the front end's heavy concurrency in every run")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--client-timeout", type=float, default=None,
                        help="each client's HTTP timeout in seconds (default: fitted to the workload)")
    parser.add_argument("--runs", default="in-process,1,2", help="which load runs: in-process, 1, 2 (replicas)")
    parser.add_argument("--skip-load", action="store_true", help="only the overhead figure")
    parser.add_argument("--skip-overhead", action="store_true", help="only the load runs")
    args = parser.parse_args()

    results = {}
    if not args.skip_load:
        print(f"{args.clients} clients for {args.minutes:g} min each, heavy concurrency {args.heavy}, "
              f"{os.cpu_count()} CPUs")
        print(f"{'run':<22} {'served':>8} {'failed':>8} {'p50 s':>7} {'p95 s':>7} {'per min':>10} {'start s':>9} {'timeout s':>9}")
        if "in-process" in args.runs:
            results["in-process"] = load_run("in-process", args, [])
        for replicas in (r for r in (1, 2) if str(r) in args.runs):
            config = Path(tempfile.mkdtemp(prefix="studio-cluster-")) / "cluster.toml"
            config.write_text(CLUSTER.format(replicas=replicas))
            results[replicas] = load_run(f"Ray, {replicas} replica(s)/family", args,
                                         ["--ray", "local", "--cluster-config", str(config)])
        if 1 in results and 2 in results:
            one, two = results[1], results[2]
            ratio = (two["done"] / two["elapsed"]) / (one["done"] / one["elapsed"]) if one["done"] else float("nan")
            print(f"throughput ratio, 2 replicas / 1: {ratio:.2f}")
    if not args.skip_overhead:
        overhead(args.repeats)
    return 1 if any(r["failures"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
