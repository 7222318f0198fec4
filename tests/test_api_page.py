"""The API page (docs/api.md) against the real app: it documents exactly the app's named endpoints, every
endpoint and parameter carries a description, and every example on the page runs."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from gradio.utils import get_function_description
from gradio_client import Client
from PIL import Image

from studio.settings import Settings
from studio.ui.common import api_doc
from tests.image_cases import EXAMPLES
from tests.image_models import TINY_SD, TINY_TAESD, write_models_file
from tests.running_app import RunningApp
from tests.tiny_families import build_tiny_flux
from tests.video_clips import decoded, pan, write_clip

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "api.md"
TINY_MUSICGEN = "local/tiny-musicgen"
TINY_FLUX = "local/tiny-flux-schnell"
PAGE_URL = "http://127.0.0.1:7860/"
# The page names the studio's real defaults; here they are the tiny models built for tests.
PAGE_MODELS = {"stabilityai/sd-turbo": TINY_SD, "madebyollin/taesd": TINY_TAESD,
               "facebook/musicgen-small": TINY_MUSICGEN, "black-forest-labs/FLUX.1-schnell": TINY_FLUX}


def page_sections() -> list[tuple[str, str]]:
    """(the endpoint heading above it, or "setup"; the code) for each python block, in page order."""
    sections, heading = [], "setup"
    for match in re.finditer(r"^### (/\w+)$|^```python\n(.*?)^```$", PAGE.read_text(encoding="utf-8"), re.M | re.S):
        if match.group(1):
            heading = match.group(1)
        else:
            sections.append((heading, match.group(2)))
    return sections


def documented_endpoints() -> list[str]:
    return re.findall(r"^### (/\w+)$", PAGE.read_text(encoding="utf-8"), re.M)


@pytest.fixture(scope="module")
def models_file(tmp_path_factory, tiny_sd_path, tiny_taesd_path, tiny_musicgen_path):
    path = write_models_file(tmp_path_factory.mktemp("api-page-models"), tiny_sd_path, tiny_taesd_path)
    with path.open("a", encoding="utf-8") as toml:
        toml.write(f'\n[[model]]\nid = "{TINY_MUSICGEN}"\nname = "Tiny MusicGen"\nfamily = "transformers"\n'
                   f'tasks = ["music"]\npath = "{tiny_musicgen_path}"\nlicence = "MIT"\n')
        flux = build_tiny_flux(tmp_path_factory.mktemp("api-page-flux"))
        toml.write(f'\n[[model]]\nid = "{TINY_FLUX}"\nname = "Tiny FLUX"\nfamily = "diffusers"\n'
                   f'tasks = ["txt2img"]\npath = "{flux}"\nlicence = "Apache-2.0"\n')
    return path


@pytest.fixture(scope="module")
def app(tmp_path_factory, models_file):
    folder = tmp_path_factory.mktemp("api-page")
    with RunningApp(folder / "data", "--models-file", str(models_file), "--offline",
                    env={"HF_HUB_CACHE": str(folder / "no-hub")}) as running:
        yield running


@pytest.fixture(scope="module")
def api_info(app) -> dict:
    return Client(app.url, verbose=False).view_api(print_info=False, return_format="dict")


def test_the_page_documents_exactly_the_named_endpoints(api_info):
    documented = documented_endpoints()
    assert len(documented) == len(set(documented)), "an endpoint is documented twice"
    assert sorted(api_info["named_endpoints"]) == sorted(documented)  # a rename or a new endpoint fails here
    assert not api_info["unnamed_endpoints"]
    examples = {heading for heading, _ in page_sections()}
    assert examples == {"setup", *documented}, "every endpoint has an example"


def test_every_endpoint_says_what_it_does(api_info):
    for name, endpoint in api_info["named_endpoints"].items():
        summary = endpoint["description"]
        assert summary and summary.endswith(".") and "\n" not in summary, name


@pytest.mark.filterwarnings("ignore:This MCP server includes a tool that has a gr.State input")  # /write's undo
def test_every_parameter_has_a_description_and_tools_are_named_as_endpoints(tmp_path, models_file):
    """Gradio reads the handlers' docstrings for its MCP tool schemas; built here from the same app."""
    from gradio.mcp import GradioMCPServer

    from studio.services import Studio
    from studio.ui.app import build_app

    blocks = build_app(Studio(Settings(data_dir=tmp_path / "data", models_file=models_file, offline=True)))
    # In a thread of its own: the browser tests' Playwright may leave this thread's event loop running.
    request = SimpleNamespace(query_params={})
    with ThreadPoolExecutor(1) as pool:
        schema = pool.submit(asyncio.run, GradioMCPServer(blocks).get_complete_schema(request)).result()
    tools = {tool["meta"]["endpoint_name"]: tool for tool in json.loads(schema.body)}
    assert sorted(f"/{name}" for name in tools) == sorted(documented_endpoints())
    for name, tool in tools.items():
        assert tool["name"] == name  # the handler is named as its endpoint
        for parameter, spec in tool["inputSchema"]["properties"].items():
            assert spec.get("description", "").strip(), f"/{name}: {parameter} has no description"


def test_api_doc_writes_what_gradio_reads_and_refuses_drift():
    @api_doc("Make a thing.", returns="the thing", prompt="what to make", seed="which one: 0 up")
    def make(prompt: str, seed: float, request: gr.Request, progress=gr.Progress()):
        return prompt

    assert get_function_description(make) == ("Make a thing.", {"prompt": "what to make", "seed": "which one: 0 up",
                                                                "request": "", "progress": ""}, ["the thing"])
    with pytest.raises(TypeError, match=r"undescribed parameters \['seed'\], unknown \['sed'\]"):
        api_doc("Make a thing.", prompt="what to make", sed="a typo")(make)
    with pytest.raises(TypeError, match="one non-empty line each"):
        api_doc("Make a thing.", prompt="what\nto make", seed="")(make)


@pytest.fixture(scope="module")
def session(app, tmp_path_factory):
    """One reader's session: the files the page names, and the names its examples bind."""
    folder = tmp_path_factory.mktemp("api-page-files")
    shutil.copyfile(EXAMPLES / "coffee.jpg", folder / "photo.jpg")
    shutil.copyfile(EXAMPLES / "astronaut.jpg", folder / "painting.jpg")
    with Image.open(folder / "photo.jpg") as photo:
        mask = Image.new("L", photo.size, 0)
    mask.paste(255, (mask.width // 3, mask.height // 3, mask.width // 2, mask.height // 2))
    mask.save(folder / "mask.png")
    with Image.open(folder / "photo.jpg") as photo:
        photo.resize((48, 32)).save(folder / "icon.png")  # small: upscaling takes seconds per megapixel
    motion = pan(size=(96, 64), frames=6)
    write_clip(folder / "clip.mp4", motion.frames, audio=("aac", 44_100))
    return SimpleNamespace(folder=folder, names={}, url=app.url)


# What an example's results must show, beyond running without an error.
CHECKS = {
    "/txt2img": lambda ns: Path(ns["pictures"][0]["image"]).is_file() and ns["seed"] == 3,
    # The newest `pictures` by then are /outpaint's, made with a random seed, which the PNG records.
    "/control_map_preview": lambda ns: Image.open(ns["control_map"]).size == (512, 512) and "fitted" in ns["note"],
    "/image_read_parameters": lambda ns: ns["prompt"] == "more of the same room" and ns["seed"] == ns["fields"][10]
    and ns["random_seed"] is False and f"seed {ns['seed']}" in ns["pictures"][0]["caption"],
    "/stylize": lambda ns: Image.open(ns["result"]).size[0] > 0,
    "/upscale": lambda ns: Image.open(ns["big"]).size == (96, 64) and "R-ESRGAN AnimeVideo" in ns["summary"],
    "/style_video": lambda ns: len(decoded(Path(ns["video"]["video"] if isinstance(ns["video"], dict) else ns["video"]))) == 6 and Path(ns["gif"]).suffix == ".gif" and "sound kept" in ns["summary"],
    "/write": lambda ns: ns["text"].startswith("Once upon a time") and len(ns["text"]) > len("Once upon a time"),
    "/chat_undo": lambda ns: ns["message"] == "Now one about snow." and len(ns["history"]) == 2,
    # The last example continues the first; the second, with the first's seed, gave the same tune.
    "/melody": lambda ns: sorted(str(f).rsplit(".", 1)[-1] for f in ns["files"]) == ["abc", "mid", "png", "wav"]
    and ns["same_abc"] == ns["abc"] and f"seed {ns['seed']} " in ns["summary"],
    "/melody_walk": lambda ns: (ns["a_seed"], ns["b_seed"]) == (1, 2) and "melody A seed 1" in ns["summary"],
    "/analyse": lambda ns: "**Tempo**" in ns["summary"] and Path(ns["spectrogram"]).is_file(),
    "/patterns": lambda ns: Image.open(ns["picture"]).size == (1024, 768),
    "/gallery_rerun": lambda ns: ns["new_id"] > ns["newest"],
    "/gallery_delete": lambda ns: all(not t["caption"].startswith(f"#{ns['new_id']} ") for t in ns["thumbnails"]),
}


@pytest.mark.parametrize("index", range(len(page_sections())),
                         ids=[f"{n}-{heading}" for n, (heading, _) in enumerate(page_sections())])
def test_the_page_examples_run_against_the_app(session, index, monkeypatch):
    heading, code = page_sections()[index]
    assert PAGE_URL in code or heading != "setup"
    code = code.replace(PAGE_URL, session.url)
    for page_model, tiny in PAGE_MODELS.items():
        code = code.replace(f'"{page_model}"', f'"{tiny}"')
    monkeypatch.chdir(session.folder)
    exec(compile(code, f"docs/api.md {heading}", "exec"), session.names)  # noqa: S102 - the page's own examples
    check = CHECKS.get(heading)
    assert check is None or check(session.names), f"{heading}: the example ran but its result is not as described"
