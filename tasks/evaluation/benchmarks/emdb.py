"""EMDB-1 and EMDB-2 (https://eth-ait.github.io/emdb): ``*_data.pkl`` files and their image folders.

Release layout: ``<root>/P<k>/<nn>_<action>/P<k>_<nn>_<action>_data.pkl`` and ``.../images/00000.jpg ...``. A data
file holds ``gender``, ``name`` ("P0_09_outdoor_walk"), the ``emdb1``/``emdb2`` flags, ``n_frames``,
``good_frames_mask`` (F,), ``camera{intrinsics (3, 3), extrinsics (F, 4, 4) T_w2c, width, height}``, ``smpl{poses_root
(F, 3), poses_body (F, 69), trans (F, 3), betas (10,)}`` (world frame), ``kp2d`` and ``bboxes``.

As the reference (``eval/global_human/data_utils.py`` ``load_pkl``, ``metadata.py`` ``get_seq_emdb``,
``load_view_emdb``): the sequence is named "P0/09_outdoor_walk" (first ``_`` -> ``/``); its frames are the sorted
``images/`` listing masked by ``good_frames_mask``, and the parameters and cameras are indexed the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tasks.evaluation.benchmarks.errors import BenchmarkFileError, BenchmarkLayoutError
from tasks.evaluation.benchmarks.pickles import load_pickle
from tasks.evaluation.benchmarks.protocol import ProtocolName
from tasks.evaluation.benchmarks.sequence import GENDER_IDS, Benchmark, Bodies, Camera, Sequence

__all__ = ["EMDB1_LIST", "EMDB2_LIST", "IMAGE_SUFFIXES", "data_file", "emdb_sequence", "load_emdb", "read_emdb_pkl"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

# The reference's (and GVHMR's) sequence lists, in their order: the data files evaluated per split.
EMDB1_LIST = (
    "P8/69_outdoor_cartwheel", "P5/42_indoor_dancing", "P6/51_outdoor_dancing", "P2/23_outdoor_hug_tree",
    "P6/49_outdoor_big_stairs_down", "P7/59_outdoor_rom", "P3/31_outdoor_workout", "P3/33_outdoor_soccer_warmup_b",
    "P7/57_outdoor_rock_chair", "P3/32_outdoor_soccer_warmup_a", "P8/64_outdoor_skateboard", "P7/60_outdoor_workout",
    "P6/50_outdoor_workout", "P8/68_outdoor_handstand", "P9/76_outdoor_sitting", "P1/14_outdoor_climb",
    "P5/44_indoor_rom",
)
EMDB2_LIST = (
    "P2/19_indoor_walk_off_mvs", "P3/29_outdoor_stairs_up", "P4/35_indoor_walk", "P7/55_outdoor_walk",
    "P9/80_outdoor_walk_big_circle", "P9/77_outdoor_stairs_up", "P9/79_outdoor_walk_rectangle",
    "P7/57_outdoor_rock_chair", "P2/24_outdoor_long_walk", "P3/30_outdoor_stairs_down", "P4/36_outdoor_long_walk",
    "P6/49_outdoor_big_stairs_down", "P9/78_outdoor_stairs_up_down", "P7/56_outdoor_stairs_up_down",
    "P2/20_outdoor_walk", "P3/27_indoor_walk_off_mvs", "P4/37_outdoor_run_circle", "P5/40_indoor_walk_big_circle",
    "P6/48_outdoor_walk_downhill", "P0/09_outdoor_walk", "P3/28_outdoor_walk_lunges", "P7/58_outdoor_parcours",
    "P7/61_outdoor_sit_lie_walk", "P8/64_outdoor_skateboard", "P8/65_outdoor_walk_straight",
)
EMDB_LISTS = {1: EMDB1_LIST, 2: EMDB2_LIST}


def data_file(root: Path, name: str) -> Path:
    """``<root>/P0/09_outdoor_walk/P0_09_outdoor_walk_data.pkl`` for ``name`` "P0/09_outdoor_walk"."""
    return root / name / f"{name.replace('/', '_')}_data.pkl"


def _get(data: dict, dotted: str, path: Path, shape: tuple | None = None):
    value = data
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise BenchmarkFileError(f"EMDB file {path} has no field {dotted!r}; re-download it")
        value = value[part]
    if shape is not None:
        got = np.shape(value)
        if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got)):
            want = tuple("F" if s is None else s for s in shape)
            raise BenchmarkFileError(f"EMDB file {path}: {dotted} has shape {got}, expected {want}")
    return value


def read_emdb_pkl(path: str | os.PathLike) -> dict:
    """The data file, validated, as the reference's ``load_pkl`` returns it (plus the flags and image size).

    Keys: name ("P0/09_outdoor_walk"), gender, mask (F,) bool, K_fullimg (3, 3), T_w2c (F, 4, 4), smpl_params
    {smpl_body_pose (F, 69), smpl_shape (F, 10), smpl_root_pose_w (F, 3), smpl_transl_w (F, 3)}, emdb1, emdb2,
    image_wh (W, H). Arrays as stored (float64).
    """
    path = Path(path)
    annot = load_pickle(path, what="EMDB data file")
    if not isinstance(annot, dict):
        raise BenchmarkFileError(f"EMDB file {path} is not a dict; re-download it")
    n = int(_get(annot, "n_frames", path))
    out = {
        "name": str(_get(annot, "name", path)).replace("_", "/", 1),
        "gender": _get(annot, "gender", path),
        "mask": np.asarray(_get(annot, "good_frames_mask", path, (n,)), dtype=bool),
        "K_fullimg": _get(annot, "camera.intrinsics", path, (3, 3)),
        "T_w2c": _get(annot, "camera.extrinsics", path, (n, 4, 4)),
        "smpl_params": {
            "smpl_body_pose": _get(annot, "smpl.poses_body", path, (n, 69)),
            "smpl_shape": np.asarray(_get(annot, "smpl.betas", path, (10,)))[None].repeat(n, axis=0),
            "smpl_root_pose_w": _get(annot, "smpl.poses_root", path, (n, 3)),
            "smpl_transl_w": _get(annot, "smpl.trans", path, (n, 3)),
        },
        "emdb1": bool(annot.get("emdb1", False)),
        "emdb2": bool(annot.get("emdb2", False)),
        "image_wh": (int(_get(annot, "camera.width", path)), int(_get(annot, "camera.height", path))),
    }
    return out


def emdb_sequence(root: Path, data: dict, benchmark: str, protocol: ProtocolName, path: Path) -> Sequence:
    """One EMDB sequence from its validated data (``read_emdb_pkl``) and its ``images/`` folder."""
    name, mask = data["name"], data["mask"]
    gender = data["gender"]
    if gender not in GENDER_IDS or (gender == "neutral" and protocol == "reference"):
        hint = " (the reference raises KeyError on it; protocol='corrected' uses the neutral SMPL)" if (
            gender == "neutral") else ""
        raise BenchmarkFileError(f"EMDB file {path}: gender {gender!r} is not 'male' or 'female'{hint}")
    image_dir = root / name / "images"
    if not image_dir.is_dir():
        raise BenchmarkLayoutError(f"EMDB sequence {name}: image folder {image_dir} is missing; unpack it there")
    all_images = sorted(p.name for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(all_images) != mask.shape[0]:
        raise BenchmarkFileError(
            f"EMDB sequence {name}: {image_dir} has {len(all_images)} images but {path.name} describes "
            f"{mask.shape[0]} frames; re-download the sequence"
        )
    frame_ids = np.nonzero(mask)[0].astype(np.int64)
    f = frame_ids.shape[0]
    p = data["smpl_params"]
    bodies = Bodies(
        model="smpl", frame="world",
        global_orient=np.asarray(p["smpl_root_pose_w"])[mask].reshape(f, 1, 3),
        body_pose=np.asarray(p["smpl_body_pose"])[mask].reshape(f, 1, 23, 3),
        betas=np.asarray(p["smpl_shape"])[mask].reshape(f, 1, 10),
        transl=np.asarray(p["smpl_transl_w"])[mask].reshape(f, 1, 3),
        gender=np.full((f, 1), GENDER_IDS[gender], np.int8),
        mask=np.ones((f, 1), bool),
    )
    K = np.asarray(data["K_fullimg"])
    camera = Camera(T_w2c=np.asarray(data["T_w2c"])[mask], K=np.broadcast_to(K, (f, 3, 3)).copy(),
                    image_wh=data["image_wh"])
    images = tuple(image_dir / all_images[i] for i in frame_ids)
    meta = {"emdb1": data["emdb1"], "emdb2": data["emdb2"], "n_frames": int(mask.shape[0])}
    return Sequence(benchmark, name, images, frame_ids, camera=camera, bodies=bodies, meta=meta)


def load_emdb(root: str | os.PathLike, split: int = 2, *, protocol: ProtocolName = "reference") -> Benchmark:
    """EMDB-``split`` (1 or 2) sequences under ``root``, in the reference's list order.

    ``reference``: the data files of the reference's list (:data:`EMDB1_LIST` / :data:`EMDB2_LIST`);
    ``corrected``: the data files under ``root`` whose ``emdb<split>`` flag is set. Listed sequences absent from
    ``root`` are reported in ``Benchmark.missing`` (a partial download evaluates what is there).
    """
    if split not in EMDB_LISTS:
        raise ValueError(f"EMDB split must be 1 or 2, got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkLayoutError(f"EMDB folder {root} does not exist")
    found = {}
    for path in sorted(root.glob("P*/*/*_data.pkl")):
        data = read_emdb_pkl(path)
        found[data["name"]] = (data, path)
    if not found:
        raise BenchmarkLayoutError(
            f"{root} is not an EMDB folder: no P*/<sequence>/*_data.pkl below it; unpack EMDB there"
        )
    listed = EMDB_LISTS[split]
    if protocol == "reference":
        names = [n for n in listed if n in found]
    else:
        flagged = {n for n, (d, _) in found.items() if d[f"emdb{split}"]}
        names = [n for n in listed if n in flagged] + sorted(flagged - set(listed))
    missing = tuple(n for n in listed if n not in found)
    if not names:
        which = f"in the EMDB-{split} list" if protocol == "reference" else f"flagged emdb{split}"
        raise BenchmarkLayoutError(f"{root} holds no EMDB-{split} sequence ({len(found)} data files, none {which})")
    benchmark = f"emdb{split}"
    sequences = tuple(emdb_sequence(root, found[n][0], benchmark, protocol, found[n][1]) for n in names)
    return Benchmark(benchmark, root, protocol, sequences, missing=missing)
