"""People's keypoints drawn as the OpenPose body map that openpose ControlNets were trained on: a black
picture, the 18-point OpenPose body (the 17 COCO points plus a neck halfway between the shoulders),
each limb an ellipse in its own colour at 60% strength and each joint a dot in its full colour.
Points below the confidence threshold, and the limbs that touch them, are left out."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# OpenPose's 18 body points, each as the COCO-17 point it comes from (None: the neck, made from the shoulders).
# OpenPose: nose, neck, right shoulder/elbow/wrist, left shoulder/elbow/wrist, right hip/knee/ankle,
# left hip/knee/ankle, right eye, left eye, right ear, left ear.
FROM_COCO: tuple[int | None, ...] = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
COCO_LEFT_SHOULDER, COCO_RIGHT_SHOULDER = 5, 6
# The limbs OpenPose draws, as pairs of its points (the ear-to-shoulder pairs of its list are never drawn).
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
# One colour per limb and per point, in OpenPose's order: round the hue circle from red.
COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
LIMB_STRENGTH = 0.6
CONFIDENCE = 0.3  # below this a point is taken as not seen


def openpose_points(keypoints: np.ndarray, scores: np.ndarray,
                    threshold: float = CONFIDENCE) -> list[tuple[float, float] | None]:
    """One person's COCO-17 keypoints (17 x 2, pixels) and scores as OpenPose's 18 points; None where unseen."""
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(17, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(17)
    seen = [bool(np.isfinite(keypoints[i]).all() and scores[i] >= threshold) for i in range(17)]
    points: list[tuple[float, float] | None] = []
    for coco in FROM_COCO:
        if coco is None:  # the neck: there only when both shoulders are
            if seen[COCO_LEFT_SHOULDER] and seen[COCO_RIGHT_SHOULDER]:
                x, y = (keypoints[COCO_LEFT_SHOULDER] + keypoints[COCO_RIGHT_SHOULDER]) / 2
                points.append((float(x), float(y)))
            else:
                points.append(None)
        else:
            points.append((float(keypoints[coco][0]), float(keypoints[coco][1])) if seen[coco] else None)
    return points


def line_width(size: tuple[int, int]) -> int:
    """OpenPose's limb half-width and dot radius: 4 px at 512 px, more on bigger maps so that the
    skeleton keeps its share of the picture."""
    return max(4, round(4 * min(size) / 512))


def draw_openpose(size: tuple[int, int], people: Sequence[tuple[np.ndarray, np.ndarray]],
                  threshold: float = CONFIDENCE) -> np.ndarray:
    """The OpenPose map (height x width x 3, uint8, RGB) of `people`, each (COCO-17 keypoints, scores)."""
    import cv2

    width, height = size
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    stick = line_width(size)
    for keypoints, scores in people:
        points = openpose_points(keypoints, scores, threshold)
        for number, (a, b) in enumerate(LIMBS):
            start, end = points[a], points[b]
            if start is None or end is None:
                continue
            # An ellipse along the limb, as OpenPose draws it (a plain line would have square ends).
            middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
            length = math.hypot(end[0] - start[0], end[1] - start[1]) / 2
            angle = math.degrees(math.atan2(end[1] - start[1], end[0] - start[0]))
            polygon = cv2.ellipse2Poly((round(middle[0]), round(middle[1])), (round(length), stick),
                                       round(angle), 0, 360, 1)
            colour = tuple(int(c * LIMB_STRENGTH) for c in COLOURS[number])
            cv2.fillConvexPoly(canvas, polygon, colour)
        for number, point in enumerate(points):
            if point is not None:
                cv2.circle(canvas, (round(point[0]), round(point[1])), stick, COLOURS[number], thickness=-1)
    return canvas
