"""Models that live on the Hugging Face hub: find them in the local cache, download them, or
explain in one message what to do when neither is possible.

Only safe weight formats are ever fetched: pickled checkpoints are filtered out of every
download, so they can never be loaded by accident.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from studio.catalog import ModelEntry
from studio.errors import ModelUnavailable, StudioError

log = logging.getLogger(__name__)

# Never fetched, whatever a repository holds.
UNSAFE_PATTERNS = ["*.bin", "*.ckpt", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.msgpack", "*.h5", "*.ot"]
# Light files every model folder needs besides its weights.
CONFIG_PATTERNS = ["*.json", "*.txt", "*.model", "*.tiktoken", "*.jinja", "*.md"]


def download_patterns(entry: ModelEntry) -> tuple[list[str] | None, list[str]]:
    """(allow, ignore) patterns for snapshot_download: one weights variant, nothing unsafe."""
    ignore = list(UNSAFE_PATTERNS)
    if entry.family == "llama.cpp" and entry.files:
        return CONFIG_PATTERNS + list(entry.files), ignore
    if entry.variant:
        return CONFIG_PATTERNS + [f"*.{entry.variant}.safetensors"], ignore
    return None, ignore


def missing_message(entry: ModelEntry, reason: str) -> str:
    return (
        f"The model '{entry.name}' ({entry.repo}, {entry.size_text()}) is not on this machine and {reason}. "
        f"Fetch it where there is internet with: python -m studio download {entry.id}  "
        f"(it lands in the Hugging Face cache; set HF_HOME to use a cache elsewhere), "
        f"or point the studio at a local copy: an entry with path = \"/folder/of/the/model\" in your "
        f"models file (--models-file or STUDIO_MODELS_FILE)."
    )


def locate(entry: ModelEntry, *, offline: bool, download_if_missing: bool = True) -> Path:
    """The local folder (or file) holding `entry`, downloading it first if allowed and needed."""
    if entry.source == "local":
        assert entry.path is not None
        if not entry.path.exists():
            raise StudioError(f"The model '{entry.name}' points at {entry.path}, which does not exist.")
        return entry.path
    if entry.source != "download" or not entry.repo:
        raise StudioError(f"'{entry.id}' is built in; it needs no download.")
    cached = _from_cache(entry)
    if cached is not None:
        return cached
    if offline:
        raise ModelUnavailable(missing_message(entry, "the studio is running offline"))
    if not download_if_missing:
        raise ModelUnavailable(missing_message(entry, "it has not been downloaded yet"))
    return download(entry)


def _from_cache(entry: ModelEntry) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    allow, ignore = download_patterns(entry)
    try:
        folder = Path(
            snapshot_download(
                entry.repo, revision=entry.revision, allow_patterns=allow, ignore_patterns=ignore, local_files_only=True
            )
        )
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        return None
    # A snapshot folder can exist with only some files in it; require at least one weights file.
    if not any(folder.rglob("*.safetensors")) and not any(folder.rglob("*.gguf")) and not any(folder.rglob("*.onnx")):
        return None
    return folder


def locate_file(entry: ModelEntry, *, offline: bool) -> Path:
    """The one weights file of a single-file hub model (a GGUF repo holds many quantisations; the
    entry names the one to use), from the cache or fetched with hf_hub_download."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    if entry.source != "download" or not entry.repo or not entry.files:
        raise StudioError(f"'{entry.id}' does not name a file of a hub repository.")
    try:
        return Path(hf_hub_download(entry.repo, entry.files[0], revision=entry.revision, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        pass
    if offline:
        raise ModelUnavailable(missing_message(entry, "the studio is running offline"))
    with _download_errors(entry):
        return Path(hf_hub_download(entry.repo, entry.files[0], revision=entry.revision))


@contextmanager
def _download_errors(entry: ModelEntry) -> Iterator[None]:
    """The hub client's failures, as the one message a person needs."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    try:
        yield
    except OfflineModeIsEnabled:
        raise ModelUnavailable(missing_message(entry, "HF_HUB_OFFLINE is set")) from None
    except RepositoryNotFoundError:
        raise ModelUnavailable(
            f"The hub has no repository '{entry.repo}' (or it needs a login: run `hf auth login`)."
        ) from None
    except LocalEntryNotFoundError:  # what the hub client raises when it cannot connect
        raise ModelUnavailable(missing_message(entry, "the hub cannot be reached")) from None
    except EntryNotFoundError:
        wanted = entry.files[0] if entry.files else "a file the model needs"
        raise ModelUnavailable(f"The hub repository '{entry.repo}' has no file '{wanted}'.") from None
    except (HfHubHTTPError, OSError) as exc:
        raise ModelUnavailable(missing_message(entry, f"the download failed ({exc})")) from None


def download(entry: ModelEntry) -> Path:
    """Fetch `entry` into the Hugging Face cache (with a progress bar on the terminal)."""
    from huggingface_hub import snapshot_download

    if entry.source != "download" or not entry.repo:
        raise StudioError(f"'{entry.id}' is not a hub model; nothing to download.")
    allow, ignore = download_patterns(entry)
    log.info("downloading %s (%s)", entry.repo, entry.size_text())
    with _download_errors(entry):
        return Path(
            snapshot_download(entry.repo, revision=entry.revision, allow_patterns=allow, ignore_patterns=ignore)
        )
