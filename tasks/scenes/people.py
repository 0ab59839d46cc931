"""Where the people of each frame are, to leave their points out of a fused scene (`tasks.scenes.fuse`).

The best source the run allows:

* ``mesh`` (a body model is given): the SMPL-X bodies posed from the stored parameters; a point is on a person
  when it lies within ``margin`` of one of their vertices (Open3D nearest-neighbour search, frame by frame).
* ``joints`` (the run stored ``joints_world_m``): capsules along the 54 bones of the 55-joint skeleton (and a
  sphere around the head joint), radius :data:`LIMB_RADIUS_M` + ``margin``.
* ``head`` (parameters only): one capsule from the head joint along the body's down axis (the world root
  orientation applied to SMPL-X's -y), :data:`BODY_LENGTH_M` long, radius :data:`TORSO_RADIUS_M` + ``margin``.

A batch of points is tested in three vectorised steps, each on fewer points: the box each track sweeps over the
batch's frames (scalar compares), the box around the people of each point's own frame, then each person's box and
shapes.
"""

from __future__ import annotations

import numpy as np

from storage.geometry import SMPLX_PARENTS
from tasks.scenes.bodies import HEAD_JOINT, NUM_SKELETON, People, pose_world, rotvec_to_rotmat

LIMB_RADIUS_M = 0.15  # body surface to bone axis, generous (thighs, torso)
BODY_LENGTH_M = 1.6  # head joint to the soles, roughly
TORSO_RADIUS_M = 0.3
_BONES = np.array([(p, j) for j, p in enumerate(SMPLX_PARENTS) if p >= 0])  # (54, 2) parent, child
_CHUNK = 8192  # candidate points per vectorised capsule test


def near_capsules(points: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float) -> np.ndarray:
    """points (P, 3), capsules a, b (P, S, 3) (segment ends per point) -> (P,) within `radius` of one of them."""
    d = b - a
    dd = np.maximum((d * d).sum(2), 1e-12)
    rel = points[:, None, :] - a
    t = np.clip((rel * d).sum(2) / dd, 0.0, 1.0)
    gap = rel - t[..., None] * d
    return ((gap * gap).sum(2) <= radius * radius).any(1)


class PeopleMask:
    """``mask(frame_idx, x, y, z) -> keep``, (N,) arrays: False for points on a person of the same frame."""

    def __init__(self, people: People, margin_m: float, body_model=None):
        p = self.people = people
        self.margin, self.body_model = float(margin_m), body_model
        self.source = people_source(p, body_model)
        self._order = np.argsort(p.frame_idx, kind="stable")  # rows by frame
        self._frames, self._start = np.unique(p.frame_idx[self._order], return_index=True)
        self._end = np.append(self._start[1:], len(self._order))
        if self.source == "joints":  # capsule ends per row: the skeleton's joints, picked per bone when tested
            self._ends = np.ascontiguousarray(p.joints_world[:, :NUM_SKELETON], dtype=np.float32)  # (N, 55, 3)
            self._a_idx = np.append(_BONES[:, 0], HEAD_JOINT)  # 54 bones and the head joint (a sphere)
            self._b_idx = np.append(_BONES[:, 1], HEAD_JOINT)
            self._radius = LIMB_RADIUS_M + self.margin
        elif self.source == "head":
            down = rotvec_to_rotmat(p.rotvec[:, 0]) @ np.array([0.0, -1.0, 0.0])
            self._ends = np.stack([p.head_world, p.head_world + BODY_LENGTH_M * down], 1).astype(np.float32)
            self._a_idx, self._b_idx = np.array([0]), np.array([1])
            self._radius = TORSO_RADIUS_M + self.margin
        self._lo, self._hi = self._boxes()
        # per frame number, the box around all its people (+-inf: none; the last slot is for out-of-range frames)
        size = int(self._frames[-1]) + 2 if len(self._frames) else 1
        self._frame_lo = np.full((3, size), np.inf, np.float32)
        self._frame_hi = np.full((3, size), -np.inf, np.float32)
        for c in range(3):
            np.minimum.at(self._frame_lo[c], p.frame_idx, self._lo[:, c])
            np.maximum.at(self._frame_hi[c], p.frame_idx, self._hi[:, c])

    def _boxes(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) min and max corner per row of everything a point could be near."""
        p = self.people
        if self.source == "mesh":  # the posed meshes' own extent (every row posed once; only the boxes are kept)
            lo, hi = np.empty((len(p), 3), np.float32), np.empty((len(p), 3), np.float32)
            for s in range(0, len(p), 64):
                verts = pose_world(self.body_model, p, np.arange(s, min(s + 64, len(p))))[0]
                lo[s:s + 64], hi[s:s + 64] = verts.min(1), verts.max(1)
            return lo - self.margin, hi + self.margin
        return self._ends.min(1) - self._radius, self._ends.max(1) + self._radius

    def __call__(self, frame_idx: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """keep (N,) for points given as columns: frame_idx, x, y, z (world frame, metres)."""
        keep = np.ones(len(x), bool)
        if not len(self._frames) or not len(x):
            return keep
        idx = self._in_track_boxes(frame_idx, x, y, z)  # 1. the boxes each track sweeps over the batch's frames
        f, px, py, pz = frame_idx[idx], x[idx], y[idx], z[idx]
        slot = np.where((f >= 0) & (f < self._frame_lo.shape[1] - 1), f, self._frame_lo.shape[1] - 1)
        inside = np.ones(len(idx), bool)
        for c, col in enumerate((px, py, pz)):  # 2. the box around each point's own frame's people
            inside &= (col >= self._frame_lo[c][slot]) & (col <= self._frame_hi[c][slot])
        sel = np.flatnonzero(inside)
        if len(sel):  # 3. each person's box and shapes
            pts = np.stack([px[sel], py[sel], pz[sel]], 1).astype(np.float32)
            near = self._near_mesh(f[sel], pts) if self.source == "mesh" else self._near_capsules(f[sel], pts)
            keep[idx[sel[near]]] = False
        return keep

    def _in_track_boxes(self, frame_idx, x, y, z, max_tracks: int = 8) -> np.ndarray:
        """Indices of the points inside the box a track sweeps over the batch's frames (scalar compares: cheap
        while few people are in view; with more, every point)."""
        lo_f, hi_f = frame_idx.min(), frame_idx.max()
        i0, i1 = np.searchsorted(self._frames, lo_f), np.searchsorted(self._frames, hi_f, side="right")
        rows = self._order[self._start[i0]:self._end[i1 - 1]] if i1 > i0 else self._order[:0]
        tracks = self.people.track_id[rows]
        uniq = np.unique(tracks)
        if len(uniq) > max_tracks:
            return np.arange(len(x))
        hit = np.zeros(len(x), bool)
        for t in uniq:
            r = rows[tracks == t]
            lo, hi = self._lo[r].min(0), self._hi[r].max(0)
            hit |= (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]) & (z >= lo[2]) & (z <= hi[2])
        return np.flatnonzero(hit)

    def _person_rows(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For points of `frames` (all with people): index of their frame's first row (in frame order), and count."""
        at = np.searchsorted(self._frames, frames)
        return self._start[at], self._end[at] - self._start[at]

    def _near_capsules(self, frames: np.ndarray, pts: np.ndarray) -> np.ndarray:
        first, count = self._person_rows(frames)
        near = np.zeros(len(pts), bool)
        for k in range(int(count.max())):  # the k-th person of each point's frame
            idx = np.flatnonzero(count > k)
            rows = self._order[first[idx] + k]
            q = pts[idx]
            inb = np.flatnonzero(((q >= self._lo[rows]) & (q <= self._hi[rows])).all(1))
            for s in range(0, len(inb), _CHUNK):
                part = inb[s:s + _CHUNK]
                r = rows[part]
                ends = self._ends[r]
                near[idx[part]] |= near_capsules(q[part], ends[:, self._a_idx], ends[:, self._b_idx], self._radius)
        return near

    def _near_mesh(self, frames: np.ndarray, pts: np.ndarray) -> np.ndarray:
        import open3d.core as o3c

        near = np.zeros(len(pts), bool)
        order = np.argsort(frames, kind="stable")
        uniq, starts = np.unique(frames[order], return_index=True)
        ends = np.append(starts[1:], len(order))
        for frame, s, e in zip(uniq.tolist(), starts, ends):
            i = np.searchsorted(self._frames, frame)
            rows = self._order[self._start[i]:self._end[i]]
            verts = np.concatenate([pose_world(self.body_model, self.people, rows[c:c + 64])[0]
                                    for c in range(0, len(rows), 64)]).reshape(-1, 3)
            idx = order[s:e]
            nns = o3c.nns.NearestNeighborSearch(o3c.Tensor.from_numpy(np.ascontiguousarray(verts)))
            nns.knn_index()
            dist2 = nns.knn_search(o3c.Tensor.from_numpy(np.ascontiguousarray(pts[idx])), 1)[1].numpy()[:, 0]
            near[idx] = dist2 <= self.margin ** 2
        return near


def people_source(people: People, body_model=None) -> str:
    """Which shapes a `PeopleMask` of these people would use: 'mesh', 'joints' or 'head'."""
    if body_model is not None:
        return "mesh"
    if people.joints_world is not None and people.joints_world.shape[1] >= NUM_SKELETON:
        return "joints"
    return "head"
