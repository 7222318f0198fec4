"""Walking between points of a latent space: slerp, lerp, schedules, and how even a walk is."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Below this angle two vectors are treated as parallel and slerp becomes lerp (it would divide by ~0).
PARALLEL_DOT = 0.9995


def lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    if t == 0:
        return np.array(a, copy=True)
    if t == 1:
        return np.array(b, copy=True)
    return (1.0 - t) * a + t * b


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation: keeps the norm (and so a Gaussian noise's statistics) along the way.

    A plain lerp halfway between two independent unit-Gaussian noises has std ~0.71, which
    diffusion models render as a washed-out, blurry frame; slerp keeps it ~1.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if t == 0:
        return np.array(a, copy=True)
    if t == 1:
        return np.array(b, copy=True)
    a_flat = a.ravel().astype(np.float64)
    b_flat = b.ravel().astype(np.float64)
    dot = float(np.dot(a_flat, b_flat) / (np.linalg.norm(a_flat) * np.linalg.norm(b_flat) + 1e-12))
    if abs(dot) > PARALLEL_DOT:
        return lerp(a, b, t)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    out = (np.sin((1.0 - t) * theta) / sin_theta) * a_flat + (np.sin(t * theta) / sin_theta) * b_flat
    return out.reshape(a.shape).astype(np.result_type(a, b))


def walk_positions(keyframes: int, frames_between: int) -> list[tuple[int, float]]:
    """(segment, t) for every frame of a walk through `keyframes` points: each keyframe exactly
    once, `frames_between` frames between each pair, the last keyframe last."""
    if keyframes < 2:
        raise ValueError("a walk needs at least two keyframes")
    positions = []
    for segment in range(keyframes - 1):
        steps = frames_between + 1
        positions += [(segment, i / steps) for i in range(steps)]
    positions.append((keyframes - 2, 1.0))
    return positions


def loop_positions(frames: int) -> list[float]:
    """t for each frame of a seamless loop A -> B -> A, eased at both ends (frame `frames` would be frame 0)."""
    return [float((1.0 - np.cos(2.0 * np.pi * i / frames)) / 2.0) for i in range(frames)]


def frame_steps(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Mean absolute change between each frame and the next."""
    stack = [np.asarray(f, dtype=np.float64) for f in frames]
    return np.array([np.abs(b - a).mean() for a, b in zip(stack, stack[1:], strict=False)])


def evenness(frames: Sequence[np.ndarray]) -> float:
    """Largest step over the median step between adjacent frames (1.0 = perfectly even walk)."""
    steps = frame_steps(frames)
    return float(steps.max() / max(float(np.median(steps)), 1e-9))
