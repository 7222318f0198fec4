"""What an HTTP API call costs on top of the same work in-process, side by side: a small chat
completion on the built-in text model through the OpenAI-compatible `/v1/chat/completions`, and a
64 px txt2img on a tiny diffusion model through AUTOMATIC1111's `/sdapi/v1/txt2img`, each against
the same request made through the `Studio` object directly (no HTTP, no JSON, no base64 PNG).

The studio runs as `app.py --api` in a child process; the in-process calls run here. They take
turns, one of each per round, so both see the same load on a shared machine.

    python benchmarks/api_overhead.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from studio.backends.diffusion import ImageRequest  # noqa: E402
from studio.backends.language import BUILTIN_TEXT_MODEL, CHAT, TextRequest  # noqa: E402
from studio.services import Studio  # noqa: E402
from studio.settings import Settings  # noqa: E402
from tests.image_models import TINY_SD, TINY_TAESD, write_models_file  # noqa: E402
from tests.running_app import RunningApp  # noqa: E402
from tests.tiny_models import build_tiny_sd, build_tiny_taesd  # noqa: E402

QUESTION = "Name one colour of the sea."
CHAT_TOKENS = 16


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="api-overhead-"))
    models = write_models_file(folder, build_tiny_sd(folder / "sd"), build_tiny_taesd(folder / "taesd"))
    studio = Studio(Settings(data_dir=folder / "local", models_file=models, offline=True))
    text_request = TextRequest(mode=CHAT, messages=(("user", QUESTION),), model=BUILTIN_TEXT_MODEL,
                               max_new_tokens=CHAT_TOKENS, seed=1, temperature=0.0)
    image_request = ImageRequest(prompt="a lighthouse", model=TINY_SD, decoder=TINY_TAESD, width=64, height=64,
                                 steps=1, seed=1)

    def chat_here() -> str:
        return [u for u in studio.stream_text(text_request)][-1].result.text

    def image_here() -> None:
        studio.generate_image(image_request, keep=False)

    with RunningApp(folder / "served", "--api", "--offline", "--models-file", str(models)) as app, \
            httpx.Client(base_url=app.url, timeout=120) as http:
        chat_body = {"model": BUILTIN_TEXT_MODEL, "max_tokens": CHAT_TOKENS, "seed": 1, "temperature": 0,
                     "messages": [{"role": "user", "content": QUESTION}]}
        image_body = {"prompt": "a lighthouse", "seed": 1, "steps": 1, "cfg_scale": 0, "width": 64, "height": 64,
                      "sampler_name": "Euler", "save_images": False}

        def chat_there() -> str:
            answer = http.post("v1/chat/completions", json=chat_body)
            answer.raise_for_status()
            return answer.json()["choices"][0]["message"]["content"]

        def image_there() -> None:
            http.post("sdapi/v1/txt2img", json=image_body).raise_for_status()

        http.post("sdapi/v1/options", json={"sd_model_checkpoint": TINY_SD}).raise_for_status()
        assert chat_here() == chat_there(), "the same request gave different text in-process and over HTTP"
        for fn in (image_here, image_there):  # loads and OpenVINO conversions, before any timing
            fn()
        times: dict[str, list[float]] = {name: [] for name in ("chat here", "chat http", "image here", "image http")}
        for _ in range(args.rounds):
            times["chat here"].append(timed(chat_here))
            times["chat http"].append(timed(chat_there))
            times["image here"].append(timed(image_here))
            times["image http"].append(timed(image_there))
    median = {name: statistics.median(values) * 1000 for name, values in times.items()}
    print(f"API overhead, median of {args.rounds} rounds taking turns (ms):")
    for what, label in (("chat", f"chat completion, {CHAT_TOKENS} tokens, built-in model"),
                        ("image", "txt2img 64 px, 1 step, tiny model")):
        here, there = median[f"{what} here"], median[f"{what} http"]
        print(f"  {label}: in-process {here:.0f} ms, over HTTP {there:.0f} ms, "
              f"overhead {there - here:+.0f} ms ({there / here:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
