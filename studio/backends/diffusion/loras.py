"""LoRA files, as artists bring them from AUTOMATIC1111 and Civitai: `<lora:NAME:WEIGHT>` in a prompt.

- Finding: a LoRA's name is its file's stem (as in AUTOMATIC1111), looked for in `<data dir>/loras`
  and the operator's extra folders (Settings.lora_folders), subfolders included. Only `.safetensors`
  is ever read: a `.pt`/`.ckpt`/`.bin` is a pickle, which can run code when loaded, so it is refused.
- Reading: each file is read once into the runtime cache (its state dict and its AUTOMATIC1111 hash).
- Applying: diffusers' own `load_lora_weights` + `set_adapters`, which knows both the kohya/A1111
  key layout (LoRA and LoCon) and the diffusers/PEFT one. `applied()` always unloads them again, so
  the next run sees the model's plain weights.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.backends.diffusion.families import denoiser
from studio.backends.diffusion.prompts import NetworkTag
from studio.backends.named_files import scan_named_files
from studio.errors import InputError, StudioError
from studio.runtime import CacheKey, ModelCache

log = logging.getLogger(__name__)

LORA_SUFFIX = ".safetensors"
# Pickle formats: the same LoRAs exist in them, but unpickling a stranger's file can run its code.
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
# LyCORIS kinds diffusers cannot apply: their keys say what they are.
UNSUPPORTED_KINDS = {"hada_w1_a": "LoHa", "hada_w2_a": "LoHa", "lokr_w1": "LoKr", "lokr_w2": "LoKr",
                     "lokr_w1_a": "LoKr", "lokr_w2_a": "LoKr", "oft_blocks": "OFT", "oft_diag": "OFT"}
LORA_KINDS = ("lora", "lyco")  # AUTOMATIC1111 reads <lyco:...> as a LoRA too
SHORT_HASH = 12  # what AUTOMATIC1111 shows in `Lora hashes:`
MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit on a header


@dataclass(frozen=True)
class LoraWeights:
    """One LoRA file read: what diffusers loads, and what the record says about it."""

    name: str
    path: Path
    state_dict: dict[str, Any]
    metadata: dict[str, str]
    hash: str  # sha256 as AUTOMATIC1111 computes it (see addnet_hash)

    @property
    def short_hash(self) -> str:
        return self.hash[:SHORT_HASH]


@dataclass(frozen=True)
class AppliedLora:
    weights: LoraWeights
    weight: float


def lora_tags(*prompts: str) -> list[NetworkTag]:
    """The LoRA tags of the prompts (the negative prompt's too, as AUTOMATIC1111 reads them)."""
    from studio.backends.diffusion.prompts import parse_prompt

    return [tag for prompt in prompts for tag in parse_prompt(prompt).networks if tag.kind in LORA_KINDS]


class FileLibrary(ABC):
    """Files of one kind in the studio's folders, found by stem. Folders are read again on every
    look-up, so a file dropped in while the studio runs is found without a restart."""

    what = "file"  # what the files are, in messages
    where = ""  # where they go, in messages

    def __init__(self, folders: Sequence[Path]):
        self.folders = tuple(Path(f) for f in folders)
        # path -> ((size, mtime), full hash): files are hashed once while they stay the same
        self._hashes: dict[Path, tuple[tuple[int, int], str]] = {}

    def _scan(self) -> tuple[dict[str, Path], dict[str, Path]]:
        """(name -> .safetensors file, name -> pickle file); the first folder that has a name wins."""
        return scan_named_files(self.folders, LORA_SUFFIX, PICKLE_SUFFIXES)

    def names(self) -> list[str]:
        return sorted(self._scan()[0])

    def files(self) -> dict[str, Path]:
        """Every usable LoRA by name, from one look at the folders."""
        return dict(sorted(self._scan()[0].items()))

    def find(self, name: str) -> Path:
        """The `.safetensors` file named `name`; an InputError saying why not otherwise. The name is
        only compared with the files found, never joined into a path."""
        usable, pickles = self._scan()
        if name in usable:
            return usable[name]
        if name in pickles:
            raise InputError(
                f"The {self.what} file {pickles[name].name} is a pickle ({pickles[name].suffix}), which the studio "
                "never loads because it can run code: use its .safetensors version."
            )
        close = difflib.get_close_matches(name, list(usable), n=5, cutoff=0.4)
        hint = f" The closest names: {', '.join(close)}." if close else (
            f" The {self.what}s there: {', '.join(sorted(usable)[:8])}." if usable else
            f" There are no {self.what} .safetensors files in the {self.what} folders yet ({self.where}).")
        raise InputError(f"No {self.what} is named '{name}'.{hint}")

    def file_hash(self, path: Path) -> str:
        """The file's full hash as AUTOMATIC1111 records it for this kind; remembered while the file's
        size and time stay the same."""
        stat = path.stat()
        stamp = (stat.st_size, stat.st_mtime_ns)
        known = self._hashes.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        digest = self._compute_hash(path)
        self._hashes[path] = (stamp, digest)
        return digest

    @abstractmethod
    def _compute_hash(self, path: Path) -> str:
        """The hash AUTOMATIC1111 records for this kind of file (each kind hashes differently)."""

    def find_by_hash(self, short_hash: str, name: str | None = None) -> str | None:
        """The name of the file whose hash starts with `short_hash` (as a picture's text records it),
        whatever it is called now; the file called `name` is tried first. None when no file has it."""
        wanted = short_hash.strip().lower()
        if not wanted:
            return None
        usable = self._scan()[0]
        order = ([name] if name in usable else []) + [n for n in usable if n != name]
        for candidate in order:
            try:
                if self.file_hash(usable[candidate]).lower().startswith(wanted):
                    return candidate
            except (OSError, InputError):
                continue  # unreadable or damaged: not the file looked for
        return None


class LoraLibrary(FileLibrary):
    """The LoRA files in the studio's folders, found by name."""

    what = "LoRA"
    where = "<data dir>/loras, --lora-dir"

    def _compute_hash(self, path: Path) -> str:
        return file_addnet_hash(path)


def addnet_hash(data: bytes) -> str:
    """AUTOMATIC1111's hash of a LoRA (`addnet_hash_safetensors`): sha256 of the tensor bytes after the
    8-byte header length and the JSON header, so editing the metadata does not change it."""
    length = int.from_bytes(data[:8], "little")
    return hashlib.sha256(memoryview(data)[8 + length:]).hexdigest()


def file_addnet_hash(path: Path) -> str:
    """`addnet_hash` of a file read in pieces (or the hash its metadata carries, which A1111 shows first),
    for looking a LoRA up by hash without holding it in memory."""
    with open(path, "rb") as handle:
        start = handle.read(8)
        length = int.from_bytes(start, "little") if len(start) == 8 else 0
        header = read_header(start + handle.read(length), path.name) if length else {}
        metadata = header.get("__metadata__")
        if isinstance(metadata, dict) and metadata.get("sshs_model_hash"):
            return str(metadata["sshs_model_hash"])
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_header(data: bytes, file_name: str, what: str = "LoRA") -> dict[str, Any]:
    """The JSON header of a safetensors file, checked enough to say in one sentence why it is not one."""
    bad = InputError(f"The {what} file {file_name} is not a readable .safetensors file (damaged or incomplete?).")
    if len(data) < 8:
        raise bad
    length = int.from_bytes(data[:8], "little")
    if length <= 0 or 8 + length > len(data):
        raise bad
    try:
        header = json.loads(data[8:8 + length])
    except (UnicodeDecodeError, ValueError):
        raise bad from None
    if not isinstance(header, dict):
        raise bad
    return header


def file_header(path: Path) -> dict[str, Any]:
    """A safetensors file's JSON header (tensor names, shapes, `__metadata__`), reading the header alone;
    empty when the file is not readable (listing a folder never fails on one bad file)."""
    try:
        with path.open("rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if not 0 < length <= MAX_HEADER_BYTES:
                return {}
            header = json.loads(handle.read(length))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return header if isinstance(header, dict) else {}


def file_metadata(path: Path) -> dict[str, str]:
    """A safetensors file's `__metadata__` (training tags and the like), from its header alone."""
    metadata = file_header(path).get("__metadata__")
    return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}


def read_safetensors(path: Path, what: str, contents: str) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """(the file's bytes, its header, its tensors), read whole and once; or one sentence naming the
    file that says why it cannot be used (`what`: "LoRA"; `contents`: what an empty one lacks)."""
    from safetensors.torch import load

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"The {what} file {path.name} could not be read ({exc.strerror or exc}).") from None
    header = read_header(data, path.name, what)
    try:
        tensors = load(data)
    except Exception:  # noqa: BLE001 (safetensors raises its own error types for a damaged file)
        raise InputError(
            f"The {what} file {path.name} is not a readable .safetensors file (damaged or incomplete?)."
        ) from None
    if not tensors:
        raise InputError(f"The {what} file {path.name} holds no {contents}.")
    return data, header, tensors


def read_lora(path: Path, name: str) -> LoraWeights:
    """Read and check one LoRA file (whole, once)."""
    data, header, state_dict = read_safetensors(path, "LoRA", "weights")
    metadata = header.get("__metadata__") or {}
    metadata = {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}
    for key in header:
        for marker, kind in UNSUPPORTED_KINDS.items():
            if marker in key:
                raise InputError(
                    f"The LoRA file {path.name} is a LyCORIS {kind}, which the studio cannot apply yet; "
                    "use a plain LoRA (or LoCon)."
                )
    # AUTOMATIC1111 shows a hash the file carries (sshs_model_hash) before computing one.
    digest = metadata.get("sshs_model_hash") or addnet_hash(data)
    return LoraWeights(name=name, path=path, state_dict=state_dict, metadata=metadata, hash=digest)


def trigger_words(weights: LoraWeights, most: int = 20) -> list[str]:
    """The training captions' most frequent tags (kohya's `ss_tag_frequency`): the words that call the
    LoRA's subject up. Empty when the file does not say."""
    try:
        frequency = json.loads(weights.metadata.get("ss_tag_frequency", "{}"))
    except ValueError:
        return []
    counts: dict[str, int] = {}
    if isinstance(frequency, dict):
        for tags in frequency.values():
            if isinstance(tags, dict):
                for tag, count in tags.items():
                    if isinstance(count, int | float):
                        counts[tag.strip()] = counts.get(tag.strip(), 0) + int(count)
    return [tag for tag, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:most] if tag]


def load_loras(library: LoraLibrary, cache: ModelCache, tags: Sequence[NetworkTag]) -> list[AppliedLora]:
    """The tags' LoRAs, read once each into the cache. One name twice adds its weights: a LoRA's
    change is linear in its weight, so that is what applying it twice would do."""
    weights: dict[str, float] = {}
    for tag in tags:
        weights[tag.name] = weights.get(tag.name, 0.0) + tag.weight
    return [AppliedLora(cached_lora(cache, library.find(name), name), weight) for name, weight in weights.items()]


def cached_lora(cache: ModelCache, path: Path, name: str) -> LoraWeights:
    """One LoRA file, read once into the cache under `name`."""
    stat = path.stat()
    # Keyed by the file and its size and time: an edited or replaced file is read again.
    key = CacheKey(f"lora:{path.resolve()}", f"{stat.st_size}-{stat.st_mtime_ns}", "cpu")
    return cache.get(key, lambda: (read_lora(path, name), path.stat().st_size / 2**20))


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers prints a table of every text-encoder weight "MISSING" when an adapter is added:
    the base weights, which an adapter never holds. Nothing for the log."""
    import transformers.utils.logging as transformers_logging

    before = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(before)


def _adapters_in(pipe: Any) -> set[str]:
    return {name for names in pipe.get_list_adapters().values() for name in names}


STATE = "_studio_loras"  # on the UNet (or transformer) the pipelines share: which LoRAs (hash, weight) are active now
ADAPTERS = "_studio_lora_adapters"  # on the same module: (hash, nth in its run) -> adapter of each LoRA loaded
MOST_KEPT = 8  # LoRAs kept loaded (switched off) between runs; past this the model gets its plain weights back


def _loaded(pipe: Any) -> tuple:
    return getattr(denoiser(pipe), STATE, ())


def _unload(pipe: Any) -> None:
    pipe.unload_lora_weights()
    setattr(denoiser(pipe), STATE, ())
    setattr(denoiser(pipe), ADAPTERS, {})


def without_loras(pipe: Any) -> None:
    """The model's own weights at work again: loaded LoRAs are switched off, not removed, so that
    turning them on again later is instant. A switched-off PEFT layer runs only the original module,
    so the pictures are exactly those of a model that never had a LoRA."""
    if _loaded(pipe):
        pipe.disable_lora()
        setattr(denoiser(pipe), STATE, ())


def _adapter_keys(loras: Sequence[AppliedLora]) -> list[tuple[str, int]]:
    """A key per LoRA of a run: its file's hash, and which occurrence of that file it is (a file named
    twice in one prompt counts twice, as in AUTOMATIC1111)."""
    seen: dict[str, int] = {}
    keys = []
    for lora in loras:
        seen[lora.weights.hash] = seen.get(lora.weights.hash, -1) + 1
        keys.append((lora.weights.hash, seen[lora.weights.hash]))
    return keys


@contextmanager
def applied(pipe: Any, loras: Sequence[AppliedLora], model_name: str) -> Iterator[None]:
    """The pipeline's UNet and text encoder(s) with exactly these LoRAs on for the block.

    Loading a LoRA into the model takes seconds, so LoRAs stay loaded after their run: the next run
    with the same files only sets their weights, and a run without them switches them off (which gives
    exactly the pictures a fresh start gives). When more than MOST_KEPT files would be loaded, they are
    all taken out (the PEFT layers removed, the original modules put back) before the new ones load.
    """
    wanted = tuple((lora.weights.hash, lora.weight) for lora in loras)
    if _loaded(pipe) == wanted:
        yield
        return
    if not loras:
        without_loras(pipe)
        yield
        return
    keys = _adapter_keys(loras)
    kept: dict[tuple[str, int], str] = dict(getattr(denoiser(pipe), ADAPTERS, None) or {})
    if len(kept.keys() | set(keys)) > MOST_KEPT:
        _unload(pipe)
        kept = {}
    try:
        for key, lora in zip(keys, loras, strict=True):
            if key in kept:
                continue
            adapter = f"studio_lora_{key[0][:16]}_{key[1]}"  # file names may hold dots, which module names cannot
            try:
                # A copy: diffusers pops keys from the dict it converts, and the cached one is reused.
                with quiet_transformers():
                    pipe.load_lora_weights(dict(lora.weights.state_dict), adapter_name=adapter)
            except StudioError:
                raise
            except Exception:  # noqa: BLE001 (diffusers and peft raise many kinds for keys/shapes that do not fit)
                log.info("LoRA %s did not fit %s", lora.weights.path, model_name, exc_info=True)
                raise InputError(
                    f"The LoRA file {lora.weights.path.name} was made for another model than '{model_name}'."
                ) from None
            if adapter not in _adapters_in(pipe):  # no key matched any layer: nothing would change
                raise InputError(
                    f"The LoRA file {lora.weights.path.name} was made for another model than '{model_name}'."
                )
            kept[key] = adapter
            setattr(denoiser(pipe), ADAPTERS, kept)
        pipe.enable_lora()
        pipe.set_adapters([kept[key] for key in keys], [lora.weight for lora in loras])
    except BaseException:
        _unload(pipe)  # half-loaded: back to the plain weights
        raise
    setattr(denoiser(pipe), STATE, wanted)
    yield


# -- what the LoRA picker shows (read-only: headers and preview pictures, never the weights) -----------

PREVIEW_SUFFIXES = (".preview.png", ".png", ".preview.jpg", ".jpg", ".preview.jpeg", ".jpeg",
                    ".preview.webp", ".webp")  # as AUTOMATIC1111 and the Civitai helpers save them


@dataclass(frozen=True)
class LoraCard:
    """One LoRA as the picker lists it: its name, the picture beside its file, its trigger words."""

    name: str
    path: Path
    preview: Path | None
    trigger_words: tuple[str, ...]


def preview_of(path: Path) -> Path | None:
    """`NAME.preview.png` (or `NAME.png`, .jpg, .webp) beside the LoRA file, if there is one."""
    for suffix in PREVIEW_SUFFIXES:
        candidate = path.with_name(path.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def lora_cards(library: LoraLibrary) -> list[LoraCard]:
    """Every usable LoRA of the library's folders, by name."""
    cards = []
    for name, path in library.files().items():
        shell = LoraWeights(name=name, path=path, state_dict={}, metadata=file_metadata(path), hash="")
        cards.append(LoraCard(name, path, preview_of(path), tuple(trigger_words(shell))))
    return cards
