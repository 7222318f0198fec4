"""`python -m studio image --prompts FILE --seeds 1-8`: every prompt with every seed, named predictably."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.cli.batch import BatchItem, output_name, parse_seeds, plan, read_prompts
from studio.errors import InputError
from studio.history import Gallery
from studio.media.png_info import read_a1111_parameters
from tests.image_models import TINY_SD, TINY_TAESD, write_models_file

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "text, seeds",
    [("1-8", list(range(1, 9))), ("3,5,9", [3, 5, 9]), ("1-4,10", [1, 2, 3, 4, 10]), (" 7 - 8 , 2", [7, 8, 2]),
     ("0", [0])],
)
def test_seed_lists_and_ranges(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    "text, words",
    [("8-1", "runs backwards; write 1-8"), ("1,x", "'x' is not a seed"), ("", "is not a seed"),
     ("1-3,2", "seed 2 is listed twice"), ("-3", "'-3' is not a seed"), ("1-99999999", "more than 10000 seeds"),
     ("1.5", "'1.5' is not a seed")],
)
def test_bad_seed_lists_say_what_is_wrong(text, words):
    with pytest.raises(argparse.ArgumentTypeError, match=words):
        parse_seeds(text)


def test_prompts_file_skips_blank_lines_and_comments(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("# lighthouses\n  a lighthouse at dusk  \n\n#a comment\na red cat\n   \n", encoding="utf-8")
    assert read_prompts(path) == ["a lighthouse at dusk", "a red cat"]


@pytest.mark.parametrize(
    "content, words",
    [(None, "no prompts file at"), ("# nothing\n\n", "has no prompts"), (b"\xff\xfe\x00bad", "is not UTF-8 text")],
)
def test_unusable_prompts_files_are_refused_in_one_sentence(tmp_path, content, words):
    path = tmp_path / "prompts.txt"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(InputError, match=words):
        read_prompts(path)


def test_every_prompt_meets_every_seed_and_names_say_which(tmp_path):
    items = plan([f"prompt {n}" for n in range(1, 13)], [4, 9], None)
    assert len(items) == 24 and items[:3] == [BatchItem(1, "prompt 1", 4), BatchItem(1, "prompt 1", 9),
                                              BatchItem(2, "prompt 2", 4)]
    assert output_name(tmp_path, "cat", items[3], 9, 12, ".png") == tmp_path / "cat-p02-s9.png"
    assert [i.seed for i in plan(["a", "b"], None, 5)] == [5, 5]  # no --seeds: each prompt once, with --seed


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_sd_path, tiny_taesd_path):
    return write_models_file(tmp_path_factory.mktemp("batch-models"), tiny_sd_path, tiny_taesd_path)


def studio_cli(*args: str, models: Path, data_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, STUDIO_DATA_DIR=str(data_dir), STUDIO_MODELS_FILE=str(models), STUDIO_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "studio", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def progress_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.match(r"\[\d+/\d+\] ", line)]


def test_a_batch_makes_every_item_keeps_going_past_a_bad_one_and_says_so(models, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# two good prompts and one far too long\na red cat\n\na blue dog\n" + "x" * 2100 + "\n",
                       encoding="utf-8")
    data, out_dir = tmp_path / "data", tmp_path / "pictures"
    common = ["--model", TINY_SD, "--decoder", TINY_TAESD, "--size", "64x64"]
    done = studio_cli("image", "--prompts", str(prompts), "--seeds", "1-2", *common, "--out-dir", str(out_dir),
                      "--json", models=models, data_dir=data)

    assert done.returncode == 1, done.stderr
    lines = progress_lines(done.stderr)
    assert len(lines) == 6 and lines[0].startswith("[1/6] prompt 1, seed 1: ")
    assert lines[4] == "[5/6] prompt 3, seed 1: failed: Prompts are limited to 2000 characters."
    assert done.stderr.strip().splitlines()[-1].startswith("4 of 6 made; 2 failed (prompt 3, seed 1; prompt 3, seed 2)")
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    names = ["txt2img-p1-s1.png", "txt2img-p1-s2.png", "txt2img-p2-s1.png", "txt2img-p2-s2.png"]
    assert report["outputs"] == [str(out_dir / name) for name in names]
    assert sorted(p.name for p in out_dir.iterdir()) == names
    assert [(f["prompt_number"], f["seed"]) for f in report["failed"]] == [(3, 1), (3, 2)]
    params = read_a1111_parameters(out_dir / "txt2img-p2-s1.png")
    assert (params["prompt"], params["Seed"]) == ("a blue dog", "1")
    assert sorted(item.seed for item in Gallery(data).list()) == [1, 1, 2, 2]

    # An item of the batch is the very picture a single run with its prompt and seed makes.
    single = tmp_path / "single.png"
    done = studio_cli("image", "a blue dog", "--seed", "2", *common, "--out", str(single), "--no-gallery",
                      models=models, data_dir=data)
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.asarray(Image.open(single)), np.asarray(Image.open(out_dir / "txt2img-p2-s2.png")))


def test_seeds_alone_name_files_beside_out_and_list_them(models, tmp_path):
    done = studio_cli("image", "a red cat", "--seeds", "3,5", "--model", TINY_SD, "--decoder", TINY_TAESD,
                      "--size", "64x64", "--out", str(tmp_path / "cat.png"), "--no-gallery",
                      models=models, data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(tmp_path / "cat-p1-s3.png"), str(tmp_path / "cat-p1-s5.png")]
    assert len(progress_lines(done.stderr)) == 2 and done.stderr.strip().endswith("2 of 2 made")
    assert not Gallery(tmp_path / "data").list()  # --no-gallery


@pytest.mark.parametrize(
    "args, words",
    [
        (["--seeds", "9-2"], "argument --seeds: the range 9-2 runs backwards"),
        (["--prompts", "{missing}"], "error: no prompts file at"),
        (["a cat", "--seeds", "1-4", "--batch-size", "2"], "leave out --batch-size"),
        (["a cat", "--prompts", "{missing}"], "not both"),
        (["--prompts", "{prompts}", "--seeds", "1", "--size", "65x64"], "multiple of 8"),
    ],
)
def test_bad_batches_are_one_line_and_exit_code_2(models, tmp_path, args, words):
    (tmp_path / "prompts.txt").write_text("a cat\n", encoding="utf-8")
    args = [a.format(missing=tmp_path / "missing.txt", prompts=tmp_path / "prompts.txt") for a in args]
    done = studio_cli("image", *args, "--model", TINY_SD, models=models, data_dir=tmp_path / "data")
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith(("error:", "python -m studio"))]
    assert len(errors) == 1 and words in errors[0], done.stderr
    assert "Traceback" not in done.stderr and not progress_lines(done.stderr)


def test_melody_seeds_make_one_tune_each_equal_to_single_runs(tmp_path):
    from tests.test_cli import studio_cli as plain_cli  # the built-in melody model needs no models file

    data = tmp_path / "data"
    done = plain_cli("melody", "--seeds", "2,5", "--bars", "4", "--out", str(tmp_path / "tune.mid"), data_dir=data)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(tmp_path / "tune-s2.mid"), str(tmp_path / "tune-s5.mid")]
    assert [line.split(":")[0] for line in progress_lines(done.stderr)] == ["[1/2] seed 2", "[2/2] seed 5"]
    assert {p.name for p in tmp_path.glob("tune-s5.*")} == {"tune-s5.mid", "tune-s5.wav", "tune-s5.png", "tune-s5.abc"}
    assert len(Gallery(data).list(task="melody")) == 2

    done = plain_cli("melody", "--seed", "5", "--bars", "4", "--out", str(tmp_path / "single.mid"), data_dir=data)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "single.abc").read_text() == (tmp_path / "tune-s5.abc").read_text()
    assert (tmp_path / "tune-s2.abc").read_text() != (tmp_path / "tune-s5.abc").read_text()
