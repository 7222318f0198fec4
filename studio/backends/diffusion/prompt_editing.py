"""AUTOMATIC1111's prompt editing: a prompt that changes while the picture is made.

`[from:to:when]` reads `from` until step `when`, then `to`; `[to:when]` adds `to` after that step and
`[from::when]` drops `from`. A `when` written with a decimal point is a share of the steps (`0.25`), a
whole number is a step. `[a|b]` alternates every step. They nest, and everything else in the prompt
(emphasis, `BREAK`, `<lora:...>` tags) is left as written for `prompts.py` to read in each version.
A prompt that does not parse (a `|` outside brackets) is used as written for every step, as
AUTOMATIC1111 does; brackets and colons that pair with nothing stay text.

The parser is a small recursive descent that remembers what it parsed at each position, so a long
or deeply bracketed prompt parses in linear time (a general parser took minutes on such prompts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Schedule = list[tuple[int, str]]  # (last step it is used for, counting from 1; the prompt's text then)

_TEXT = re.compile(r"(?:[^\\\[\]():|]|\\.)+", re.DOTALL)  # words, spaces and escaped characters
_NUMBER = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*\]")
_STRAY = "[]():"  # may stand alone outside any construct; a stray "|" makes the prompt unparsed


@dataclass(frozen=True)
class _Edit:
    before: tuple[_Node, ...]
    after: tuple[_Node, ...]
    when: str


@dataclass(frozen=True)
class _Alternation:
    options: tuple[tuple[_Node, ...], ...]


_Node = str | _Edit | _Alternation


class _Unparsed(Exception):
    pass


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self._words: dict[int, tuple[tuple[_Node, ...], int]] = {}
        self._brackets: dict[int, tuple[_Node | tuple[_Node, ...], int] | None] = {}

    def start(self) -> tuple[_Node, ...]:
        nodes: list[_Node] = []
        at = 0
        while at < len(self.text):
            words, after = self.words(at)
            nodes.extend(words)
            if after < len(self.text):  # a character no construct takes: stray, or the prompt is unparsed
                if self.text[after] not in _STRAY:
                    raise _Unparsed
                nodes.append(self.text[after])
                after += 1
            at = after
        return tuple(nodes)

    def words(self, at: int) -> tuple[tuple[_Node, ...], int]:
        """Text and bracketed constructs from `at` up to the first character they cannot take."""
        if at in self._words:
            return self._words[at]
        start = at
        nodes: list[_Node] = []
        while at < len(self.text):
            match = _TEXT.match(self.text, at)
            if match:
                nodes.append(match.group())
                at = match.end()
                continue
            bracket = self.bracket(at) if self.text[at] in "([" else None
            if bracket is None:
                break
            made, at = bracket
            nodes.extend(made) if isinstance(made, tuple) else nodes.append(made)
        self._words[start] = (tuple(nodes), at)
        return self._words[start]

    def bracket(self, at: int) -> tuple[_Node | tuple[_Node, ...], int] | None:
        if at not in self._brackets:
            self._brackets[at] = self._round(at) if self.text[at] == "(" else self._square(at)
        return self._brackets[at]

    def _round(self, at: int) -> tuple[tuple[_Node, ...], int] | None:
        """`(words)` or `(words:words)`: emphasis, kept as written for prompts.py."""
        inner, end = self.words(at + 1)
        if self._char(end) == ")":
            return ("(", *inner, ")"), end + 1
        if self._char(end) == ":":
            weight, close = self.words(end + 1)
            if self._char(close) == ")":
                return ("(", *inner, ":", *weight, ")"), close + 1
        return None

    def _square(self, at: int) -> tuple[_Node | tuple[_Node, ...], int] | None:
        first, end = self.words(at + 1)
        mark = self._char(end)
        if mark == "]":  # de-emphasis, kept as written
            return ("[", *first, "]"), end + 1
        if mark == "|":
            options = [first]
            while self._char(end) == "|":
                option, end = self.words(end + 1)
                options.append(option)
            return (_Alternation(tuple(options)), end + 1) if self._char(end) == "]" else None
        if mark != ":":
            return None
        number = _NUMBER.match(self.text, end + 1)
        if number:  # [to:when]
            return _Edit((), first, number.group(1)), number.end()
        second, end = self.words(end + 1)
        if self._char(end) == ":" and (number := _NUMBER.match(self.text, end + 1)):
            return _Edit(first, second, number.group(1)), number.end()
        return None

    def _char(self, at: int) -> str:
        return self.text[at] if at < len(self.text) else ""


def _switch_step(when: str, steps: int) -> int:
    value = float(when)
    return min(steps, int(value * steps if "." in when else value))


def prompt_schedule(prompt: str, steps: int) -> Schedule:
    """The versions of `prompt` over a run of `steps` steps: [(last step, text)], the last ending at
    `steps`. A prompt without editing is one version."""
    steps = max(1, int(steps))
    if "[" not in prompt:
        return [(steps, prompt)]
    try:
        tree = _Parser(prompt).start()
    except (_Unparsed, RecursionError):
        return [(steps, prompt)]
    ends = {steps}
    _collect_ends(tree, steps, ends)
    return [(end, _text_at(tree, end, steps)) for end in sorted(ends)]


def _collect_ends(nodes: tuple[_Node, ...], steps: int, ends: set[int]) -> None:
    for node in nodes:
        if isinstance(node, _Edit):
            if (step := _switch_step(node.when, steps)) >= 1:
                ends.add(step)
            _collect_ends(node.before, steps, ends)
            _collect_ends(node.after, steps, ends)
        elif isinstance(node, _Alternation):
            ends.update(range(1, steps + 1))
            for option in node.options:
                _collect_ends(option, steps, ends)


def _text_at(nodes: tuple[_Node, ...], step: int, steps: int) -> str:
    parts = []
    for node in nodes:
        if isinstance(node, str):
            parts.append(node)
        elif isinstance(node, _Edit):
            parts.append(_text_at(node.before if step <= _switch_step(node.when, steps) else node.after, step, steps))
        else:
            parts.append(_text_at(node.options[(step - 1) % len(node.options)], step, steps))
    return "".join(parts)
