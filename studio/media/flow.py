"""Optical flow and what video restyling does with it (no models): warping, occlusion masks, scene
cuts, and the warping error that measures flicker.

Conventions: a flow `f` from frame A to frame B says where each pixel of A went, so
A(x) ~ B(x + f(x)); `warp(B, f)` samples B at x + f(x), giving B seen from A's pixel grid.
Flows are HxWx2 float32 (dx, dy) in pixels, computed by OpenCV's DIS (dense inverse search),
which is fast enough on a CPU to add little to a stylised frame.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

# Ruder, Dosovitskiy & Brox 2016 ("Artistic style transfer for videos"), section 3.2: forward-backward
# consistency and motion boundaries, with their constants.
CONSISTENCY_SCALE = 0.01
CONSISTENCY_OFFSET = 0.5
BOUNDARY_SCALE = 0.01
BOUNDARY_OFFSET = 0.002
# A pixel whose colour changed this much along the flow (0..1 scale) is not trusted either:
# the flow is wrong there or the light changed.
PHOTOMETRIC_LIMIT = 0.12
# "Did this pixel stay put?" is asked over a small neighbourhood (Gaussian sigma, px), needs the
# neighbourhood nearly unchanged (mean absolute grey change, 0-255) and no worse than the flow by more
# than STILL_MARGIN. The margin favours staying put: warping along a sub-pixel flow interpolates, which
# averages the sensor noise away, so the flow's difference looks smaller than the still one's even where
# nothing moved. Requiring "still" to beat the flow by 2 grey levels (as before) let DIS's flow, smeared
# from a moving object into the still background around it, drag that background's strokes along. In
# benchmarks/video_style.py, favouring still by 2 levels took the blend's cut in warping error on the
# moving object from 2.6x to 4.3x, the pan from 3.7x to 4.1x, the zoom from 7.0x to 7.8x (the pan scored
# with estimated flow: 6.1x to 5.5x), for about 1 more of drift, at no cost in time. Measured on the same
# clips without the encoder, finer DIS ("medium", 10 variational refinement iterations, other patch sizes),
# flow at twice the size, stricter consistency, a dilated occlusion mask and another blur for this test
# each moved the moving object by 0.3x at most (from 2.9x), or lowered it; this margin alone, to 5.2x.
STILL_BLUR = 1.0
STILL_LIMIT = 20.0
STILL_MARGIN = -2.0
# Bhattacharyya distance between colour histograms of consecutive frames above which a new shot starts.
SCENE_CUT_DISTANCE = 0.5


def _cv2():
    import cv2

    return cv2


def gray(rgb: np.ndarray) -> np.ndarray:
    """8-bit luminance, what DIS flow reads."""
    return _cv2().cvtColor(np.ascontiguousarray(rgb[..., :3]), _cv2().COLOR_RGB2GRAY)


# DIS refines its flow down to a level of its image pyramid; the finest level is picked so that its
# short side stays at least this many px.
FINEST_LEVEL_SIDE = 180
# The blend works out motion on frames no bigger than this on their short side: 256x144 for 640x360,
# which on the benchmark clips was both quicker and steadier than 320x180 (noise averages out).
ANALYSIS_SIDE = 144


class FlowEstimator:
    """DIS optical flow (OpenCV), one instance per clip: it keeps its buffers between frames."""

    def __init__(self, preset: str = "fast"):
        cv2 = _cv2()
        presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                   "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
        self._dis = cv2.DISOpticalFlow_create(presets[preset])
        self._short_side = 0

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Flow from grey frame `a` to grey frame `b`."""
        if min(a.shape[:2]) != self._short_side:
            self._short_side = min(a.shape[:2])
            level = 0
            while self._short_side / 2 ** (level + 1) >= FINEST_LEVEL_SIDE:
                level += 1
            self._dis.setFinestScale(level)
        return self._dis.calc(a, b, None)


@functools.lru_cache(maxsize=8)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates, made once per frame size (every frame of a clip shares them); read-only."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """`image` sampled at x + flow(x) (bilinear; outside the frame: the nearest edge)."""
    cv2 = _cv2()
    height, width = flow.shape[:2]
    xs, ys = _grid(height, width)
    map_x, map_y = xs + flow[..., 0], ys + flow[..., 1]
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def inside(flow: np.ndarray) -> np.ndarray:
    """True where x + flow(x) lands inside the frame."""
    height, width = flow.shape[:2]
    xs, ys = _grid(height, width)
    tx, ty = xs + flow[..., 0], ys + flow[..., 1]
    return (tx >= 0) & (tx <= width - 1) & (ty >= 0) & (ty <= height - 1)


def consistent(backward: np.ndarray, forward: np.ndarray, boundaries: bool = False) -> np.ndarray:
    """Pixels of frame t whose motion can be trusted, given the flow t->t-1 (`backward`) and
    t-1->t (`forward`): the two must cancel (otherwise the pixel was hidden or revealed) and the
    point must come from inside frame t-1. `boundaries` also drops motion boundaries, as Ruder et
    al. do; DIS flow is smooth across object edges, so that test rejects a wide band around every
    moving thing that is in fact carried right (the colour check in TemporalBlender catches the
    pixels that are not): on the moving-object clip it took the flicker reduction from 3.3x to 1.4x."""
    cv2 = _cv2()
    there = warp(forward, backward)  # the forward flow at the point each pixel came from
    round_trip = np.sum((backward + there) ** 2, axis=-1)
    both = np.sum(backward**2, axis=-1) + np.sum(there**2, axis=-1)
    ok = (round_trip <= CONSISTENCY_SCALE * both + CONSISTENCY_OFFSET) & inside(backward)
    if not boundaries:
        return ok
    gradient = np.zeros(backward.shape[:2], dtype=np.float32)
    for channel in range(2):
        component = np.ascontiguousarray(backward[..., channel])
        gx = cv2.Sobel(component, cv2.CV_32F, 1, 0, ksize=1)
        gy = cv2.Sobel(component, cv2.CV_32F, 0, 1, ksize=1)
        gradient += gx**2 + gy**2
    return ok & (gradient <= BOUNDARY_SCALE * np.sum(backward**2, axis=-1) + BOUNDARY_OFFSET)


def colour_histogram(rgb: np.ndarray) -> np.ndarray:
    """A coarse 8x8x8 colour histogram, normalised, for cut detection."""
    cv2 = _cv2()
    hist = cv2.calcHist([np.ascontiguousarray(rgb[..., :3])], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3)
    return cv2.normalize(hist, hist).flatten()


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance, 0 (same colours) to 1 (nothing in common)."""
    cv2 = _cv2()
    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


@dataclass
class TemporalState:
    """What the blend carries from one frame to the next."""

    gray: np.ndarray
    histogram: np.ndarray
    output: np.ndarray  # float32 HxWx3 in 0..255: the last result as written


@dataclass
class BlendReport:
    cut: bool
    trusted: float  # share of pixels blended with the previous result


class TemporalBlender:
    """Each new stylised frame blended with the previous result carried along the optical flow,
    except where pixels were hidden or revealed, and started afresh at a scene cut.

    `strength` is the weight of the carried result where motion is trusted: 0 is frame by frame,
    0.8 (the default) removes most flicker, 1 carries the first frame's brush strokes along the
    motion for ever. DIS's "fast" preset: as good as "medium" on the benchmark's clips, quicker.
    """

    def __init__(self, strength: float, preset: str = "fast"):
        self.strength = float(strength)
        self.flow = FlowEstimator(preset) if strength > 0 else None
        self.state: TemporalState | None = None

    def __call__(self, content: np.ndarray, stylised: np.ndarray) -> tuple[np.ndarray, BlendReport]:
        """`content`: the source frame (uint8 RGB) at the size of `stylised` (uint8 RGB)."""
        cv2 = _cv2()
        height, width = content.shape[:2]
        # Motion is worked out on a copy whose short side is at most ANALYSIS_SIDE px (DIS refines no
        # finer anyway), then scaled up: the network's strokes, not the flow, set the detail.
        scale = min(1.0, ANALYSIS_SIDE / min(height, width))
        small = content if scale == 1.0 else cv2.resize(content, (round(width * scale), round(height * scale)),
                                                        interpolation=cv2.INTER_AREA)
        current_gray = gray(small)
        histogram = colour_histogram(small)
        styled = stylised.astype(np.float32)
        previous = self.state
        # A new frame size (a webcam switched or turned mid-stream) cannot be carried over: start afresh.
        cut = (previous is None or previous.output.shape != styled.shape
               or histogram_distance(previous.histogram, histogram) > SCENE_CUT_DISTANCE)
        trusted = 0.0
        out = styled
        if self.flow is not None and not cut and previous is not None:
            backward, mask = self._motion(previous.gray, current_gray)
            mask = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)  # no hard seams where trust ends
            trusted = float(mask.mean())
            if scale != 1.0:
                backward = cv2.resize(backward, (width, height), interpolation=cv2.INTER_LINEAR) / scale
                mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
            weight = (self.strength * mask)[..., None]
            carried = warp(previous.output, backward)
            out = weight * carried + (1.0 - weight) * styled
        self.state = TemporalState(gray=current_gray, histogram=histogram, output=out)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8), BlendReport(cut=cut and previous is not None,
                                                                         trusted=trusted)

    def _motion(self, before: np.ndarray, now_gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The flow from the new frame back to the previous one, and where it can be trusted."""
        cv2 = _cv2()
        backward = self.flow(now_gray, before)
        forward = self.flow(before, now_gray)
        now = now_gray.astype(np.float32)
        moved = np.abs(warp(before, backward).astype(np.float32) - now)
        mask = consistent(backward, forward) & (moved <= PHOTOMETRIC_LIMIT * 255.0)
        # Where a pixel simply stayed put (a still background beside a moving subject), "no motion"
        # explains it better than DIS's flow, which smears a moving edge into its surroundings.
        stayed = np.abs(before.astype(np.float32) - now)
        stayed_blur = cv2.GaussianBlur(stayed, (0, 0), STILL_BLUR)
        still = (stayed_blur + STILL_MARGIN <= cv2.GaussianBlur(moved, (0, 0), STILL_BLUR)) & (
            stayed_blur <= STILL_LIMIT)
        backward = np.where(still[..., None], 0.0, backward).astype(np.float32)
        mask = np.where(still, stayed <= PHOTOMETRIC_LIMIT * 255.0, mask)
        return backward, mask


def warping_error(first: np.ndarray, second: np.ndarray, flow: np.ndarray, mask: np.ndarray) -> float:
    """Lai et al. 2018's warping error between two consecutive results: the mean squared difference
    (0..1 colour scale) between `first` and `second` warped back along `flow` (first -> second),
    over the pixels `mask` says are visible in both."""
    a = first.astype(np.float32) / 255.0
    b = warp(second.astype(np.float32) / 255.0, flow)
    weight = mask.astype(np.float32)
    if weight.sum() == 0:
        return 0.0
    return float((((a - b) ** 2).mean(axis=-1) * weight).sum() / weight.sum())


def clip_warping_error(frames: list[np.ndarray], flows: list[np.ndarray], masks: list[np.ndarray]) -> float:
    """The warping error averaged over a clip; `flows[t]`/`masks[t]` go from frame t to t+1."""
    errors = [warping_error(frames[t], frames[t + 1], flows[t], masks[t]) for t in range(len(frames) - 1)]
    return float(np.mean(errors)) if errors else 0.0
