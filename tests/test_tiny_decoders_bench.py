"""benchmarks/tiny_decoders.py: the README's command is one it accepts, the full VAEs it times are the
published sizes (counted on the meta device), and a small run prints a row for each shape and size with
times that are real numbers."""

from __future__ import annotations

import re

import pytest
import torch

from tests.benchmark_scripts import load_benchmark, readme_arguments


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("tiny_decoders")


def test_the_readme_command_is_accepted(bench):
    documented = readme_arguments("tiny_decoders")
    assert documented, "the README shows how to run benchmarks/tiny_decoders.py"
    for arguments in documented:
        args = bench.parse_arguments(arguments)
        assert args.sizes and args.runs >= 1


def test_odd_sizes_are_refused_in_one_line(bench, capsys):
    for sizes in ("500", "big"):
        with pytest.raises(SystemExit) as refused:
            bench.parse_arguments(["--sizes", sizes])
        assert refused.value.code == 2
    assert "multiple of 8" in capsys.readouterr().err


def test_the_full_vaes_are_the_published_size(bench):
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        four = AutoencoderKL(**bench.VAE_4CH)
        sixteen = AutoencoderKL(**bench.VAE_16CH)
    # SD's and SDXL's VAE file holds 83.65 M parameters, the decoder 49.49 M of them; SD 3.5's and FLUX.1's 83.82 M.
    assert abs(sum(p.numel() for p in four.parameters()) - 83.65e6) < 0.05e6
    assert abs(sum(p.numel() for p in four.decoder.parameters()) - 49.49e6) < 0.05e6
    assert abs(sum(p.numel() for p in sixteen.parameters()) - 83.82e6) < 0.05e6
    assert four.quant_conv is not None and sixteen.quant_conv is None


def test_a_small_run_prints_each_shape_and_size(bench, capsys):
    assert bench.main(["--sizes", "64,96", "--runs", "1", "--dtype", "fp32"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if re.match(r"\| (4|16)ch \|", line)]
    assert [(row.split("|")[1].strip(), row.split("|")[4].strip()) for row in rows] == [
        ("4ch", "64 px"), ("4ch", "96 px"), ("16ch", "64 px"), ("16ch", "96 px")]
    for row in rows:
        full, tiny = (float(re.match(r"\s*([\d.]+)", cell).group(1)) for cell in row.split("|")[5:7])
        assert full > 0 and tiny > 0
