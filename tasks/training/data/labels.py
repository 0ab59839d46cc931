"""A pseudo-label build (``human3r labels build ... --images frames``) as a training source.

The build's ``labels/<split>.parquet`` (one row per person per frame) and its full-frame JPEGs become sequences:
the frames of one video in order, split wherever the frame step grows beyond the video's smallest step (a frame
without labels or without an image breaks the run). A sample is `num_views` of them, picked, cropped, flagged and
finished exactly as BEDLAM samples are (`tasks.training.data.views`), with the same view keys, so the two mix in one
batch. Per view:

* people: the frame's rows with a camera-frame body (``transl_cam_m``, i.e. reconstructed with a body model) and, by
  default, ``valid`` (``people="body"`` keeps the flagged ones too), at least 1 cm in front of the camera, nearest
  first: ``global_orient_cam`` -> ``smplx_root_pose``, poses, ``betas`` (10, padded with a zero 11th),
  ``transl_cam_m`` -> ``smplx_transl``; eyes zero; the expression is not carried (the targets use none, as for
  BEDLAM);
* camera: ``intrinsics_src_px`` and ``inv(world_to_cam)`` (the reconstruction's camera: pseudo ground truth);
* missing ground truth, marked explicitly: ``depthmap`` zeros, so ``pts3d`` is the camera centre and
  ``valid_mask`` all false; ``msk`` zeros; and the flags ``has_depth=False``, ``has_msk=False``, ``pseudo=True``
  (BEDLAM views in a mixture carry True, True, False). The step drops, per sample, the point/confidence and camera
  pose terms where ``has_depth`` is false (their normaliser has no valid pixel) and the person-mask term where
  ``has_msk`` is false; the image, score and SMPL-X terms stay.

**Distillation hook.** ``targets(views)`` is called with a sample's cropped views (PIL image at the working
resolution, ``camera_intrinsics``, ``camera_pose``, the person slots) before they are finished; it may set
``depthmap`` ((H, W) float32 metres, e.g. the frozen base model's depth) and ``has_depth=True``, and ``msk`` ((H, W)
float32 0/1) and ``has_msk=True``; ``pts3d`` and ``valid_mask`` then follow from the filled depth.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tasks.training.data.errors import DataLayoutError, LabelBuildError, TooManyPeopleError
from tasks.training.data.views import MIN_DEPTH_M, Frame, MultiViewSource

PEOPLE = ("valid", "body")  # which labelled people fill the slots
_POSES = (("smplx_root_pose", "global_orient_cam", (1, 3)), ("smplx_body_pose", "body_pose", (21, 3)),
          ("smplx_jaw_pose", "jaw_pose", (1, 3)), ("smplx_left_hand_pose", "left_hand_pose", (15, 3)),
          ("smplx_right_hand_pose", "right_hand_pose", (15, 3)))
_COLUMNS = ("video_id", "frame_idx", "track_id", "image_path", "image_width_px", "image_height_px",
            "intrinsics_src_px", "world_to_cam", "global_orient_cam", "body_pose", "left_hand_pose",
            "right_hand_pose", "jaw_pose", "betas", "transl_cam_m", "valid")
REBUILD = "rebuild it with `human3r labels build ... --images frames`"


def _vectors(column, width: int) -> np.ndarray:
    """A list<float> column -> (N, width) float32, NaN rows where null."""
    from storage.arrays import as_vectors

    return as_vectors(column, width, np.float32)


def read_label_rows(root: str | os.PathLike, split: str = "train"):
    """The build's rows of `split` (the columns a view needs), sorted by video and frame; `LabelBuildError` when the
    build has no full-frame images or no such split."""
    import pyarrow.parquet as pq

    base = Path(root)
    if not (base / "build.json").is_file():
        raise DataLayoutError(f"{base} is not a pseudo-label build (no build.json); make one with "
                              f"`human3r labels build --out {base} --images frames`")
    info = json.loads((base / "build.json").read_text())
    mode = (info.get("images") or {}).get("mode", "none")
    if mode != "frames":
        what = "no images" if mode == "none" else "person crops, not full frames"
        raise LabelBuildError(f"label build {base} has {what} (--images {mode}); a training source needs the full "
                              f"frames: {REBUILD}")
    path = base / "labels" / f"{split}.parquet"
    if not path.is_file():
        have = ", ".join(sorted(p.stem for p in (base / "labels").glob("*.parquet"))) or "none"
        raise LabelBuildError(f"label build {base} has no {split} split (labels/{split}.parquet; splits: {have})")
    return pq.read_table(path, columns=list(_COLUMNS)).sort_by([("video_id", "ascending"),
                                                                ("frame_idx", "ascending"), ("track_id", "ascending")])


class LabelBuildDataset(MultiViewSource):
    """Samples of `num_views` ordered frames of one video of a pseudo-label build (see the module doc); the other
    options are `MultiViewSource`'s. Views always carry the supervision flags."""

    dataset_name = "labels"
    supervision = {"has_depth": False, "has_msk": False, "pseudo": True}

    def __init__(self, root: str | os.PathLike, split: str = "train", people: str = "valid",
                 targets: Callable[[list[dict]], None] | None = None, **options):
        if people not in PEOPLE:
            raise LabelBuildError(f"people must be one of {', '.join(PEOPLE)} (got {people!r})")
        options["flags"] = True
        super().__init__(targets=targets, **options)
        self.root, self.split, self.people = str(root), split, people
        self._load(read_label_rows(root, split))

    def _load(self, table) -> None:
        videos = np.asarray(table.column("video_id").to_pylist(), dtype=object)
        frames = table.column("frame_idx").to_numpy()
        paths = table.column("image_path").to_pylist()
        self._size = np.c_[table.column("image_width_px").to_numpy(), table.column("image_height_px").to_numpy()]
        self._K = _vectors(table.column("intrinsics_src_px"), 9).astype(np.float64).reshape(-1, 3, 3)
        self._w2c = _vectors(table.column("world_to_cam"), 16).astype(np.float64).reshape(-1, 4, 4)
        self._params = {key: _vectors(table.column(name), int(np.prod(shape))).reshape(-1, *shape)
                        for key, name, shape in _POSES}
        self._betas = _vectors(table.column("betas"), 10)
        self._transl = _vectors(table.column("transl_cam_m"), 3)
        usable = np.isfinite(self._transl).all(axis=1)
        if self.people == "valid":
            usable &= np.asarray(table.column("valid").to_numpy(zero_copy_only=False), bool)
        self._paths = paths
        focal = self._K[:, [0, 1], [0, 1]]
        camera_ok = np.isfinite(self._K).all(axis=(1, 2)) & (focal > 0).all(axis=1) & np.isfinite(self._w2c).all(
            axis=(1, 2))
        self.skipped_frames = 0  # frames left out for an unusable camera (a focal length that is not positive)
        # frames: (video, frame_idx) -> first row and the people rows; sequences: runs at the video's smallest step
        starts = np.flatnonzero(np.r_[True, (videos[1:] != videos[:-1]) | (frames[1:] != frames[:-1])])
        ends = np.r_[starts[1:], len(frames)]
        same_video = np.r_[False, videos[starts][1:] == videos[starts][:-1]]
        steps = np.r_[0, np.diff(frames[starts])]
        smallest: dict[str, int] = {}
        for video, step, same in zip(videos[starts], steps, same_video):
            if same:
                smallest[video] = min(smallest.get(video, step), step)
        self.sequences: list[list[tuple[int, np.ndarray]]] = []
        listed: dict[str, set[str]] = {}
        run: list[tuple[int, np.ndarray]] = []
        for k, (s, e) in enumerate(zip(starts, ends)):
            path = paths[s]
            if not same_video[k] or path is None or not camera_ok[s] or steps[k] > smallest.get(videos[s], 1):
                self._close(run)
                run = []
            if path is None or not camera_ok[s]:
                self.skipped_frames += int(path is not None)
                continue
            folder, name = os.path.split(path)
            if folder not in listed:
                where = Path(self.root) / folder
                listed[folder] = set(os.listdir(where)) if where.is_dir() else set()
            if name not in listed[folder]:
                raise DataLayoutError(f"label build {self.root}: {path} is missing (its labels are there); {REBUILD}")
            people = np.arange(s, e)[usable[s:e] & (self._transl[s:e, 2] > MIN_DEPTH_M)]
            if len(people) > self.max_humans:
                raise TooManyPeopleError(f"label build {self.root}: video {videos[s]} frame {frames[s]} has "
                                         f"{len(people)} labelled people, more than the {self.max_humans} slots "
                                         f"(raise max_humans, or select fewer tracks with --where)")
            run.append((int(s), people))
        self._close(run)
        if not self.sequences:
            raise LabelBuildError(f"label build {self.root}: no usable frames in the {self.split} split "
                                  f"({self.skipped_frames} with an unusable camera)")
        self.frame_index = frames
        self.video_ids = videos
        self._index_sequences([len(seq) for seq in self.sequences])

    def _close(self, run: list) -> None:
        if run:
            self.sequences.append(run)

    def _n_frames(self, sequence: int) -> int:
        return len(self.sequences[sequence])

    def _read(self, sequence: int, position: int) -> Frame:
        from PIL import Image

        row, people = self.sequences[sequence][position]
        path = Path(self.root) / self._paths[row]
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except OSError as err:
            raise DataLayoutError(f"label build {self.root}: cannot read {self._paths[row]} ({err})") from None
        width, height = (int(v) for v in self._size[row])
        if image.size != (width, height):
            raise DataLayoutError(f"label build {self.root}: {self._paths[row]} is {image.size[0]}x{image.size[1]}, "
                                  f"its labels say {width}x{height}; {REBUILD}")
        persons = []
        for r in people:
            person = {key: self._params[key][r] for key, _, _ in _POSES}
            person.update(smplx_leye_pose=np.zeros((1, 3), np.float32), smplx_reye_pose=np.zeros((1, 3), np.float32),
                          smplx_shape=np.r_[self._betas[r], np.float32(0)], smplx_transl=self._transl[r],
                          smplx_gender="neutral")
            persons.append(person)
        return Frame(image=image, depth=np.zeros((height, width), np.float32), mask=None, intrinsics=self._K[row],
                     cam_to_world=np.linalg.inv(self._w2c[row]), people=persons,
                     label=f"{self.video_ids[row]}_{int(self.frame_index[row]):06d}", instance=str(path))

    def __repr__(self) -> str:
        return (f"LabelBuildDataset({len(self)} samples of {self.num_views} views from {len(self.sequences)} "
                f"sequences, root={self.root!r}, split={self.split!r}, people={self.people!r}, seed={self.seed})")
