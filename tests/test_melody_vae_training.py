"""The melody VAE's training script on a handful of tunes and a tiny model: windows, learning,
safetensors round trip, and the report's figures."""

from __future__ import annotations

import numpy as np
import torch

from studio.backends.melody_vae import MelodyVAE, VAEConfig, load_vae
from studio.backends.melody_walk import decode_latents, encode_segments
from studio.media import melody_grid as grid
from studio.media.abc import abc_to_melody
from studio.media.melody_corpus import CorpusTune
from tests.test_melody_walk import FOLK_TUNES
from training.melody_vae_report import evaluate, markdown_report
from training.train_melody_vae import parser, train, windows

TINY = ["--steps", "40", "--batch", "16", "--latent", "8", "--embed", "8", "--encoder-hidden", "16",
        "--decoder-hidden", "24", "--lr", "1e-2", "--free-bits", "4"]


def tunes() -> list[CorpusTune]:
    out = []
    for name, text in FOLK_TUNES.items():
        melody = abc_to_melody(text)
        for shift in (0, 2):  # the same tune in another key: two tunes per metre
            out.append(CorpusTune("test", f"test/{name}#{shift}", name, melody.transposed(shift)))
    return out


def test_windows_start_at_every_bar_and_know_about_ties():
    data, meters, lengths, sounding = windows(tunes()[:1])  # the jig: 4 bars of 6/8
    assert data.shape == (4, grid.SEGMENT_STEPS) and (lengths == 24).all()
    assert (meters == grid.METER_INDEX["6/8"]).all()
    assert (data[:, 24:] == grid.PAD).all()
    assert (data[3, 12:24] == grid.REST).all()  # the last window runs past the tune: rest
    assert sounding.tolist() == [False, True, True, True]  # each bar before ends on a sounding note


def test_a_few_steps_on_a_few_tunes_learn_and_the_report_reads_the_result(tmp_path):
    torch.manual_seed(0)
    args = parser().parse_args([*TINY, "--out", str(tmp_path)])
    model, run = train(args, windows(tunes()), log=lambda line: None)
    first, last = run["history"][0], run["history"][-1]
    assert last["step"] == 39 and last["nll"] < first["nll"] * 0.7

    report = evaluate(model, tunes(), pairs=6)
    rec, walk = report["reconstruction"], report["interpolation"]
    assert rec["notes"] == sum(len(t.melody.notes()) for t in tunes())
    assert 0.0 <= rec["notes_exact"] <= 1.0 and rec["segments"] == 2 * len(tunes())
    assert walk["pairs"] == 6 and set(walk["slerp"]["in_scale"]) == {"0.25", "0.5", "0.75"}
    report.update(training_tunes=10, held_out_tunes=10, weights_mb=0.1, evaluation_seconds=1.0, latent=8,
                  run={k: v for k, v in run.items() if k != "history"} | {"machine": "test"})
    text = markdown_report(report)
    assert f"{rec['notes_exact']:.1%}" in text and f"{rec['segments_exact']:.1%}" in text
    assert "| slerp |" in text and "| lerp |" in text


def test_weights_go_through_safetensors_and_decode_the_same(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    model = MelodyVAE(VAEConfig(latent=8, embed=8, encoder_hidden=16, decoder_hidden=24)).eval()
    model.config.save(tmp_path / "config.json")
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    loaded = load_vae(tmp_path)
    segments, _ = grid.segments(grid.to_grid(tunes()[0].melody))
    meters = np.full(len(segments), grid.METER_INDEX["6/8"])
    z = encode_segments(model, segments, meters)
    assert np.allclose(encode_segments(loaded, segments, meters), z)
    decoded = decode_latents(loaded, z[None], meters[:1])
    assert (decoded == decode_latents(model, z[None], meters[:1])).all()
    assert ((decoded[0, :, :24] != grid.PAD).all()) and (decoded[0, :, 24:] == grid.PAD).all()
