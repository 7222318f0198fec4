"""ControlNet preprocessors that need no weights (OpenCV and numpy), and "pixel perfect" sizing.

Each turns a picture into the control map its ControlNet was trained on: canny edges, lineart from a
difference of Gaussians, scribbles from XDoG, a seeded content shuffle, a tile (resampled) or blurred
picture, an inverted line drawing; `none` takes the picture as an already-made map. Maps are made at
the size the model works at (what AUTOMATIC1111 calls pixel perfect), after the picture is fitted
to that size, so the edges are as fine as the picture allows. Depth and pose need trained annotators
(annotators.py, downloaded on first use): make_map hands those to the `annotate` it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from studio.errors import InputError


@dataclass(frozen=True)
class ControlType:
    name: str  # what the studio calls it (CLI, UI, records)
    module: str  # what AUTOMATIC1111's ControlNet extension calls the preprocessor
    threshold_a: float | None  # the first setting's default, None where there is none
    threshold_b: float | None
    a_range: tuple[float, float] = (0.0, 0.0)
    b_range: tuple[float, float] = (0.0, 0.0)
    summary: str = ""
    a_label: str = ""  # what the first setting means, as the Image tab labels its slider
    b_label: str = ""
    step: float = 1.0  # the settings' slider step


CONTROL_TYPES: dict[str, ControlType] = {t.name: t for t in (
    ControlType("canny", "canny", 100, 200, (1, 255), (1, 255), "edges; the two thresholds: low and high",
                "Canny low threshold", "Canny high threshold"),
    ControlType("lineart", "lineart_standard", None, None, summary="lines from a difference of Gaussians"),
    ControlType("scribble", "scribble_xdog", 32, None, (1, 64), summary="bold scribbles (XDoG); threshold: detail",
                a_label="XDoG threshold (lower: more strokes)"),
    ControlType("shuffle", "shuffle", None, None, summary="the picture's content shuffled (seeded): its colours and style"),
    ControlType("tile", "tile_resample", 1, None, (1, 8), summary="the picture itself, optionally down-sampled",
                a_label="Down-sampling rate", step=0.1),
    ControlType("blur", "blur_gaussian", 9, None, (0.1, 64), summary="the picture blurred; threshold: sigma",
                a_label="Blur sigma (px)", step=0.1),
    ControlType("invert", "invert", None, None, summary="black lines on white turned to white on black"),
    ControlType("depth", "depth_anything_v2", None, None,
                summary="depth, near white (Depth Anything V2, downloaded on first use)"),
    ControlType("openpose", "openpose", None, None,
                summary="a person's pose as an OpenPose skeleton (ViTPose, downloaded on first use)"),
    ControlType("none", "none", None, None, summary="the picture is already a control map"),
)}
# Types whose maps come from a trained model rather than from the pixels alone.
ANNOTATED = frozenset({"depth", "openpose"})
# What makes an annotated map: (control type, RGB pixels) -> the map at the pixels' size.
Annotate = Callable[[str, np.ndarray], np.ndarray]
# AUTOMATIC1111 module names -> the studio's, for reading parameters back.
BY_MODULE = {t.module: t.name for t in CONTROL_TYPES.values()}
# The extension's full names for two of the same preprocessors.
BY_MODULE.update({"lineart_standard (from white bg & black line)": "lineart",
                  "invert (from white bg & black line)": "invert"})
# AUTOMATIC1111 modules the studio has no twin of, drawn by its nearest preprocessor: the ControlNet
# models they feed were trained on maps of the same kind, so a picture still follows them. What differs.
SIMILAR_MODULES: dict[str, tuple[str, str]] = {
    **{name: ("depth", "Depth Anything V2 in place of its depth estimator")
       for name in ("depth_midas", "depth_zoe", "depth_leres", "depth_leres++", "depth_anything",
                    "depth_hand_refiner")},
    "openpose_full": ("openpose", "the body only, without hands and face"),
    "openpose_hand": ("openpose", "the body only, without hands"),
    "dw_openpose_full": ("openpose", "ViTPose's body in place of DWPose's, without hands and face"),
    **{name: ("lineart", "a difference of Gaussians in place of the trained line extractor")
       for name in ("lineart_realistic", "lineart_coarse", "lineart_anime", "lineart_anime_denoise")},
    **{name: ("scribble", "XDoG strokes in place of the trained edge detector")
       for name in ("scribble_pidinet", "scribble_hed", "softedge_pidinet", "softedge_hed", "softedge_pidisafe",
                    "softedge_hedsafe", "softedge_teed", "softedge_anyline")},
    **{name: ("tile", "plain resampling, without the colour fix")
       for name in ("tile_colorfix", "tile_colorfix+sharp")},
}


def type_of_module(module: str) -> tuple[str | None, str | None]:
    """The studio's control type for an AUTOMATIC1111 module name (or the studio's own type name), and
    what differs where it is only the nearest one; (None, None) for a module it has nothing like."""
    if module in BY_MODULE:
        return BY_MODULE[module], None
    if module in CONTROL_TYPES:
        return module, None
    kind, difference = SIMILAR_MODULES.get(module, (None, None))
    return kind, (f"'{module}' was drawn as '{kind}': {difference}" if kind else None)


def control_type(name: str) -> ControlType:
    try:
        return CONTROL_TYPES[name]
    except (KeyError, TypeError):
        raise InputError(
            f"The control type must be one of {', '.join(CONTROL_TYPES)}, not '{name!s:.40}'."
        ) from None


def settings(name: str, threshold_a: float | None, threshold_b: float | None) -> tuple[float | None, float | None]:
    """The two thresholds a type uses (its defaults where not given; None where it has none), checked."""
    kind = control_type(name)
    values = []
    for given, default, (low, high), label in ((threshold_a, kind.threshold_a, kind.a_range, "first"),
                                               (threshold_b, kind.threshold_b, kind.b_range, "second")):
        if default is None:
            values.append(None)
            continue
        value = default if given is None else given
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise InputError(f"The {label} {name} threshold must be from {low:g} to {high:g}, not {value!r}.")
        values.append(float(value))
    if name == "canny" and values[0] is not None and values[1] is not None and values[0] > values[1]:
        raise InputError(f"The canny low threshold ({values[0]:g}) must not be above the high one ({values[1]:g}).")
    return values[0], values[1]


def fit_picture(picture: Image.Image, size: tuple[int, int]) -> tuple[Image.Image, str | None]:
    """The picture scaled and centre-cropped to `size` (AUTOMATIC1111's "Crop and Resize"), and a note
    when that changed its shape or size."""
    picture = picture.convert("RGB")
    if picture.size == size:
        return picture, None
    before = f"{picture.width}x{picture.height}"
    same_shape = abs(picture.width / picture.height - size[0] / size[1]) < 0.01
    how = "resized" if same_shape else "cropped to its shape and resized"
    # The centred box of the working shape, then scaled: nothing is stretched.
    scale = max(size[0] / picture.width, size[1] / picture.height)
    box_w, box_h = size[0] / scale, size[1] / scale
    left, top = (picture.width - box_w) / 2, (picture.height - box_h) / 2
    fitted = picture.resize(size, Image.Resampling.LANCZOS, box=(left, top, left + box_w, top + box_h))
    return fitted, f"the control picture ({before} px) was fitted to {size[0]}x{size[1]} px ({how})."


def make_map(
    picture: Image.Image,
    name: str,
    size: tuple[int, int],
    threshold_a: float | None = None,
    threshold_b: float | None = None,
    seed: int = 0,
    annotate: Annotate | None = None,
) -> tuple[Image.Image, str | None]:
    """The control map for `picture` at `size` px (pixel perfect), and a note if the picture was fitted.
    Depth and pose maps are made by `annotate` (the annotator models)."""
    a, b = settings(name, threshold_a, threshold_b)
    if name in ANNOTATED and annotate is None:
        raise InputError(f"The control type '{name}' needs its annotator model, which this caller cannot load.")
    fitted, note = fit_picture(picture, size)
    pixels = np.asarray(fitted, dtype=np.uint8)
    if name in ANNOTATED:
        assert annotate is not None
        out = annotate(name, pixels)
    else:
        out = _PREPROCESSORS[name](pixels, a, b, seed)
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(out, dtype=np.uint8), "RGB"), note


def _grey(pixels: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)


def _canny(pixels: np.ndarray, low, high, _seed) -> np.ndarray:
    import cv2

    return cv2.Canny(_grey(pixels), low, high)


def _lineart(pixels: np.ndarray, _a, _b, _seed) -> np.ndarray:
    """Where a pixel is darker than its wide surroundings, a line: the blurred picture minus the
    picture, scaled so that typical lines are mid-grey to white."""
    import cv2

    grey = _grey(pixels).astype(np.float32)
    darker = np.clip(cv2.GaussianBlur(grey, (0, 0), 6.0) - grey, 0, None)
    strong = darker[darker > 8]
    scale = max(16.0, float(np.median(strong))) if strong.size else 16.0
    return np.clip(darker / scale * 127, 0, 255).astype(np.uint8)


def _scribble(pixels: np.ndarray, threshold, _b, _seed) -> np.ndarray:
    """XDoG: a fine blur minus a wide one picks out strokes; those past the threshold become bold
    white scribbles on black."""
    import cv2

    grey = _grey(pixels).astype(np.float32)
    dog = cv2.GaussianBlur(grey, (0, 0), 5.0) - cv2.GaussianBlur(grey, (0, 0), 0.5)
    lines = (dog > threshold).astype(np.uint8) * 255
    return cv2.dilate(lines, np.ones((3, 3), np.uint8))


def _shuffle(pixels: np.ndarray, _a, _b, seed) -> np.ndarray:
    """The picture pulled through a smooth random flow field drawn from `seed`: its colours and
    textures stay, its layout does not."""
    import cv2

    height, width = pixels.shape[:2]
    rng = np.random.default_rng(seed)
    coarse = max(2, min(height, width) // 64)

    def field(extent: int) -> np.ndarray:
        noise = rng.random((coarse, coarse)).astype(np.float32) * extent
        return cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)

    map_x, map_y = field(width), field(height)
    return cv2.remap(pixels, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _tile(pixels: np.ndarray, rate, _b, _seed) -> np.ndarray:
    import cv2

    if rate <= 1:
        return pixels.copy()
    height, width = pixels.shape[:2]
    small = cv2.resize(pixels, (max(1, round(width / rate)), max(1, round(height / rate))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _blur(pixels: np.ndarray, sigma, _b, _seed) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(pixels, (0, 0), sigma)


def _invert(pixels: np.ndarray, _a, _b, _seed) -> np.ndarray:
    return 255 - pixels


def _none(pixels: np.ndarray, _a, _b, _seed) -> np.ndarray:
    return pixels.copy()


_PREPROCESSORS: dict[str, Callable[..., np.ndarray]] = {
    "canny": _canny,
    "lineart": _lineart,
    "scribble": _scribble,
    "shuffle": _shuffle,
    "tile": _tile,
    "blur": _blur,
    "invert": _invert,
    "none": _none,
}
