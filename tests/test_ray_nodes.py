"""The Ray Serve tier on two Ray nodes on this machine (ray.cluster_utils.Cluster, 1 CPU each): a
family's replicas spread over both, a node removed mid-job gives its visitor one sentence while the
other node's job finishes, the next request works, and nothing half-made enters the gallery.

Only the walks family runs on Ray here (pattern walks: no model files, and long enough to be caught
mid-job); its two replicas take a whole CPU each, so Ray must place one on each node."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from studio.backends.patterns import PatternRequest  # noqa: E402
from studio.cluster.client import LOST  # noqa: E402
from studio.errors import StudioError  # noqa: E402
from studio.services import Studio  # noqa: E402
from studio.settings import Settings  # noqa: E402

CLUSTER_TOML = "".join(f"[{family}]\nremote = false\n\n" for family in ("image", "style", "text", "music", "melody"))
CLUSTER_TOML += "[walks]\nreplicas = 2\nnum_cpus = 1\n"
STORE = 100 * 1024 * 1024
LONG = 30  # frames: several seconds of work, so the node is removed mid-job


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                             "object_store_memory": STORE})
    worker = cluster.add_node(num_cpus=1, object_store_memory=STORE)
    ray.init(address=cluster.address, log_to_driver=False)
    folder = tmp_path_factory.mktemp("nodes")
    (folder / "cluster.toml").write_text(CLUSTER_TOML)
    try:
        studio = Studio(Settings(data_dir=folder / "data", offline=True, openvino=False, ray_address="local",
                                 cluster_config=folder / "cluster.toml"))
        yield cluster, worker, studio
    finally:
        from ray import serve

        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()


def replica_nodes() -> dict[str, str]:
    """Live walks replica actors -> the node each runs on."""
    from ray._private import state

    return {info["Name"]: info["Address"]["NodeID"] for info in state.actors().values()
            if "studio-walks" in (info.get("Name") or "") and info["State"] == "ALIVE"}


def walk(frames: int = 3, seed: int = 1) -> PatternRequest:
    return PatternRequest(seed=seed, walk_to=seed + 1, frames=frames, width=160, height=160)


def test_replicas_spread_over_both_nodes_and_a_node_lost_mid_job_costs_only_its_own_job(nodes):
    cluster, worker, studio = nodes
    placed = replica_nodes()
    assert len(placed) == 2 and len(set(placed.values())) == 2  # one replica on each node
    assert worker.node_id in placed.values()
    kept_before = len(studio.gallery.list())

    # Two long walks at once: one replica (so one node) each, as each takes one job at a time.
    started = [threading.Event(), threading.Event()]
    outcomes: list[object] = [None, None]

    def job(index: int) -> None:
        try:
            outcomes[index] = studio.make_patterns(walk(frames=LONG, seed=index + 1),
                                                   progress=lambda *a: started[index].set())
        except BaseException as exc:  # noqa: BLE001 - read below
            outcomes[index] = exc

    runners = [threading.Thread(target=job, args=(i,)) for i in range(2)]
    for runner in runners:
        runner.start()
    assert all(event.wait(120) for event in started)
    cluster.remove_node(worker)  # its raylet, and the replica and job on it, gone at once
    for runner in runners:
        runner.join(300)
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    finished = [o for o in outcomes if not isinstance(o, BaseException)]
    # The visitor whose job was on the lost node reads one sentence; the other's walk is whole and kept.
    assert len(lost) == 1 and isinstance(lost[0], StudioError) and str(lost[0]) == LOST
    assert len(finished) == 1 and len(finished[0].frames) == LONG and not finished[0].stopped
    assert len(studio.gallery.list()) == kept_before + 1  # only the finished walk; nothing half-made

    # The next request works, on the node that is left, and gives the same frames as ever.
    deadline = time.monotonic() + 60
    while True:
        try:
            again = studio.make_patterns(walk(), keep=False)
            break
        except StudioError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    in_process = Studio(Settings(data_dir=studio.settings.data_dir.parent / "local", offline=True, openvino=False))
    expected = in_process.make_patterns(walk(), keep=False).frames
    assert len(again.frames) == 3
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(again.frames, expected, strict=True))
