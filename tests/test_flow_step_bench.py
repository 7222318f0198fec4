"""benchmarks/flow_step.py without running it at size: the README's command is one it accepts, the
configs are the published models' (counted on the meta device, no memory), and FLUX.1's step, which the
script extrapolates from one block of each kind plus the rest, covers exactly the whole transformer."""

from __future__ import annotations

import pytest
import torch

from tests.benchmark_scripts import load_benchmark, readme_arguments


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("flow_step")


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_the_readme_command_is_accepted(bench):
    documented = readme_arguments("flow_step")
    assert documented, "the README shows how to run benchmarks/flow_step.py"
    for arguments in documented:
        args = bench.parse_arguments(arguments)
        assert args.size == 512 and args.runs >= 1


def test_sizes_that_are_not_multiples_of_16_are_refused(bench, capsys):
    with pytest.raises(SystemExit) as refused:
        bench.parse_arguments(["--size", "500"])
    assert refused.value.code == 2
    assert "multiple of 16" in capsys.readouterr().err


def test_sd35_medium_is_the_published_size(bench):
    from diffusers import SD3Transformer2DModel

    with torch.device("meta"):
        model = SD3Transformer2DModel(**bench.SD35_MEDIUM)
    # 2.47 B numbers in SD 3.5 Medium's transformer file: 2.24 B parameters and the 384x384 position table.
    assert 2.20e9 < parameters(model) < 2.30e9
    assert 2.45e9 < parameters(model) + sum(b.numel() for b in model.buffers()) < 2.50e9
    assert sum(block.attn2 is not None for block in model.transformer_blocks) == 13  # MMDiT-X layers 0-12


def test_flux_extrapolation_covers_the_whole_transformer(bench):
    from diffusers import FluxTransformer2DModel
    from diffusers.models.transformers.transformer_flux import (
        FluxSingleTransformerBlock,
        FluxTransformerBlock,
    )

    config = bench.FLUX_SCHNELL
    width, heads, head_dim = 3072, config["num_attention_heads"], config["attention_head_dim"]
    with torch.device("meta"):
        whole = FluxTransformer2DModel(**config)
        rest = FluxTransformer2DModel(**{**config, "num_layers": 0, "num_single_layers": 0})
        double = FluxTransformerBlock(width, heads, head_dim)
        single = FluxSingleTransformerBlock(width, heads, head_dim)
    assert 11.8e9 < parameters(whole) < 12.0e9  # FLUX.1's 12 B
    assert parameters(whole) == (19 * parameters(double) + 38 * parameters(single) + parameters(rest))


def test_the_median_is_of_the_timed_calls_after_a_warm_up(bench):
    calls = []

    class Counter(torch.nn.Module):
        def forward(self, x, scale=1):
            calls.append(torch.is_inference_mode_enabled())
            return x * scale

    median, times = bench.median_seconds(Counter(), 3, torch.ones(2), scale=2)
    assert len(calls) == 4 and all(calls)  # one warm-up, three timed, none recording gradients
    assert len(times) == 3 and median == sorted(times)[1]
