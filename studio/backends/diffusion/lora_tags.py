"""`<lora:NAME:WEIGHT>` tags edited inside a prompt: the Image tab's LoRA picker and `--lora` use these.

Only the tag of the name asked for changes; every other character of the prompt stays as it was.
A tag is read as the prompt parser reads it (`<kind:fields>`, the name being the first field with
its spaces trimmed), so what these functions find is what a run applies.
"""

from __future__ import annotations

import math
import re

from studio.errors import InputError

_TAG = re.compile(r"<(lora|lyco):([^>]+)>")
# A tag's name may not hold what ends a tag or separates its fields.
_NOT_IN_NAMES = ("<", ">", ":")
SEPARATOR = " "  # what AUTOMATIC1111 puts between a prompt and the tag a card adds


def format_weight(weight: float) -> str:
    """1, 0.7, 1.25: the slider's steps without float noise (0.7000000000000001)."""
    text = f"{round(float(weight), 4):g}"
    return "0" if text == "-0" else text


def lora_tag(name: str, weight: float = 1.0) -> str:
    """`<lora:NAME:WEIGHT>`; a name no tag can hold is refused in a sentence."""
    check_name(name)
    return f"<lora:{name}:{format_weight(weight)}>"


def check_name(name: str) -> None:
    if not name.strip() or any(mark in name for mark in _NOT_IN_NAMES) or name != name.strip():
        raise InputError(f"The LoRA name '{name}' cannot be written in a <lora:NAME> tag "
                         "(it is empty, has spaces at its ends, or holds '<', '>' or ':'); rename its file.")


def _tags_of(prompt: str, name: str) -> list[re.Match[str]]:
    return [m for m in _TAG.finditer(prompt) if m.group(2).split(":")[0].strip() == name]


def lora_weight(prompt: str, name: str) -> float | None:
    """The weight of the first tag for `name` in the prompt (1 when it has none); None without one."""
    for match in _tags_of(prompt, name):
        fields = [f.strip() for f in match.group(2).split(":")[1:] if "=" not in f]
        try:
            return float(fields[0]) if fields else 1.0
        except ValueError:
            return None
    return None


def insert_lora(prompt: str, name: str, weight: float = 1.0) -> str:
    """The prompt with `<lora:NAME:WEIGHT>` at its end, after a space; unchanged when it already has a
    tag for that name (picking a LoRA twice does not add it twice)."""
    tag = lora_tag(name, weight)
    if _tags_of(prompt, name):
        return prompt
    if not prompt.strip():
        return tag
    return prompt.rstrip() + SEPARATOR + tag


def reweight_lora(prompt: str, name: str, weight: float) -> str:
    """Every tag for `name` with its weight set to `weight` (a named field such as `te=0.5` kept);
    the tag added at the end when the prompt has none."""
    check_name(name)
    matches = _tags_of(prompt, name)
    if not matches:
        return insert_lora(prompt, name, weight)
    pieces, last = [], 0
    for match in matches:
        first, *fields = match.group(2).split(":")
        positional = [i for i, f in enumerate(fields) if "=" not in f]
        if positional:
            fields[positional[0]] = format_weight(weight)
        else:
            fields.insert(0, format_weight(weight))
        pieces += [prompt[last:match.start()], f"<{match.group(1)}:{':'.join([first, *fields])}>"]
        last = match.end()
    return "".join(pieces) + prompt[last:]


def append_words(prompt: str, words: list[str]) -> str:
    """The prompt with the words it does not hold yet added at the end, comma separated."""
    present = prompt.lower()
    new = [w for w in words if w and w.lower() not in present]
    if not new:
        return prompt
    text = ", ".join(new)
    stripped = prompt.rstrip()
    if not stripped:
        return text
    return f"{stripped}{'' if stripped.endswith(',') else ','} {text}"


def parse_lora_argument(text: str) -> tuple[str, float]:
    """`FILE[:WEIGHT]` of `--lora`: the file and its weight (1 when not given). A colon followed by
    something that is not a number belongs to the file's name (`C:\\loras\\x.safetensors`)."""
    head, sep, tail = text.rpartition(":")
    if sep:
        try:
            weight = float(tail)
        except ValueError:
            weight = None
        if weight is not None and math.isfinite(weight):
            return head, weight
    return text, 1.0
