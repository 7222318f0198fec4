"""The Music tab's shared steps, used by the UI, the CLI and the gallery's re-run alike:
read a primer (MIDI, ABC or a hummed recording), write a melody's files (.mid, .wav, piano roll
.png, .abc) and keep them in the gallery, keep MusicGen audio, analyse any audio or MIDI;
and the same for the Interpolate tab's melody walks (.mid, .wav, a piano roll of every step).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from studio import limits
from studio.backends.melody import MelodyBackend, MelodyRequest, MelodyResult
from studio.backends.melody_walk import MelodyWalkBackend, MelodyWalkRequest, MelodyWalkResult
from studio.backends.musicgen import MusicBackend, MusicRequest, MusicResult
from studio.errors import InputError
from studio.history import Gallery, GalleryItem
from studio.media import abc, audio, midi, plots, synth
from studio.media.keys import KeyEstimate
from studio.media.melody_tokens import Melody, key_name
from studio.runtime import NEVER_CANCELLED, CancelToken, ProgressCallback, no_progress
from studio.services.records import known_fields
from studio.settings import Settings

PRIMER_KINDS = ("midi", "abc", "audio")
MAX_SEED = 2**31 - 1  # exact in a browser's number field and in JSON


def new_seed() -> int:
    """A fresh seed for a melody, so composing again gives a new tune unless a seed is asked for."""
    return secrets.randbelow(MAX_SEED + 1)


MIDI_SUFFIXES = {".mid", ".midi", ".smf"}


@dataclass(frozen=True)
class Primer:
    melody: Melody
    tempo: float | None  # the file's own tempo, where it has one
    source: str  # "midi", "abc" or "audio"
    key: KeyEstimate | None = None  # how the key was found; None: written in the source
    meter_confidence: float | None = None  # None: the metre was written in the source or given

    def describe(self) -> str:
        """What was found in the primer, as the Music tab shows it beside the key controls."""
        m = self.melody
        key = key_name(m.tonic, m.mode)
        key += f" (confidence {self.key.confidence:.0%})" if self.key else " (as written)"
        meter = m.meter + (f" (confidence {self.meter_confidence:.0%})" if self.meter_confidence is not None else "")
        tempo = f"{self.tempo:.0f} bpm" if self.tempo else "no tempo given"
        return f"{key} · {meter} · {tempo} · {len(m.bars)} bars"


@dataclass
class MelodyFiles:
    midi: Path
    wav: Path
    png: Path
    abc: Path
    abc_text: str


@dataclass
class MelodyOutcome:
    result: MelodyResult
    files: MelodyFiles
    item: GalleryItem


@dataclass
class MusicOutcome:
    result: MusicResult
    file: Path
    spectrogram: Path
    item: GalleryItem


@dataclass
class AnalysisOutcome:
    analysis: audio.Analysis
    spectrogram: Image.Image

    def describe(self) -> str:
        a = self.analysis
        return (f"**Tempo** {a.tempo:.0f} bpm · **Key** {key_name(a.tonic, a.mode)} "
                f"(confidence {a.key_confidence:.2f}) · **Length** {a.seconds:.1f} s")


def read_primer(kind: str, source: str | Path, *, meter: str | None, max_audio_seconds: float) -> Primer:
    """A melody to continue: a MIDI file, ABC text, or a recording of someone humming or singing.

    `meter` is for sources that do not say theirs (a recording, a MIDI file without a time signature);
    None: estimate it from the notes.
    """
    if kind == "midi":
        reading = midi.read_midi_melody(Path(source), default_meter=meter)
        return Primer(reading.melody, reading.tempo, "midi", reading.key, reading.meter_confidence)
    if kind == "abc":
        text = str(source)
        melody = abc.abc_to_melody(text)
        tempo = _abc_tempo(text)
        return Primer(melody, tempo, "abc")
    if kind == "audio":
        clip = audio.load_audio(Path(source), max_audio_seconds, sample_rate=audio.PITCH_RATE)
        reading = audio.hear_melody(clip, meter)
        return Primer(reading.melody, reading.tempo, "audio", reading.key, reading.meter_confidence)
    raise InputError(f"A melody to continue comes from {', '.join(PRIMER_KINDS)}, not '{kind}'.")


def _abc_tempo(text: str) -> float | None:
    import re

    match = re.search(r"^Q:\s*(?:1/4\s*=\s*)?(\d+)\s*$", text, re.M)
    return float(match.group(1)) if match else None


def _writers(result: MelodyResult, tempo: float, timbre: str):
    """(MIDI writer, {suffix: writer} for the WAV, piano roll and ABC, the ABC text) of one melody."""
    melody = result.melody
    abc_text = abc.melody_to_abc(melody, title=title_of(result), tempo=tempo)
    roll = piano_roll(result, tempo)
    siblings: dict[str, Callable[[Path], None]] = {
        ".wav": lambda path: synth.write_wav(synth.render(melody, tempo, timbre), path),
        ".png": lambda path: roll.save(path, format="PNG"),
        ".abc": lambda path: path.write_text(abc_text, encoding="utf-8"),
    }
    return (lambda path: midi.write_midi(melody, path, tempo, timbre)), siblings, abc_text


def _files(midi_path: Path, abc_text: str) -> MelodyFiles:
    return MelodyFiles(midi_path, midi_path.with_suffix(".wav"), midi_path.with_suffix(".png"),
                       midi_path.with_suffix(".abc"), abc_text)


def write_melody_files(result: MelodyResult, midi_path: Path, tempo: float, timbre: str) -> MelodyFiles:
    """The melody as MIDI, WAV (the studio's synthesiser), piano-roll PNG and ABC, side by side."""
    write_midi, siblings, abc_text = _writers(result, tempo, timbre)
    for suffix, write in siblings.items():
        write(midi_path.with_suffix(suffix))
    write_midi(midi_path)
    return _files(midi_path, abc_text)


def title_of(result: MelodyResult) -> str:
    m = result.melody
    kind = "Continuation" if result.primer_bars else "Melody"
    return f"{kind} in {key_name(m.tonic, m.mode)}, {m.meter}, seed {result.params.get('seed', 0)}"


def piano_roll(result: MelodyResult, tempo: float) -> Image.Image:
    m = result.melody
    heading = f"{title_of(result)} · {len(m.bars)} bars · {tempo:.0f} bpm"
    return plots.piano_roll(m, title=heading, primer_ticks=result.primer_ticks)


def keep_melody(gallery: Gallery, result: MelodyResult, owner: str | None = None) -> MelodyOutcome:
    """List a melody in the gallery: the .mid is the item, its .wav, .png and .abc lie beside it."""
    params = dict(result.params)
    params["seconds"] = round(result.seconds, 3)
    tempo, timbre = float(params["tempo"]), str(params["timbre"])
    write_midi, siblings, abc_text = _writers(result, tempo, timbre)
    item = gallery.add_file(
        write_midi,
        suffix=".mid",
        siblings=siblings,
        task="melody",
        model=params["model"],
        params=params,
        preview=piano_roll(result, tempo),
        seed=int(params["seed"]),
        owner=owner,
    )
    return MelodyOutcome(result, _files(item.file, abc_text), item)


def melody_request_from(params: dict[str, Any]) -> tuple[MelodyRequest, Melody | None]:
    request = MelodyRequest(**known_fields(MelodyRequest, params))
    primer = Melody.from_json(params["primer"]) if params.get("primer") else None
    return request, primer


def read_audio(path: str | Path, max_audio_seconds: float) -> audio.AudioClip:
    """A recording to follow, at its own sample rate (the model's processor takes it from there)."""
    return audio.load_audio(Path(path), max_audio_seconds, sample_rate=None)


def keep_music(
    gallery: Gallery, result: MusicResult, owner: str | None = None, melody_path: str | Path | None = None
) -> MusicOutcome:
    params = dict(result.params)
    params["seconds_taken"] = round(result.seconds, 3)
    if melody_path:
        params["melody_input"] = gallery.keep_input_file(Path(melody_path))
    picture = plots.mel_spectrogram_image(result.audio, result.sample_rate)
    item = gallery.add_file(
        lambda tmp: synth.write_wav(result.audio, tmp, result.sample_rate),
        suffix=".wav",
        task="music",
        model=params["model"],
        params=params,
        preview=picture,
        seed=int(params["seed"]),
        owner=owner,
    )
    return MusicOutcome(result, item.file, item.preview, item)


def music_request_from(params: dict[str, Any]) -> MusicRequest:
    # Records from before the speed choice were made at full precision: re-running one stays exact.
    return MusicRequest(**{"speed": "exact", **known_fields(MusicRequest, params)})


def analyse_file(path: Path, max_audio_seconds: float) -> AnalysisOutcome:
    """Tempo, key and a mel spectrogram of audio, or of a MIDI file rendered by the synthesiser."""
    path = Path(path)
    with open(path, "rb") as handle:
        is_midi = handle.read(4) == b"MThd"
    if is_midi or path.suffix.lower() in MIDI_SUFFIXES:
        import librosa

        melody, tempo = midi.read_midi(path)
        seconds = melody.total_ticks * plots.seconds_per_tick(tempo)
        if seconds > max_audio_seconds:
            raise InputError(f"That MIDI file plays for {seconds / 60:.0f} minutes; the studio analyses up to "
                             f"{max_audio_seconds / 60:.0f} minutes.")
        samples = librosa.resample(synth.render(melody, tempo), orig_sr=synth.SAMPLE_RATE,
                                   target_sr=audio.ANALYSIS_RATE)
        clip = audio.AudioClip(samples, audio.ANALYSIS_RATE, seconds)
    else:
        clip = audio.load_audio(path, max_audio_seconds)
    result = audio.analyse(clip)
    return AnalysisOutcome(result, plots.mel_spectrogram_image(clip.samples, clip.sample_rate))


def describe_melody(outcome: MelodyOutcome) -> str:
    r = outcome.result
    m = r.melody
    notes = len(m.notes())
    added = f"{len(m.bars) - r.primer_bars} new bars after {r.primer_bars} of yours" if r.primer_bars else \
        f"{len(m.bars)} bars"
    return (f"{key_name(m.tonic, m.mode)} · {m.meter} · {r.params['tempo']:.0f} bpm · {added} · {notes} notes · "
            f"seed {r.params['seed']} · {r.seconds:.2f} s · gallery #{outcome.item.id}")


# -- melody walks ---------------------------------------------------------------------------------


@dataclass
class WalkFiles:
    midi: Path
    wav: Path
    png: Path


@dataclass
class WalkOutcome:
    result: MelodyWalkResult
    files: WalkFiles
    item: GalleryItem


def step_label(index: int, count: int) -> str:
    return "A" if index == 0 else "B" if index == count - 1 else str(index + 1)


def walk_piano_roll(result: MelodyWalkResult) -> Image.Image:
    """Every step of the walk side by side: each in its own key's shading, a heavy line between steps."""
    steps = result.steps
    sections = []
    for i, (start, m) in enumerate(zip(result.step_starts(), steps, strict=True)):
        label = step_label(i, len(steps))
        if i == 0 or (m.tonic, m.mode) != (steps[i - 1].tonic, steps[i - 1].mode):
            label += f" · {key_name(m.tonic, m.mode)}"  # where the key is set or changes
        sections.append(plots.Section(start, label, m.tonic, m.mode))
    p = result.params
    heading = (f"Melody walk · {p['key_a']} to {p['key_b']} · {len(steps)} steps of {result.bars_per_step} bars "
               f"· {result.melody.meter} · {p['tempo']:.0f} bpm")
    bars = len(result.melody.bars)
    width = min(4800, max(1200, plots.LEFT + 64 * bars))
    return plots.piano_roll(result.melody, title=heading, sections=sections, width=width)


def keep_melody_walk(gallery: Gallery, result: MelodyWalkResult, owner: str | None = None) -> WalkOutcome:
    """List a walk in the gallery: the .mid (every step in turn) is the item, its .wav and piano roll beside it."""
    params = dict(result.params)
    params["seconds"] = round(result.seconds, 3)
    tempo, timbre = float(params["tempo"]), str(params["timbre"])
    melody = result.melody
    roll = walk_piano_roll(result)
    item = gallery.add_file(
        lambda path: midi.write_midi(melody, path, tempo, timbre),
        suffix=".mid",
        siblings={
            ".wav": lambda path: synth.write_wav(synth.render(melody, tempo, timbre), path),
            ".png": lambda path: roll.save(path, format="PNG"),
        },
        task="melody-walk",
        model=params["model"],
        params=params,
        preview=roll,
        owner=owner,
    )
    return WalkOutcome(result, WalkFiles(item.file, item.file.with_suffix(".wav"), item.file.with_suffix(".png")), item)


def walk_request_from(params: dict[str, Any]) -> tuple[MelodyWalkRequest, Melody, Melody]:
    request = MelodyWalkRequest(**known_fields(MelodyWalkRequest, params))
    return request, Melody.from_json(params["melody_a"]), Melody.from_json(params["melody_b"])


def describe_walk(outcome: WalkOutcome) -> str:
    r = outcome.result
    p = r.params
    keys = p["key_a"] if p["key_a"] == p["key_b"] else f"{p['key_a']} to {p['key_b']} (the key changes halfway)"
    seconds = synth_seconds(r.melody, float(p["tempo"]))
    return (f"{len(r.steps)} steps of {r.bars_per_step} bars · {keys} · {r.melody.meter} · {p['tempo']:.0f} bpm · "
            f"{seconds:.0f} s of music · {p['interpolation']} · {r.seconds:.2f} s · gallery #{outcome.item.id}")


def synth_seconds(melody: Melody, tempo: float) -> float:
    return melody.total_ticks * plots.seconds_per_tick(tempo)


class MusicService:
    """The Music tab's and melody walks' tasks on their three backends."""

    def __init__(
        self,
        settings: Settings,
        gallery: Gallery,
        melody: MelodyBackend,
        melody_walks: MelodyWalkBackend,
        music: MusicBackend,
    ):
        self.settings = settings
        self.gallery = gallery
        self.melody = melody
        self.melody_walks = melody_walks
        self.music = music

    def read_primer(self, kind: str, source: str | os.PathLike, meter: str | None = "4/4") -> Primer:
        return read_primer(kind, source, meter=meter, max_audio_seconds=self.settings.max_audio_seconds)

    def compose(
        self,
        request: MelodyRequest,
        primer: Melody | None = None,
        *,
        owner: str | None = None,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> MelodyOutcome:
        """A melody (or a continuation of `primer`), kept in the gallery as .mid + .wav + .png + .abc."""
        result = self.melody.generate(request, primer, progress=progress, cancel=cancel)
        return keep_melody(self.gallery, result, owner)

    def melody_walk(
        self,
        a: Melody,
        b: Melody,
        request: MelodyWalkRequest,
        *,
        owner: str | None = None,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> WalkOutcome:
        """A walk from melody A to melody B through the melody VAE, kept as .mid + .wav + piano roll."""
        result = self.melody_walks.walk(a, b, request, max_seconds=self.settings.max_audio_seconds,
                                        progress=progress, cancel=cancel)
        return keep_melody_walk(self.gallery, result, owner)

    def make_music(
        self,
        request: MusicRequest,
        melody_path: str | os.PathLike | None = None,
        *,
        owner: str | None = None,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> MusicOutcome:
        """Text to music (following a recorded melody where the model can), kept in the gallery."""
        limits.check_music(request, self.settings)
        melody = read_audio(melody_path, self.settings.max_audio_seconds) if melody_path else None
        result = self.music.generate(request, melody, progress=progress, cancel=cancel)
        return keep_music(self.gallery, result, owner, melody_path)

    def analyse_audio(self, path: str | os.PathLike) -> AnalysisOutcome:
        return analyse_file(Path(path), self.settings.max_audio_seconds)
