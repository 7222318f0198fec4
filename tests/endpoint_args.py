"""Every public endpoint of the studio with cheap, valid arguments, and where its file inputs sit.

The security and fuzz tests start from these and change one thing at a time, so whatever they send is
the only reason a call can fail. The models are the fast built-ins and the tiny ones a models file
registers (see `write_models_file`); sizes, steps and token counts are the smallest that still work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.api_calls import upload
from tests.image_cases import EXAMPLES

TINY_SD, TINY_TAESD, TINY_MUSICGEN = "tiny-sd", "tiny-taesd", "tiny-musicgen"
BUILTIN_TEXT = "smollm2-135m-instruct-gguf"


def write_models_file(folder: Path, sd: Path, taesd: Path, musicgen: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "models.toml"
    path.write_text(
        f'[[model]]\nid = "{TINY_SD}"\nfamily = "diffusers"\n'
        f'tasks = ["txt2img", "img2img", "inpaint", "restyle"]\npath = "{sd}"\n\n'
        f'[[model]]\nid = "{TINY_TAESD}"\nfamily = "diffusers"\ntasks = ["decode"]\npath = "{taesd}"\n\n'
        f'[[model]]\nid = "{TINY_MUSICGEN}"\nfamily = "transformers"\ntasks = ["music"]\npath = "{musicgen}"\n',
        encoding="utf-8",
    )
    return path


def _tone(path: Path) -> Path:
    """Half a second of a 440 Hz tone, as a WAV file."""
    import numpy as np

    from studio.media.synth import write_wav

    rate = 8000
    write_wav(0.4 * np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate), path, rate)
    return path


def _tune(path: Path) -> Path:
    """A one-bar MIDI tune."""
    from studio.media.abc import abc_to_melody
    from studio.media.midi import write_midi

    write_midi(abc_to_melody("X:1\nM:4/4\nL:1/4\nK:C\nCDEF|\n"), path, tempo=100)
    return path


def _made_elsewhere(path: Path) -> Path:
    """A PNG carrying generation parameters the way AUTOMATIC1111 writes them."""
    from PIL import Image

    from studio.media.png_info import save_png

    save_png(Image.new("RGB", (32, 32)), path, {"parameters": (
        "a cat\nNegative prompt: ugly\nSteps: 4, Sampler: Euler a, CFG scale: 6.5, Seed: 12, Size: 512x512")})
    return path


def _icon(path: Path) -> Path:
    """A small picture for the endpoints whose time grows with the picture (upscaling)."""
    from PIL import Image

    with Image.open(EXAMPLES / "coffee.jpg") as photo:
        photo.resize((48, 32)).save(path)
    return path
def _clip(path: Path) -> Path:
    """Four frames of a pan over a photo, with a tone, as an MP4."""
    from tests.video_clips import pan, write_clip

    return write_clip(path, pan(size=(64, 48), frames=4).frames, fps=8, audio=("aac", 22_050))


def uploads(base_url: str, folder: Path) -> dict[str, dict]:
    """FileData for a photo, a PNG with parameters, a tune and a recording, uploaded to the running studio."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "photo": upload(base_url, EXAMPLES / "coffee.jpg"),
        "icon": upload(base_url, _icon(folder / "icon.png")),
        "png": upload(base_url, _made_elsewhere(folder / "made-elsewhere.png")),
        "midi": upload(base_url, _tune(folder / "tune.mid")),
        "wav": upload(base_url, _tone(folder / "tone.wav")),
        "video": upload(base_url, _clip(folder / "clip.mp4")),
    }


def image_settings(steps: int = 1) -> list[Any]:
    # model, decoder, prompt, negative, sampler, steps, guidance, width, height, random seed, seed, count, size
    return [TINY_SD, TINY_TAESD, "a red cat", "", "Euler", steps, 0.0, 64, 64, False, 7, 1, 1]


def text_settings() -> list[Any]:
    # model, temperature, top-p, top-k, min-p, repetition, max new tokens, stop sequences, seed, keep
    return [BUILTIN_TEXT, 0.8, 0.95, 40, 0.05, 1.1, 2, "", 3, False]


# The ControlNet accordion: unit 0's model (none), control type, picture, sketch, weight, start, end; then its
# thresholds (0: the type's defaults) and units 1 and 2, each those nine (none).
NO_CONTROLNET = ["", "canny", None, None, 1.0, 0.0, 1.0, 0, 0, *(["", "canny", None, None, 1.0, 0.0, 1.0, 0, 0] * 2)]
# The flow models' shift and T5 prompt length, last on every image endpoint: 0, the model's own.
MODELS_OWN_FLOW = [0, 0]


def baseline(files: dict[str, dict]) -> dict[str, list[Any]]:
    """Valid, quick arguments for every public endpoint."""
    photo, midi, wav, clip = files["photo"], files["midi"], files["wav"], files["video"]
    chat = [{"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]}]
    editor = {"background": photo, "layers": [], "composite": None}
    return {
        # The image endpoints end with the fast LCM switch (off); txt2img's hires fix comes before it. Text to
        # image, image to image and inpainting then take the ControlNet accordion's values (no ControlNet); txt2img
        # the hires resize (0, 0: by its scale); all four then take the flow models' shift and T5 prompt length,
        # and the speed (exact) comes last of all.
        "txt2img": [*image_settings(), True, 2.0, "Latent", 1, 0.5, False, *NO_CONTROLNET, 0, 0, *MODELS_OWN_FLOW,
                    "exact"],
        "img2img": [*image_settings(steps=2), photo, 0.5, False, *NO_CONTROLNET, *MODELS_OWN_FLOW, "exact"],
        "inpaint": [*image_settings(steps=2), editor, photo, 4, 8, True, 1.0, False, *NO_CONTROLNET, *MODELS_OWN_FLOW,
                    "exact"],
        "control_map_preview": ["canny", photo, None, 64, 64, 0, 0],
        "outpaint": [*image_settings(steps=2), photo, 0, 16, 0, 0, 4, 1.0, False, *MODELS_OWN_FLOW, "exact"],
        "image_read_parameters": [files["png"]],
        "image_patterns": [5, "ocean", 1.0, 64, 64],
        "restyle": [photo, TINY_SD, TINY_TAESD, "watercolor painting", 0.5, 2, False, 3],
        "stylize": [photo, "Built-in style", 4, -1, 0.5, None, 1.0, False, 96, False],
        "style_save": [],
        "upscale": [files.get("icon", photo), "realesr-animevideov3", 2, 64],
        "style_video": [clip, "Built-in style", 7, -1, 0.5, None, 1.0, False, 0.8, 64, False],
        "write": ["The lighthouse keeper", *text_settings()],
        "chat": ["Hi", chat, "Be brief.", *text_settings(), "Poem"],
        "chat_regenerate": [chat, "Be brief.", *text_settings(), "Poem"],
        "chat_undo": [chat],
        "melody": ["A MIDI file", midi, "", None, True, "D", "dorian", "6/8", 110, 1, 0.9, 0.95, 2, False, 3,
                   "piano"],
        "music": ["calm piano", TINY_MUSICGEN, 1, 3, 0, None, "fastest"],
        "analyse": [wav],
        "prompt_walk": ["a red cat | 1\na blue dog | 2", TINY_SD, 1, 0.0, "", 256, 256, 0, 12, 2, None],
        "image_morph": [photo, photo, TINY_SD, 2, 64, 12],
        "patterns": [5, "ocean", 64, 64, 1.0, False],
        "pattern_walk": [5, 6, "ocean", 64, 1.0, 2],
        "style_walk": [photo, "Style images", "", [photo, photo], 0, 64, 12, False],
        "gallery_list": ["All"],
        "gallery_rerun": [1, "All"],
        "gallery_delete": [999_999, "All"],
        "models_download": ["madebyollin/taesd"],
        "models_delete": ["madebyollin/taesd"],
    }


# Where each endpoint takes files: (argument index, key path inside it). The hum recording, the song and
# the MusicGen melody are optional files given in place of None.
FILE_SLOTS: list[tuple[str, int, tuple]] = [
    ("img2img", 13, ()),
    ("inpaint", 13, ("background",)),
    ("inpaint", 13, ("layers", 0)),
    ("inpaint", 14, ()),
    ("outpaint", 13, ()),
    ("control_map_preview", 1, ()),
    ("txt2img", 21, ()),
    ("txt2img", 30, ()),  # ControlNet unit 1's picture
    ("image_read_parameters", 0, ()),
    ("restyle", 0, ()),
    ("stylize", 0, ()),
    ("stylize", 5, ()),
    ("upscale", 0, ()),
    ("style_video", 0, ()),
    ("style_video", 5, ()),
    ("melody", 1, ()),
    ("melody", 3, ()),
    ("music", 5, ()),
    ("analyse", 0, ()),
    ("prompt_walk", 10, ()),
    ("image_morph", 0, ()),
    ("image_morph", 1, ()),
    ("style_walk", 0, ()),
    ("style_walk", 3, (1,)),
]


def with_file(args: list[Any], index: int, keys: tuple, value: Any) -> list[Any]:
    """A copy of `args` with the file at (index, keys) replaced by `value`."""
    import copy

    changed = copy.deepcopy(args)
    if not keys:
        changed[index] = value
        return changed
    holder = changed[index]
    for key in keys[:-1]:
        holder = holder[key]
    if isinstance(holder, list) and keys[-1] >= len(holder):
        holder.append(value)
    else:
        holder[keys[-1]] = value
    return changed
