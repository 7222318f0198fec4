"""The Style tab's grid of built-in styles: a name for each, and thumbnails that show each style applied."""

from __future__ import annotations

import numpy as np
from PIL import Image

from studio.backends.stylize import BUILTIN_STYLE_COUNT, BUILTIN_STYLE_NAMES
from studio.catalog import ASSETS_DIR
from studio.services import Studio
from studio.settings import Settings
from studio.ui.style_tab import style_thumbnails


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)


def test_every_built_in_style_has_its_own_name_and_thumbnail(tmp_path):
    studio = Studio(Settings(data_dir=tmp_path / "data", offline=True))
    thumbs = style_thumbnails(studio)
    assert len(thumbs) == BUILTIN_STYLE_COUNT
    names = [caption.split(" · ", 1)[1] for _, caption in thumbs]
    assert [caption.split(" · ")[0] for _, caption in thumbs] == [str(i) for i in range(BUILTIN_STYLE_COUNT)]
    assert names == list(BUILTIN_STYLE_NAMES) and len(set(names)) == BUILTIN_STYLE_COUNT

    pictures = [pixels(path) for path, _ in thumbs]
    sample = Image.open(ASSETS_DIR / "examples" / "astronaut.jpg").convert("RGB")
    plain = np.asarray(sample.resize(Image.open(thumbs[0][0]).size), dtype=np.float32)
    for index, picture in enumerate(pictures):
        assert np.abs(picture - plain).mean() > 10, f"style {index} looks like the plain sample"
        for other in range(index):
            assert np.abs(picture - pictures[other]).mean() > 3, f"styles {other} and {index} look alike"
