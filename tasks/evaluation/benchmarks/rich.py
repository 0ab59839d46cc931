"""RICH test (https://rich.is.tue.mpg.de) with the labels GVHMR distributes (WHAM's evaluation protocol).

Files: ``<labels>/hmr4d_support/rich_test_labels.pt`` ({vid: {frame_id (F,), gt_smplx_params {global_orient (F, 3),
body_pose (F, 63), betas (F, 10), transl (F, 3)}, gender}}, vid like "test/Gym_013_burpee4/cam_06"; GVHMR's
``RICH_hmr4d_support.tar.gz``) and ``<labels>/resource/cam2params.pt`` ({"<scene>_<cam id>": (T_w2c (4, 4), K (3, 3))},
in GVHMR's repository under ``hmr4d/dataset/rich/resource/``). Images: ``<root>/<vid>/*.jpeg``.

As the reference (``eval/global_human/metadata.py`` ``get_annot_rich``, ``get_seq_rich``, ``load_view_rich``): the
camera key is the text before the first ``_`` of the sequence name plus the integer camera id ("Gym_6"); the camera
is constant over the sequence; ``frame_id`` indexes the *sorted listing* of ``<root>/<vid>/`` by position.
Both files are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tasks.evaluation.benchmarks.errors import BenchmarkFileError, BenchmarkLayoutError
from tasks.evaluation.benchmarks.pickles import load_torch_file
from tasks.evaluation.benchmarks.protocol import ProtocolName
from tasks.evaluation.benchmarks.sequence import GENDER_IDS, Benchmark, Bodies, Camera, Sequence

__all__ = ["CAMERAS_FILE", "LABELS_FILE", "camera_key", "load_rich", "read_rich_labels"]

LABELS_FILE = Path("hmr4d_support") / "rich_test_labels.pt"
CAMERAS_FILE = Path("resource") / "cam2params.pt"
_PARAM_SHAPES = {"global_orient": (3,), "body_pose": (63,), "betas": (10,), "transl": (3,)}


def camera_key(vid: str) -> str:
    """"test/Gym_013_burpee4/cam_06" -> "Gym_6" (scene before the first ``_``, integer camera id)."""
    try:
        _, sname, cname = vid.split("/")
        return f"{sname.split('_')[0]}_{int(cname.split('_')[1])}"
    except (ValueError, IndexError):
        raise BenchmarkFileError(f"RICH label key {vid!r} is not 'split/<sequence>/cam_NN'") from None


def read_rich_labels(labels_root: str | os.PathLike) -> dict:
    """Labels joined with their camera, validated: {vid: {frame_id, gt_smplx_params, gender, T_w2c, K}} (torch)."""
    import torch

    labels_root = Path(labels_root)
    labels_path, cams_path = labels_root / LABELS_FILE, labels_root / CAMERAS_FILE
    for p, what in ((labels_path, "RICH labels"), (cams_path, "RICH cameras")):
        if not p.is_file():
            raise BenchmarkFileError(
                f"{what} file {p} not found; download GVHMR's RICH_hmr4d_support.tar.gz (labels) and its "
                f"hmr4d/dataset/rich/resource/cam2params.pt into {labels_root}"
            )
    labels = load_torch_file(labels_path, what="RICH labels file")
    cams = load_torch_file(cams_path, what="RICH cameras file")
    if not isinstance(labels, dict) or not labels:
        raise BenchmarkFileError(f"RICH labels file {labels_path} is not a non-empty dict of sequences")
    problems = []
    for vid, label in labels.items():
        key = camera_key(vid)
        if key not in cams:
            problems.append(f"{vid}: camera {key!r} not in {cams_path.name}")
            continue
        if not isinstance(label, dict) or not {"frame_id", "gt_smplx_params", "gender"} <= set(label):
            problems.append(f"{vid}: needs frame_id, gt_smplx_params and gender")
            continue
        n = len(label["frame_id"])
        params = label["gt_smplx_params"]
        for name, shape in _PARAM_SHAPES.items():
            if not isinstance(params.get(name), torch.Tensor) or tuple(params[name].shape) != (n, *shape):
                problems.append(f"{vid}: gt_smplx_params.{name} is not a ({n}, {shape[0]}) tensor")
        T, K = cams[key]
        if tuple(T.shape) != (4, 4) or tuple(K.shape) != (3, 3):
            problems.append(f"camera {key}: (T_w2c, K) are not (4, 4), (3, 3)")
        label["T_w2c"], label["K"] = T, K
        if len(problems) >= 5:
            break
    if problems:
        raise BenchmarkFileError(f"RICH labels in {labels_root} are malformed: " + "; ".join(problems[:5]))
    return labels


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except OSError as err:
        raise BenchmarkFileError(f"cannot read RICH image {path} for its size: {err}") from err


def _sequence(root: Path, vid: str, label: dict, protocol: ProtocolName) -> Sequence:
    image_dir = root / vid
    if not image_dir.is_dir():
        raise BenchmarkLayoutError(f"RICH sequence {vid}: image folder {image_dir} is missing; unpack RICH there")
    listing = sorted(p.name for p in image_dir.iterdir() if not p.name.startswith("."))
    frame_ids = label["frame_id"].numpy().astype(np.int64)
    if frame_ids.size and (frame_ids.min() < 0 or frame_ids.max() >= len(listing)):
        raise BenchmarkFileError(
            f"RICH sequence {vid}: frame_id goes up to {int(frame_ids.max())} but {image_dir} lists "
            f"{len(listing)} files (frame_id indexes the sorted listing); the image folder is incomplete"
        )
    if np.any(np.diff(frame_ids) <= 0):  # the reference sorts the kept file names: parameters would shift
        raise BenchmarkFileError(f"RICH sequence {vid}: frame_id is not strictly increasing; re-download the labels")
    gender = label["gender"]
    if gender not in ("male", "female"):
        raise BenchmarkFileError(f"RICH sequence {vid}: gender {gender!r} is not 'male' or 'female'")
    f = frame_ids.shape[0]
    p = {k: v.numpy() for k, v in label["gt_smplx_params"].items()}
    bodies = Bodies(
        model="smplx", frame="world",
        global_orient=p["global_orient"].reshape(f, 1, 3), body_pose=p["body_pose"].reshape(f, 1, 21, 3),
        betas=p["betas"].reshape(f, 1, 10), transl=p["transl"].reshape(f, 1, 3),
        gender=np.full((f, 1), GENDER_IDS[gender], np.int8), mask=np.ones((f, 1), bool),
    )
    images = tuple(image_dir / listing[i] for i in frame_ids)
    T, K = label["T_w2c"].numpy(), label["K"].numpy()
    width, height = _image_size(images[0]) if images else (0, 0)
    if images and not (0 < K[0, 2] < width and 0 < K[1, 2] < height):
        raise BenchmarkFileError(
            f"RICH sequence {vid}: the camera's principal point ({K[0, 2]:.0f}, {K[1, 2]:.0f}) is outside the "
            f"{width}x{height} images; cam2params.pt is for the full-resolution images (4112x3008), not the "
            "downsampled ones (images_ds4): point the root at the original RICH images"
        )
    camera = Camera(T_w2c=np.broadcast_to(T, (f, 4, 4)).copy(), K=np.broadcast_to(K, (f, 3, 3)).copy(),
                    image_wh=(width, height))
    return Sequence("rich", vid, images, frame_ids, camera=camera, bodies=bodies, meta={"camera_key": camera_key(vid)})


def load_rich(root: str | os.PathLike, *, labels: str | os.PathLike | None = None,
              protocol: ProtocolName = "reference") -> Benchmark:
    """RICH test sequences: images under ``root``, labels under ``labels`` (default ``root``), in the labels' order."""
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkLayoutError(f"RICH folder {root} does not exist")
    table = read_rich_labels(labels if labels is not None else root)
    sequences = tuple(_sequence(root, vid, label, protocol) for vid, label in table.items())
    return Benchmark("rich", root, protocol, sequences)
