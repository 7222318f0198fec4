"""Textual-inversion embeddings, as artists bring them from AUTOMATIC1111 and Civitai: a file's stem
written in the prompt (or the negative prompt) calls its learned vectors up.

- Finding: an embedding's name is its file's stem, looked for in `<data dir>/embeddings` and the
  operator's extra folders (Settings.embedding_folders), subfolders included. A name is used where it
  stands as a whole word in either prompt (outside `<lora:...>` tags), in any case, as AUTOMATIC1111
  finds it through CLIP's lower-casing tokenizer. Only `.safetensors` is read: `.pt`/`.bin` are pickles.
- Reading: each file is read once into the runtime cache. Layouts: one tensor under any key (diffusers'
  `<token>`, kohya's `emb_params`, a flattened `string_to_param.*`), or SDXL's `clip_l` + `clip_g`.
- Applying: diffusers' own `load_textual_inversion`, under a token of the studio's choosing that no
  word can contain; the prompts handed to the text encoder spell each name as that token, so emphasis
  (`(name:1.2)`) weighs the embedding's vectors like any word. `applied()` unloads them afterwards.
- Hash: AUTOMATIC1111's `TI hashes` show sha256 of the whole file, first 12 hex digits.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.backends.diffusion.loras import SHORT_HASH, FileLibrary, quiet_transformers, read_safetensors
from studio.backends.diffusion.prompts import is_sdxl, outside_tags, parse_prompt
from studio.errors import InputError, StudioError
from studio.runtime import CacheKey, ModelCache

log = logging.getLogger(__name__)

# Keys a one-vector-set file may hold its tensor under, besides any single key.
SINGLE_KEYS = ("emb_params", "string_to_param.*", "string_to_param")
SDXL_KEYS = ("clip_l", "clip_g")


@dataclass(frozen=True)
class Embedding:
    """One embedding file read: its vectors per text encoder, and what the record says about it."""

    name: str
    path: Path
    vectors: dict[str, Any]  # "single": (n, width); or "clip_l" and "clip_g" for SDXL
    hash: str  # sha256 of the whole file

    @property
    def short_hash(self) -> str:
        return self.hash[:SHORT_HASH]

    @property
    def for_sdxl(self) -> bool:
        return "clip_l" in self.vectors


class EmbeddingLibrary(FileLibrary):
    """The embedding files in the studio's folders, found by name."""

    what = "embedding"
    where = "<data dir>/embeddings, --embeddings-dir"

    def _compute_hash(self, path: Path) -> str:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()

    def named_in(self, *prompts: str) -> list[str]:
        """The embeddings whose names stand as words in the prompts, by name.
        Nothing is scanned for a prompt that holds no word at all."""
        texts = [parse_prompt(prompt).text for prompt in prompts]
        if not any(text.strip() for text in texts):
            return []
        usable, pickles = self._scan()
        used = []
        for name in sorted({*usable, *pickles}):
            pattern = word_pattern(name)
            if any(pattern.search(text) for text in texts):
                used.append(name)
        return used


def word_pattern(name: str) -> re.Pattern[str]:
    """`name` as a whole word, in any case."""
    return re.compile(rf"(?<!\w){re.escape(name)}(?!\w)", re.IGNORECASE)


def _vectors(state: dict[str, Any], file_name: str) -> dict[str, Any]:
    if all(key in state for key in SDXL_KEYS):
        return {key: state[key] for key in SDXL_KEYS}
    if len(state) == 1:
        tensor = next(iter(state.values()))
    else:
        named = [key for key in SINGLE_KEYS if key in state]
        if not named:
            raise InputError(
                f"The embedding file {file_name} holds {len(state)} tensors, not one embedding's vectors."
            )
        tensor = state[named[0]]
    if tensor.ndim == 1:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 2 or 0 in tensor.shape:
        raise InputError(f"The embedding file {file_name} does not hold vectors (its tensor is {tuple(tensor.shape)}).")
    return {"single": tensor}


def read_embedding(path: Path, name: str) -> Embedding:
    """Read and check one embedding file (whole, once)."""
    data, _, state = read_safetensors(path, "embedding", "vectors")
    vectors = {key: tensor.float() for key, tensor in _vectors(state, path.name).items()}
    return Embedding(name=name, path=path, vectors=vectors, hash=hashlib.sha256(data).hexdigest())


def load_embeddings(library: EmbeddingLibrary, cache: ModelCache, *prompts: str) -> list[Embedding]:
    """The embeddings the prompts name, read once each into the cache."""
    loaded = []
    for name in library.named_in(*prompts):
        path = library.find(name)  # a pickle under that name is refused here, unread
        stat = path.stat()
        key = CacheKey(f"embedding:{path.resolve()}", f"{stat.st_size}-{stat.st_mtime_ns}", "cpu")
        loaded.append(cache.get(key, lambda path=path, name=name, size=stat.st_size: (read_embedding(path, name), size / 2**20)))
    return loaded


def token_for(index: int) -> str:
    """The token an embedding is loaded under: angle brackets keep any word from containing it, and it
    is lower-case, as CLIP's tokenizer reads text."""
    return f"<studio-ti-{index}>"


def spelled(prompt: str, embeddings: Sequence[Embedding]) -> str:
    """The prompt as the text encoder reads it: each embedding's name (whole word, any case, outside
    `<lora:...>` tags) written as its token. The prompt itself is recorded as typed."""
    if not embeddings:
        return prompt

    def replace(text: str) -> str:
        for index, embedding in enumerate(embeddings):
            text = word_pattern(embedding.name).sub(token_for(index), text)
        return text

    return outside_tags(prompt, replace)


def _encoder_pairs(pipe: Any) -> list[tuple[str, Any, Any]]:
    pairs = [("clip_l", pipe.tokenizer, pipe.text_encoder)]
    if is_sdxl(pipe):
        pairs.append(("clip_g", pipe.tokenizer_2, pipe.text_encoder_2))
    return pairs


def _check_fits(pipe: Any, embedding: Embedding, model_name: str) -> None:
    another = InputError(f"The embedding file {embedding.path.name} was made for another model than '{model_name}'.")
    if getattr(pipe, "tokenizer", None) is None or getattr(pipe, "text_encoder", None) is None:
        raise InputError(f"'{model_name}' has no CLIP text encoder, so embeddings cannot be used with it.")
    if is_sdxl(pipe) != embedding.for_sdxl:
        raise another
    for key, _, encoder in _encoder_pairs(pipe):
        width = encoder.get_input_embeddings().weight.shape[-1]
        if embedding.vectors["single" if not embedding.for_sdxl else key].shape[-1] != width:
            raise another


@contextmanager
def applied(pipe: Any, embeddings: Sequence[Embedding], model_name: str) -> Iterator[Callable[[str], str]]:
    """The embeddings added to the tokenizer(s) and text encoder(s) for the duration of the block, which
    gets the function that spells a prompt for them. Afterwards their tokens and vectors are removed,
    so a later run's tokenizer and text encoder are the model's own again."""
    if not embeddings:
        yield lambda prompt: prompt
        return
    for embedding in embeddings:  # every file checked before any is loaded
        _check_fits(pipe, embedding, model_name)
    loaded: list[tuple[list[str], Any, Any]] = []
    try:
        for index, embedding in enumerate(embeddings):
            token = token_for(index)
            rows = embedding.vectors["single"].shape[0] if not embedding.for_sdxl else embedding.vectors["clip_l"].shape[0]
            tokens = [token] + [f"{token}_{i}" for i in range(1, rows)]  # diffusers' names for further vectors
            for key, tokenizer, encoder in _encoder_pairs(pipe):
                vectors = embedding.vectors["single" if not embedding.for_sdxl else key]
                try:
                    with quiet_transformers():
                        pipe.load_textual_inversion(
                            vectors.to(dtype=encoder.dtype), token=token, tokenizer=tokenizer, text_encoder=encoder
                        )
                except StudioError:
                    raise
                except Exception:  # noqa: BLE001 (diffusers raises ValueError for shapes and tokens that do not fit)
                    log.info("Embedding %s did not fit %s", embedding.path, model_name, exc_info=True)
                    raise InputError(
                        f"The embedding file {embedding.path.name} was made for another model than '{model_name}'."
                    ) from None
                loaded.append((tokens, tokenizer, encoder))
        yield lambda prompt: spelled(prompt, embeddings)
    finally:
        for tokens, tokenizer, encoder in reversed(loaded):
            pipe.unload_textual_inversion(tokens, tokenizer=tokenizer, text_encoder=encoder)
