"""A training sample as the reference builds it: V view dicts of one sequence, and the source base class.

`MultiViewSource[(idx, ar_idx, V)]` (a `torch.utils.data.Dataset`) returns the view dicts of the training parity
pack (``batch.v{i}.*``): the sample's generator is ``default_rng(seed + idx)`` (or one unseeded generator per
worker); frames are picked (`sampling.pick_frames`), each view is read by the source, cropped and resized to
``resolution[ar_idx]`` (`cropping.crop_resize`, plus the crop augmentation), given its image / ray-map flags
(`sampling.draw_inputs`), then finished here: normalised image (or colour-jittered, one draw per sample), ray map in
view 0's camera frame, world points from the depth, validity, constants, and last the ``rng`` value of each view.

A source subclass lists its start frames (``self._starts``: (sequence, position) pairs), says how many frames a
sequence has (``_n_frames``) and reads one frame (``_read`` -> :class:`Frame`). Views are collated with
`torch.utils.data.default_collate`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch

from tasks.training.data.augment import SeqColorJitter, normalize
from tasks.training.data.cropping import crop_resize
from tasks.training.data.errors import DataLayoutError, TooManyPeopleError
from tasks.training.data.sampling import draw_inputs, pick_frames, start_positions

# Person slots of a view: key -> shape of one person (the reference's smpl_key2shape)
SMPL_SHAPES = {
    "smplx_root_pose": (1, 3), "smplx_body_pose": (21, 3), "smplx_jaw_pose": (1, 3), "smplx_leye_pose": (1, 3),
    "smplx_reye_pose": (1, 3), "smplx_left_hand_pose": (15, 3), "smplx_right_hand_pose": (15, 3),
    "smplx_shape": (11,), "smplx_transl": (3,), "smplx_gender_id": (),
}
GENDER_IDS = {"neutral": 0}
MIN_DEPTH_M = 0.01  # a person whose SMPL-X transl is not this far in front of the camera is left out

# Supervision flags (bool per view) added when `flags=True`: which ground truth a view really has
FLAG_KEYS = ("has_depth", "has_msk", "pseudo")


@dataclasses.dataclass
class Frame:
    """One frame as a source reads it, before cropping."""

    image: object  # PIL RGB image, W x H
    depth: np.ndarray  # (H, W) float32 metres along the optical axis; 0 = unknown
    mask: object | None  # PIL 'L' image of the people (> 127 = person), or None when the source has no masks
    intrinsics: np.ndarray  # (3, 3) pixels
    cam_to_world: np.ndarray  # (4, 4) camera-to-world, OpenCV axes
    people: list[dict]  # person dicts with the SMPL_SHAPES keys (camera frame) and 'smplx_gender'
    label: str  # '<sequence>_<frame>'
    instance: str  # the image file


def person_slots(people: list[dict], max_humans: int, where: str) -> dict[str, np.ndarray]:
    """People -> ``smpl_mask`` (N,) bool and ``smplx_*`` (N, ...) float32: those at least 1 cm in front of the
    camera, nearest first (stable), zeros in the empty slots; more than N is an error naming the frame."""
    if any("smplx_transl" not in p for p in people):
        raise DataLayoutError(f"{where}: a person lacks smplx_transl")
    humans = [p for p in people if p["smplx_transl"][-1] > MIN_DEPTH_M]
    if len(humans) > max_humans:
        raise TooManyPeopleError(f"{where}: {len(humans)} people in front of the camera, more than the "
                                 f"{max_humans} person slots (raise max_humans, or leave the frame out)")
    humans = sorted(humans, key=lambda p: p["smplx_transl"][-1])
    slots = {"smpl_mask": np.zeros(max_humans, dtype=np.bool_)}
    slots["smpl_mask"][:len(humans)] = True
    for key, shape in SMPL_SHAPES.items():
        slots[key] = np.zeros((max_humans, *shape), dtype=np.float32)
        for h, person in enumerate(humans):
            if key == "smplx_gender_id":
                gender = person.get("smplx_gender", "neutral")
                if gender not in GENDER_IDS:
                    raise DataLayoutError(f"{where}: person {h} has gender {gender!r}; only 'neutral' is supported")
                slots[key][h] = GENDER_IDS[gender]
                continue
            try:
                slots[key][h] = np.asarray(person[key]).astype(np.float32)
            except KeyError:
                raise DataLayoutError(f"{where}: a person lacks {key}") from None
            except ValueError:
                raise DataLayoutError(f"{where}: {key} has shape {np.shape(person[key])}, expected {shape}") from None
    return slots


def ray_map(first_cam_to_world: np.ndarray, cam_to_world: np.ndarray, K: np.ndarray, height: int,
            width: int) -> np.ndarray:
    """(H, W, 6) float32: origin and unit direction of each pixel's ray in the first view's camera frame (pixel
    centres at integer (column, row))."""
    relative = np.linalg.inv(first_cam_to_world) @ cam_to_world
    cols, rows = np.meshgrid(np.arange(width), np.arange(height), indexing="xy")
    pixels = np.stack([cols, rows, np.ones_like(cols)], axis=-1).reshape(-1, 3).T
    directions = np.linalg.inv(K) @ pixels
    directions = (relative @ np.vstack([directions, np.ones_like(directions[0])])).T[:, :3].reshape(height, width, 3)
    directions = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    origins = np.broadcast_to(relative[:3, 3], (height, width, 3))
    return np.concatenate([origins, directions], axis=-1).astype(np.float32)


def depth_to_world(depth: np.ndarray, K: np.ndarray, cam_to_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) depth (m), (3, 3) K, (4, 4) camera-to-world -> (H, W, 3) float32 world points and (H, W) depth > 0."""
    K = np.float32(K)
    height, width = depth.shape
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    x = (cols - K[0, 2]) * depth / K[0, 0]
    y = (rows - K[1, 2]) * depth / K[1, 1]
    points = np.stack((x, y, depth), axis=-1).astype(np.float32)
    world = np.einsum("ik, vuk -> vui", cam_to_world[:3, :3], points) + cam_to_world[:3, 3][None, None, :]
    return world, depth > 0.0


class MultiViewSource(torch.utils.data.Dataset):
    """Base of the training sources: indexing, the sample generator, cropping and the finished view dicts."""

    dataset_name = "base"
    supervision = {"has_depth": True, "has_msk": True, "pseudo": False}  # the FLAG_KEYS values of this source

    def __init__(self, *, resolution: Sequence[tuple[int, int]] | tuple[int, int], num_views: int = 4,
                 seed: int | None = None, aug_crop: int = 0, seq_aug_crop: bool = False, color_jitter: bool = False,
                 allow_repeat: bool = False, max_interval: int = 4, max_humans: int = 10, flags: bool = False,
                 targets: Callable[[list[dict]], None] | None = None):
        """resolution: (W, H) or a list of them (the aspect-ratio buckets, chosen per sample by ``ar_idx``).
        seed: samples are ``default_rng(seed + idx)`` (None: one unseeded generator per worker, as the real run).
        aug_crop: crop augmentation (the resize target grows by ``rng.integers(0, aug_crop)`` px before the centre
        crop; off below 2), drawn per view, or once per sample with `seq_aug_crop`. color_jitter: `SeqColorJitter`
        instead of plain normalisation. allow_repeat: short tails repeat frames (the real run) instead of being
        left out. flags: add the FLAG_KEYS booleans to every view (mixtures need them). targets: a hook that may fill
        in missing ground truth (see `tasks.training.data.labels`)."""
        pairs = [resolution] if isinstance(resolution, tuple) and isinstance(resolution[0], int) else resolution
        self.resolutions = [(int(w), int(h)) for w, h in pairs]
        if not self.resolutions or num_views < 2:
            raise ValueError("a source needs at least one resolution and 2 views")
        self.num_views, self.seed, self.aug_crop, self.seq_aug_crop = num_views, seed, aug_crop, seq_aug_crop
        self.color_jitter, self.allow_repeat, self.max_interval = color_jitter, allow_repeat, max_interval
        self.max_humans, self.flags, self.targets = max_humans, flags, targets
        self._starts: list[tuple[int, int]] = []

    # -- what a source provides -------------------------------------------------------------------------------------

    def _n_frames(self, sequence: int) -> int:
        raise NotImplementedError

    def _read(self, sequence: int, position: int) -> Frame:
        raise NotImplementedError

    def _index_sequences(self, lengths: Sequence[int]) -> None:
        """Fill the start frames from the sequences' lengths, in order (the reference's index over start frames)."""
        self._starts = [(s, p) for s, n in enumerate(lengths)
                        for p in range(start_positions(n, self.num_views, self.allow_repeat))]

    # -- the sample -------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._starts)

    def _generators(self, idx: int) -> tuple[np.random.Generator, np.random.Generator]:
        if self.seed is not None:
            return np.random.default_rng(self.seed + idx), np.random.default_rng([self.seed, idx])
        if not hasattr(self, "_rng"):  # per process: DataLoader workers get distinct torch seeds
            self._rng = np.random.default_rng(int(torch.randint(0, 2**32, (1,)).item()))
            self._jitter_rng = np.random.default_rng(int(torch.randint(0, 2**32, (1,)).item()))
        return self._rng, self._jitter_rng

    def __getitem__(self, index) -> list[dict]:
        if isinstance(index, tuple | list | np.ndarray):
            idx, ar_idx, nview = (int(i) for i in index)
        else:
            if len(self.resolutions) != 1:
                raise ValueError("index a multi-resolution source with (idx, ar_idx, num_views) "
                                 "(see tasks.training.data.buckets.BucketBatchSampler)")
            idx, ar_idx, nview = int(index), 0, self.num_views
        if not 0 <= idx < len(self):
            raise IndexError(f"sample {idx} of {len(self)}")
        if not 2 <= nview <= self.num_views:
            raise ValueError(f"a sample has 2 to {self.num_views} views (asked {nview})")
        rng, jitter_rng = self._generators(idx)
        grow = int(rng.integers(0, self.aug_crop)) if self.aug_crop > 1 and self.seq_aug_crop else 0
        resolution = self.resolutions[ar_idx]
        sequence, start = self._starts[idx]
        views = []
        for v, position in enumerate(pick_frames(rng, nview, start, self._n_frames(sequence), self.max_interval)):
            frame = self._read(sequence, position)
            if self.aug_crop > 1 and not self.seq_aug_crop:
                grow = int(rng.integers(0, self.aug_crop))
            image, depth, mask, K = crop_resize(frame.image, frame.depth, frame.mask, frame.intrinsics, resolution,
                                                grow, where=frame.instance)
            img_mask, ray_mask = draw_inputs(rng, v)
            views.append(self._view(frame, image, depth, mask, K, img_mask, ray_mask))
        if self.targets is not None:
            self.targets(views)
        jitter = SeqColorJitter.draw(jitter_rng) if self.color_jitter else None
        return finish_views(views, (idx, ar_idx), rng, jitter)

    def _view(self, frame: Frame, image, depth, mask, K, img_mask: bool, ray_mask: bool) -> dict:
        if mask is None:
            msk = torch.zeros(image.size[1], image.size[0])
        else:
            msk = torch.from_numpy(np.asarray(mask, dtype=np.uint8).astype(np.float32) / 255 > 0.5).float()
        view = dict(
            img=image, msk=msk, depthmap=depth.astype(np.float32), camera_pose=frame.cam_to_world.astype(np.float32),
            camera_intrinsics=K.astype(np.float32), dataset=self.dataset_name, label=frame.label,
            instance=frame.instance, is_metric=True, is_video=True, quantile=np.array(1, dtype=np.float32),
            img_mask=img_mask, ray_mask=ray_mask, camera_only=False, depth_only=False, single_view=False,
            reset=False, **person_slots(frame.people, self.max_humans, frame.instance))
        if self.flags:
            view.update(self.supervision)
        return view


def finish_views(views: list[dict], index: tuple[int, int], rng: np.random.Generator,
                 jitter: SeqColorJitter | None = None) -> list[dict]:
    """Finish cropped views in place (the reference's ``__getitem__`` after ``_get_views``): ``idx``,
    ``true_shape``, the image tensor (jittered first when `jitter` is given: the same jitter for every view),
    ``sky_mask``, ``ray_map`` (in view 0's frame), ``pts3d`` and ``valid_mask``; last, each view's ``rng`` value
    (the next 4 bytes of the sample's generator, big-endian)."""
    first_pose = views[0]["camera_pose"]
    for v, view in enumerate(views):
        view["idx"] = (index[0], index[1], v)
        width, height = view["img"].size
        view["true_shape"] = np.int32((height, width))
        view["img"] = normalize(jitter(view["img"]) if jitter is not None else view["img"])
        view["sky_mask"] = view["depthmap"] < 0
        if not np.isfinite(view["camera_pose"]).all():
            raise DataLayoutError(f"{view['instance']}: the camera pose is not finite")
        view["ray_map"] = ray_map(first_pose, view["camera_pose"], view["camera_intrinsics"], height, width)
        pts3d, valid = depth_to_world(view["depthmap"], view["camera_intrinsics"], view["camera_pose"])
        view["pts3d"] = pts3d
        view["valid_mask"] = valid & np.isfinite(pts3d).all(axis=-1)
    for view in views:
        view["rng"] = int.from_bytes(rng.bytes(4), "big")
    return views
