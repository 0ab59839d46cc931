"""The ground plane of a video, and the Z-up world the label exports use: pure numpy functions.

The dataset's world frame is the first camera's (x right, y down, z forward), so "up" is only known roughly (an
upright first camera's -y). :func:`fit_ground_plane` finds the floor among the video's scene points with RANSAC,
keeping only planes whose normal is within ``GROUND_MAX_TILT_DEG`` of that up axis and which lie below the people's
heads (so walls, ceilings and table tops above the people lose), then refines the winner by least squares on its
inliers. Open3D's ``segment_plane`` finds the dominant plane, which is often a wall, and has no such constraints.

:func:`zup_transform` turns the plane into the exports' world frame: z up along the plane's normal, the floor at
z = 0, x along the first camera's x axis projected onto the floor, y = z x x (the first camera's forward, levelled),
origin on the floor right below the first camera.
"""

from __future__ import annotations

import dataclasses

import numpy as np

MAX_FIT_POINTS = 20_000  # points the fit looks at (a deterministic subsample of the video's)
MIN_FIT_POINTS = 50  # fewer scene points: no plane
HYPOTHESES = 256  # RANSAC planes tried
HEAD_CLEARANCE_M = 0.5  # the median head must be at least this far above a candidate floor
GROUND_INLIER_M = 0.03  # RANSAC inlier distance (storage.schema's track_quality docs state it)
GROUND_MAX_TILT_DEG = 30.0  # the ground's normal is within this angle of the first camera's up (-y) axis
CAMERA_UP = np.array([0.0, -1.0, 0.0])  # the first camera's up axis, in the world frame (OpenCV: y down)


@dataclasses.dataclass(frozen=True)
class GroundPlane:
    """The plane n.x + d = 0, n a unit vector pointing up (from the floor towards the people), world frame."""

    normal: np.ndarray  # (3,) float64
    offset_m: float  # d: the height of x above the floor is n.x + d
    inlier_frac: float  # fraction of the fitted points within GROUND_INLIER_M of the plane

    def height(self, x: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (...) signed heights above the floor, metres (negative: below it)."""
        return np.asarray(x, np.float64) @ self.normal + self.offset_m


def _orient(normals: np.ndarray, offsets: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip (normal, offset) pairs so every normal points along `up`."""
    sign = np.where(normals @ up < 0, -1.0, 1.0)
    return normals * sign[:, None], offsets * sign


def _refine(points: np.ndarray, inliers: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares plane through the inliers (smallest principal axis), oriented along `up`."""
    sel = points[inliers]
    centre = sel.mean(0)
    normal = np.linalg.svd(sel - centre, full_matrices=False)[2][-1]
    normal, offset = _orient(normal[None], np.array([-normal @ centre]), up)
    return normal[0], float(offset[0])


def fit_ground_plane(points: np.ndarray, heads: np.ndarray | None = None, *, up: np.ndarray = CAMERA_UP,
                     seed: int = 0) -> GroundPlane | None:
    """The floor among `points` (P, 3) world, or None when there are fewer than MIN_FIT_POINTS.

    heads: (H, 3) head joints of the people, if any; a candidate plane must lie HEAD_CLEARANCE_M below their median.

    1. a deterministic subsample of at most MAX_FIT_POINTS points;
    2. HYPOTHESES planes through random point triples, oriented along `up`; those tilted more than
       GROUND_MAX_TILT_DEG from `up`, or not below the heads, are discarded;
    3. the plane with the most points within GROUND_INLIER_M wins; two least-squares refits on its inliers.
    """
    points = np.asarray(points, np.float64).reshape(-1, 3)
    points = points[np.isfinite(points).all(1)]
    if len(points) < MIN_FIT_POINTS:
        return None
    rng = np.random.default_rng(seed)
    if len(points) > MAX_FIT_POINTS:
        points = points[np.sort(rng.choice(len(points), MAX_FIT_POINTS, replace=False))]
    up = np.asarray(up, np.float64) / np.linalg.norm(up)
    a, b, c = (points[rng.integers(0, len(points), HYPOTHESES)] for _ in range(3))
    normals = np.cross(b - a, c - a)
    norms = np.linalg.norm(normals, axis=1)
    ok = norms > 1e-9
    normals = normals[ok] / norms[ok, None]
    normals, offsets = _orient(normals, -np.einsum("kj,kj->k", normals, a[ok]), up)
    ok = normals @ up >= np.cos(np.radians(GROUND_MAX_TILT_DEG))
    if heads is not None and len(heads):
        head = np.median(np.asarray(heads, np.float64).reshape(-1, 3), axis=0)
        ok &= normals @ head + offsets >= HEAD_CLEARANCE_M
    if not ok.any():
        return None
    normals, offsets = normals[ok], offsets[ok]
    counts = (np.abs(points @ normals.T + offsets) < GROUND_INLIER_M).sum(0)
    best = int(np.argmax(counts))
    normal, offset = normals[best], float(offsets[best])
    for _ in range(2):
        inliers = np.abs(points @ normal + offset) < GROUND_INLIER_M
        if inliers.sum() < 3:
            break
        normal, offset = _refine(points, inliers, up)
    inlier_frac = float((np.abs(points @ normal + offset) < GROUND_INLIER_M).mean())
    return GroundPlane(normal, offset, inlier_frac)


def zup_transform(plane: GroundPlane | None) -> np.ndarray:
    """(4, 4) rigid map from the dataset's world frame to the exports' Z-up frame (see the module docstring).

    Without a plane, up is the first camera's -y and the origin stays at the first camera (z = 0 there).
    """
    up = CAMERA_UP if plane is None else np.asarray(plane.normal, np.float64)
    x = np.array([1.0, 0.0, 0.0]) - up[0] * up  # the first camera's x axis, projected onto the floor
    if np.linalg.norm(x) < 1e-6:  # a floor facing the camera's x axis (never for a tilt within 30 deg)
        x = np.array([0.0, 0.0, 1.0]) - up[2] * up
    x /= np.linalg.norm(x)
    y = np.cross(up, x)
    rot = np.stack([x, y, up])
    origin = np.zeros(3) if plane is None else -plane.offset_m * up  # the floor right below the first camera
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = -rot @ origin
    return out


def apply(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(4, 4) rigid transform applied to (..., 3) points."""
    return np.asarray(points, np.float64) @ transform[:3, :3].T + transform[:3, 3]
