"""AUTOMATIC1111's `/sdapi/v1` and the OpenAI-compatible `/v1`, driven by the clients people use
(`webuiapi`, `openai`) against the running studio with `--api`, on tiny models and the built-in
text model."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import torch
import webuiapi
from gradio_client import Client
from PIL import Image
from safetensors.torch import save_file

from studio.history import Gallery
from studio.media.png_info import parse_a1111_parameters
from tests.running_app import RunningApp

TEXT_MODEL = "smollm2-135m-instruct-gguf"
PROMPT = "a lighthouse at dusk"


def write_models(folder: Path, sd_path: Path, taesd_path: Path) -> Path:
    """Two image models (the same tiny weights under two names, to switch between) and a fast decoder."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "models.toml"
    entries = [
        ("tiny-sd", "Tiny SD", '["txt2img", "img2img", "inpaint", "restyle"]', sd_path),
        ("tiny-sd-b", "Tiny SD (second copy)", '["txt2img", "img2img", "inpaint"]', sd_path),
        ("tiny-taesd", "Tiny TAESD", '["decode"]', taesd_path),
    ]
    path.write_text("\n".join(
        f'[[model]]\nid = "{i}"\nname = "{n}"\nfamily = "diffusers"\ntasks = {t}\npath = "{p}"\n'
        for i, n, t, p in entries), encoding="utf-8")
    return path


def write_lora(folder: Path, sd_path: Path) -> None:
    """A tiny kohya-layout LoRA in the data dir's LoRA folder, with training tags."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextModel

    from tests.test_loras import kohya_lora

    unet = UNet2DConditionModel.from_pretrained(sd_path / "unet")
    text_encoder = CLIPTextModel.from_pretrained(sd_path / "text_encoder")
    folder.mkdir(parents=True, exist_ok=True)
    save_file(kohya_lora(unet, text_encoder, 1), folder / "ink_wash.safetensors",
              metadata={"ss_tag_frequency": json.dumps({"10_ink": {"ink wash": 12}})})


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_sd_path, tiny_taesd_path):
    folder = tmp_path_factory.mktemp("http-apis")
    models = write_models(folder, tiny_sd_path, tiny_taesd_path)
    write_lora(folder / "data" / "loras", tiny_sd_path)
    (folder / "data" / "embeddings").mkdir(parents=True)
    save_file({"emb_params": torch.randn(2, 32, generator=torch.Generator().manual_seed(3))},
              folder / "data" / "embeddings" / "grainy.safetensors")
    with RunningApp(folder / "data", "--api", "--offline", "--models-file", str(models)) as running:
        yield running


@pytest.fixture(scope="module")
def sd(app):
    return webuiapi.WebUIApi(host="127.0.0.1", port=app.port, sampler="Euler", steps=2)


@pytest.fixture(scope="module")
def oa(app):
    return openai.OpenAI(base_url=f"{app.url}v1", api_key="unused", max_retries=0, timeout=300)


def pixels(picture: Image.Image) -> np.ndarray:
    return np.asarray(picture.convert("RGB"), dtype=np.int16)


def chunks_of(data: bytes) -> dict[str, str]:
    with Image.open(io.BytesIO(data)) as opened:
        return dict(opened.text)


# -- AUTOMATIC1111 ------------------------------------------------------------------------------------


def test_txt2img_with_a_seed_reproduces_and_its_png_info_parses(sd, app):
    first = sd.txt2img(prompt=PROMPT, negative_prompt="fog", seed=1234, width=64, height=64, cfg_scale=2.0)
    again = sd.txt2img(prompt=PROMPT, negative_prompt="fog", seed=1234, width=64, height=64, cfg_scale=2.0)
    other = sd.txt2img(prompt=PROMPT, negative_prompt="fog", seed=1235, width=64, height=64, cfg_scale=2.0)
    assert first.image.size == (64, 64)
    assert np.array_equal(pixels(first.image), pixels(again.image))
    assert np.abs(pixels(first.image) - pixels(other.image)).mean() > 1
    info = first.info
    assert info["seed"] == 1234 and info["all_seeds"] == [1234] and info["sd_model_name"] == "tiny-sd"
    assert info["steps"] == 2 and info["sampler_name"] == "Euler" and info["cfg_scale"] == 2.0
    # Each PNG carries the `parameters` chunk AUTOMATIC1111 writes, and /png-info reads it back.
    read = sd.png_info(first.image)
    text = read.info
    assert text == info["infotexts"][0] and text.startswith(PROMPT + "\nNegative prompt: fog\n")
    parsed = parse_a1111_parameters(text)
    assert parsed["Seed"] == "1234" and parsed["Steps"] == "2" and parsed["Size"] == "64x64"
    assert read.parameters["Seed"] == "1234" and read.parameters["prompt"] == PROMPT
    # webuiapi says save_images=False, as AUTOMATIC1111's clients do: nothing was kept.
    assert info["studio_gallery_ids"] == []


def test_the_same_seed_makes_the_same_picture_as_the_image_tab(sd, app):
    made = sd.txt2img(prompt=PROMPT, seed=77, width=64, height=64, steps=2, cfg_scale=0.0, save_images=True)
    gallery_id = made.info["studio_gallery_ids"][0]
    page = Client(app.url, verbose=False)
    files, _info, _seed = page.predict("tiny-sd", "tiny-taesd", PROMPT, "", "Euler", 2, 0.0, 64, 64, False, 77, 1, 1,
                                       api_name="/txt2img")[1:]
    from_page = Image.open(files[0]["image"])
    assert np.array_equal(pixels(made.image), pixels(from_page))
    kept = Gallery(app.data_dir).get(gallery_id)
    assert kept.params["seed"] == 77 and kept.params["decoder"] == "tiny-taesd"
    assert np.array_equal(pixels(Image.open(kept.file)), pixels(made.image))


def test_img2img_and_inpaint_with_a_mask(sd):
    start = sd.txt2img(prompt="a red barn", seed=3, width=64, height=64).image
    changed = sd.img2img(images=[start], prompt="a blue barn", seed=4, width=64, height=64,
                         denoising_strength=0.6, steps=4)
    assert changed.image.size == (64, 64)
    assert changed.info["denoising_strength"] == 0.6 and changed.info["steps"] == 4
    assert np.abs(pixels(changed.image) - pixels(start)).mean() > 1
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))  # repaint the left half only
    painted = sd.img2img(images=[start], mask_image=mask, prompt="a blue barn", seed=4, width=64, height=64,
                         denoising_strength=1.0, steps=2, mask_blur=0, inpaint_full_res=False, inpainting_fill=1)
    diff = np.abs(pixels(painted.image) - pixels(start)).mean(axis=2)
    assert diff[:, :24].mean() > 3 * max(diff[:, 40:].mean(), 0.5)  # the masked half changed, the rest far less
    assert "Mode: inpaint" in painted.info["infotexts"][0]
    inverted = sd.img2img(images=[start], mask_image=mask, inpainting_mask_invert=1, prompt="a blue barn", seed=4,
                          width=64, height=64, denoising_strength=1.0, steps=2, mask_blur=0, inpaint_full_res=False)
    flipped = np.abs(pixels(inverted.image) - pixels(start)).mean(axis=2)
    assert flipped[:, 40:].mean() > 3 * max(flipped[:, :24].mean(), 0.5)
    # A fill mode the studio does not offer is named, not silently dropped.
    filled = sd.img2img(images=[start], mask_image=mask, prompt="x", seed=4, width=64, height=64, steps=2,
                        denoising_strength=1.0, inpainting_fill=0)
    assert any(s.startswith("inpainting_fill=0") for s in filled.info["studio_not_honoured"])


def test_switching_the_model_through_options(sd):
    assert sorted(sd.util_get_model_names()) == ["tiny-sd", "tiny-sd-b"]
    assert sd.util_get_current_model() == "tiny-sd"
    sd.set_options({"sd_model_checkpoint": "tiny-sd-b [0123456789]", "some_option_nobody_knows": 3})
    try:
        assert sd.get_options()["sd_model_checkpoint"] == "tiny-sd-b"
        made = sd.txt2img(prompt=PROMPT, seed=5, width=64, height=64)
        assert made.info["sd_model_name"] == "tiny-sd-b" and "Model id: tiny-sd-b" in made.info["infotexts"][0]
        once = sd.txt2img(prompt=PROMPT, seed=5, width=64, height=64,
                          override_settings={"sd_model_checkpoint": "tiny-sd"})
        assert once.info["sd_model_name"] == "tiny-sd"
    finally:
        sd.set_options({"sd_model_checkpoint": "tiny-sd"})
    refused = sd.set_options({"sd_model_checkpoint": "v1-5-pruned.safetensors"})  # webuiapi returns the body
    assert "no image model 'v1-5-pruned.safetensors'" in refused["detail"]
    answer = httpx.post(f"{sd.baseurl}/options", json={"sd_model_checkpoint": "v1-5-pruned.safetensors"})
    assert answer.status_code == 404 and sd.get_options()["sd_model_checkpoint"] == "tiny-sd"
    # The VAE option picks the decoder: None is the model's own VAE, Automatic the fast one.
    sd.set_options({"sd_vae": "None"})
    try:
        assert "Decoder: full" in sd.txt2img(prompt=PROMPT, seed=5, width=64, height=64).info["infotexts"][0]
    finally:
        sd.set_options({"sd_vae": "Automatic"})
    assert "Decoder: tiny-taesd" in sd.txt2img(prompt=PROMPT, seed=5, width=64, height=64).info["infotexts"][0]


def test_lists_clients_read_at_start(sd):
    assert {s["name"] for s in sd.get_samplers()} >= {"Euler", "Euler a", "DPM++ 2M", "DDIM"}
    assert [s["name"] for s in sd.get_schedulers()] == ["automatic", "karras"]
    assert [u["name"] for u in sd.get_upscalers()][:2] == ["R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B"]
    [lora] = sd.get_loras()
    assert lora["name"] == "ink_wash" and json.loads(lora["metadata"]["ss_tag_frequency"]) == {"10_ink": {"ink wash": 12}}
    plain = sd.txt2img(prompt=PROMPT, seed=9, width=64, height=64)
    inked = sd.txt2img(prompt=PROMPT + " <lora:ink_wash:0.8>", seed=9, width=64, height=64)
    assert np.abs(pixels(inked.image) - pixels(plain.image)).mean() > 0.5
    assert 'Lora hashes: "ink_wash: ' in inked.info["infotexts"][0]
    embeddings = sd.get_embeddings()
    assert embeddings["loaded"]["grainy"]["vectors"] == 2 and embeddings["loaded"]["grainy"]["shape"] == 32
    named = sd.txt2img(prompt=PROMPT + ", grainy", seed=9, width=64, height=64)
    assert 'TI hashes: "grainy: ' in named.info["infotexts"][0]
    karras = sd.txt2img(prompt=PROMPT, seed=9, width=64, height=64, sampler_name="DPM++ 2M", scheduler="Karras")
    assert "Sampler: DPM++ 2M, Schedule type: Karras" in karras.info["infotexts"][0]
    hires = sd.txt2img(prompt=PROMPT, seed=9, width=64, height=64, enable_hr=True, hr_scale=2, hr_second_pass_steps=1,
                       denoising_strength=0.5, restore_faces=True)
    assert hires.image.size == (128, 128)
    assert "Size: 64x64" in hires.info["infotexts"][0] and "Hires upscale: 2" in hires.info["infotexts"][0]
    assert set(hires.info["studio_not_honoured"]) == {"restore_faces"}


def test_progress_shows_a_preview_and_interrupt_ends_the_run_early(sd, app):
    steps = 150
    answer: dict = {}
    run = threading.Thread(target=lambda: answer.update(result=sd.txt2img(
        prompt=PROMPT, seed=11, width=512, height=512, steps=steps)))
    run.start()
    seen = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.is_alive():
        progress = sd.get_progress()
        if progress["current_image"] and progress["state"]["sampling_step"] >= 2:
            seen = progress
            break
        time.sleep(0.05)
    assert seen is not None, "no preview while the run went on"
    assert 0 < seen["progress"] < 1 and seen["state"]["sampling_steps"] == steps and seen["eta_relative"] > 0
    Image.open(io.BytesIO(base64.b64decode(seen["current_image"]))).verify()
    sd.interrupt()
    run.join(timeout=60)
    info = answer["result"].info
    assert info["studio_interrupted"] is True and 2 <= info["studio_steps_done"] < steps
    assert answer["result"].image.size == (512, 512)  # the live preview at the step it reached
    assert sd.get_progress()["state"]["job_count"] == 0


def test_a1111_errors_in_its_own_shape(app):
    base = f"{app.url}sdapi/v1"
    cases = [
        ("txt2img", b"{not json", "not valid JSON"),
        ("txt2img", b"[1, 2]", "must be a JSON object"),
        ("txt2img", json.dumps({"prompt": PROMPT, "steps": "many"}).encode(), "'steps' must be a number"),
        ("txt2img", json.dumps({"prompt": PROMPT, "width": 1e300}).encode(), "'width' must be"),
        ("txt2img", json.dumps({"prompt": "", "width": 64, "height": 64}).encode(), "Write a prompt first"),
        ("txt2img", json.dumps({"prompt": PROMPT, "width": 70, "height": 64}).encode(), "multiple of 8"),
        ("txt2img", json.dumps({"prompt": PROMPT, "sampler_name": "Heun++"}).encode(), "not offered"),
        ("img2img", json.dumps({"prompt": PROMPT}).encode(), "init_images"),
        ("img2img", json.dumps({"prompt": PROMPT, "init_images": ["%%%"]}).encode(), "not valid base64"),
        ("img2img", json.dumps({"prompt": PROMPT, "init_images": [base64.b64encode(b"text").decode()]}).encode(),
         "'init_images[0]' cannot be used: the image is not an image"),
        ("png-info", json.dumps({"image": 5}).encode(), "base64"),
    ]
    for route, body, words in cases:
        answer = httpx.post(f"{base}/{route}", content=body, headers={"content-type": "application/json"},
                            timeout=120)
        assert 400 <= answer.status_code < 500, (route, body[:60], answer.text)
        error = answer.json()
        assert set(error) >= {"error", "detail"} and words in error["detail"], (route, error)
        assert "Traceback" not in answer.text


# -- OpenAI ---------------------------------------------------------------------------------------------


def test_chat_completion_matches_the_text_tab_for_the_same_seed(oa, app):
    question = "Name three colours of the sea."
    answer = oa.chat.completions.create(model=TEXT_MODEL, seed=42, max_tokens=30, temperature=0.8,
                                        messages=[{"role": "system", "content": "You answer briefly."},
                                                  {"role": "user", "content": question}])
    text = answer.choices[0].message.content
    assert text and answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage.completion_tokens > 0 and answer.usage.prompt_tokens > 5
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    page = Client(app.url, verbose=False)
    history = page.predict(question, [], "You answer briefly.", TEXT_MODEL, 0.8, 0.95, 40, 0.05, 1.1, 30, "", 42,
                           False, None, api_name="/chat")[0]
    assert history[-1]["content"][0]["text"] == text
    streamed = oa.chat.completions.create(model=TEXT_MODEL, seed=42, max_tokens=30, temperature=0.8, stream=True,
                                          stream_options={"include_usage": True},
                                          messages=[{"role": "system", "content": "You answer briefly."},
                                                    {"role": "user", "content": question}])
    pieces, finish, usage = [], None, None
    for chunk in streamed:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert len([p for p in pieces if p]) > 3  # it streamed in many pieces
    assert "".join(pieces) == text and finish == answer.choices[0].finish_reason
    assert usage.completion_tokens == answer.usage.completion_tokens


def test_text_completion_and_stop_sequences(oa):
    prompt = "The lighthouse keeper climbed the stairs and"
    free = oa.completions.create(model=TEXT_MODEL, prompt=prompt, seed=3, max_tokens=24, temperature=0)
    words = free.choices[0].text.split()
    assert len(words) > 4
    stopped = oa.completions.create(model=TEXT_MODEL, prompt=prompt, seed=3, max_tokens=24, temperature=0,
                                    stop=[words[3]], echo=True)
    text = stopped.choices[0].text
    assert text.startswith(prompt) and words[3] not in text[len(prompt):] and stopped.choices[0].finish_reason == "stop"


def test_openai_refusals_name_the_field(oa):
    message = [{"role": "user", "content": "hi"}]
    cases = [
        (dict(model="gpt-4o", messages=message), openai.NotFoundError, "no text model 'gpt-4o'"),
        (dict(model=TEXT_MODEL, messages=message, presence_penalty=0.5), openai.BadRequestError,
         "'presence_penalty' is not supported"),
        (dict(model=TEXT_MODEL, messages=message, n=3), openai.BadRequestError, "'n' is not supported"),
        (dict(model=TEXT_MODEL, messages=[]), openai.BadRequestError, "'messages' must be a list"),
        (dict(model=TEXT_MODEL, messages=message, max_tokens=10**9), openai.BadRequestError, "new tokens"),
        (dict(model=TEXT_MODEL, messages=message, temperature=9), openai.BadRequestError, "temperature"),
        (dict(model=TEXT_MODEL, messages=[{"role": "tool", "content": "x"}]), openai.BadRequestError, "role"),
        (dict(model=TEXT_MODEL, messages=[{"role": "user", "content": [{"type": "image_url"}]}]),
         openai.BadRequestError, "text parts only"),
    ]
    for kwargs, error, words in cases:
        with pytest.raises(error) as raised:
            oa.chat.completions.create(**kwargs)
        assert words in raised.value.body["message"], (kwargs, raised.value.body)


def test_a_client_that_hangs_up_stops_the_generation(app):
    body = {"model": TEXT_MODEL, "stream": True, "max_tokens": 3000, "seed": 1, "temperature": 1.5,
            "messages": [{"role": "user", "content": "Tell a very long story about the sea, in many chapters."}]}
    with httpx.stream("POST", f"{app.url}v1/chat/completions", json=body, timeout=120) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        lines = answer.iter_lines()
        got = [line for _, line in zip(range(6), lines, strict=False)]
        assert any('"content"' in line for line in got)
    # The server notices at its next token and stops: the log records how far it got.
    deadline = time.monotonic() + 30
    found = None
    while time.monotonic() < deadline and found is None:
        found = re.search(r"text generation on smollm2\S*: (\d+) of at most 3000 new tokens \(stopped\)", app.log())
        time.sleep(0.2)
    assert found, app.log()[-2000:]
    assert int(found.group(1)) < 200


def test_images_generate_returns_pngs_by_value_and_by_link(oa, app):
    made = oa.images.generate(model="tiny-sd", prompt=PROMPT, size="64x64", n=2, response_format="b64_json",
                              extra_body={"seed": 8, "steps": 2})
    assert len(made.data) == 2
    first = base64.b64decode(made.data[0].b64_json)
    picture = Image.open(io.BytesIO(first))
    assert picture.format == "PNG" and picture.size == (64, 64)
    assert "Seed: 8" in chunks_of(first)["parameters"]
    linked = oa.images.generate(model="tiny-sd", prompt=PROMPT, size="64x64", response_format="url",
                                extra_body={"seed": 8, "steps": 2})
    fetched = httpx.get(linked.data[0].url, timeout=30)
    assert fetched.status_code == 200 and fetched.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(pixels(Image.open(io.BytesIO(fetched.content))), pixels(picture))
    assert httpx.get(linked.data[0].url.replace(".png", "x.png"), timeout=30).status_code == 404
    with pytest.raises(openai.BadRequestError) as raised:
        oa.images.generate(model="tiny-sd", prompt=PROMPT, size="big")
    assert "WIDTHxHEIGHT" in raised.value.body["message"]


def test_models_lists_text_and_image_models(oa):
    listed = {model.id for model in oa.models.list()}
    assert {TEXT_MODEL, "tiny-sd", "tiny-sd-b"} <= listed


def test_api_and_page_take_turns_in_the_heavy_lane(app, sd):
    """An API call waits while the page runs model work; it never runs beside it."""
    page = Client(app.url, verbose=False)
    long_run = page.submit("tiny-sd", "tiny-taesd", PROMPT, "", "Euler", 50, 0.0, 256, 256, False, 1, 1, 1,
                           api_name="/txt2img")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and long_run.status().code.name not in ("PROCESSING", "PROGRESS"):
        time.sleep(0.05)
    answer: dict = {}
    call = threading.Thread(target=lambda: answer.update(r=sd.txt2img(prompt=PROMPT, seed=2, width=64, height=64)))
    call.start()
    waited = False
    while call.is_alive() and not long_run.done() and not waited:
        progress = sd.get_progress()
        waited = progress["textinfo"] == "Waiting for a free slot" and progress["state"]["job_count"] == 1
        time.sleep(0.05)
    assert waited, "the API call did not wait for the page's run"
    page_files = long_run.result(timeout=300)[1]
    call.join(timeout=300)
    assert len(page_files) == 1 and answer["r"].image.size == (64, 64)


# -- login, keys and hosted limits ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def locked(tmp_path_factory, tiny_sd_path, tiny_taesd_path):
    folder = tmp_path_factory.mktemp("http-apis-locked")
    models = write_models(folder, tiny_sd_path, tiny_taesd_path)
    with RunningApp(folder / "data", "--api", "--offline", "--models-file", str(models), "--auth", "ann:secret",
                    "--api-key", "k-123", "--hosted", env={"STUDIO_RATE_LIMIT_PER_MINUTE": "3"}) as running:
        yield running


ROUTES = [("GET", "sdapi/v1/sd-models"), ("GET", "sdapi/v1/samplers"), ("GET", "sdapi/v1/schedulers"),
          ("GET", "sdapi/v1/options"), ("POST", "sdapi/v1/options"), ("GET", "sdapi/v1/progress"),
          ("POST", "sdapi/v1/interrupt"), ("POST", "sdapi/v1/png-info"), ("POST", "sdapi/v1/txt2img"),
          ("POST", "sdapi/v1/img2img"), ("GET", "sdapi/v1/loras"), ("GET", "sdapi/v1/upscalers"),
          ("GET", "v1/models"), ("POST", "v1/chat/completions"), ("POST", "v1/completions"),
          ("POST", "v1/images/generations")]


def test_login_and_key_are_needed_on_every_route(locked):
    for method, route in ROUTES:
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": "Basic " + base64.b64encode(b"ann:nope").decode()}):
            answer = httpx.request(method, f"{locked.url}{route}", json={}, headers=headers, timeout=30)
            assert answer.status_code == 401, (method, route, headers, answer.text)
            assert "Traceback" not in answer.text
    with_login = webuiapi.WebUIApi(host="127.0.0.1", port=locked.port, username="ann", password="secret")
    assert "tiny-sd" in with_login.util_get_model_names()
    with_key = openai.OpenAI(base_url=f"{locked.url}v1", api_key="k-123", max_retries=0)
    assert TEXT_MODEL in {m.id for m in with_key.models.list()}
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{locked.url}v1", api_key="k-12", max_retries=0).models.list()


def test_hosted_limits_and_rate_limit_hold_for_api_callers(locked):
    sd = webuiapi.WebUIApi(host="127.0.0.1", port=locked.port, username="ann", password="secret", steps=1)
    with pytest.raises(RuntimeError) as refused:
        sd.txt2img(prompt=PROMPT, steps=31, width=64, height=64)  # hosted: at most 30 steps
    assert refused.value.args[0] == 400 and "at most 30 steps" in json.loads(refused.value.args[1])["detail"]
    with_key = openai.OpenAI(base_url=f"{locked.url}v1", api_key="k-123", max_retries=0)
    with pytest.raises(openai.BadRequestError) as too_long:
        with_key.chat.completions.create(model=TEXT_MODEL, max_tokens=4096,
                                         messages=[{"role": "user", "content": "hi"}])
    assert "at most 512 new tokens" in too_long.value.body["message"]
    statuses = []
    for _ in range(4):  # 3 starts a minute; refused ones above counted none
        try:
            sd.txt2img(prompt=PROMPT, seed=1, width=64, height=64)
            statuses.append(200)
        except RuntimeError as exc:
            statuses.append(exc.args[0])
            detail = json.loads(exc.args[1])["detail"]
    assert statuses == [200, 200, 200, 429] and "runs a minute" in detail
    with pytest.raises(openai.RateLimitError):
        with_key.images.generate(model="tiny-sd", prompt=PROMPT, size="64x64")


def test_hostile_bodies_get_a_clear_4xx_never_a_5xx(app):
    hostile = [b"", b"null", b"\xff\xfe", b'{"prompt": ' * 5000, json.dumps({"prompt": ["x"] * 10}).encode(),
               json.dumps({"prompt": PROMPT, "steps": -1, "width": 1e309 if False else 10**30}).encode(),
               json.dumps({"prompt": PROMPT, "seed": 2**70, "n_iter": 10**6}).encode(),
               json.dumps({"prompt": PROMPT, "batch_size": True, "cfg_scale": "NaN"}).encode(),
               json.dumps({"messages": "hello", "model": 5}).encode(),
               json.dumps({"messages": [{"role": "user", "content": {"a": 1}}]}).encode(),
               json.dumps({"prompt": {"x": 1}, "size": "64x64", "n": 0}).encode(),
               json.dumps({"image": "A" * 1000, "init_images": [None], "mask": 7}).encode(),
               json.dumps({"sd_model_checkpoint": ["a"], "stop": [1, 2], "stream": "yes"}).encode()]
    posts = [route for method, route in ROUTES if method == "POST" and route != "sdapi/v1/interrupt"]
    for route in posts:
        for body in hostile:
            answer = httpx.post(f"{app.url}{route}", content=body, headers={"content-type": "application/json"},
                                timeout=120)
            assert answer.status_code < 500, (route, body[:80], answer.text[:300])
            if answer.status_code >= 400:
                assert "Traceback" not in answer.text and answer.json(), (route, body[:80])


def test_the_documented_python_examples_run(app, tmp_path, monkeypatch):
    """docs/http-apis.md's Python blocks and the README's, as written, with the tiny model in place of SD-Turbo."""
    root = Path(__file__).resolve().parent.parent
    page = (root / "docs" / "http-apis.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    readme = [block for block in re.findall(r"```python\n(.*?)```", (root / "README.md").read_text(), re.S)
              if "7860/v1" in block or "sdapi" in block]
    assert len(blocks) == 2 and len(readme) == 1
    blocks += readme
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        code = code.replace("7860", str(app.port)).replace("stabilityai/sd-turbo", "tiny-sd")
        exec(compile(code, "docs/http-apis.md", "exec"), {})  # noqa: S102 - the page's own examples
    assert Image.open(tmp_path / "lighthouse.png").text["parameters"].startswith("a lighthouse at dusk")
