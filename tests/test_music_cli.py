"""`python -m studio melody ...` and `python -m studio music ...` as a musician types them."""

from __future__ import annotations

import json
from dataclasses import replace

import pretty_midi
import soundfile
from PIL import Image

from studio.history import Gallery
from studio.media.abc import abc_to_melody
from tests.test_cli import studio_cli


def test_melody_writes_mid_wav_and_png_beside_each_other(tmp_path):
    out = tmp_path / "tune.mid"
    done = studio_cli("melody", "--key", "D", "--mode", "dorian", "--meter", "6/8", "--bars", "16", "--tempo", "110",
                      "--seed", "3", "--out", str(out), "--json", data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert sorted(report["outputs"]) == sorted(str(out.with_suffix(s)) for s in (".mid", ".wav", ".png", ".abc"))
    params = report["parameters"]
    assert (params["tonic"], params["mode"], params["meter"], params["bars"], params["seed"]) == (
        "D", "dorian", "6/8", 16, 3)
    notes = pretty_midi.PrettyMIDI(str(out)).instruments[0].notes
    assert len(notes) >= 16
    audio, rate = soundfile.read(out.with_suffix(".wav"))
    assert abs(len(audio) / rate - 16 * 6 / 2 * 60 / 110) < 0.5  # 16 bars of 6/8 at 110 quarter notes a minute
    assert Image.open(out.with_suffix(".png")).width == 1200
    assert len(abc_to_melody(out.with_suffix(".abc").read_text()).bars) == 16
    assert [i.id for i in Gallery(tmp_path / "data").list()] == [report["gallery_id"]]


def test_melody_without_a_seed_takes_a_new_one_each_time_and_reports_it(tmp_path):
    seeds, notes = [], []
    for run in range(2):
        out = tmp_path / f"tune{run}.mid"
        done = studio_cli("melody", "--bars", "4", "--out", str(out), "--json",
                          data_dir=tmp_path / "data")
        assert done.returncode == 0, done.stderr
        seeds.append(json.loads(done.stdout)["parameters"]["seed"])
        notes.append([(n.pitch, n.start) for n in pretty_midi.PrettyMIDI(str(out)).instruments[0].notes])
    assert seeds[0] != seeds[1] and notes[0] != notes[1]


def test_continue_an_abc_file(tmp_path):
    primer = tmp_path / "start.abc"
    primer.write_text("X:1\nM:2/4\nL:1/8\nK:Gmix\nGA Bc | dB AG | FG AF | G4 |\n")
    out = tmp_path / "more.mid"
    done = studio_cli("melody", "--continue", str(primer), "--bars", "4", "--out", str(out), "--json",
                      data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    melody = abc_to_melody(out.with_suffix(".abc").read_text())
    assert (melody.tonic, melody.mode, melody.meter, len(melody.bars)) == (7, "mixolydian", "2/4", 8)
    # The primer is kept as written; its last note may be tied on into the new bars (the model's choice).
    written = abc_to_melody(primer.read_text()).notes()
    primer_end = written[-1].end
    kept = [replace(note, end=min(note.end, primer_end)) for note in melody.notes() if note.start < primer_end]
    assert kept == written


def test_mistakes_are_one_line_and_exit_code_2(tmp_path):
    data = tmp_path / "data"
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"MThd\x00\x00")
    cases = [
        (("melody", "--bars", "0"), "from 1 to 64"),
        (("melody", "--bars", "10000"), "from 1 to 64"),
        (("melody", "--key", "H"), "not a key name"),
        (("melody", "--out", str(tmp_path / "x.wav")), "--out must end in .mid"),
        (("melody", "--continue", str(broken)), "damaged"),
        (("melody", "--continue", str(tmp_path / "missing.abc")), "does not exist"),
        (("music", "piano", "--offline"), "python -m studio download facebook/musicgen-small"),
        (("music", "piano", "--speed", "turbo"), "invalid choice: 'turbo' (choose from 'exact', 'fastest')"),
    ]
    for args, words in cases:
        if args[-1] == "--offline":
            args = ("--offline", "music", "piano", "--out", str(tmp_path / "m.wav"))
        done = studio_cli(*args, data_dir=data)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in done.stderr, (args, done.stderr)
