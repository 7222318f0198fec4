"""The Ray Serve tier on a real local Ray: the same results as in-process, progress and previews
through Ray, Stop within one step on the replica, a killed replica, limits before Ray, and Ray
unreachable at start. One Ray and one set of deployments for the whole module (starting them is
most of its time)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from studio.backends.diffusion import ImageRequest  # noqa: E402
from studio.backends.diffusion.walks import Keyframe, MorphRequest, PromptWalkRequest  # noqa: E402
from studio.backends.language import WRITE, TextRequest  # noqa: E402
from studio.backends.live_style import LiveChoice, LiveStyler  # noqa: E402
from studio.backends.melody import MelodyRequest  # noqa: E402
from studio.backends.patterns import PatternRequest  # noqa: E402
from studio.backends.style_walk import StyleWalkRequest  # noqa: E402
from studio.backends.stylize import StyleRequest  # noqa: E402
from studio.backends.upscale import UpscaleRequest  # noqa: E402
from studio.backends.video_style import VideoStyleRequest  # noqa: E402
from studio.cluster.client import LOST, RemoteBackend  # noqa: E402
from studio.cluster.config import FAMILIES, FamilyConfig, load_cluster_config  # noqa: E402
from studio.errors import Cancelled, InputError, StudioError  # noqa: E402
from studio.media.images import LoadedImage  # noqa: E402
from studio.runtime import CancelToken  # noqa: E402
from studio.services import Studio  # noqa: E402
from studio.settings import Settings  # noqa: E402
from tests import video_clips as clips  # noqa: E402
from tests.image_models import TINY_SD, TINY_TAESD, write_models_file  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "assets" / "examples" / "coffee.jpg"
BUILTIN_TEXT = "smollm2-135m-instruct-gguf"
# The families these tests need run on Ray; music stays in-process (its replica would only add start-up
# time here).
CLUSTER_TOML = "[music]\nremote = false\n\n[image]\nmax_ongoing_requests = 1\n"
WALK = ImageRequest("walk", model=TINY_SD, decoder=TINY_TAESD, width=64, height=64, steps=2)
KEYS = (Keyframe("a red cat on the beach", 1), Keyframe("a blue dog in the snow", 2))


def picture(seed: int = 11, steps: int = 2, size: int = 64) -> ImageRequest:
    return ImageRequest("a red cat on the beach", model=TINY_SD, decoder=TINY_TAESD, width=size, height=size,
                        seed=seed, steps=steps)


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_sd_path, tiny_taesd_path) -> Path:
    return write_models_file(tmp_path_factory.mktemp("ray-models"), tiny_sd_path, tiny_taesd_path)


@pytest.fixture(scope="module")
def local(tmp_path_factory, models) -> Studio:
    """The same studio without Ray: what every result through Ray is compared with."""
    return Studio(Settings(data_dir=tmp_path_factory.mktemp("local") / "data", models_file=models, offline=True,
                           openvino=False))


@pytest.fixture(scope="module")
def remote(tmp_path_factory, models):
    folder = tmp_path_factory.mktemp("ray")
    (folder / "cluster.toml").write_text(CLUSTER_TOML)
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=120 * 1024 * 1024, log_to_driver=False)
    try:
        yield Studio(Settings(data_dir=folder / "data", models_file=models, offline=True, openvino=False,
                              max_steps=150, ray_address="local", cluster_config=folder / "cluster.toml"))
    finally:
        from ray import serve

        serve.shutdown()
        ray.shutdown()


def test_the_families_run_on_ray_and_the_rest_in_process(remote):
    assert sorted(remote.cluster.handles) == ["image", "melody", "style", "text", "walks"]
    for name in ("image", "image_walks", "upscaler", "style", "text", "melody", "patterns", "melody_walks"):
        assert isinstance(getattr(remote, name), RemoteBackend)
    assert not isinstance(remote.music, RemoteBackend)
    # What is not model work is answered by the front end's own backend, without Ray.
    assert TINY_SD in [entry.id for entry in remote.image.image_entries("txt2img")]


def test_a_seeded_picture_is_pixel_equal_through_ray_and_is_kept_in_the_front_ends_gallery(remote, local):
    through_ray = remote.generate_image(picture())
    in_process = local.generate_image(picture(), keep=False)
    assert np.array_equal(np.asarray(through_ray.result.images[0]), np.asarray(in_process.result.images[0]))
    assert through_ray.result.params[0]["seed"] == 11
    item = through_ray.items[0]
    assert remote.gallery.get(item.id) is not None and item.file.is_file()


def test_the_same_style_result_through_ray(remote, local):
    photo = remote.open_image(PHOTO)
    through_ray = remote.stylize(photo, StyleRequest(style=3, size=256))
    in_process = local.stylize(photo, StyleRequest(style=3, size=256), keep=False)
    assert np.array_equal(np.asarray(through_ray.result.image), np.asarray(in_process.result.image))
    assert through_ray.item is not None and through_ray.result.params == in_process.result.params


def test_the_same_melody_through_ray(remote, local):
    request = MelodyRequest(bars=2, seed=4)
    through_ray = remote.compose(request)
    in_process = local.melody.generate(request)
    assert through_ray.result.melody == in_process.melody and len(through_ray.result.melody.bars) >= 2


def test_the_same_seeded_text_through_ray(remote, local):
    request = TextRequest(mode=WRITE, text="The lighthouse keeper", model=BUILTIN_TEXT, seed=7, max_new_tokens=12)
    updates = list(remote.stream_text(request))
    assert len(updates) > 2 and updates[-1].result is not None  # streamed, token by token
    in_process = local.text.generate(request)
    assert updates[-1].result.text == in_process.text and in_process.text.strip()


def frames_equal(a: list, b: list) -> bool:
    return len(a) == len(b) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))


def test_prompt_walks_morphs_and_upscales_run_on_the_image_replica_with_in_process_results(remote, local):
    jobs = remote.cluster.stats("image")["jobs"]
    walk = PromptWalkRequest(keyframes=KEYS, frames_between=1, settings=WALK)
    through_ray, in_process = remote.prompt_walk(walk), local.prompt_walk(walk)
    assert len(through_ray.frames) == 3 and frames_equal(through_ray.frames, in_process.frames)
    assert through_ray.item is not None and through_ray.item.file.is_file()  # kept by the front end
    first, second = LoadedImage(rgb=through_ray.frames[0]), LoadedImage(rgb=through_ray.frames[2])
    morph = MorphRequest(frames=3, size=64, model=TINY_SD)
    morphed = remote.image_morph(first, second, morph)
    assert len(morphed.frames) == 3 and frames_equal(morphed.frames, local.image_morph(first, second, morph).frames)
    small = LoadedImage(rgb=remote.open_image(PHOTO).rgb.resize((40, 30)))
    request = UpscaleRequest("realesr-animevideov3", 2, 64)
    enlarged = remote.upscale(small, request, keep=False).result
    assert enlarged.image.size == (80, 60)
    assert np.array_equal(np.asarray(enlarged.image), np.asarray(local.upscale(small, request, keep=False).result.image))
    assert remote.cluster.stats("image")["jobs"] == jobs + 3  # each of the three ran on the replica, whole


def test_style_walks_video_restyling_and_the_live_mirror_run_their_frames_on_the_style_replica(remote, local,
                                                                                             tmp_path):
    jobs = remote.cluster.stats("style")["jobs"]
    photo = remote.open_image(PHOTO)
    walk = StyleWalkRequest(styles=(3, 19), frames_between=1, size=96)
    through_ray = remote.style_walk(photo, walk, keep=False)
    assert len(through_ray.frames) == 3
    assert frames_equal(through_ray.frames, local.style_walk(photo, walk, keep=False).frames)
    assert remote.cluster.stats("style")["jobs"] == jobs + 3  # one network run per frame
    motion = clips.pan(frames=4)
    source = clips.write_clip(tmp_path / "in.mp4", motion.frames, fps=10)
    restyle = VideoStyleRequest(StyleRequest(style=7, size=None), temporal=0.8)
    video_ray = remote.restyle_video(source, restyle, keep=False, save_to=tmp_path / "ray.mp4")
    video_local = local.restyle_video(source, restyle, keep=False, save_to=tmp_path / "local.mp4")
    assert video_ray.result.frames == 4 and video_ray.result.params == video_local.result.params
    assert frames_equal(clips.decoded(video_ray.video), clips.decoded(video_local.video))
    assert remote.cluster.stats("style")["jobs"] == jobs + 3 + 4
    frame = np.asarray(photo.rgb.resize((160, 120)))
    live_ray = LiveStyler(remote.style).frame(frame, LiveChoice(style=5))
    live_local = LiveStyler(local.style).frame(frame, LiveChoice(style=5))
    assert live_ray is not None and np.array_equal(np.asarray(live_ray), np.asarray(live_local))
    assert remote.cluster.stats("style")["jobs"] == jobs + 3 + 4 + 1


def test_progress_and_previews_arrive_through_ray(remote):
    seen: list[tuple[int, int, object]] = []
    remote.generate_image(picture(steps=4), keep=False, progress=lambda d, t, p=None: seen.append((d, t, p)))
    assert [d for d, _, _ in seen][-1] == seen[-1][1] and len(seen) >= 4
    previews = [p for _, _, p in seen if p is not None]
    assert previews and previews[0].size[0] > 0


def test_stop_ends_the_job_on_the_replica_within_one_step(remote):
    before = remote.cluster.stats("image")
    token = CancelToken()
    pressed_at: list[int] = []

    def progress(done: int, total: int, preview=None) -> None:
        if done == 3 and not token.cancelled:
            pressed_at.append(done)
            token.cancel()  # what a Stop button does

    with pytest.raises(Cancelled):
        remote.generate_image(picture(steps=120, size=128), keep=False, progress=progress, cancel=token)
    after = remote.cluster.stats("image")
    assert pressed_at == [3]
    assert after["cancelled"] == before["cancelled"] + 1
    # Once the cancel reached the replica, at most one more step ran; the job stopped long before its 120.
    assert after["steps_after_cancel"] - before["steps_after_cancel"] <= 1
    assert after["steps"] - before["steps"] < 60
    # The replica is free again: the next job runs.
    assert remote.generate_image(picture(), keep=False).result.images


def test_a_text_stream_left_early_stops_its_job_on_the_replica(remote):
    counts = remote.cluster.stats("text")
    before = counts["cancelled"]
    stream = remote.stream_text(TextRequest(mode=WRITE, text="Once upon a time", model=BUILTIN_TEXT, seed=3,
                                            max_new_tokens=400))
    next(stream), next(stream)
    stream.close()  # what Gradio does when the page is closed mid-reply
    deadline = time.monotonic() + 30
    while remote.cluster.stats("text")["cancelled"] == before and time.monotonic() < deadline:
        time.sleep(0.1)
    stats = remote.cluster.stats("text")
    assert stats["cancelled"] == before + 1 and stats["steps_after_cancel"] - counts["steps_after_cancel"] <= 1


def test_a_stopped_pattern_walk_keeps_the_frames_it_made_through_ray(remote, local):
    before = remote.cluster.stats("walks")
    token = CancelToken()

    def press_stop_at(count: int, token: CancelToken):
        def progress(done: int, total: int, preview=None) -> None:
            if done == count:
                token.cancel()
        return progress

    request = PatternRequest(seed=1, walk_to=2, frames=120, width=192, height=192)
    outcome = remote.make_patterns(request, progress=press_stop_at(5, token), cancel=token)
    after = remote.cluster.stats("walks")
    # The Stop reached the job on the replica, which ended it within one step and sent back what it had made.
    assert after["cancelled"] == before["cancelled"] + 1
    assert after["steps_after_cancel"] - before["steps_after_cancel"] <= 1
    assert outcome.stopped and 5 <= len(outcome.frames) < 120
    assert len(outcome.frames) == after["steps"] - before["steps"]
    # The same frames a walk stopped there in-process keeps, and kept by the front end as they are.
    again = CancelToken()
    stopped_here = local.make_patterns(request, keep=False, progress=press_stop_at(len(outcome.frames), again),
                                       cancel=again)
    assert frames_equal(outcome.frames, stopped_here.frames)
    assert outcome.item is not None and outcome.params["frames_made"] == len(outcome.frames)
    # The stop board forgets a job once it has ended: nothing piles up there.
    deadline = time.monotonic() + 10
    while ray.get(remote.cluster.board.size.remote()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.get(remote.cluster.board.size.remote()) == 0


def test_a_stopped_reply_keeps_the_words_it_made_through_ray(remote):
    before = remote.cluster.stats("text")
    token = CancelToken()
    updates = []
    for update in remote.stream_text(TextRequest(mode=WRITE, text="Once upon a time", model=BUILTIN_TEXT, seed=3,
                                                 max_new_tokens=400), cancel=token):
        updates.append(update)
        if len(updates) == 3:
            token.cancel()  # what the Text tab's Stop does
    after = remote.cluster.stats("text")
    result = updates[-1].result
    assert result is not None and result.finish == "stopped" and 0 < result.new_tokens < 400
    assert result.text.startswith(updates[2].text) and result.text.strip()
    assert after["cancelled"] == before["cancelled"] + 1
    # Steps after the Stop arrived: at most the token in work, and the closing update that carries the result.
    assert after["steps_after_cancel"] - before["steps_after_cancel"] <= 2


def test_limits_apply_before_anything_is_sent_to_ray(remote):
    before = remote.cluster.stats("image")["jobs"]
    with pytest.raises(InputError):
        remote.generate_image(picture(steps=151))
    assert remote.cluster.stats("image")["jobs"] == before


def test_a_replica_killed_mid_job_gives_one_sentence_and_the_next_request_works(remote, local):
    kept_before = len(remote.gallery.list())
    started = threading.Event()
    outcome: dict[str, BaseException] = {}

    def job() -> None:
        try:
            remote.generate_image(picture(steps=150, size=128), progress=lambda *a: started.set())
        except BaseException as exc:  # noqa: BLE001 - the test reads it below
            outcome["error"] = exc

    runner = threading.Thread(target=job)
    runner.start()
    assert started.wait(60)
    replicas = [a for a in ray.util.list_named_actors(all_namespaces=True) if "studio-image" in a["name"]
                and "REPLICA" in a["name"]]
    assert len(replicas) == 1
    ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True)
    runner.join(60)
    assert isinstance(outcome.get("error"), StudioError) and str(outcome["error"]) == LOST
    assert len(remote.gallery.list()) == kept_before  # nothing half-made was kept
    # Serve starts a new replica; the next request waits for it and gives the same picture as ever.
    deadline = time.monotonic() + 120
    while True:
        try:
            again = remote.generate_image(picture(), keep=False)
            break
        except StudioError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    assert np.array_equal(np.asarray(again.result.images[0]),
                          np.asarray(local.generate_image(picture(), keep=False).result.images[0]))


def test_ray_unreachable_at_start_is_one_sentence_and_exit_2(tmp_path):
    run = subprocess.run([sys.executable, "app.py", "--ray", "127.0.0.1:9", "--data-dir", str(tmp_path / "d")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert lines == [lines[0]] and "Ray is not reachable at 127.0.0.1:9" in lines[0]
    assert "Traceback" not in run.stderr


def test_cluster_config_reads_the_operators_toml_and_refuses_mistakes_in_one_sentence(tmp_path):
    path = tmp_path / "cluster.toml"
    path.write_text("[image]\nmin_replicas = 1\nmax_replicas = 4\nnum_gpus = 0.5\n\n[style]\nreplicas = 2\n"
                    "\n[music]\nremote = false\n")
    config = load_cluster_config(path)
    assert set(config.families) == set(FAMILIES) - {"music"}
    image = config.families["image"].deployment_options()
    assert image["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 1}
    assert image["ray_actor_options"]["num_gpus"] == 0.5 and "num_replicas" not in image
    assert config.families["style"].deployment_options()["num_replicas"] == 2
    assert config.families["text"] == FamilyConfig()
    for text, words in [("[imagee]\n", "unknown family 'imagee'"), ("[style]\nreplicas = -1\n", "0 or more"),
                        ("[style]\nreplicas = 1.5\n", "whole number"), ("[style]\ncolour = 1\n", "unknown setting"),
                        ("[image]\nmin_replicas = 1\n", "both min_replicas"), ("[style\n", "not valid TOML")]:
        path.write_text(text)
        with pytest.raises(StudioError, match=words):
            load_cluster_config(path)


def test_without_ray_the_studio_runs_in_process(local):
    assert local.cluster is None and not isinstance(local.style, RemoteBackend)


def test_the_readmes_ray_start_commands_are_accepted_by_ray():
    """The README's cluster steps (the studio's own commands there are run by test_documented_commands)."""
    import shlex

    from ray.scripts.scripts import start

    lines = [line.split("#")[0].strip() for line in (ROOT / "README.md").read_text().splitlines()
             if line.strip().startswith("ray start")]
    assert len(lines) == 2
    parsed = [start.make_context("start", shlex.split(line)[2:]).params for line in lines]
    assert parsed[0]["head"] and parsed[0]["port"] == 6379 and parsed[1]["address"] == "HEAD:6379"


def test_the_ray_benchmark_documented_in_the_readme_runs_its_help():
    assert ".venv/bin/python benchmarks/ray_load.py" in (ROOT / "README.md").read_text()
    run = subprocess.run([sys.executable, "benchmarks/ray_load.py", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and "--clients" in run.stdout and "--repeats" in run.stdout
    assert "--client-timeout" in run.stdout


def test_the_ray_benchmark_counts_failures_per_task_and_kind():
    from benchmarks.ray_load import failure_kinds

    kinds = failure_kinds(["write: ReadTimeout: timed out", "write: ReadTimeout: timed out",
                           "stylize: AppError: The worker running this job was lost: again"])
    assert kinds == {"write: ReadTimeout": 2, "stylize: AppError": 1}
