"""Melody tokens, the bar grammar, the corpus labelling and the n-gram baseline."""

from __future__ import annotations

import numpy as np
import pytest

from studio.media import melody_tokens as mt
from studio.media.melody_corpus import is_held_out, label_key
from studio.media.melody_tokens import BarGrammar, Event, Melody, bars_from_notes, decode, encode
from training.ngram import KneserNey

ODE = [(0, 24, 64), (24, 48, 64), (48, 72, 65), (72, 96, 67), (96, 120, 67), (120, 144, 65), (144, 168, 64),
       (168, 192, 62), (192, 216, 60), (216, 240, 60), (240, 264, 62), (264, 288, 64), (288, 324, 64),
       (324, 336, 62), (336, 384, 62)]


def ode() -> Melody:
    return Melody("4/4", 0, "major", bars_from_notes(ODE, "4/4"))


def test_encode_decode_round_trip_keeps_every_note():
    melody = ode()
    ids = encode(melody)
    assert ids[:5] == mt.header_ids("4/4", 0, "major", 4)
    assert ids[-1] == mt.END_ID
    back = decode(ids)
    assert back == melody
    assert [(n.start, n.end, n.pitch) for n in back.notes()] == ODE


def test_notes_crossing_bar_lines_are_tied_and_odd_lengths_split():
    # A note from beat 4 of bar 1 to beat 2 of bar 2, then a 30-tick note (no token of its own).
    bars = bars_from_notes([(72, 120, 60), (120, 150, 62)], "4/4")
    assert bars[0][-1] == Event(60, 24) and bars[1][0] == Event(60, 24, tied=True)
    assert [e.ticks for e in bars[1][1:3]] == [24, 6] and bars[1][2].tied
    melody = Melody("4/4", 0, "major", bars)
    assert [(n.start, n.end, n.pitch) for n in melody.notes()] == [(72, 120, 60), (120, 150, 62)]
    assert all(sum(e.ticks for e in bar) == 96 for bar in bars)  # the last bar filled with rest


def test_overlapping_notes_keep_the_top_voice():
    bars = bars_from_notes([(0, 48, 60), (0, 48, 67), (24, 72, 64)], "3/4")
    melody = Melody("3/4", 0, "major", bars)
    assert [(n.start, n.end, n.pitch) for n in melody.notes()] == [(0, 24, 67), (24, 72, 64)]


@pytest.mark.parametrize("meter", ["4/4", "3/4", "6/8", "2/4"])
def test_grammar_only_allows_full_bars_and_ends_on_time(meter):
    rng = np.random.default_rng(0)
    grammar = BarGrammar(meter, target_bars=3)
    ids = mt.header_ids(meter, 2, "dorian", 3)
    while not grammar.finished:
        token = int(rng.choice(grammar.allowed()))
        grammar.push(token)
        ids.append(token)
    melody = decode(ids)
    assert len(melody.bars) == 3
    assert all(sum(e.ticks for e in bar) == mt.bar_ticks(meter) for bar in melody.bars)


def test_grammar_never_offers_a_length_that_cannot_be_completed():
    grammar = BarGrammar("3/8", 1)  # 36 ticks
    for token in (mt.PITCH_IDS[60], mt.DURATION_IDS[24], mt.PITCH_IDS[62], mt.DURATION_IDS[4], mt.PITCH_IDS[64]):
        grammar.push(token)
    # 8 ticks are left: a 32nd (3) or a 16th (6) would leave 5 or 2 ticks, which nothing fills.
    assert {mt.ID_DURATION[i] for i in grammar.allowed()} == {4, 8}


def test_key_labelling_finds_the_folk_modes():
    d_dorian = [(i * 12, i * 12 + 12, p) for i, p in enumerate([62, 64, 65, 67, 69, 71, 72, 74, 72, 69, 65, 62])]
    assert label_key(d_dorian, 2) == "dorian"
    g_mixolydian = [(i * 12, i * 12 + 12, p) for i, p in enumerate([67, 69, 71, 72, 74, 76, 77, 74, 71, 67])]
    assert label_key(g_mixolydian, 7) == "mixolydian"
    a_minor = [(i * 12, i * 12 + 12, p) for i, p in enumerate([69, 71, 72, 74, 76, 77, 76, 72, 69])]
    assert label_key(a_minor, 9) == "minor"


def test_held_out_split_is_by_tune_and_stable():
    ids = [f"essen/x.abc#{i}" for i in range(2000)]
    share = sum(map(is_held_out, ids)) / len(ids)
    assert 0.03 < share < 0.07
    assert [is_held_out(i) for i in ids[:50]] == [is_held_out(i) for i in ids[:50]]


def test_kneser_ney_is_a_proper_distribution_and_learns():
    rng = np.random.default_rng(1)
    vocab = 12
    # Sequences with a strong pattern: token i is followed by i + 1.
    train = [np.concatenate([[1], (np.arange(40) + rng.integers(0, 10)) % 10 + 2]) for _ in range(200)]
    lm = KneserNey(3, vocab, pad_id=0).fit(train)
    history = np.array([1, 5, 6])
    candidates = [np.concatenate([history, [w]]) for w in range(vocab)]
    probs = np.exp([lm.log_probs([c])[-1] for c in candidates])
    assert probs.sum() == pytest.approx(1.0, abs=1e-9)
    assert int(np.argmax(probs)) == 7
    shuffled = [rng.permutation(seq[1:]) for seq in train[:20]]
    patterned = -lm.log_probs(train[:20]).mean()
    assert patterned < -lm.log_probs([np.concatenate([[1], s]) for s in shuffled]).mean()
