"""A stranger's requests to the running studio: no file of the machine comes back, no path or link a
visitor sends is opened, only catalogue models are ever loaded (never pickles), and wrong files are
refused with a clear message. Raw HTTP to 127.0.0.1, the way a hostile script would send it."""

from __future__ import annotations

import os
import pickle
import sqlite3
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from studio.catalog import CatalogError, load_user_entries
from studio.errors import StudioError
from studio.services import Studio
from studio.settings import Settings
from tests.api_calls import call, file_data, upload
from tests.endpoint_args import FILE_SLOTS, with_file
from tests.image_cases import EXAMPLES, huge_png_header
from tests.running_app import RunningApp

SECRET = "TOP-SECRET-7f3a9c: nobody outside this machine may read this line"


@pytest.fixture(scope="module")
def app(open_studio):
    open_studio.secret = open_studio.uploads_dir.parent / "secret.txt"  # beside the upload folder
    open_studio.secret.write_text(SECRET)
    return open_studio


@pytest.fixture(scope="module")
def args(app):
    return app.args


def planted_link(app: RunningApp) -> str:
    """A symlink inside Gradio's upload folder (where uploads are allowed) pointing at the secret."""
    folder = app.uploads_dir / "planted"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "photo.png"
    if not link.is_symlink():
        link.symlink_to(app.secret)
    return str(link)


def hostile_paths(app: RunningApp) -> list[str]:
    upload_root = str(app.uploads_dir)
    return [
        "../../../../../../etc/passwd",
        "/etc/passwd",
        str(app.secret),
        f"{upload_root}/../secret.txt",
        f"{upload_root}/{os.path.relpath(app.secret, upload_root)}",
        planted_link(app),
        f"file://{app.secret}",
        f"http://127.0.0.1:{app.port}/config",
        "https://example.com/photo.png",
        "data:image/png;base64,iVBORw0KGgo=",
    ]


def gallery_count(app: RunningApp) -> int:
    with sqlite3.connect(app.data_dir / "gallery.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM items").fetchone()[0]


def assert_refused(outcome, *words: str) -> None:
    assert outcome.status == 200 and outcome.event == "error", outcome.raw[:300]
    message = outcome.message or ""
    assert message and "\n" not in message and "Traceback" not in outcome.raw, outcome.raw[:300]
    assert SECRET not in outcome.raw and "root:x:0:0" not in outcome.raw
    for word in words:
        assert word in message, message


# -- paths and links in file inputs ----------------------------------------------------------------------


@pytest.mark.parametrize("endpoint, index, keys", FILE_SLOTS, ids=[f"{e}-{i}{''.join(map(str, k))}"
                                                                    for e, i, k in FILE_SLOTS])
def test_every_file_input_refuses_paths_it_was_not_given_by_upload(app, args, endpoint, index, keys):
    before = gallery_count(app)
    for path in hostile_paths(app):
        outcome = call(app.url, endpoint, with_file(args[endpoint], index, keys, file_data(path)))
        assert_refused(outcome)
        assert "uploaded" in outcome.message, (path, outcome.message)
    assert gallery_count(app) == before  # nothing was made from any of them


def test_a_file_data_carrying_only_a_url_is_refused(app, args):
    sneaky = file_data(None, url=f"http://127.0.0.1:{app.port}/gradio_api/file={app.secret}")
    assert_refused(call(app.url, "stylize", with_file(args["stylize"], 0, (), sneaky)), "does not fetch links")


def test_an_uploaded_file_is_accepted_so_the_refusals_mean_something(app, args):
    outcome = call(app.url, "stylize", args["stylize"])
    assert outcome.event == "complete"


# -- the file routes ---------------------------------------------------------------------------------------


def test_file_routes_serve_nothing_outside_gradios_cache(app, args):
    made = call(app.url, "stylize", args["stylize"][:-1] + [True]).data[0]["path"]  # served: a control
    assert httpx.get(f"{app.url}gradio_api/file={made}").status_code == 200
    kept = next((app.data_dir / "outputs").rglob("style-*.png"))  # the same result in the data dir: not served
    targets = ["/etc/passwd", str(app.secret), "../../../../etc/passwd", "..%2f..%2f..%2f..%2fetc%2fpasswd",
               quote("/etc/passwd", safe=""), f"{app.uploads_dir}/../secret.txt", planted_link(app),
               str(app.data_dir / "gallery.sqlite3"), str(kept), str(Path("app.py").resolve()), "app.py",
               "/proc/self/environ", f"{made}/../../../secret.txt"]
    for target in targets:
        for route in (f"gradio_api/file={target}", f"gradio_api/file/{target}", f"gradio_api/proxy={target}"):
            response = httpx.get(app.url + route, timeout=30)
            assert response.status_code in (400, 403, 404), (route, response.status_code)
            assert SECRET not in response.text and "root:x:0:0" not in response.text
            assert "Traceback" not in response.text


def test_uploaded_html_and_svg_are_never_served_as_pages(app, tmp_path):
    for name, body in (("page.html", "<html><script>alert(1)</script></html>"),
                       ("drawing.svg", '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')):
        (tmp_path / name).write_text(body)
        stored = upload(app.url, tmp_path / name)["path"]
        response = httpx.get(f"{app.url}gradio_api/file={stored}")
        kind = response.headers.get("content-type", "")
        assert "html" not in kind and "svg" not in kind
        assert response.headers.get("content-disposition", "").startswith("attachment")


def test_direct_posts_cannot_skip_the_queue(app, args):
    for route in ("gradio_api/run/stylize", "gradio_api/api/stylize", "gradio_api/run/write"):
        response = httpx.post(app.url + route, json={"data": args["stylize"]}, timeout=30)
        assert response.status_code == 404 and "queue" in response.text


# -- gallery ids --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["gallery_rerun", "gallery_delete"])
def test_gallery_ids_from_a_visitor_are_numbers_of_existing_items_or_refused(app, args, endpoint):
    call(app.url, "stylize", args["stylize"][:-1] + [True])  # at least one real item to protect
    before = gallery_count(app)
    for item_id in (0, -1, 2**63, 10**30, 1e308, "1 OR 1=1", "../../etc/passwd", [1], {"id": 1}, True):
        outcome = call(app.url, endpoint, [item_id, "All"])
        assert_refused(outcome)
        assert "does not exist" in outcome.message or "must be a number" in outcome.message, outcome.message
    assert gallery_count(app) == before


def test_a_hostile_gallery_filter_is_only_text(app):
    before = gallery_count(app)
    for task in ("'; DROP TABLE items; --", "style' OR '1'='1", "../" * 20, "\x00", "x" * 100_000):
        outcome = call(app.url, "gallery_list", [task])
        assert outcome.event == "complete" and outcome.data[0] == []
    for task in ([1, "a"], {"task": "style"}):
        assert_refused(call(app.url, "gallery_list", [task]), "takes one of its choices")
    assert_refused(call(app.url, "gallery_list", [7]), "task's name")
    assert gallery_count(app) == before


# -- model ids ------------------------------------------------------------------------------------------------

HOSTILE_MODEL_IDS = ["../../etc/passwd", "/models/evil.safetensors", "~/evil", "http://evil.example/model",
                     "file:///etc/passwd", "evil.bin", "owner/model.ckpt", "weights.pt", "model.pkl",
                     "a/b/c", "C:\\models\\x", "stabilityai/sd-turbo/../../x"]


@pytest.mark.parametrize("endpoint, index", [("txt2img", 0), ("txt2img", 1), ("restyle", 1), ("restyle", 2),
                                             ("write", 1), ("chat", 3), ("chat_regenerate", 2), ("music", 1),
                                             ("prompt_walk", 1), ("image_morph", 2), ("upscale", 1)])
def test_endpoints_take_only_catalogue_models(app, args, endpoint, index):
    for model_id in HOSTILE_MODEL_IDS:
        changed = list(args[endpoint])
        changed[index] = model_id
        assert_refused(call(app.url, endpoint, changed), "not in the list of choices")
    for not_a_name in ([], [args[endpoint][index]], {"id": args[endpoint][index]}):
        changed = list(args[endpoint])
        changed[index] = not_a_name
        assert_refused(call(app.url, endpoint, changed), "takes one of its choices")


@pytest.mark.parametrize("table, words", [
    ('id = "../../etc/passwd"\npath = "x"', "not a model name"),
    ('id = "/abs/model"\npath = "x"', "not a model name"),
    ('id = "http://evil/x"\nrepo = "a/b"', "not a model name"),
    ('id = "model.bin"\npath = "x"', "not a model name"),
    ('id = "owner/model.ckpt"\nrepo = "a/b"', "not a model name"),
    ('id = "x.pt"\npath = "x"', "not a model name"),
    ('id = "x.PKL"\npath = "x"', "not a model name"),
    ('id = "a/b/c"\npath = "x"', "not a model name"),
    ('id = "ok"\npath = "https://evil/model.safetensors"', "not a link"),
    ('id = "ok"\npath = "x"\nconfig = "file:///etc"', "not a link"),
    ('id = "ok"\npath = "weights.pth"', "not a safe weights format"),
    ('id = "ok"\npath = "weights.pickle"', "not a safe weights format"),
    ('id = "ok"\nrepo = "a/b"\nfile = "model.bin"', "file must be"),
    ('id = "ok"\nrepo = "a/b"\nfile = "../model.gguf"', "file must be"),
    ('id = "ok"\nrepo = "../a"', "hub id"),
])
def test_the_catalogue_refuses_paths_links_and_pickles_as_models(tmp_path, table, words):
    models = tmp_path / "models.toml"
    models.write_text(f'[[model]]\nfamily = "diffusers"\ntasks = ["txt2img"]\n{table}\n')
    with pytest.raises(CatalogError, match=words):
        load_user_entries(models)


class _Tripwire:
    """Unpickling this creates a file: proof that a pickle was loaded."""

    def __init__(self, mark: Path):
        self.mark = mark

    def __reduce__(self):
        return (open, (str(self.mark), "w"))


@pytest.mark.parametrize("family, task, weights", [
    ("diffusers", "txt2img", "unet/diffusion_pytorch_model.bin"),
    ("transformers", "text", "pytorch_model.bin"),
    ("transformers", "music", "pytorch_model.bin"),
])
def test_a_model_folder_holding_only_pickles_is_never_unpickled(tmp_path, tiny_sd_path, tiny_lm_path,
                                                                 tiny_musicgen_path, family, task, weights):
    source = {"txt2img": tiny_sd_path, "text": tiny_lm_path, "music": tiny_musicgen_path}[task]
    folder = tmp_path / "pickled"
    import shutil

    shutil.copytree(source, folder)
    for safe in folder.rglob("*.safetensors"):
        safe.unlink()
    mark = tmp_path / "unpickled"
    (folder / weights).write_bytes(pickle.dumps(_Tripwire(mark)))
    models = tmp_path / "models.toml"
    models.write_text(f'[[model]]\nid = "pickled"\nfamily = "{family}"\ntasks = ["{task}"]\npath = "{folder}"\n')
    studio = Studio(Settings(data_dir=tmp_path / "data", models_file=models, offline=True))
    with pytest.raises(StudioError, match="could not be loaded"):
        if task == "txt2img":
            studio.image.load("pickled")
        elif task == "text":
            studio.text.engine("pickled")
        else:
            from studio.backends.musicgen import MusicRequest

            studio.music.generate(MusicRequest(prompt="calm piano", seconds=0.1, model="pickled"))
    assert not mark.exists()
    assert "pickled" not in {key.model_id for key in studio.cache.keys()}  # noqa: SIM118 (a cache)


# -- wrong files -----------------------------------------------------------------------------------------------


def _wrong_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = {
        "text.png": b"this is not a picture\n",
        "page.png": b"<html><script>alert(1)</script></html>",
        "page.html": b"<html><script>alert(1)</script></html>",
        "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>',
        "bomb.png": huge_png_header(60_000, 60_000),
        "photo.mid": (EXAMPLES / "coffee.jpg").read_bytes(),
        "photo.wav": (EXAMPLES / "coffee.jpg").read_bytes(),
        "empty.wav": b"",
    }
    for name, data in made.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in made}


@pytest.mark.parametrize("endpoint, index, names, words", [
    ("stylize", 0, ["text.png", "page.png", "page.html", "drawing.svg"], "is not an image the studio can read"),
    ("stylize", 0, ["bomb.png"], "far too large"),
    ("img2img", 13, ["text.png", "drawing.svg", "bomb.png"], ""),
    ("image_read_parameters", 0, ["page.html", "bomb.png"], ""),
    ("melody", 1, ["photo.mid"], "not a MIDI file"),
    ("melody", 1, ["page.html", "drawing.svg"], "Invalid file type"),
    ("analyse", 0, ["photo.wav", "page.html", "drawing.svg", "bomb.png", "empty.wav"], "not audio"),
    ("music", 5, ["photo.wav", "page.html"], "not audio"),
])
def test_files_of_the_wrong_kind_are_refused_with_a_clear_message(app, args, tmp_path, endpoint, index, names,
                                                                  words):
    files = _wrong_files(tmp_path)
    for name in names:
        changed = with_file(args[endpoint], index, (), upload(app.url, files[name]))
        if endpoint == "melody" and index == 3:
            changed[0] = "Humming or singing"
        assert_refused(call(app.url, endpoint, changed), words)
