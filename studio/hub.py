"""Models that live on the Hugging Face hub: find them in the local cache, download them, or
explain in one message what to do when neither is possible.

Only safe weight formats are ever fetched: pickled checkpoints are filtered out of every
download, so they can never be loaded by accident.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from studio.catalog import ModelEntry
from studio.errors import ModelUnavailable, StudioError
from studio.runtime import NEVER_CANCELLED, CancelToken

log = logging.getLogger(__name__)

# Never fetched, whatever a repository holds.
UNSAFE_PATTERNS = ["*.bin", "*.ckpt", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.msgpack", "*.h5", "*.ot"]
# Light files every model folder needs besides its weights.
CONFIG_PATTERNS = ["*.json", "*.txt", "*.model", "*.tiktoken", "*.jinja", "*.md"]


def download_patterns(entry: ModelEntry) -> tuple[list[str] | None, list[str]]:
    """(allow, ignore) patterns for snapshot_download: one weights variant, nothing unsafe."""
    ignore = list(UNSAFE_PATTERNS)
    if entry.family in ("llama.cpp", "diffusers") and entry.files:  # diffusers: the folders to fetch
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
        f"models file (--models-file or STUDIO_MODELS_FILE).{entry.gate_text()}"
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
    if entry.base and entry.files:  # one transformer file from a repo of many (a GGUF quantisation)
        return _transformer_file(entry, offline=offline, download_if_missing=download_if_missing)
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


def _transformer_file(entry: ModelEntry, *, offline: bool, download_if_missing: bool) -> Path:
    """The entry's one file in the cache (another quantisation of the same repo does not count), or
    fetched through `download` (its progress, Stop and disk check) when allowed."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(entry.repo, entry.files[0], revision=entry.revision)
    if isinstance(cached, str):
        return Path(cached)
    if offline:
        raise ModelUnavailable(missing_message(entry, "the studio is running offline"))
    if not download_if_missing:
        raise ModelUnavailable(missing_message(entry, "it has not been downloaded yet"))
    return download(entry) / entry.files[0]


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
            f"{entry.gate_text()}"
        ) from None
    except LocalEntryNotFoundError:  # what the hub client raises when it cannot connect
        raise ModelUnavailable(missing_message(entry, "the hub cannot be reached")) from None
    except EntryNotFoundError:
        wanted = entry.files[0] if entry.files else "a file the model needs"
        raise ModelUnavailable(f"The hub repository '{entry.repo}' has no file '{wanted}'.") from None
    except (HfHubHTTPError, OSError) as exc:
        raise ModelUnavailable(missing_message(entry, f"the download failed ({exc})")) from None


def _no_bytes_progress(done: int, total: int) -> None:
    """Where download progress goes when nobody is watching (the terminal's own bar still shows)."""


def download(
    entry: ModelEntry,
    progress: Callable[[int, int], None] = _no_bytes_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> Path:
    """Fetch `entry` into the Hugging Face cache: `progress(bytes done, bytes in all)` as it goes,
    Stop honoured between chunks. The disk space is checked first. A stopped or broken download
    leaves its partial weights files, and the next try (in this run or a later one) continues inside them."""
    from huggingface_hub import constants, snapshot_download

    if entry.source != "download" or not entry.repo:
        raise StudioError(f"'{entry.id}' is not a hub model; nothing to download.")
    allow, ignore = download_patterns(entry)
    # The client reports and checks Stop once per read; 1 MB reads (not its 10 MB) keep both lively.
    constants.DOWNLOAD_CHUNK_SIZE = min(constants.DOWNLOAD_CHUNK_SIZE, READ_BYTES)
    log.info("downloading %s (%s)", entry.repo, entry.size_text())
    with _download_errors(entry):
        planned = snapshot_download(entry.repo, revision=entry.revision, allow_patterns=allow,
                                    ignore_patterns=ignore, dry_run=True)
        if not any(name.filename.endswith(SAFE_WEIGHTS) for name in planned):
            raise ModelUnavailable(
                f"The hub repository '{entry.repo}' offers no safetensors, GGUF or ONNX weights for this model "
                "(only formats the studio never loads, such as pickles)."
            )
        fetching = [f for f in planned if f.will_download]
        total = sum(f.file_size or 0 for f in fetching)
        check_disk_space(entry, total)
        # The small files first (configs, the model card), then each weights file through a partial file that
        # outlives this run; the last pass only links the weights into the snapshot.
        light = [f.filename for f in fetching if not f.filename.endswith(SAFE_WEIGHTS)]
        if light:
            snapshot_download(entry.repo, revision=entry.revision, allow_patterns=light,
                              tqdm_class=_progress_bars(lambda done, _all: progress(done, total), cancel))
        done = sum(f.file_size or 0 for f in fetching if f.filename in light)
        for weights in (f for f in fetching if f.filename.endswith(SAFE_WEIGHTS)):
            _resumable_file(entry, weights.filename, lambda got, _all, before=done: progress(before + got, total),
                            cancel)
            done += weights.file_size or 0
        return Path(snapshot_download(entry.repo, revision=entry.revision, allow_patterns=allow,
                                      ignore_patterns=ignore, tqdm_class=_progress_bars(_no_bytes_progress, cancel)))


def _resumable_file(entry: ModelEntry, filename: str, progress: Callable[[int, int], None],
                    cancel: CancelToken) -> None:
    """One weights file fetched into the cache's blobs through a partial file of a fixed name, so a download
    stopped or broken in one run continues from the bytes on disk in the next (huggingface_hub 2.4's own
    partial files belong to one process and are deleted when it fails). snapshot_download then finds the
    blob and only links it."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers
    from huggingface_hub.utils import tqdm as hub_tqdm

    assert entry.repo is not None
    meta = get_hf_file_metadata(hf_hub_url(entry.repo, filename, revision=entry.revision))
    if not meta.etag or not meta.location:
        return  # nothing to name the blob by: snapshot_download fetches it as usual
    blobs = cache_folder() / ("models--" + entry.repo.replace("/", "--")) / "blobs"
    blob = blobs / meta.etag
    if blob.exists():
        return
    blobs.mkdir(parents=True, exist_ok=True)
    partial = blobs / f"{meta.etag}.studio-partial"

    class FileProgress(hub_tqdm):
        # Counted here, from the bytes already on disk: a bar hidden (no terminal) keeps no count of its own.
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.bytes_done = int(kwargs.get("initial") or 0)
            progress(self.bytes_done, int(meta.size or 0))

        def update(self, n: float | None = 1) -> bool | None:
            cancel.raise_if_cancelled()
            self.bytes_done += int(n or 0)
            progress(self.bytes_done, int(meta.size or 0))
            return super().update(n)

    with open(partial, "ab") as handle:
        http_get(meta.location, handle, resume_size=handle.tell(), headers=build_hf_headers(),
                 expected_size=meta.size, displayed_filename=filename, tqdm_class=FileProgress)
    if meta.size is not None and partial.stat().st_size != meta.size:
        partial.unlink()  # not the file the hub has (it changed meanwhile?): start afresh next time
        raise ModelUnavailable(missing_message(entry, "the downloaded file did not have the size the hub gives"))
    partial.replace(blob)


READ_BYTES = 2**20
# What a download must bring for the model to be usable.
SAFE_WEIGHTS = (".safetensors", ".gguf", ".onnx")
# Room kept free beyond the download itself, so the machine is not left with a full disk.
DISK_MARGIN_BYTES = 512 * 2**20


def cache_folder() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def free_bytes() -> int:
    """Free space on the disk the model cache is (or will be) on."""
    probe = cache_folder()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_disk_space(entry: ModelEntry, needed: int) -> None:
    """Refuse before the first byte when the files would not fit."""
    folder, free = cache_folder(), free_bytes()
    if needed + DISK_MARGIN_BYTES > free:
        raise ModelUnavailable(
            f"'{entry.name}' needs {needed / 2**30:.1f} GB, and only {free / 2**30:.1f} GB is free at {folder}. "
            "Free some space (the Models tab deletes downloaded models) or set HF_HOME to a bigger disk."
        )


def _progress_bars(report: Callable[[int, int], None], cancel: CancelToken) -> type:
    """A tqdm class for snapshot_download: its byte bar's updates go to `report`, and every update
    checks Stop, so a stopped download ends within one chunk."""
    from huggingface_hub.utils import tqdm as hub_tqdm

    class DownloadProgress(hub_tqdm):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            # snapshot_download's "Reconstructing" bar counts the bytes written to disk, over all files.
            self.counts_bytes = kwargs.get("unit") == "B" and str(kwargs.get("desc", "")).startswith("Reconstructing")
            self.bytes_done = 0

        def update(self, n: float | None = 1) -> bool | None:
            cancel.raise_if_cancelled()
            if self.counts_bytes:
                self.bytes_done += int(n or 0)
                report(self.bytes_done, int(self.total or 0))
            return super().update(n)

    return DownloadProgress
