"""The model manager's downloads, end to end through huggingface_hub against a stand-in hub on
loopback (HF_ENDPOINT): progress, Stop, resuming after the server dies mid-file, a full disk, a
repository that offers only pickles; then the list's states and deleting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.loopback_hub import LoopbackHub

ROOT = Path(__file__).resolve().parent.parent
TAESD = "madebyollin/taesd"  # a download entry of the catalogue, served here from the tiny TAESD
# The hub client reads 10 MB at a time; the tiny model's files need smaller reads to be cut in the middle.
SMALL_CHUNKS = "import huggingface_hub.constants; huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE = 16384"


@pytest.fixture
def hub(tiny_taesd_path, tmp_path):
    pickles = tmp_path / "pickle-repo"
    pickles.mkdir()
    (pickles / "config.json").write_text("{}")
    (pickles / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04 not loaded, not even fetched")
    served = LoopbackHub({TAESD: tiny_taesd_path, "stabilityai/sd-turbo": pickles}).start()
    yield served
    served.stop()


def studio_env(hub: LoopbackHub, home: Path) -> dict[str, str]:
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_HUB_CACHE=str(home / "hub"),
               HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1", STUDIO_DATA_DIR=str(home / "data"))
    env.pop("STUDIO_OFFLINE", None)
    env.pop("STUDIO_MODELS_FILE", None)
    return env


def in_child(hub: LoopbackHub, home: Path, code: str) -> dict:
    """Run `code` (which sets `result`) in a fresh interpreter that sees the stand-in hub, as a studio
    started with HF_ENDPOINT would; huggingface_hub reads its endpoint once, at import."""
    program = textwrap.dedent("""
        import json
        from studio.services import Studio
        from studio.settings import Settings
        from pathlib import Path
        import os
        studio = Studio(Settings(data_dir=Path(os.environ["STUDIO_DATA_DIR"])))
        result = {}
    """) + textwrap.dedent(code) + "\nprint(json.dumps(result))\n"
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=studio_env(hub, home), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def cached_file(home: Path, repo: str, name: str) -> Path:
    snapshots = home / "hub" / ("models--" + repo.replace("/", "--")) / "snapshots"
    return next(snapshots.glob(f"*/{name}"))


def test_a_download_reports_its_bytes_and_the_list_says_downloaded(hub, tiny_taesd_path, tmp_path):
    result = in_child(hub, tmp_path, f"""
        before = studio.models.row(studio.catalog.get("{TAESD}")).state
        seen = []
        where = studio.models.download("{TAESD}", lambda done, total: seen.append((done, total)))
        row = studio.models.row(studio.catalog.get("{TAESD}"))
        result.update(before=before, seen=seen, where=str(where), after=row.state, disk=row.disk_bytes,
                      cache=studio.models.cache_bytes())
    """)
    total = sum(p.stat().st_size for p in tiny_taesd_path.rglob("*") if p.is_file())
    assert result["before"] == "not here" and result["after"] == "downloaded"
    assert result["seen"][-1] == [total, total]
    assert all(a[0] <= b[0] for a, b in zip(result["seen"], result["seen"][1:], strict=False))
    assert total <= result["disk"] < total + 4096 and result["cache"] >= result["disk"]  # + refs, tree listing
    weights = "diffusion_pytorch_model.safetensors"
    assert cached_file(tmp_path, TAESD, weights).read_bytes() == (tiny_taesd_path / weights).read_bytes()


def test_a_download_the_server_cuts_off_resumes_where_it_stopped(hub, tiny_taesd_path, tmp_path):
    weights = "diffusion_pytorch_model.safetensors"
    size = (tiny_taesd_path / weights).stat().st_size
    hub.cut_after[weights] = size // 3
    in_child(hub, tmp_path, f"""
        {SMALL_CHUNKS}
        studio.models.download("{TAESD}")
    """)
    # The second request for the weights asked only for the bytes the first one did not bring.
    asked = [r for r in hub.requests if r.startswith("GET") and weights in r]
    assert len(asked) == 2 and "Range" not in asked[0], asked
    resumed_at = int(asked[1].split("Range: bytes=")[1].rstrip("-"))
    assert 0 < resumed_at <= size // 3
    assert cached_file(tmp_path, TAESD, weights).read_bytes() == (tiny_taesd_path / weights).read_bytes()


def test_stop_ends_a_download_within_a_chunk_and_download_again_fetches_only_the_rest(hub, tiny_taesd_path, tmp_path):
    hub.chunk_delay = 0.2  # the weights arrive slowly; the small config file is done long before Stop
    result = in_child(hub, tmp_path, f"""
        {SMALL_CHUNKS}
        from studio.errors import Cancelled
        from studio.runtime import CancelToken
        token = CancelToken()
        from huggingface_hub import constants
        def report(done, total):
            # Stop in the middle of the weights, once the small config file is finished.
            if done > 20000 and any(Path(constants.HF_HUB_CACHE).rglob("snapshots/*/config.json")):
                token.cancel()
        try:
            studio.models.download("{TAESD}", report, token)
            result["stopped"] = False
        except Cancelled:
            result["stopped"] = True
        result["state"] = studio.models.row(studio.catalog.get("{TAESD}")).state
        studio.models.download("{TAESD}")
        result["then"] = studio.models.row(studio.catalog.get("{TAESD}")).state
    """)
    assert result == {"stopped": True, "state": "partly here", "then": "downloaded"}
    # What was finished before Stop is kept: the second try fetched only the rest of the file that was in flight.
    fetched = [r.split("/")[-1] for r in hub.requests if r.startswith("GET") and "/resolve/" in r]
    assert [f.split()[0] for f in fetched] == ["config.json", "diffusion_pytorch_model.safetensors",
                                               "diffusion_pytorch_model.safetensors"], fetched
    assert "Range" not in fetched[1] and int(fetched[2].split("bytes=")[1].rstrip("-")) > 20000, fetched


def test_a_full_disk_is_refused_before_the_first_byte(hub, tmp_path):
    result = in_child(hub, tmp_path, f"""
        import shutil
        from collections import namedtuple
        from studio.errors import StudioError
        Usage = namedtuple("Usage", "total used free")
        shutil.disk_usage = lambda path: Usage(10**9, 10**9 - 4096, 4096)
        try:
            studio.models.download("{TAESD}")
        except StudioError as exc:
            result["message"] = str(exc)
    """)
    assert "only 0.0 GB is free" in result["message"] and "Models tab deletes" in result["message"]
    assert not any(r.startswith("GET") and "/resolve/" in r for r in hub.requests)


def test_a_repository_offering_only_pickles_is_refused_and_nothing_is_fetched(hub, tmp_path):
    result = in_child(hub, tmp_path, """
        from studio.errors import StudioError
        try:
            studio.models.download("stabilityai/sd-turbo")
        except StudioError as exc:
            result["message"] = str(exc)
    """)
    assert "offers no safetensors, GGUF or ONNX weights" in result["message"]
    assert not any(".bin" in r for r in hub.requests)


def test_delete_frees_the_space_and_built_in_models_cannot_be_deleted(hub, tmp_path):
    result = in_child(hub, tmp_path, f"""
        from studio.errors import StudioError
        studio.models.download("{TAESD}")
        disk = studio.models.row(studio.catalog.get("{TAESD}")).disk_bytes
        result["freed_matches"] = studio.models.delete("{TAESD}") == disk
        result["after"] = studio.models.row(studio.catalog.get("{TAESD}")).state
        for model_id in ("magenta-style-26", "{TAESD}"):
            try:
                studio.models.delete(model_id)
            except StudioError as exc:
                result.setdefault("refusals", []).append(str(exc))
    """)
    assert result["freed_matches"] and result["after"] == "not here"
    assert "is built in; there is nothing to download or delete" in result["refusals"][0]
    assert "is not downloaded" in result["refusals"][1]
    assert not (tmp_path / "hub" / "models--madebyollin--taesd").exists()


def test_hosted_visitors_cannot_download_or_delete(tmp_path):
    from studio.errors import StudioError
    from studio.services import Studio
    from studio.settings import Settings

    studio = Studio(Settings(data_dir=tmp_path / "data", hosted=True))
    for act in (studio.models.download, studio.models.delete):
        with pytest.raises(StudioError, match="Only the operator"):
            act(TAESD)
    assert {row.state for row in studio.models.rows()} >= {"built in"}



def test_a_gguf_quantisation_downloads_alone_and_a_cut_resumes_inside_it(tmp_path):
    """A catalogue GGUF transformer is one file of a repo holding several quantisations: only that file is
    fetched (and the model card), a server dying in the middle of it is resumed from the bytes on disk,
    and the studio then finds the file itself, not the repo's folder."""
    import random

    repo = tmp_path / "city96-schnell-gguf"
    repo.mkdir()
    (repo / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    wanted, other = "flux1-schnell-Q4_K_S.gguf", "flux1-schnell-Q8_0.gguf"
    data = random.Random(3).randbytes(640 * 1024)
    (repo / wanted).write_bytes(data)
    (repo / other).write_bytes(b"never fetched" * 100)
    served = LoopbackHub({"city96/FLUX.1-schnell-gguf": repo}, cut_after={wanted: 200_000}).start()
    try:
        result = in_child(served, tmp_path, f"""
            {SMALL_CHUNKS}
            from studio import hub
            entry = studio.catalog.get("flux1-schnell-gguf-Q4_K_S")
            result["before"] = studio.models.row(entry).state
            studio.models.download("flux1-schnell-gguf-Q4_K_S")
            result["after"] = studio.models.row(entry).state
            result["located"] = str(hub.locate(entry, offline=True))
        """)
    finally:
        served.stop()
    asked = [r for r in served.requests if r.startswith("GET") and wanted in r]
    assert len(asked) == 2 and "Range" not in asked[0], asked
    assert 0 < int(asked[1].split("Range: bytes=")[1].rstrip("-")) <= 200_000
    assert not any(other in r for r in served.requests if r.startswith("GET"))
    assert (result["before"], result["after"]) == ("not here", "downloaded")
    assert Path(result["located"]).name == wanted and Path(result["located"]).read_bytes() == data


def test_a_gguf_download_stopped_in_one_run_continues_inside_its_half_written_file_in_the_next(tmp_path):
    """Stopped in the middle of the file in one process, the download goes on in a new process from the
    bytes already on disk: the hub is asked only for the rest (a Range from where it stopped)."""
    import random

    repo = tmp_path / "city96-schnell-gguf"
    repo.mkdir()
    wanted = "flux1-schnell-Q4_K_S.gguf"
    data = random.Random(4).randbytes(640 * 1024)
    (repo / wanted).write_bytes(data)
    served = LoopbackHub({"city96/FLUX.1-schnell-gguf": repo}, chunk_delay=0.1, chunk_bytes=32768).start()
    try:
        first = in_child(served, tmp_path, f"""
            {SMALL_CHUNKS}
            from studio.errors import Cancelled
            from studio.runtime import CancelToken
            token = CancelToken()
            seen = []
            def report(done, total):
                seen.append(done)
                if done >= 200_000:
                    token.cancel()
            try:
                studio.models.download("flux1-schnell-gguf-Q4_K_S", report, token)
            except Cancelled:
                result["stopped"] = True
            result["state"] = studio.models.row(studio.catalog.get("flux1-schnell-gguf-Q4_K_S")).state
            result["last"] = seen[-1]
        """)
        served.chunk_delay = 0.0
        second = in_child(served, tmp_path, """
            from studio import hub
            seen = []
            studio.models.download("flux1-schnell-gguf-Q4_K_S", lambda done, total: seen.append((done, total)))
            entry = studio.catalog.get("flux1-schnell-gguf-Q4_K_S")
            result["state"] = studio.models.row(entry).state
            result["located"] = str(hub.locate(entry, offline=True))
            result["first_seen"] = seen[0]
        """)
    finally:
        served.stop()
    assert (first["stopped"], first["state"]) == (True, "partly here")
    asked = [r for r in served.requests if r.startswith("GET") and wanted in r]
    assert len(asked) == 2 and "Range" not in asked[0] and "Range: bytes=" in asked[1], asked
    resumed_at = int(asked[1].split("Range: bytes=")[1].rstrip("-"))
    assert 200_000 <= resumed_at < len(data)  # continued inside the file, not restarted
    assert second["first_seen"] == [resumed_at, len(data)]  # the progress counts on from the bytes on disk
    assert second["state"] == "downloaded" and Path(second["located"]).read_bytes() == data
