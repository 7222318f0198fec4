"""AUTOMATIC1111's prompt syntax for the diffusion family: emphasis, BREAK and extra-network tags.

Artists bring prompts written for AUTOMATIC1111 ("A1111"); the studio reads them the way it does:

- `(words)` multiplies their attention by 1.1, `((words))` by 1.21, `(words:1.3)` sets 1.3 (times
  any brackets around it), `[words]` divides by 1.1; `\\(`, `\\)`, `\\[`, `\\]`, `\\\\` are literal.
- Unbalanced brackets: an unclosed `(` or `[` weighs everything after it, a `)` or `]` with nothing
  open is a literal character, a `:` that is not a weight is a literal colon, `(a:b)` is `a:b` x 1.1.
- `BREAK` (upper case, a word of its own) starts a new chunk of 75 tokens.
- `<lora:name:0.8>`, `<hypernet:name>` and any other `<kind:...>` tag are taken out of the text the
  text encoder reads and returned as `NetworkTag`s, for the step that applies them.

Deliberate differences from A1111, where it crashes or misreads its own syntax: a weight like
`(a:1.2.3)` is refused with a sentence (A1111 raises), and `BREAK` inside brackets still breaks
(A1111 turns it into the literal word with a negative weight). Weights are checked: any piece whose
weight ends up outside +-MAX_WEIGHT (or not a finite number) is refused rather than clamped, so the
artist sees which word and can fix it instead of getting a silently different picture.

Encoding follows A1111's chunking (75 tokens + BOS/EOS per chunk, text after a comma moved to the
next chunk when a chunk overflows within 20 tokens of it), multiplies each token's embedding by its
weight and restores the chunk's original mean. It covers SD 1.x / 2.x (one CLIP text encoder) and
SDXL (two, plus the pooled embedding), each encoded as diffusers' own `encode_prompt` encodes a
chunk. A prompt whose syntax changes nothing (all weights 1, no BREAK, one chunk) is handed to
diffusers as the plain string, so it makes exactly the picture diffusers makes of it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from studio.backends.diffusion.prompt_editing import prompt_schedule
from studio.errors import InputError

ROUND_FACTOR = 1.1  # what ( ) multiplies by
SQUARE_FACTOR = 1 / 1.1  # what [ ] multiplies by
MAX_WEIGHT = 10.0  # A1111 users stay within about 0-2; beyond 10 a picture is only noise
CHUNK_TOKENS = 75  # tokens per chunk, before the start and end tokens CLIP adds (77 in all)
COMMA_BACKTRACK = 20  # A1111's default "comma padding backtrack"

# Extra-network tags, as A1111 finds them: <kind:fields>, taken out before anything else is read.
_TAG = re.compile(r"<(\w+):([^>]+)>")
# A weight closing a round bracket: ":1.3)", spaces allowed around the number.
_WEIGHT_CLOSE = re.compile(r":\s*([+-]?[.\d]+)\s*\)")
# A run of plain text: anything but the characters with a meaning.
_PLAIN = re.compile(r"[^\\()\[\]:]+")
# BREAK as a word of its own, with the spaces around it.
_BREAK = re.compile(r"\s*\bBREAK\b\s*")
_ESCAPABLE = "()[]\\"

Piece = tuple[str, float]


@dataclass(frozen=True)
class NetworkTag:
    """`<lora:name:0.8>`: kind "lora", name "name", weight 0.8 (1.0 when not given)."""

    kind: str
    name: str
    weight: float


@dataclass(frozen=True)
class ParsedPrompt:
    """A prompt read: its sections (split at BREAK), each a list of (text, weight), and its tags."""

    sections: tuple[tuple[Piece, ...], ...]
    networks: tuple[NetworkTag, ...] = ()

    @property
    def text(self) -> str:
        """The words the text encoder reads, with the syntax taken out."""
        return " ".join("".join(text for text, _ in section) for section in self.sections)

    @property
    def weighted(self) -> bool:
        """True when some piece has a weight other than 1."""
        return any(weight != 1.0 for section in self.sections for _, weight in section)

    @property
    def plain(self) -> bool:
        """True when the syntax asks for nothing beyond the text: no weight, no BREAK."""
        return not self.weighted and len(self.sections) == 1


def parse_prompt(prompt: str) -> ParsedPrompt:
    """Read a prompt's extra-network tags and attention syntax."""
    networks: list[NetworkTag] = []

    def take(match: re.Match[str]) -> str:
        networks.append(_network_tag(match.group(1), match.group(2)))
        return ""

    return ParsedPrompt(sections=parse_attention(_TAG.sub(take, prompt)), networks=tuple(networks))


NETWORK_KINDS = ("lora", "lyco", "hypernet")  # the tags whose weight the studio reads (and checks)


def _network_tag(kind: str, body: str) -> NetworkTag:
    name, *fields = body.split(":")
    # Named fields (te=0.5) are A1111 extras the studio does not use yet; the first plain one is the weight.
    positional = [f.strip() for f in fields if "=" not in f]
    weight = 1.0
    # Another tool's tag is taken out of the text like the others, its fields left alone.
    if positional and kind in NETWORK_KINDS:
        weight = _number(positional[0], f"<{kind}:{_short(name, 12)}:0.8>")
    return NetworkTag(kind=kind, name=name.strip(), weight=weight)


def _number(text: str, example: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"The weight '{_short(text)}' is not a number; write it like {example}.") from None
    if not math.isfinite(value):
        raise InputError(f"The weight '{_short(text)}' is too large; write it like {example}.")
    return value


def _short(text: str, most: int = 24) -> str:
    """Enough of a piece of prompt to find it, for messages."""
    text = text.strip()
    return text if len(text) <= most else text[: most - 3] + "..."


def parse_attention(text: str) -> tuple[tuple[Piece, ...], ...]:
    """The (text, weight) pieces of `text`, split into sections at each BREAK.

    Weights are only known when a bracket closes (or at the end, for one left open), so every piece
    starts at 1.0 and a closing bracket multiplies all pieces since its opening one, in the order the
    brackets close: the same arithmetic A1111 does. Neighbours of equal weight are then joined, which
    also decides how the text is split into tokens.
    """
    pieces: list[list[Any]] = []  # [text, weight], or [None, None] for a BREAK
    round_open: list[int] = []  # index into pieces where each open "(" began
    square_open: list[int] = []

    def weigh_from(start: int, factor: float) -> None:
        for piece in pieces[start:]:
            if piece[0] is not None:  # a BREAK carries no weight
                piece[1] *= factor

    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            escaped = text[i + 1 : i + 2]
            if escaped and escaped in _ESCAPABLE:
                pieces.append([escaped, 1.0])
                i += 2
            else:
                pieces.append(["", 1.0])  # A1111 drops a backslash that escapes nothing
                i += 1
        elif char == "(":
            round_open.append(len(pieces))
            i += 1
        elif char == "[":
            square_open.append(len(pieces))
            i += 1
        elif char == ":":
            closing = _WEIGHT_CLOSE.match(text, i)
            if closing and round_open:
                weigh_from(round_open.pop(), _number(closing.group(1), "(word:1.3)"))
                i = closing.end()
            elif closing:  # ":1.3)" with no "(" open: all of it is text
                pieces.append([closing.group(0), 1.0])
                i = closing.end()
            else:
                pieces.append([":", 1.0])
                i += 1
        elif char == ")" and round_open:
            weigh_from(round_open.pop(), ROUND_FACTOR)
            i += 1
        elif char == "]" and square_open:
            weigh_from(square_open.pop(), SQUARE_FACTOR)
            i += 1
        elif char in ")]":
            pieces.append([char, 1.0])
            i += 1
        else:
            run = _PLAIN.match(text, i)
            assert run is not None  # every other character is plain text
            for n, part in enumerate(_BREAK.split(run.group(0))):
                if n:
                    pieces.append([None, None])
                pieces.append([part, 1.0])
            i = run.end()
    # Brackets left open weigh everything after them (round ones first, outermost first, as A1111 does).
    for start in round_open:
        weigh_from(start, ROUND_FACTOR)
    for start in square_open:
        weigh_from(start, SQUARE_FACTOR)

    sections: list[list[Piece]] = [[]]
    merged: list[list[Any]] = []
    for piece in pieces:
        if merged and piece[0] is not None and merged[-1][0] is not None and merged[-1][1] == piece[1]:
            merged[-1][0] += piece[0]
        else:
            merged.append(list(piece))
    for text_part, weight in merged:
        if text_part is None:
            sections.append([])
        elif text_part:
            _check_weight(text_part, weight)
            sections[-1].append((text_part, weight))
    return tuple(tuple(section) for section in sections)


def outside_tags(text: str, change: Any) -> str:
    """`text` with `change` (str -> str) applied to every stretch outside `<kind:...>` tags, which stay as written."""
    out, last = [], 0
    for tag in _TAG.finditer(text):
        out += [change(text[last : tag.start()]), tag.group(0)]
        last = tag.end()
    return "".join([*out, change(text[last:])])


def _check_weight(text: str, weight: float) -> None:
    if not math.isfinite(weight) or abs(weight) > MAX_WEIGHT:
        raise InputError(
            f"The weight on '{_short(text) or text}' comes to {weight:g}; weights must be between -{MAX_WEIGHT:g} and "
            f"{MAX_WEIGHT:g} (1 is normal, (word:1.3) is strong)."
        )


# -- encoding ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """One 77-token window for the text encoder: ids with start/end tokens and padding, and weights."""

    ids: tuple[int, ...]
    weights: tuple[float, ...]
    length: int  # ids up to and including the end token (the rest is padding)


@dataclass
class Encoded:
    """A prompt's embeddings, (1, 77 x chunks, width), and for SDXL its pooled embedding, (1, width)."""

    embeds: Any
    pooled: Any = None


def is_sdxl(pipe: Any) -> bool:
    """SDXL-type pipelines: a second (projecting) text encoder, whose hidden states and pooled output
    both condition the UNet."""
    return getattr(pipe, "text_encoder_2", None) is not None


def can_weight(pipe: Any) -> bool:
    """True for pipelines with CLIP text encoders this module encodes for: SD 1.x / 2.x and SDXL (SD 3.x
    and FLUX, with a transformer and a T5 encoder beside CLIP, take their prompts as strings)."""
    return getattr(pipe, "transformer", None) is None and bool(_encoders(pipe))


def _encoders(pipe: Any) -> list[tuple[Any, Any]]:
    """(tokenizer, text encoder) pairs in the order diffusers concatenates their outputs."""
    pairs = [(getattr(pipe, "tokenizer", None), getattr(pipe, "text_encoder", None))]
    if is_sdxl(pipe):
        pairs.append((getattr(pipe, "tokenizer_2", None), pipe.text_encoder_2))
    return [(t, e) for t, e in pairs if t is not None and e is not None]


def chunks(pipe: Any, parsed: ParsedPrompt, tokenizer: Any = None) -> list[Chunk]:
    """Lay a prompt's tokens out in chunks of 75 as A1111 does: a BREAK or an overflow starts a new one."""
    tokenizer = tokenizer if tokenizer is not None else _encoders(pipe)[0][0]
    comma = tokenizer.get_vocab().get(",</w>")
    laid: list[tuple[list[int], list[float]]] = []
    tokens: list[int] = []
    weights: list[float] = []
    last_comma = -1

    def close() -> None:
        nonlocal tokens, weights, last_comma
        laid.append((tokens, weights))
        tokens, weights, last_comma = [], [], -1

    for number, section in enumerate(parsed.sections):
        if number:
            close()
        texts = [_converted(pipe, text, tokenizer) for text, _ in section]
        ids_per_piece = tokenizer(texts, add_special_tokens=False, truncation=False).input_ids if texts else []
        for ids, (_, weight) in zip(ids_per_piece, section, strict=True):
            for token in ids:
                if token == comma:
                    last_comma = len(tokens)
                elif len(tokens) == CHUNK_TOKENS and last_comma != -1 and len(tokens) - last_comma <= COMMA_BACKTRACK:
                    # Keep the phrase after the last comma whole: it moves to the next chunk.
                    moved, moved_weights = tokens[last_comma + 1 :], weights[last_comma + 1 :]
                    tokens, weights = tokens[: last_comma + 1], weights[: last_comma + 1]
                    close()
                    tokens, weights = moved, moved_weights
                if len(tokens) == CHUNK_TOKENS:
                    close()
                tokens.append(token)
                weights.append(weight)
    if tokens or not laid:
        close()

    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    width = CHUNK_TOKENS + 2
    out = []
    for ids, token_weights in laid:
        # Laid out as diffusers' own tokenizer call pads: start, text, end, then the pad token.
        filled = [bos, *ids, eos]
        out.append(
            Chunk(
                ids=tuple(filled + [pad] * (width - len(filled))),
                weights=tuple([1.0, *token_weights, 1.0] + [1.0] * (width - len(filled))),
                length=len(filled),
            )
        )
    return out


def _converted(pipe: Any, text: str, tokenizer: Any) -> str:
    """Textual-inversion tokens spelled out as diffusers does before tokenizing (a no-op without any)."""
    convert = getattr(pipe, "maybe_convert_prompt", None)
    return convert(text, tokenizer) if convert is not None else text


def _weigh(z: Any, weights: tuple[float, ...]) -> Any:
    """Each token's embedding times its weight, then the whole chunk scaled back to its original mean
    (A1111's normalisation: emphasis shifts attention between tokens, not the overall level)."""
    import torch

    if all(w == 1.0 for w in weights):
        return z
    z32 = z.float()
    original_mean = z32.mean()
    z32 = z32 * torch.tensor(weights, device=z.device, dtype=torch.float32)[None, :, None]
    new_mean = z32.mean()
    if torch.isfinite(new_mean) and new_mean != 0:  # a mean of 0 (every weight 0) has nothing to restore
        z32 = z32 * (original_mean / new_mean)
    return z32.to(z.dtype)


def encode(pipe: Any, parsed: ParsedPrompt) -> Encoded:
    """Encode a prompt chunk by chunk as diffusers' `encode_prompt` encodes one chunk, weigh its
    tokens, and join the chunks along the sequence axis.

    SD 1.x / 2.x: the text encoder's last hidden state (SD 2.x's converted encoder already ends at
    the penultimate layer). SDXL: both encoders' penultimate hidden states side by side, and the
    second encoder's pooled output of the first chunk, as A1111 takes it.
    """
    import torch

    device = pipe._execution_device
    sdxl = is_sdxl(pipe)
    per_encoder = []
    pooled = None
    with torch.inference_mode():
        for tokenizer, encoder in _encoders(pipe):
            laid = chunks(pipe, parsed, tokenizer)
            use_mask = not sdxl and bool(getattr(encoder.config, "use_attention_mask", False))
            encoded = []
            for n, chunk in enumerate(laid):
                ids = torch.tensor([chunk.ids], device=device)
                if sdxl:
                    out = encoder(ids, output_hidden_states=True)
                    if n == 0 and out[0].ndim == 2:
                        pooled = out[0]
                    z = out.hidden_states[-2]
                else:
                    mask = None
                    if use_mask:
                        mask = torch.tensor([[1] * chunk.length + [0] * (len(chunk.ids) - chunk.length)], device=device)
                    z = encoder(ids, attention_mask=mask)[0].to(dtype=encoder.dtype, device=device)
                encoded.append(_weigh(z, chunk.weights))
            per_encoder.append(torch.cat(encoded, dim=1))
        embeds = torch.cat(per_encoder, dim=-1)
        if sdxl:
            embeds = embeds.to(dtype=pipe.text_encoder_2.dtype, device=device)
    return Encoded(embeds=embeds, pooled=pooled)


def needs_embeddings(pipe: Any, parsed: ParsedPrompt) -> bool:
    """True when the syntax changes the encoding: a weight, or more than one chunk (a BREAK between
    words, or over 75 tokens of text)."""
    return parsed.weighted or len(chunks(pipe, parsed)) > 1


def encode_pair(pipe: Any, positive: ParsedPrompt, negative: ParsedPrompt | None) -> tuple[Encoded, Encoded | None]:
    """Embeddings for a prompt and (under guidance) its negative, padded to the same number of chunks
    with chunks of the empty prompt, as A1111 pads them. An SDXL model configured to zero an empty
    negative prompt gets zeros, as diffusers (and A1111) give it."""
    import torch

    prompt = encode(pipe, positive)
    if negative is None:
        return prompt, None
    if is_sdxl(pipe) and not negative.text and getattr(pipe.config, "force_zeros_for_empty_prompt", False):
        return prompt, Encoded(torch.zeros_like(prompt.embeds), torch.zeros_like(prompt.pooled))
    negative_encoded = encode(pipe, negative)
    longest = max(prompt.embeds.shape[1], negative_encoded.embeds.shape[1])
    if prompt.embeds.shape[1] != negative_encoded.embeds.shape[1]:
        empty = empty_embedding(pipe)
        prompt.embeds = pad_to(prompt.embeds, longest, empty)
        negative_encoded.embeds = pad_to(negative_encoded.embeds, longest, empty)
    return prompt, negative_encoded


def pad_to(embeds: Any, length: int, empty: Any) -> Any:
    """`embeds` (1, n x 77, width) grown to `length` tokens with chunks of the empty prompt."""
    import torch

    missing = (length - embeds.shape[1]) // empty.shape[1]
    return torch.cat([embeds, empty.repeat(1, missing, 1)], dim=1) if missing > 0 else embeds


def empty_embedding(pipe: Any) -> Any:
    """The encoding of the empty prompt, one chunk: what shorter prompts are padded with."""
    return encode(pipe, ParsedPrompt(sections=((),))).embeds


UNSUPPORTED_NOTE = "Emphasis weights and BREAK are not applied to this kind of model: the prompt was read without them."


def prompt_inputs(pipe: Any, prompt: str, negative_prompt: str, guided: bool, notes: list[str]) -> dict[str, Any]:
    """What to hand a diffusers pipeline for these prompts.

    The plain strings (syntax taken out) when the syntax changes nothing, so such prompts make the
    very pictures diffusers' own encoding makes; otherwise `prompt_embeds` and, under guidance,
    `negative_prompt_embeds` of the same length (with the pooled ones for SDXL).
    """
    positive, negative = parse_prompt(prompt), parse_prompt(negative_prompt)
    plain = {"prompt": positive.text, "negative_prompt": negative.text or None}
    if not can_weight(pipe):
        if not positive.plain or (guided and not negative.plain):
            notes.append(UNSUPPORTED_NOTE)
        return plain
    if not needs_embeddings(pipe, positive) and not (guided and needs_embeddings(pipe, negative)):
        return plain
    encoded, negative_encoded = encode_pair(pipe, positive, negative if guided else None)
    inputs: dict[str, Any] = {"prompt_embeds": encoded.embeds}
    if encoded.pooled is not None:
        inputs["pooled_prompt_embeds"] = encoded.pooled
    if negative_encoded is not None:
        inputs["negative_prompt_embeds"] = negative_encoded.embeds
        if negative_encoded.pooled is not None:
            inputs["negative_pooled_prompt_embeds"] = negative_encoded.pooled
    return inputs


Pair = tuple[Any, Any]  # (for the prompt, for the negative prompt; None without guidance)


def walk_conditioning(
    pipe: Any, prompts: list[str], negative_prompt: str, guided: bool
) -> tuple[list[Pair], list[Pair] | None]:
    """Per keyframe prompt, its (prompt, negative) embeddings, all of one length so a walk can blend
    them, and for SDXL its (prompt, negative) pooled embeddings (None for other models).

    Plain prompts are encoded by diffusers' own `encode_prompt`, exactly as before; prompts with syntax
    go through `encode_pair`. Shorter ones are padded with empty-prompt chunks.
    """
    import torch

    negative = parse_prompt(negative_prompt)
    tokens: list[Pair] = []
    pooled: list[Pair] = []
    with torch.inference_mode():
        for prompt in prompts:
            positive = parse_prompt(prompt)
            if needs_embeddings(pipe, positive) or (guided and needs_embeddings(pipe, negative)):
                encoded, negative_encoded = encode_pair(pipe, positive, negative if guided else None)
                tokens.append((encoded.embeds, negative_encoded.embeds if negative_encoded is not None else None))
                pooled.append((encoded.pooled, negative_encoded.pooled if negative_encoded is not None else None))
            else:
                # By keyword: SDXL's encode_prompt takes a second prompt second, and returns pooled ones too.
                encoded_all = pipe.encode_prompt(
                    positive.text, device=pipe._execution_device, num_images_per_prompt=1,
                    do_classifier_free_guidance=guided, negative_prompt=negative.text or None,
                )
                tokens.append((encoded_all[0], encoded_all[1]))
                if len(encoded_all) == 4:
                    pooled.append((encoded_all[2], encoded_all[3] if guided else None))
        longest = max(max(pos.shape[1], neg.shape[1] if neg is not None else 0) for pos, neg in tokens)
        if any(pos.shape[1] != longest or (neg is not None and neg.shape[1] != longest) for pos, neg in tokens):
            empty = empty_embedding(pipe)
            tokens = [(pad_to(pos, longest, empty), pad_to(neg, longest, empty) if neg is not None else None)
                      for pos, neg in tokens]
    return tokens, pooled if is_sdxl(pipe) else None


def walk_embeddings(pipe: Any, prompts: list[str], negative_prompt: str, guided: bool) -> list[Pair]:
    """The (prompt, negative) embeddings of `walk_conditioning`."""
    return walk_conditioning(pipe, prompts, negative_prompt, guided)[0]


# -- prompt editing ([from:to:when], [a|b]) -----------------------------------------------------------

SCHEDULE_KEY = "_schedule"  # in prompt inputs: [(last step, that version's inputs)]; not a diffusers argument
NO_EDITING_NOTE = ("Prompt editing ([from:to:when], [a|b]) is not applied to this kind of model: the prompt "
                   "was read as it stands at the last step.")


def scheduled_inputs(
    pipe: Any, prompt: str, negative_prompt: str, guided: bool, steps: int, notes: list[str]
) -> dict[str, Any]:
    """`prompt_inputs`, for prompts that may change during the run (AUTOMATIC1111's prompt editing).

    Prompts without editing give exactly `prompt_inputs`. Otherwise every version of the prompt and
    of the negative is encoded (all padded to one length): the inputs are the first step's, and
    SCHEDULE_KEY holds each version's with the last step it is used for, for the run's step callback.
    """
    import torch

    positive = prompt_schedule(prompt, steps)
    negative = prompt_schedule(negative_prompt, steps) if guided else [(steps, negative_prompt)]
    if len(positive) == 1 and len(negative) == 1:  # one version all through (the prompt itself, if unedited)
        return prompt_inputs(pipe, positive[0][1], negative[0][1], guided, notes)
    if not can_weight(pipe):
        notes.append(NO_EDITING_NOTE)
        return prompt_inputs(pipe, positive[-1][1], negative[-1][1], guided, notes)

    def version_at(schedule: list[tuple[int, str]], step: int) -> str:
        return next(text for end, text in schedule if step <= end)

    ends = sorted({end for end, _ in positive} | {end for end, _ in negative})
    encoded: dict[tuple[str, str], tuple[Encoded, Encoded | None]] = {}
    versions = []
    with torch.inference_mode():
        for end in ends:
            texts = (version_at(positive, end), version_at(negative, end))
            if texts not in encoded:
                encoded[texts] = encode_pair(pipe, parse_prompt(texts[0]), parse_prompt(texts[1]) if guided else None)
            versions.append((end, encoded[texts]))
        longest = max(e.embeds.shape[1] for pair in encoded.values() for e in pair if e is not None)
        empty = empty_embedding(pipe)
    schedule = []
    for end, (pos, neg) in versions:
        inputs: dict[str, Any] = {"prompt_embeds": pad_to(pos.embeds, longest, empty)}
        if pos.pooled is not None:
            inputs["pooled_prompt_embeds"] = pos.pooled
        if neg is not None:
            inputs["negative_prompt_embeds"] = pad_to(neg.embeds, longest, empty)
            if neg.pooled is not None:
                inputs["negative_pooled_prompt_embeds"] = neg.pooled
        schedule.append((end, inputs))
    return {**schedule[0][1], SCHEDULE_KEY: schedule}


def final_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs of a prompt's last version (a hires fix's second pass reads the finished prompt)."""
    schedule = inputs.get(SCHEDULE_KEY)
    return dict(schedule[-1][1]) if schedule else inputs


def switched_tensors(
    schedule: list[tuple[int, dict[str, Any]]], step: int, tensors: dict[str, Any], pictures: int
) -> dict[str, Any]:
    """The conditioning tensors a pipeline holds for `pictures` pictures, for the version of the prompt
    used at `step` (from 1). diffusers keeps them per picture, the negative half first when it guides;
    the pooled embeddings of SDXL are `add_text_embeds`."""
    import torch

    if step > schedule[-1][0]:  # after the last step: nothing more to condition
        return {}
    inputs = next(version for end, version in schedule if step <= end)
    held = tensors["prompt_embeds"]

    def laid_out(positive: Any, negative: Any) -> Any:
        rows = positive.repeat(pictures, *([1] * (positive.ndim - 1)))
        if negative is not None and held.shape[0] == 2 * pictures:
            rows = torch.cat([negative.repeat(pictures, *([1] * (negative.ndim - 1))), rows])
        return rows.to(device=held.device, dtype=held.dtype)

    switched = {"prompt_embeds": laid_out(inputs["prompt_embeds"], inputs.get("negative_prompt_embeds"))}
    if "add_text_embeds" in tensors and inputs.get("pooled_prompt_embeds") is not None:
        switched["add_text_embeds"] = laid_out(inputs["pooled_prompt_embeds"],
                                               inputs.get("negative_pooled_prompt_embeds")).to(
            tensors["add_text_embeds"].dtype)
    return switched
