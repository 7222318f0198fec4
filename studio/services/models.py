"""The model manager: every catalogue model with its state on this machine, downloads with
progress and Stop, deletion with the space it frees, and the model cache's disk use."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from studio import hub
from studio.catalog import Catalog, ModelEntry
from studio.errors import InputError
from studio.runtime import NEVER_CANCELLED, CancelToken, ModelCache
from studio.settings import Settings

BUILT_IN, DOWNLOADED, LOCAL, NOT_HERE, PARTLY = "built in", "downloaded", "on this machine", "not here", "partly here"


@dataclass(frozen=True)
class ModelRow:
    entry: ModelEntry
    state: str
    disk_bytes: int  # what its files take in the model cache now (0 for built-in and local models)


def folder_bytes(folder: Path) -> int:
    """Bytes the files under `folder` take; the hub cache's snapshot links count nothing."""
    total = 0
    for root, _, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def size_text(count: float) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{int(count)} B"


class ModelManager:
    def __init__(self, settings: Settings, catalog: Catalog, cache: ModelCache):
        self.settings = settings
        self.catalog = catalog
        self.cache = cache

    def repo_folder(self, entry: ModelEntry) -> Path:
        """Where huggingface_hub keeps a hub model: one folder per repository."""
        assert entry.repo is not None
        return hub.cache_folder() / ("models--" + entry.repo.replace("/", "--"))

    def row(self, entry: ModelEntry) -> ModelRow:
        if entry.builtin:
            return ModelRow(entry, BUILT_IN, 0)
        if entry.source == "local":
            return ModelRow(entry, LOCAL if entry.path is not None and entry.path.exists() else NOT_HERE, 0)
        folder = self.repo_folder(entry)
        if not folder.is_dir():
            return ModelRow(entry, NOT_HERE, 0)
        present = self.is_downloaded(entry)
        return ModelRow(entry, DOWNLOADED if present else PARTLY, folder_bytes(folder))

    def is_downloaded(self, entry: ModelEntry) -> bool:
        try:
            if entry.family == "llama.cpp" and entry.files:
                from huggingface_hub import try_to_load_from_cache

                return isinstance(try_to_load_from_cache(entry.repo, entry.files[0], revision=entry.revision), str)
            hub.locate(entry, offline=True, download_if_missing=False)
            return True
        except Exception:  # noqa: BLE001 (any failure to find it means it is not usable here)
            return False

    def rows(self) -> list[ModelRow]:
        return [self.row(entry) for entry in self.catalog.entries()]

    def cache_bytes(self) -> int:
        folder = hub.cache_folder()
        return folder_bytes(folder) if folder.is_dir() else 0

    def free_bytes(self) -> int:
        return hub.free_bytes()

    def _hub_entry(self, model_id: str) -> ModelEntry:
        entry = self.catalog.get(model_id)
        if entry.source != "download" or not entry.repo:
            where = "built in" if entry.builtin else "a model of yours on this machine"
            raise InputError(f"'{entry.name}' is {where}; there is nothing to download or delete.")
        return entry

    def download(
        self,
        model_id: str,
        progress: Callable[[int, int], None] = lambda done, total: None,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> Path:
        """Fetch a hub model (resuming a download that stopped); hosted, visitors may not."""
        if self.settings.hosted:
            raise InputError("Only the operator downloads models on a hosted studio.")
        if self.settings.offline:
            raise InputError("The studio is running offline (--offline); start it without that flag to download.")
        entry = self._hub_entry(model_id)
        if entry.family == "llama.cpp" and entry.files:
            return hub.locate_file(entry, offline=False)
        return hub.download(entry, progress, cancel)

    def delete(self, model_id: str) -> int:
        """Remove a downloaded model's files (partial ones too); the bytes freed."""
        if self.settings.hosted:
            raise InputError("Only the operator deletes models on a hosted studio.")
        entry = self._hub_entry(model_id)
        folder = self.repo_folder(entry)
        if not folder.is_dir():
            raise InputError(f"'{entry.name}' is not downloaded; there is nothing to delete.")
        freed = folder_bytes(folder)
        for key in self.cache.keys():  # noqa: SIM118 (a cache, not a dict)
            if key.model_id == model_id:  # its weights in memory go too, so nothing runs on deleted files
                self.cache.clear()
                break
        shutil.rmtree(folder)
        return freed
