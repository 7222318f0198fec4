"""`<lora:NAME:WEIGHT>` written into a prompt and reweighted in place, as the LoRA picker and --lora do."""

from __future__ import annotations

import pytest

from studio.backends.diffusion.lora_tags import (
    append_words,
    format_weight,
    insert_lora,
    lora_weight,
    parse_lora_argument,
    reweight_lora,
)
from studio.backends.diffusion.prompts import parse_prompt
from studio.errors import InputError


def test_a_tag_goes_at_the_end_after_a_space():
    assert insert_lora("", "ink_wash") == "<lora:ink_wash:1>"
    assert insert_lora("   ", "ink_wash", 0.7) == "<lora:ink_wash:0.7>"
    assert insert_lora("a red cat", "ink_wash") == "a red cat <lora:ink_wash:1>"
    assert insert_lora("a red cat, ", "ink_wash") == "a red cat, <lora:ink_wash:1>"
    assert insert_lora("a red cat <lora:ink_wash:0.3>", "ink_wash") == "a red cat <lora:ink_wash:0.3>"  # not twice


def test_reweight_changes_only_that_tag():
    prompt = "(a red cat:1.2) <lora:ink_wash:1> on a beach, <lora:paper_cut:0.4> BREAK sunset"
    assert reweight_lora(prompt, "ink_wash", 0.75) == (
        "(a red cat:1.2) <lora:ink_wash:0.75> on a beach, <lora:paper_cut:0.4> BREAK sunset")
    assert reweight_lora(prompt, "paper_cut", 1.5) == (
        "(a red cat:1.2) <lora:ink_wash:1> on a beach, <lora:paper_cut:1.5> BREAK sunset")
    # a tag with no weight, a lyco tag, a named field, and a name with spaces around it
    assert reweight_lora("x <lora:ink_wash> y", "ink_wash", 0.5) == "x <lora:ink_wash:0.5> y"
    assert reweight_lora("<lyco:ink_wash:1:te=0.2>", "ink_wash", 0.6) == "<lyco:ink_wash:0.6:te=0.2>"
    assert reweight_lora("<lora: ink_wash :1>", "ink_wash", 0.1) == "<lora: ink_wash :0.1>"
    assert reweight_lora("a cat", "ink_wash", 0.25) == "a cat <lora:ink_wash:0.25>"  # none yet: added
    # a name that merely starts like another is another LoRA
    assert reweight_lora("<lora:ink_wash_v2:1> <lora:ink:1>", "ink", 0.5) == "<lora:ink_wash_v2:1> <lora:ink:0.5>"


def test_weights_are_written_without_float_noise_and_read_back_by_the_parser():
    assert format_weight(0.1 + 0.2) == "0.3"
    assert format_weight(0.7000000000000001) == "0.7"
    assert format_weight(2) == "2"
    assert format_weight(-0.0) == "0"
    prompt = reweight_lora(insert_lora("a cat", "ink_wash"), "ink_wash", 0.35000000000000003)
    assert prompt == "a cat <lora:ink_wash:0.35>"
    assert [(t.name, t.weight) for t in parse_prompt(prompt).networks] == [("ink_wash", 0.35)]
    assert lora_weight(prompt, "ink_wash") == 0.35
    assert lora_weight("<lora:ink_wash>", "ink_wash") == 1.0
    assert lora_weight(prompt, "paper_cut") is None


@pytest.mark.parametrize("name", ["Ghibli Style (v2.1)", "ström-ñ_[test]", "a.b.c", "猫 style", "100%"])
def test_names_with_odd_characters_round_trip(name):
    prompt = insert_lora("a (cat) [dog]", name, 0.8)
    assert prompt == f"a (cat) [dog] <lora:{name}:0.8>"
    prompt = reweight_lora(prompt, name, 1.45)
    assert [(t.name, t.weight) for t in parse_prompt(prompt).networks] == [(name, 1.45)]
    assert parse_prompt(prompt).text.strip() == "a cat dog"


@pytest.mark.parametrize("name", ["a:b", "a>b", "<x", "", " padded "])
def test_names_no_tag_can_hold_are_refused(name):
    with pytest.raises(InputError, match="cannot be written"):
        insert_lora("a cat", name)


def test_trigger_words_are_appended_once():
    assert append_words("", ["ink wash", "monochrome"]) == "ink wash, monochrome"
    assert append_words("a cat <lora:ink_wash:1>", ["ink wash"]) == "a cat <lora:ink_wash:1>, ink wash"
    assert append_words("ink wash, a cat,", ["ink wash", "mountains"]) == "ink wash, a cat, mountains"
    assert append_words("a cat", []) == "a cat"


def test_the_cli_argument_reads_an_optional_weight():
    assert parse_lora_argument("styles/ink.safetensors:0.7") == ("styles/ink.safetensors", 0.7)
    assert parse_lora_argument("ink.safetensors") == ("ink.safetensors", 1.0)
    assert parse_lora_argument("C:\\loras\\ink.safetensors") == ("C:\\loras\\ink.safetensors", 1.0)
    assert parse_lora_argument("ink.safetensors:nan") == ("ink.safetensors:nan", 1.0)
