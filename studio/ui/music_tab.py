"""The Music tab: compose or continue melodies with the built-in model, text to music with MusicGen,
and analyse any audio or MIDI."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import gradio as gr

from studio.backends.melody import MAX_BARS, MelodyRequest
from studio.backends.musicgen import DEFAULT_MODEL, DEFAULT_SPEED, MAX_SECONDS, SPEEDS, MusicRequest
from studio.media.melody_tokens import METERS, MODES, PITCH_NAMES
from studio.media.synth import TIMBRES
from studio.services import Studio
from studio.services.music import describe_melody, new_seed
from studio.ui.common import StopButtons, api_doc, progress_reporter, servable, user_errors
from studio.ui.melody_primer import (
    FROM_ABC,
    FROM_AUDIO,
    FROM_MIDI,
    NEW_TUNE,
    PRIMER_KIND,
    START_CHOICES,
    key_controls_for,
    primer_source,
)

EXAMPLE_ABC = "X:1\nT:A start\nM:6/8\nL:1/8\nK:Ddor\nA,DD FED | CEE GFE | DFA dAF | GEC D3 |\n"
TIMBRE_CHOICES = [(t.label, name) for name, t in TIMBRES.items()]


@dataclass
class MusicTab:
    sections: gr.Tabs  # Melody, Text to music, Analyse
    prompt: gr.Textbox  # MusicGen's prompt: where 'Send to Music tab' puts a text
    melody_audio: gr.Audio
    music_audio: gr.Audio


def _music_models(studio: Studio) -> list[tuple[str, str]]:
    choices = []
    for entry in studio.catalog.for_task("music"):
        where = "downloads on first use" if entry.source == "download" else entry.source
        flag = ", non-commercial" if not entry.commercial_use else ""
        choices.append((f"{entry.name} ({entry.size_text()}, {where}{flag})", entry.id))
    return choices


def build(studio: Studio, stops: StopButtons) -> MusicTab:
    with gr.Tabs() as sections:
        with gr.Tab("Melody", id="melody"):
            melody_audio, analyse_melody = _melody_section(studio, stops)
        with gr.Tab("Text to music (MusicGen)", id="musicgen"):
            prompt, music_audio, analyse_music = _musicgen_section(studio, stops)
        with gr.Tab("Analyse", id="analyse"):
            upload, analyse_event = _analysis_section(studio)
    # "Analyse this": hand an output to the Analyse section and run it there.
    for button, player in ((analyse_melody, melody_audio), (analyse_music, music_audio)):
        button.click(
            lambda path: (path, gr.Tabs(selected="analyse")), player, [upload, sections], api_visibility="private"
        ).then(**analyse_event)
    return MusicTab(sections=sections, prompt=prompt, melody_audio=melody_audio, music_audio=music_audio)


def _melody_section(studio: Studio, stops: StopButtons) -> tuple[gr.Audio, gr.Button]:
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            start_from = gr.Radio(START_CHOICES, value=NEW_TUNE, label="Start from", elem_id="melody-start")
            midi_file = gr.File(label="MIDI file to continue", file_types=[".mid", ".midi"], visible=False,
                                elem_id="melody-midi")
            abc_text = gr.Textbox(label="ABC notation to continue", lines=6, value=EXAMPLE_ABC, visible=False,
                                  elem_id="melody-abc")
            hum = gr.Audio(label="Hum or sing a few bars (or upload a recording)", type="filepath",
                           sources=["microphone", "upload"], visible=False, elem_id="melody-hum")
            follow = gr.Checkbox(value=True, visible=False, label="Keep the key, metre and tempo of what I give",
                                 info="Off: use the settings below for the continuation.", elem_id="melody-follow")
            detected = gr.Markdown(visible=False, elem_id="melody-detected")
            with gr.Row():
                tonic = gr.Dropdown(list(PITCH_NAMES), value="D", label="Key", elem_id="melody-key")
                mode = gr.Dropdown(list(MODES), value="dorian", label="Mode", elem_id="melody-mode")
                meter = gr.Radio(list(METERS[:4]), value="6/8", label="Metre", elem_id="melody-meter")
            with gr.Row():
                tempo = gr.Slider(40, 240, value=110, step=1, label="Tempo (bpm)", elem_id="melody-tempo")
                bars = gr.Slider(1, MAX_BARS, value=16, step=1, label="Bars", info="new bars when continuing")
            timbre = gr.Dropdown(TIMBRE_CHOICES, value="piano", label="Sound")
            with gr.Accordion("Sampling", open=False):
                temperature = gr.Slider(0, 2, value=0.9, step=0.05, label="Temperature",
                                        info="0: the model's likeliest tune; higher: more surprising")
                top_p = gr.Slider(0.05, 1, value=0.95, step=0.05, label="Top-p")
                key_strength = gr.Slider(0, 8, value=2, step=0.5, label="Stay in key",
                                         info="0: the model's own chromatic notes; higher: fewer notes outside the key")
            with gr.Row():
                random_seed = gr.Checkbox(value=True, label="Random seed", scale=1, elem_id="melody-random-seed")
                seed = gr.Number(value=0, precision=0, label="Seed", minimum=0, scale=2, elem_id="melody-seed")
                reuse = gr.Button("Reuse last seed", scale=1, size="sm", elem_id="melody-reuse-seed")
            with gr.Row():
                run = gr.Button("Compose", variant="primary", elem_id="melody-run")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=1):
            roll = gr.Image(label="Piano roll", type="filepath", interactive=False, elem_id="melody-roll")
            player = gr.Audio(label="Listen", type="filepath", interactive=False, elem_id="melody-audio")
            info = gr.Markdown(elem_id="melody-info")
            last_seed = gr.Number(value=None, precision=0, visible=False, label="last_seed")
            analyse_this = gr.Button("Analyse this", size="sm")
            files = gr.File(label="Take it away: MIDI, WAV, piano roll, ABC", file_count="multiple",
                            interactive=False, elem_id="melody-files")
            abc_out = gr.Textbox(label="ABC notation", lines=6, interactive=False, buttons=["copy"],
                                 elem_id="melody-abc-out")

    def show_source(choice):
        return (gr.File(visible=choice == FROM_MIDI), gr.Textbox(visible=choice == FROM_ABC),
                gr.Audio(visible=choice == FROM_AUDIO), gr.Checkbox(visible=choice != NEW_TUNE))

    start_from.change(show_source, start_from, [midi_file, abc_text, hum, follow], api_visibility="private")
    key_controls = [tonic, mode, meter, tempo, detected]
    sources = [start_from, midi_file, abc_text, hum, follow]
    for trigger in (start_from.change, midi_file.change, hum.change, follow.change):
        trigger(partial(key_controls_for, studio), sources, key_controls, api_visibility="private",
                show_progress="hidden")
    abc_text.change(partial(key_controls_for, studio), sources, key_controls, api_visibility="private",
                    show_progress="hidden", trigger_mode="always_last")
    reuse.click(lambda s: (s, False) if s is not None else (gr.skip(), gr.skip()), last_seed, [seed, random_seed],
                api_visibility="private")

    @user_errors
    @api_doc(
        "Compose a melody with the built-in melody model, or continue one; kept in the gallery.",
        start_from=f"what to start from: {', '.join(repr(c) for c in START_CHOICES)}",
        midi_file=f"with start_from '{FROM_MIDI}': the MIDI file to continue",
        abc=f"with start_from '{FROM_ABC}': the tune to continue, in ABC notation",
        recording=f"with start_from '{FROM_AUDIO}': a recording of humming or singing to continue (a file)",
        follow_primer="true: keep the key, metre and tempo of the melody given; false: use the settings below",
        key=f"tonic, one of {', '.join(PITCH_NAMES)}",
        mode=f"one of {', '.join(MODES)}",
        meter=f"one of {', '.join(METERS[:4])}",
        tempo="quarter notes per minute, 40-240",
        bars=f"new bars, 1-{MAX_BARS}",
        temperature="0-2: 0 gives the model's likeliest tune, higher more surprising ones",
        top_p="0.05-1: sample only from the likeliest notes that together reach this share",
        key_strength="0-8: 0 lets the model's own chromatic notes through; higher keeps to the key",
        random_seed="true: draw a new seed (the one used comes back); false: use seed",
        seed="the seed when random_seed is false: the same seed and settings give the same tune",
        timbre=f"the sound of the WAV: one of {', '.join(TIMBRES)}",
        returns="the piano roll, the WAV, the files (MIDI, WAV, piano roll, ABC), the ABC text, a summary, "
                "the seed used",
    )
    def melody(start_from: str, midi_file: str | None, abc: str | None, recording: str | None,
                follow_primer: bool, key: str, mode: str, meter: str, tempo: float, bars: float, temperature: float,
                top_p: float, key_strength: float, random_seed: bool, seed: float | None, timbre: str,
                request: gr.Request, progress=gr.Progress()):
        if not random_seed and seed is None:
            raise gr.Error("Enter a seed, or tick 'Random seed'.")
        primer = None
        bpm = float(tempo)
        if start_from in PRIMER_KIND:
            kind = PRIMER_KIND[start_from]
            source = primer_source(kind, midi_file, abc, recording)
            if not source or (kind == "abc" and not str(source).strip()):
                raise gr.Error({"midi": "Upload a MIDI file to continue.", "abc": "Type some ABC notation first.",
                                "audio": "Record or upload your humming first."}[kind])
            progress(0, desc="Reading your melody")
            # Following the melody given, a recording's metre is heard, not taken from the (disabled) control.
            read = studio.read_primer(kind, source, None if follow_primer else meter)
            primer = read.melody
            if follow_primer:
                key, mode, meter = PITCH_NAMES[primer.tonic], primer.mode, primer.meter
                bpm = float(min(max(round(read.tempo), 40), 240)) if read.tempo else bpm  # the slider's range
        melody_request = MelodyRequest(
            tonic=key, mode=mode, meter=meter, tempo=bpm, bars=int(bars), temperature=float(temperature),
            top_p=float(top_p), key_strength=float(key_strength), seed=new_seed() if random_seed else int(seed),
            timbre=timbre,
        )
        token = stops.start(request)
        outcome = studio.compose(melody_request, primer, progress=progress_reporter(progress, "Composing bars"),
                                 cancel=token)
        f = outcome.files
        return (servable(f.png), servable(f.wav), [servable(p) for p in (f.midi, f.wav, f.png, f.abc)],
                f.abc_text, describe_melody(outcome), outcome.result.params["seed"])

    event = run.click(
        melody,
        [start_from, midi_file, abc_text, hum, follow, tonic, mode, meter, tempo, bars, temperature, top_p,
         key_strength, random_seed, seed, timbre],
        [roll, player, files, abc_out, info, last_seed],
        api_name="melody",
        concurrency_id="heavy",
    )

    def stop_run(request: gr.Request) -> None:
        stops.stop(request)

    stop.click(stop_run, None, None, cancels=[event], api_visibility="private")
    return player, analyse_this


def _musicgen_section(studio: Studio, stops: StopButtons) -> tuple[gr.Textbox, gr.Audio, gr.Button]:
    models = _music_models(studio)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            prompt = gr.Textbox(label="Describe the music", lines=3, elem_id="music-prompt",
                                placeholder="warm lo-fi piano with soft vinyl crackle, 80 bpm")
            model = gr.Dropdown(models, value=DEFAULT_MODEL if any(m[1] == DEFAULT_MODEL for m in models) else None,
                                label="Model", elem_id="music-model",
                                info="MusicGen weights are CC-BY-NC-4.0: not for commercial use.")
            seconds = gr.Slider(1, min(MAX_SECONDS, studio.settings.max_music_seconds), value=8, step=0.5,
                                label="Length (seconds)")
            guidance = gr.Slider(1, 10, value=3, step=0.5, label="Guidance", info="how closely to follow the text")
            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
            speed = gr.Radio(list(SPEEDS), value=DEFAULT_SPEED, label="Speed", elem_id="music-speed",
                             info="exact: the model's own float32 result; fastest: an int8 decoder on a CPU "
                                  "(a quarter of the bytes per step; very close, not identical)")
            melody = gr.Audio(label="Melody to follow (optional; MusicGen melody models only)", type="filepath",
                              sources=["upload", "microphone"], elem_id="music-melody")
            with gr.Row():
                run = gr.Button("Generate", variant="primary", elem_id="music-run")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=1):
            player = gr.Audio(label="Result", type="filepath", interactive=False, elem_id="music-audio")
            picture = gr.Image(label="Mel spectrogram", type="filepath", interactive=False)
            info = gr.Markdown(elem_id="music-info")
            analyse_this = gr.Button("Analyse this", size="sm")

    @user_errors
    @api_doc(
        "Make music audio from a description with MusicGen (downloads on first use); kept in the gallery.",
        prompt="what the music should be, e.g. 'lo-fi piano with soft drums'",
        model=f"catalogue id of a MusicGen model, e.g. {DEFAULT_MODEL} (weights CC-BY-NC-4.0: not for commercial use)",
        seconds=f"length, 1-{MAX_SECONDS:g} s",
        guidance="1-10: how closely to follow the description",
        seed="the same seed and settings give the same audio",
        melody="optional recording whose tune to follow (MusicGen melody models only; a file)",
        speed="'exact' (float32, the model's own result) or 'fastest' (int8 decoder on a CPU: quicker, not "
              "identical)",
        returns="the WAV, its mel spectrogram, a summary",
    )
    def music(prompt: str | None, model: str | None, seconds: float, guidance: float, seed: float | None,
              melody: str | None, speed: str | None, request: gr.Request, progress=gr.Progress()):
        music_request = MusicRequest(prompt=str(prompt or ""), seconds=float(seconds), guidance=float(guidance),
                                     seed=int(seed or 0), model=model or DEFAULT_MODEL,
                                     speed=speed or DEFAULT_SPEED)
        music_request.validate()
        if music_request.model not in studio.catalog:
            raise gr.Error(f"'{music_request.model}' is not in the model catalogue.")
        token = stops.start(request)
        progress(0, desc="Loading the model (the first time downloads it)")
        outcome = studio.make_music(music_request, melody or None,
                                    progress=progress_reporter(progress, "Generating audio frames"), cancel=token)
        r = outcome.result
        text_info = (f"{len(r.audio) / r.sample_rate:.1f} s of audio in {r.seconds:.1f} s · seed {r.params['seed']} "
                     f"· {r.params['model']} ({r.params['speed']}: {r.params['path']}) · licence {r.params['licence']} "
                     f"· gallery #{outcome.item.id}")
        return servable(outcome.file), servable(outcome.spectrogram), text_info

    event = run.click(music, [prompt, model, seconds, guidance, seed, melody, speed], [player, picture, info],
                      api_name="music", concurrency_id="heavy")

    def stop_run(request: gr.Request) -> None:
        stops.stop(request)

    stop.click(stop_run, None, None, cancels=[event], api_visibility="private")
    return prompt, player, analyse_this


def _analysis_section(studio: Studio) -> tuple[gr.File, dict]:
    """The Analyse section; returns its upload and the arguments of its analysis event, for reuse."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            upload = gr.File(label="Audio (WAV, FLAC, OGG, MP3) or MIDI", elem_id="analyse-file")
            run = gr.Button("Analyse", variant="primary", elem_id="analyse-run")
        with gr.Column(scale=2):
            summary = gr.Markdown(elem_id="analyse-summary")
            picture = gr.Image(label="Mel spectrogram", type="pil", interactive=False)

    @user_errors
    @api_doc(
        "Estimate the tempo and key of any audio or MIDI file and draw its mel spectrogram.",
        file="a WAV, FLAC, OGG, MP3 or MIDI file (any output of the studio works too)",
        returns="a summary (tempo, key, length), the mel spectrogram",
    )
    def analyse(file: str | None):
        if not file:
            raise gr.Error("Upload an audio or MIDI file first (any output of the studio works too).")
        outcome = studio.analyse_audio(file)
        return outcome.describe(), outcome.spectrogram

    run.click(analyse, upload, [summary, picture], api_name="analyse", concurrency_id="heavy")
    return upload, {"fn": analyse, "inputs": upload, "outputs": [summary, picture], "api_visibility": "private"}
