"""The melody a Music-tab tune starts from, and the key controls that follow it.

With "Keep the key, metre and tempo of what I give" on, the key, mode, metre and tempo controls are
not used: they are disabled and show what was read from the MIDI file, the ABC text or the recording,
with how sure the reading is, so nobody sets a key that is then ignored.
"""

from __future__ import annotations

import logging

import gradio as gr

from studio.errors import StudioError
from studio.media.melody_tokens import METERS, PITCH_NAMES
from studio.services import Studio

log = logging.getLogger(__name__)

NEW_TUNE = "Nothing: a new tune"
FROM_MIDI = "A MIDI file"
FROM_ABC = "ABC notation"
FROM_AUDIO = "Humming or singing"
START_CHOICES = [NEW_TUNE, FROM_MIDI, FROM_ABC, FROM_AUDIO]
PRIMER_KIND = {FROM_MIDI: "midi", FROM_ABC: "abc", FROM_AUDIO: "audio"}
METER_CHOICES = list(METERS[:4])
WAITING = {"midi": "Upload a MIDI file", "abc": "Type some ABC notation", "audio": "Record or upload your humming"}


def primer_source(kind: str, midi_file: str | None, abc: str | None, recording: str | None) -> str | None:
    """The input that holds a primer of `kind`; None when it is empty."""
    source = {"midi": midi_file, "abc": abc, "audio": recording}[kind]
    return source if source and str(source).strip() else None


def _free() -> tuple:
    return (gr.Dropdown(interactive=True), gr.Dropdown(interactive=True),
            gr.Radio(choices=METER_CHOICES, interactive=True), gr.Slider(interactive=True), gr.Markdown(visible=False))


def _held(note: str) -> tuple:
    return (gr.Dropdown(interactive=False), gr.Dropdown(interactive=False), gr.Radio(interactive=False),
            gr.Slider(interactive=False), gr.Markdown(note, visible=True))


def key_controls_for(studio: Studio, start_from: str, midi_file: str | None, abc: str | None,
                     recording: str | None, follow: bool) -> tuple:
    """Updates for (key, mode, metre, tempo, note): free without a primer to follow, else held at what
    the primer says."""
    kind = PRIMER_KIND.get(start_from)
    if kind is None or not follow:
        return _free()
    source = primer_source(kind, midi_file, abc, recording)
    if source is None:
        return _held(f"{WAITING[kind]}: its key, metre and tempo will show here and be kept.")
    try:
        primer = studio.read_primer(kind, source, None)
    except StudioError as exc:
        if kind != "abc":  # a typed tune is often half written: no alert for every keystroke
            gr.Warning(str(exc))
        return _held(f"Not read yet: {exc}")
    except Exception:  # a reader's bug must not leave the controls in a wrong state
        log.exception("reading a primer for the key controls failed")
        return _held("That melody could not be read; Compose says why.")
    m = primer.melody
    meters = METER_CHOICES if m.meter in METER_CHOICES else [*METER_CHOICES, m.meter]
    # The slider shows what will be used: the primer's tempo within the slider's range (the request clamps the same).
    tempo = (gr.Slider(value=min(max(round(primer.tempo), 40), 240), interactive=False) if primer.tempo
             else gr.Slider(interactive=True))
    return (gr.Dropdown(value=PITCH_NAMES[m.tonic], interactive=False), gr.Dropdown(value=m.mode, interactive=False),
            gr.Radio(choices=meters, value=m.meter, interactive=False), tempo,
            gr.Markdown(f"**Kept from your melody:** {primer.describe()}", visible=True))
