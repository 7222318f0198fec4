"""The Interpolate tab's "Melody walk" section: two melodies, and the melody VAE's walk from one to the other."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio.backends.melody import MelodyRequest
from studio.backends.melody_walk import MAX_STEPS, MIN_STEPS, MelodyWalkRequest
from studio.media.melody_tokens import METERS, MODES, PITCH_NAMES, Melody
from studio.media.synth import TIMBRES
from studio.services import Studio
from studio.services.music import describe_walk, new_seed
from studio.ui.common import StopButtons, api_doc, progress_reporter, servable, user_errors

GENERATE, FROM_MIDI, FROM_ABC = "Generate", "MIDI file", "ABC notation"
SOURCES = [GENERATE, FROM_MIDI, FROM_ABC]
MAX_GENERATED_BARS = 16
TIMBRE_CHOICES = [(t.label, name) for name, t in TIMBRES.items()]
EXAMPLE_ABC = {
    "A": "X:1\nT:Walk start\nM:6/8\nL:1/8\nK:Ddor\nA,DD FED | CEE GFE | DFA dAF | GEC D3 |\n",
    "B": "X:1\nT:Walk end\nM:6/8\nL:1/8\nK:D\nFAA dAF | GBB AFD | EFG ABc | d3 d3 |\n",
}


@dataclass
class _Side:
    """The inputs that say where one melody comes from."""

    source: gr.Radio
    midi: gr.File
    abc: gr.Textbox
    tonic: gr.Dropdown
    mode: gr.Dropdown
    meter: gr.Radio
    seed: gr.Number

    def inputs(self) -> list[gr.components.Component]:
        return [self.source, self.midi, self.abc, self.tonic, self.mode, self.meter, self.seed]


def _side(name: str, tonic: str, mode: str, seed: int) -> _Side:
    slug = name.lower()
    with gr.Column(variant="panel"):
        source = gr.Radio(SOURCES, value=GENERATE, label=f"Melody {name}", elem_id=f"mwalk-{slug}-source")
        with gr.Row():
            key = gr.Dropdown(list(PITCH_NAMES), value=tonic, label="Key", min_width=80)
            md = gr.Dropdown(list(MODES), value=mode, label="Mode", min_width=110)
        meter = gr.Radio(list(METERS[:4]), value="6/8", label="Metre")
        seed = gr.Number(value=seed, precision=0, minimum=0, label="Seed", elem_id=f"mwalk-{slug}-seed",
                         info="with 'Random seeds' off")
        midi = gr.File(label=f"MIDI file for {name}", file_types=[".mid", ".midi"], visible=False,
                       elem_id=f"mwalk-{slug}-midi")
        abc = gr.Textbox(label=f"ABC notation for {name}", lines=5, value=EXAMPLE_ABC[name], visible=False,
                         elem_id=f"mwalk-{slug}-abc")

    def show(choice):
        generating = choice == GENERATE
        return (gr.Dropdown(visible=generating), gr.Dropdown(visible=generating), gr.Radio(visible=generating),
                gr.Number(visible=generating), gr.File(visible=choice == FROM_MIDI),
                gr.Textbox(visible=choice == FROM_ABC))

    source.change(show, source, [key, md, meter, seed, midi, abc], api_visibility="private")
    return _Side(source, midi, abc, key, md, meter, seed)


def build(studio: Studio, stops: StopButtons) -> None:
    gr.Markdown("Two melodies, each composed by the built-in melody model, uploaded as MIDI or typed as ABC. "
                "The melody VAE morphs the first into the second in steps, played one after another: the first "
                "step is A and the last B, as the VAE hears them. Both need the same metre; the key changes "
                "halfway when theirs differ.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            with gr.Row(equal_height=False):
                side_a = _side("A", "D", "dorian", 3)
                side_b = _side("B", "D", "major", 8)
            with gr.Row():
                random_seeds = gr.Checkbox(value=True, label="Random seeds", info="a new tune for each composed side",
                                           elem_id="mwalk-random-seeds")
                reuse = gr.Button("Reuse last seeds", size="sm", elem_id="mwalk-reuse-seeds")
            bars = gr.Slider(1, MAX_GENERATED_BARS, value=4, step=1, label="Bars of each composed melody",
                             info="uploaded and typed melodies keep their own length")
            steps = gr.Slider(MIN_STEPS, MAX_STEPS, value=6, step=1, label="Steps (A and B included)",
                              elem_id="mwalk-steps")
            with gr.Row():
                tempo = gr.Slider(40, 240, value=110, step=1, label="Tempo (bpm)")
                timbre = gr.Dropdown(TIMBRE_CHOICES, value="piano", label="Sound")
            with gr.Row():
                run = gr.Button("Walk", variant="primary", elem_id="mwalk-run")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=1):
            player = gr.Audio(label="Listen", type="filepath", interactive=False, elem_id="mwalk-audio")
            info = gr.Markdown(elem_id="mwalk-info")
            last_a = gr.Number(value=None, precision=0, visible=False, label="last_a_seed")
            last_b = gr.Number(value=None, precision=0, visible=False, label="last_b_seed")
            files = gr.File(label="Take it away: MIDI, WAV, piano roll", file_count="multiple", interactive=False,
                            elem_id="mwalk-files")
    # Full width: a walk's piano roll is long and narrow. It carries its own title, which a label would cover.
    roll = gr.Image(label="Piano roll: every step in turn", show_label=False, type="filepath", interactive=False,
                    elem_id="mwalk-roll")

    def read_side(name, source, midi_path, abc_text, tonic, mode, meter, seed, bar_count, token,
                  progress) -> tuple[Melody, int | None]:
        """Melody `name` and the seed it was composed with (None: uploaded or typed)."""
        if source == GENERATE:
            if seed is None:
                raise gr.Error(f"Enter a seed for melody {name}, or tick 'Random seeds'.")
            progress(0, desc=f"Composing melody {name}")
            request = MelodyRequest(tonic=tonic, mode=mode, meter=meter, bars=int(bar_count), seed=int(seed))
            return studio.melody.generate(request, cancel=token).melody, int(seed)
        if source == FROM_MIDI:
            if not midi_path:
                raise gr.Error(f"Upload a MIDI file for melody {name}.")
            return studio.read_primer("midi", midi_path, meter).melody, None
        if source == FROM_ABC:
            if not str(abc_text or "").strip():
                raise gr.Error(f"Type some ABC notation for melody {name} first.")
            return studio.read_primer("abc", abc_text, meter).melody, None
        raise gr.Error(f"Melody {name} comes from one of {', '.join(SOURCES)}, not '{source}'.")

    @user_errors
    @api_doc(
        "Morph melody A into melody B through the melody VAE, as one MIDI/WAV with a piano roll of the steps.",
        returns="the piano roll PNG, the WAV, the files [MIDI, WAV, PNG], a summary, the seeds melodies A and B "
                "were composed with (empty for an uploaded or typed one)",
        a_source='where melody A comes from: "Generate", "MIDI file" or "ABC notation".',
        a_midi='melody A as a MIDI file (with "MIDI file").',
        a_abc='melody A as ABC text (with "ABC notation").',
        a_key='tonic of the composed melody A: C, C#, D, ... B (with "Generate").',
        a_mode="mode of the composed melody A: major, minor, dorian or mixolydian.",
        a_meter="metre of the composed melody A: 4/4, 3/4, 6/8 or 2/4.",
        a_seed="seed of the composed melody A (a whole number from 0) when random_seeds is false.",
        b_source="where melody B comes from, as for A.",
        b_midi="melody B as a MIDI file.",
        b_abc="melody B as ABC text.",
        b_key="tonic of the composed melody B.",
        b_mode="mode of the composed melody B.",
        b_meter="metre of the composed melody B (a walk needs A and B in one metre).",
        b_seed="seed of the composed melody B when random_seeds is false.",
        random_seeds="true: compose A and B from new seeds (the ones used come back); false: use a_seed and b_seed.",
        bar_count="bars of each composed melody, 1-16 (uploaded and typed melodies keep their length).",
        step_count="melodies in the walk, A and B included, 2-16.",
        tempo_bpm="quarter notes per minute of the result, 40-240.",
        timbre_name="the synthesiser's sound: piano, flute, organ, pluck or chiptune.",
    )
    def melody_walk(a_source, a_midi, a_abc, a_key, a_mode, a_meter, a_seed,
                    b_source, b_midi, b_abc, b_key, b_mode, b_meter, b_seed, random_seeds,
                    bar_count, step_count, tempo_bpm, timbre_name, request: gr.Request, progress=gr.Progress()):
        if random_seeds:
            a_seed, b_seed = new_seed(), new_seed()
        token = stops.start(request)
        a, a_used = read_side("A", a_source, a_midi, a_abc, a_key, a_mode, a_meter, a_seed, bar_count, token,
                              progress)
        b, b_used = read_side("B", b_source, b_midi, b_abc, b_key, b_mode, b_meter, b_seed, bar_count, token,
                              progress)
        walk = MelodyWalkRequest(steps=int(step_count), tempo=float(tempo_bpm), timbre=timbre_name)
        outcome = studio.melody_walk(a, b, walk, progress=progress_reporter(progress, "Walking"), cancel=token)
        for note in outcome.result.notes:
            gr.Info(note)
        f = outcome.files
        seeds = [f"melody {n} seed {used}" for n, used in (("A", a_used), ("B", b_used)) if used is not None]
        summary = " · ".join([describe_walk(outcome), *seeds])
        return (servable(f.png), servable(f.wav), [servable(p) for p in (f.midi, f.wav, f.png)], summary,
                a_used, b_used)

    run.click(
        melody_walk,
        [*side_a.inputs(), *side_b.inputs(), random_seeds, bars, steps, tempo, timbre],
        [roll, player, files, info, last_a, last_b],
        api_name="melody_walk",
        concurrency_id="heavy",
    )
    stops.connect(stop)

    def reuse_seeds(a_seed, b_seed):
        if a_seed is None and b_seed is None:
            return gr.skip(), gr.skip(), gr.skip()
        return (gr.skip() if a_seed is None else a_seed), (gr.skip() if b_seed is None else b_seed), False

    reuse.click(reuse_seeds, [last_a, last_b], [side_a.seed, side_b.seed, random_seeds], api_visibility="private")
