"""Every command the README and docs/ show, run as written, so a documented command cannot break.

Commands are read from the documents themselves: each line of a shell code block, and each inline
`python -m studio ...` / `python app.py ...` / `make ...` in the prose (placeholders such as `...`
or `<command>` excepted). Every studio command is parsed by the real parser, then run in a folder
holding the input files it names, with the hub models it needs (SD-Turbo, SD 1.5 and its LCM-LoRA, TAESD, MusicGen
small) replaced by the tiny random-weight models laid out in a Hugging Face cache, offline. Commands that
only make sense with the internet (`download`), that start a server, or that make long animations
run with `--help`; `make` targets are checked with `make -n`.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.image_cases import EXAMPLES
from tests.video_clips import pan, write_clip

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_FENCES = {"", "sh", "bash", "shell", "console"}
PROGRAM = re.compile(r"^(?:\.venv/bin/)?(?:python3?\s+(?:-m\s+studio|app\.py)|make)\b")
# Sub-commands that are run with --help only, and why.
HELP_ONLY = {"download": "fetches from the hub, which tests never reach"}
# Animations longer than this run with --help only: the 24-frame walk runs, 96 frames would add a minute.
MAX_FRAMES_RUN = 24
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]
    where: str  # document:line

    @property
    def program(self) -> str:
        if self.words[0] == "make":
            return "make"
        return "app" if "app.py" in self.words[:3] else "studio"

    @property
    def arguments(self) -> list[str]:
        """The words after the program (`python -m studio`, `python app.py`, `make`)."""
        words = list(self.words)
        if self.program == "make":
            return words[1:]
        start = words.index("app.py") + 1 if self.program == "app" else words.index("studio") + 1
        return words[start:]


def documented_commands() -> list[Command]:
    found: list[Command] = []
    for document in DOCUMENTS:
        fence: str | None = None
        for number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("```"):
                fence = stripped[3:].strip().lower() if fence is None else None
                continue
            where = f"{document.name}:{number}"
            if fence is not None:
                if fence in SHELL_FENCES and PROGRAM.match(stripped):
                    found.append(Command(tuple(shlex.split(stripped, comments=True)), where))
                continue
            for span in re.findall(r"`([^`]+)`", line):
                if PROGRAM.match(span) and "..." not in span and "<" not in span:
                    found.append(Command(tuple(shlex.split(span)), where))
    return found


COMMANDS = documented_commands()


def test_the_documents_show_commands_of_every_kind():
    programs = {c.program for c in COMMANDS}
    assert programs == {"studio", "app", "make"}
    assert len([c for c in COMMANDS if c.program == "studio"]) >= 20
    # The two commands that once failed as written are among them.
    shown = {" ".join(c.arguments) for c in COMMANDS}
    assert 'inpaint photo.png --mask mask.png a red door --only-masked --out fixed.png' in shown
    assert 'outpaint photo.png --right 128 more of the beach --out wider.png' in shown


def _studio_parser() -> argparse.ArgumentParser:
    from studio.cli.main import build_parser

    return build_parser()


def _app_parser() -> argparse.ArgumentParser:
    from studio import settings as settings_mod

    parser = argparse.ArgumentParser(prog="app.py")
    settings_mod.add_arguments(parser)
    return parser


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.program != "make"], ids=lambda c: c.where)
def test_every_documented_command_parses(command):
    """What a person types is accepted by the real parser (the README's inpaint example once was not)."""
    parser = _studio_parser() if command.program == "studio" else _app_parser()
    try:
        parser.parse_args(command.arguments)
    except SystemExit as exc:
        assert exc.code == 0, f"{command.where}: {' '.join(command.words)} is refused"


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.program == "make"], ids=lambda c: c.where)
def test_documented_make_targets_exist(command):
    done = subprocess.run(["make", "-n", *command.arguments], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{command.where}: {done.stderr}"


# -- running them ---------------------------------------------------------------------------------


def _hub_snapshot(hub: Path, repo: str, source: Path, variant: str | None = None) -> None:
    """A model folder laid out as huggingface_hub caches `repo`, optionally with variant file names."""
    repo_dir = hub / ("models--" + repo.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    snapshot = repo_dir / "snapshots" / COMMIT
    shutil.copytree(source, snapshot, dirs_exist_ok=True)
    if variant:
        for weights in snapshot.rglob("*.safetensors"):
            weights.rename(weights.with_name(f"{weights.stem}.{variant}.safetensors"))


def _tone_wav(path: Path, notes: list[float], seconds_each: float = 0.4, rate: int = 22050) -> None:
    """A plain sung-like line: one sine tone per note, with a short gap between notes."""
    samples = []
    for frequency in notes:
        t = np.arange(int(rate * seconds_each)) / rate
        tone = 0.4 * np.sin(2 * np.pi * frequency * t) * np.minimum(1, (seconds_each - t) * 20)
        samples += [tone, np.zeros(int(rate * 0.05))]
    pcm = (np.concatenate(samples) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())


def _inputs(folder: Path) -> None:
    """The files the documented commands name."""
    from studio.media.melody_tokens import Melody  # noqa: F401 (the melody types write_midi takes)

    photo = Image.open(EXAMPLES / "coffee.jpg").convert("RGB")
    photo.thumbnail((160, 160))
    photo.save(folder / "photo.jpg", quality=92)
    photo.save(folder / "photo.png")
    mask = Image.new("L", photo.size, 0)
    ImageDraw.Draw(mask).rectangle((40, 40, 100, 100), fill=255)
    mask.save(folder / "mask.png")
    painting = Image.open(EXAMPLES / "astronaut.jpg").convert("RGB")
    painting.thumbnail((160, 160))
    painting.save(folder / "painting.jpg", quality=92)
    scale = [261.63, 293.66, 329.63, 349.23, 392.00, 440.00, 493.88, 523.25]
    _tone_wav(folder / "hum.wav", scale)
    (folder / "a.abc").write_text("X:1\nT:A\nM:4/4\nL:1/8\nK:C\nCDEF GABc|c2B2 A2G2|FEDC D2E2|C8|\n")
    (folder / "b.abc").write_text("X:1\nT:B\nM:4/4\nL:1/8\nK:G\nGABc d2B2|c2A2 B2G2|ABcA G2F2|G8|\n")
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-c", (
            "import sys; from pathlib import Path; from studio.media import abc, midi; "
            f"m = abc.abc_to_melody(Path('{name}.abc').read_text()); midi.write_midi(m, Path('{name}.mid'), 100.0)"
        )], cwd=folder, check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    _tone_wav(folder / "beat.wav", [110.0, 0.0] * 8, seconds_each=0.25)
    ffmpeg = __import__("imageio_ffmpeg").get_ffmpeg_exe()
    subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-i", "beat.wav", "song.mp3"], cwd=folder, check=True,
                   timeout=120)
    write_clip(folder / "clip.mp4", pan(size=(96, 64), frames=6).frames, fps=12, audio=("aac", 44_100))
    (folder / "prompts.txt").write_text("a lighthouse at dusk\na lighthouse in the fog\n")


@pytest.fixture(scope="module")
def documented_home(tmp_path_factory, tiny_sd_path, tiny_sd15_path, tiny_taesd_path, tiny_musicgen_path):
    """A working folder with the inputs, and an environment whose hub models are the tiny ones."""
    from tests.tiny_models import build_tiny_lcm_lora

    home = tmp_path_factory.mktemp("documented")
    hub = home / ".hf" / "hub"
    _hub_snapshot(hub, "stabilityai/sd-turbo", tiny_sd_path, variant="fp16")
    _hub_snapshot(hub, "stable-diffusion-v1-5/stable-diffusion-v1-5", tiny_sd15_path, variant="fp16")
    lcm_lora = build_tiny_lcm_lora(tiny_sd15_path, home / "lcm" / "pytorch_lora_weights.safetensors")
    _hub_snapshot(hub, "latent-consistency/lcm-lora-sdv1-5", lcm_lora.parent)
    _hub_snapshot(hub, "madebyollin/taesd", tiny_taesd_path)
    _hub_snapshot(hub, "facebook/musicgen-small", tiny_musicgen_path)
    work = home / "work"
    work.mkdir()
    _inputs(work)
    for folder in ("models/Stable-diffusion", "models/Lora", "embeddings"):  # an empty AUTOMATIC1111 beside it
        (home / "stable-diffusion-webui" / folder).mkdir(parents=True)
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        HF_HOME=str(home / ".hf"),
        HF_HUB_CACHE=str(hub),
        HF_HUB_OFFLINE="1",
        STUDIO_OFFLINE="1",
        STUDIO_DATA_DIR=str(home / "data"),
    )
    env.pop("STUDIO_MODELS_FILE", None)
    return work, env


def _run(command: Command, work: Path, env: dict[str, str], extra: list[str] | None = None):
    program = [sys.executable, "-m", "studio"] if command.program == "studio" else [sys.executable, str(ROOT / "app.py")]
    return subprocess.run([*program, *(extra if extra is not None else command.arguments)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)


def _runs_for_real(command: Command) -> bool:
    words = command.arguments
    if command.program != "studio" or words[0] in HELP_ONLY or "--help" in words:
        return False
    frames = words[words.index("--frames") + 1] if "--frames" in words else "0"
    return int(frames) <= MAX_FRAMES_RUN


def test_every_documented_studio_command_runs(documented_home):
    """In document order, as a person would try them; the picture `reproduce` reads is made first."""
    work, env = documented_home
    made = subprocess.run([sys.executable, "-m", "studio", "image", "a lighthouse", "--seed", "5", "--out",
                           "picture.png"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr
    failures = []
    ran = 0
    for command in COMMANDS:
        if command.program == "make":
            continue
        started = time.perf_counter()
        if _runs_for_real(command):
            done = _run(command, work, env)
            ran += 1
        else:
            head = command.arguments[:1] if command.program == "studio" else []
            done = _run(command, work, env, [*head, "--help"])
        print(f"{time.perf_counter() - started:6.1f} s  {' '.join(command.arguments)[:100]}")
        if done.returncode != 0 or "Traceback" in done.stderr:
            tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            failures.append(f"{command.where}: {' '.join(command.words)} -> exit {done.returncode}: {tail}")
    assert not failures, "\n".join(failures)
    assert ran >= 15
    # What they made is where they said it would be.
    for name in ("out.png", "fast.png", "fixed.png", "wider.png", "tune.mid", "more.mid", "clip.wav", "morph.mid",
                 "walk.mp4", "art.png", "walk.gif", "tune-s4.mid", "lighthouses", "big.png",
                 "restyled.mp4", "painted.mp4", "painted.gif"):
        assert (work / name).exists() and (work / name).stat().st_size > 0, name
    assert Image.open(work / "wider.png").width == Image.open(work / "photo.png").width + 128
    assert Image.open(work / "big.png").size == tuple(4 * side for side in Image.open(work / "photo.jpg").size)
