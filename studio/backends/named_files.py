"""Weight files people drop into folders and call by name (LoRAs, upscalers): found by file stem,
folders read again on every look-up so a new file needs no restart. Pickled files are found too,
only so that asking for one can be refused in words instead of 'no such name'."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path


def scan_named_files(
    folders: Iterable[Path], suffix: str, pickles: Collection[str], skip: Collection[str] = ()
) -> tuple[dict[str, Path], dict[str, Path]]:
    """(stem -> file ending in `suffix`, stem -> file ending in one of `pickles`) in the folders and
    their sub-folders. The first folder with a name wins, and within it the first path in sorted
    order; stems in `skip` (names taken by built-ins) are left out. Suffixes compare in lower case."""
    usable: dict[str, Path] = {}
    refused: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            found = path.suffix.lower()
            kept = usable if found == suffix else refused if found in pickles else None
            if kept is not None and path.stem not in skip and path.is_file():
                kept.setdefault(path.stem, path)
    return usable, refused
