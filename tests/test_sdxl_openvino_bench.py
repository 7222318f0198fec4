"""benchmarks/sdxl_openvino.py without running it at size: the documented command is one it accepts, the
UNet is SDXL-Turbo's published size (counted on the meta device, no memory), every stage runs on a tiny
SDXL-shaped UNet and reports OpenVINO's output beside torch's, and a stage that fails (out of memory, say)
leaves the others' figures."""

from __future__ import annotations

import pytest
import torch

from tests.benchmark_scripts import load_benchmark, readme_arguments


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("sdxl_openvino")


def test_the_readme_command_is_accepted(bench):
    documented = readme_arguments("sdxl_openvino")
    assert documented, "the README shows how to run benchmarks/sdxl_openvino.py"
    for arguments in documented:
        args = bench.parse_arguments(arguments)
        assert args.size == 512 and args.runs >= 1 and not args.tiny


@pytest.mark.parametrize(("argv", "words"), [(["--size", "500"], "multiple of 64"), (["--runs", "0"], "at least 1"),
                                           (["--stages", "torch,gpu"], "not gpu")])
def test_bad_arguments_are_refused_in_one_line(bench, capsys, argv, words):
    with pytest.raises(SystemExit) as refused:
        bench.parse_arguments(argv)
    assert refused.value.code == 2
    assert words in capsys.readouterr().err


def test_the_unet_is_sdxl_turbos_published_size(bench):
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**bench.SDXL_TURBO_UNET)
    assert sum(p.numel() for p in unet.parameters()) == 2_567_463_684  # the sdxl-turbo UNet file's count
    assert unet.add_embedding.linear_1.in_features == bench.POOLED_WIDTH + 6 * 256


def test_every_stage_runs_on_a_tiny_unet_and_openvino_matches_torch(bench, tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    args = bench.parse_arguments(["--tiny", "--size", "64", "--runs", "1"])
    figures = {stage: bench.run_stage(stage, args, tmp_path) for stage in bench.STAGES}
    assert figures["torch"]["parameters"] == sum(p.numel() for p in bench.build_unet(tiny=True).parameters())
    assert figures["openvino"]["difference"] < 0.01  # the fp16 weights' rounding
    assert 0 < figures["int8"]["difference"] < 0.1  # int8 weights: near, not equal
    assert figures["compress"]["ir_mb"] < figures["convert"]["ir_mb"]
    lines = bench.report(figures, args)
    assert lines[0].startswith("tiny SDXL-shaped UNet") and "8x8 latents" in lines[0]
    assert [line.split()[0:2] for line in lines[1:4]] == [["torch", "fp32"], ["OpenVINO", "fp32"],
                                                         ["OpenVINO", "int8"]]
    assert "x torch" in lines[2] and "conversion to IR" in lines[4] and "int8 compression" in lines[5]


def test_a_failed_stage_leaves_the_others_and_the_exit_code_says_so(bench, monkeypatch, capsys, tmp_path):
    ran = []
    step = {"step": 2.0, "times": [2.0], "load": 1.0, "peak_rss_mb": 100.0, "difference": 1e-4}
    made = {"torch": {**step, "build": 1.0, "parameters": 2e9}, "convert": {"seconds": 9.0, "build": 1.0,
            "peak_rss_mb": 200.0, "ir_mb": 50.0}, "openvino": {**step, "step": 1.0, "times": [1.0]},
            "int8": {**step, "step": 0.5, "times": [0.5]}}

    def child(stage, _args, _folder):
        ran.append(stage)
        if stage == "compress":
            raise RuntimeError("the compress stage failed (exit -9):\nKilled")
        return made[stage]

    monkeypatch.setattr(bench, "child", child)
    assert bench.main(["--runs", "1"]) == 1
    assert ran == ["torch", "convert", "openvino", "compress"]  # int8 needs the compression
    out = capsys.readouterr().out
    assert "compress failed, left out" in out and "Killed" in out
    assert "OpenVINO fp32     1.00 s" in out and "2.00x torch" in out and "OpenVINO int8" not in out

    # Chosen stages without the ones they need: a kept folder (--keep) has those from an earlier run.
    ran.clear()
    assert bench.main(["--runs", "1", "--stages", "int8,torch", "--keep", str(tmp_path)]) == 0
    assert ran == ["int8", "torch"]
    assert "OpenVINO int8     0.50 s" in capsys.readouterr().out
