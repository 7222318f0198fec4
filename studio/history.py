"""The gallery: every result the studio makes, as a file under the data dir plus a row in SQLite.

Saving is crash-safe: the file is written under a temporary name, flushed and renamed
into place, then its row is inserted in one transaction (WAL journal). A crash between
the two leaves at worst an unlisted file, never a row without its file or a damaged
database. Items whose file has gone missing are not listed.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from studio import claims
from studio.errors import StudioError
from studio.media.images import image_digest
from studio.media.png_info import save_png

THUMB_SIDE = 320
_PARTIAL = re.compile(r"\.(w[0-9a-f]{12})\.partial$")
MAX_ITEM_ID = 2**63 - 1  # SQLite's largest integer: a bigger id names no item
SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    created  REAL    NOT NULL,
    task     TEXT    NOT NULL,
    model    TEXT    NOT NULL,
    seed     INTEGER,
    params   TEXT    NOT NULL,
    file     TEXT    NOT NULL,
    preview  TEXT,
    owner    TEXT
);
CREATE INDEX IF NOT EXISTS items_created ON items (created DESC);
CREATE INDEX IF NOT EXISTS items_task ON items (task, created DESC);
"""


@dataclass(frozen=True)
class GalleryItem:
    id: int
    created: float
    task: str
    model: str
    seed: int | None
    params: dict[str, Any]
    file: Path  # absolute
    preview: Path  # absolute: an image to show for this item
    owner: str | None

    @property
    def created_text(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.created))


class GallerySaveError(StudioError):
    """The result could not be kept (disk full, permissions)."""


class Gallery:
    """`scope`, when given, names the owner whose items this call may see and whose new items it
    tags (a hosted visitor's session); returning None means the whole gallery (a desktop user)."""

    def __init__(self, data_dir: Path, scope: Callable[[], str | None] | None = None):
        self.data_dir = Path(data_dir).resolve()
        self._scope = scope or (lambda: None)
        self.outputs_dir = self.data_dir / "outputs"
        self.inputs_dir = self.data_dir / "inputs"
        self.db_path = self.data_dir / "gallery.sqlite3"
        self._write_lock = threading.Lock()
        for folder in (self.outputs_dir, self.inputs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.claims_dir = self.data_dir / "claims"
        claims.claim(self.claims_dir)
        with self._connect() as db:
            db.executescript(SCHEMA)
        self._remove_partial_files()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.db_path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.row_factory = sqlite3.Row
            yield db
        finally:
            db.close()

    def _remove_partial_files(self) -> None:
        """Files left half-written by a crash are never listed; tidy away those whose writer has ended
        (another process sharing this data dir may be writing the rest right now)."""
        for folder in (self.outputs_dir, self.inputs_dir):
            for leftover in folder.rglob("*.partial"):
                writer = _PARTIAL.search(leftover.name)
                if writer is None or not claims.is_alive(self.claims_dir, writer.group(1)):
                    leftover.unlink(missing_ok=True)
        claims.forget_dead(self.claims_dir)

    def set_scope(self, scope: Callable[[], str | None]) -> None:
        self._scope = scope

    def _owner(self, owner: str | None) -> str | None:
        return owner if owner is not None else self._scope()

    # -- writing --------------------------------------------------------------------------

    def _new_output_path(self, task: str, suffix: str) -> Path:
        day = time.strftime("%Y-%m-%d")
        stamp = time.strftime("%H%M%S")
        folder = self.outputs_dir / day
        _make_folder(folder)
        return folder / f"{task}-{stamp}-{secrets.token_hex(3)}{suffix}"

    def keep_input(self, image: Image.Image) -> str:
        """Store an input image once (by content) so an item can be re-run; returns its relative path."""
        digest = image_digest(image)
        path = self.inputs_dir / digest[:2] / f"{digest}.png"
        if not path.exists():
            _make_folder(path.parent)
            _write_atomically(path, lambda tmp: image.save(tmp, format="PNG"))
        return str(path.relative_to(self.data_dir))

    def keep_input_file(self, source: Path) -> str:
        """Store any input file once (by content, keeping its suffix); returns its relative path."""
        import hashlib

        digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
        path = self.inputs_dir / digest[:2] / f"{digest}{Path(source).suffix.lower()}"
        if not path.exists():
            _make_folder(path.parent)
            _write_atomically(path, lambda tmp: tmp.write_bytes(Path(source).read_bytes()))
        return str(path.relative_to(self.data_dir))

    def add_image(
        self,
        image: Image.Image,
        *,
        task: str,
        model: str,
        params: dict[str, Any],
        seed: int | None = None,
        owner: str | None = None,
        png_text: dict[str, str] | None = None,
    ) -> GalleryItem:
        """Save an image result as a PNG carrying its parameters, and list it."""
        text = {"studio": json.dumps(params, sort_keys=True, default=str)}
        text.update(png_text or {})
        return self.add_file(
            lambda tmp: save_png(image, tmp, text),
            suffix=".png",
            preview=image,
            task=task,
            model=model,
            params=params,
            seed=seed,
            owner=owner,
        )

    def add_file(
        self,
        write: Callable[[Path], None],
        *,
        suffix: str,
        task: str,
        model: str,
        params: dict[str, Any],
        preview: Image.Image | None = None,
        seed: int | None = None,
        owner: str | None = None,
        siblings: dict[str, Callable[[Path], None]] | None = None,
    ) -> GalleryItem:
        """Save any result (text, audio, MIDI, video) written by `write(path)`, with an optional
        preview picture for the grid (a piano roll, a frame), and list it. `siblings` maps a
        suffix to a writer for companion files kept beside it (a walk's GIF beside its MP4)."""
        path = self._new_output_path(task, suffix)
        written: list[Path] = []
        try:
            for sibling_suffix, sibling_write in (siblings or {}).items():
                sibling = path.with_suffix(sibling_suffix)
                _write_atomically(sibling, sibling_write)
                written.append(sibling)
            _write_atomically(path, write)
            written.append(path)
            thumb = self._thumbnail(preview if preview is not None else _placeholder(task), path)
            written.append(thumb)
            return self._insert(task=task, model=model, params=params, seed=seed, file=path, preview=thumb,
                                owner=self._owner(owner))
        except BaseException:
            # Whatever failed (a full disk, the database, a bug), no file of an unlisted item stays behind.
            for done in written:
                done.unlink(missing_ok=True)
            raise

    def _thumbnail(self, image: Image.Image, path: Path) -> Path:
        """A small JPEG beside the result, so browsing the gallery never ships full-size files."""
        thumb_path = path.with_name(path.stem + ".thumb.jpg")
        small = image.convert("RGB")
        small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
        _write_atomically(thumb_path, lambda tmp: small.save(tmp, format="JPEG", quality=85))
        return thumb_path

    def _insert(
        self,
        *,
        task: str,
        model: str,
        params: dict[str, Any],
        seed: int | None,
        file: Path,
        preview: Path,
        owner: str | None,
    ) -> GalleryItem:
        created = time.time()
        params_json = json.dumps(params, sort_keys=True, default=str)
        try:
            with self._write_lock, self._connect() as db, db:
                cursor = db.execute(
                    "INSERT INTO items (created, task, model, seed, params, file, preview, owner) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        created,
                        task,
                        model,
                        seed,
                        params_json,
                        str(file.relative_to(self.data_dir)),
                        str(preview.relative_to(self.data_dir)),
                        owner,
                    ),
                )
                item_id = cursor.lastrowid
        except sqlite3.Error as exc:
            raise GallerySaveError(f"The result could not be listed in the gallery ({exc}).") from None
        return GalleryItem(item_id, created, task, model, seed, json.loads(params_json), file, preview, owner)

    # -- reading --------------------------------------------------------------------------

    def _item(self, row: sqlite3.Row) -> GalleryItem:
        return GalleryItem(
            id=row["id"],
            created=row["created"],
            task=row["task"],
            model=row["model"],
            seed=row["seed"],
            params=json.loads(row["params"]),
            file=self.data_dir / row["file"],
            preview=self.data_dir / (row["preview"] or row["file"]),
            owner=row["owner"],
        )

    def list(
        self, task: str | None = None, owner: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[GalleryItem]:
        """Newest first; only items whose file is present."""
        if task is not None and not isinstance(task, str):
            raise StudioError(f"Filter the gallery by a task's name, not by {type(task).__name__} {task!r:.40}.")
        query = "SELECT * FROM items WHERE 1=1"
        args: list[Any] = []
        owner = self._owner(owner)
        if task:
            query += " AND task = ?"
            args.append(task)
        if owner is not None:
            query += " AND owner = ?"
            args.append(owner)
        query += " ORDER BY created DESC, id DESC LIMIT ? OFFSET ?"
        args += [limit, offset]
        with self._connect() as db:
            rows = db.execute(query, args).fetchall()
        return [item for item in map(self._item, rows) if item.file.is_file()]

    def tasks(self) -> list[str]:
        owner = self._owner(None)
        query = "SELECT DISTINCT task FROM items" + (" WHERE owner = ?" if owner is not None else "")
        with self._connect() as db:
            return [row[0] for row in db.execute(query + " ORDER BY task", () if owner is None else (owner,))]

    def companion(self, item: GalleryItem, suffix: str) -> Path | None:
        """A file kept beside an item's own (e.g. the GIF of a walk saved as MP4), if there is one."""
        path = item.file.with_suffix(suffix)
        return path if path != item.file and path.is_file() else None

    def get(self, item_id: int) -> GalleryItem:
        if not 0 < item_id <= MAX_ITEM_ID:
            raise StudioError(f"Gallery item #{item_id} does not exist (it may have been deleted).")
        with self._connect() as db:
            row = db.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
        owner = self._owner(None)
        if row is None or (owner is not None and row["owner"] != owner):  # another visitor's item is not here
            raise StudioError(f"Gallery item #{item_id} does not exist (it may have been deleted).")
        item = self._item(row)
        if not item.file.is_file():
            raise StudioError(f"The file of gallery item #{item_id} is missing from {item.file.parent}.")
        return item

    def input_path(self, relative: str) -> Path:
        """Resolve a stored input reference, refusing anything outside the inputs folder."""
        path = (self.data_dir / relative).resolve()
        if not path.is_relative_to(self.inputs_dir) or not path.is_file():
            raise StudioError("The input image of this item is no longer stored, so it cannot be re-run.")
        return path

    # -- deleting -------------------------------------------------------------------------

    def delete(self, item_id: int) -> None:
        """Remove the row first, then the files: a crash in between leaves only an unlisted file."""
        item = self.get(item_id)
        with self._write_lock, self._connect() as db, db:
            db.execute("DELETE FROM items WHERE id = ?", (item_id,))
        self._remove_files(item)

    def _remove_files(self, item: GalleryItem) -> None:
        # The item's file, its thumbnail and any companions share its unique stem.
        for path in item.file.parent.glob(item.file.stem + ".*"):
            if path.is_relative_to(self.outputs_dir):
                path.unlink(missing_ok=True)
        item.preview.unlink(missing_ok=True)

    def delete_expired(self, max_age_seconds: float) -> int:
        """Delete visitors' items (those with an owner) older than `max_age_seconds`, and the stored
        inputs no remaining item refers to. Returns how many items went."""
        cutoff = time.time() - max_age_seconds
        with self._connect() as db:
            expired = [row["id"] for row in db.execute(
                "SELECT id FROM items WHERE owner IS NOT NULL AND created < ?", (cutoff,))]
        for item_id in expired:
            self.delete_unscoped(item_id)
        self._delete_unreferenced_inputs(cutoff)
        return len(expired)

    def delete_unscoped(self, item_id: int) -> None:
        """Delete an item whoever owns it (housekeeping, never a visitor's request)."""
        with self._write_lock, self._connect() as db, db:
            row = db.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
            db.execute("DELETE FROM items WHERE id = ?", (item_id,))
        if row is not None:
            self._remove_files(self._item(row))

    def _delete_unreferenced_inputs(self, older_than: float) -> None:
        """Inputs are stored once by content and shared between items; remove those no item names."""
        with self._connect() as db:
            referenced = set()
            for (params,) in db.execute("SELECT params FROM items"):
                referenced.update(re.findall(r'"(inputs/[^"]+)"', params))
        for path in self.inputs_dir.rglob("*"):
            relative = str(path.relative_to(self.data_dir))
            if path.is_file() and relative not in referenced and path.stat().st_mtime < older_than:
                path.unlink(missing_ok=True)


def _placeholder(task: str) -> Image.Image:
    """A plain tile with the task's name, for results that have no picture of their own."""
    from PIL import ImageDraw

    tile = Image.new("RGB", (THUMB_SIDE, THUMB_SIDE), (238, 238, 242))
    ImageDraw.Draw(tile).text((16, THUMB_SIDE // 2 - 8), task, fill=(60, 60, 70))
    return tile


_WRITES = itertools.count()  # next() on it is atomic in CPython


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write through `write(tmp_path)`, fsync, then rename into place; clean up on any failure."""
    # Named after its writer (see studio/claims.py), and unique to each write: two requests keeping the
    # same input at once must not rename one file between them.
    tmp = path.with_name(f"{path.name}.{next(_WRITES)}.{claims.TOKEN}.partial")
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise GallerySaveError(f"The result could not be saved to {path.parent}: {_why(exc)}.") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GallerySaveError(f"The result could not be saved: the folder {folder} cannot be made "
                               f"({_why(exc)}).") from None


def _why(exc: OSError) -> str:
    return "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
