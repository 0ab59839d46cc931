"""3DPW test: the ``3dpw_test.pkl`` annotation file, how it is built from the release, and the sequences.

Release layout (https://virtualhumans.mpi-inf.mpg.de/3DPW): ``<root>/imageFiles/<seq>/image_%05d.jpg`` and
``<root>/sequenceFiles/test/<seq>.pkl`` (Python-2 pickles: per actor ``poses`` (F, 72), ``trans`` (F, 3),
``betas`` (10+), ``genders`` 'm'/'f', ``campose_valid`` (F,); per frame ``cam_poses`` (F, 4, 4) world -> camera;
``cam_intrinsics`` (3, 3)).

The reference evaluates an annotation file that ``eval/dataset/prepare_3dpw.py`` writes (:func:`build_annotations`
does the same): a dict ``"<seq>/image_%05d.jpg" -> {focal (2,), princpt (2,), size [W, H], cam_poses (4, 4) T_w2c,
humans: [{smpl_root_pose (1, 3), smpl_body_pose (23, 3), smpl_shape (10,), smpl_transl (3,), smpl_gender}]}``, all
float32, listing an image only when an actor is valid in it. Bodies are in the camera frame: the root rotation is
``R_w2c @ root``, and ``transl_cam = R (trans + J0) + t - J0`` with ``J0`` the rest pelvis of the gendered SMPL
for those betas (:func:`tasks.evaluation.benchmarks.smpl_files.SmplModel.rest_pelvis`).
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tasks.evaluation.benchmarks.errors import BenchmarkFileError, BenchmarkLayoutError
from tasks.evaluation.benchmarks.pickles import load_pickle
from tasks.evaluation.benchmarks.protocol import ProtocolName
from tasks.evaluation.benchmarks.sequence import GENDER_IDS, NO_PERSON, Benchmark, Bodies, Camera, Sequence

__all__ = ["ANNOTATION_FILE", "build_annotations", "load_3dpw", "read_annotations", "write_annotations"]

ANNOTATION_FILE = "3dpw_test.pkl"
PelvisRest = Callable[[str, np.ndarray], np.ndarray]  # (gender 'male'/'female', betas (10,)) -> rest pelvis (3,)
_HUMAN_FIELDS = {"smpl_root_pose": (1, 3), "smpl_body_pose": (23, 3), "smpl_shape": (10,), "smpl_transl": (3,)}
_IMAGE_KEY = re.compile(r"([^/]+)/image_(\d+)\.jpg")


# ------------------------------------------------------------------------------------------------------------------
# Building the annotation file from the release (eval/dataset/prepare_3dpw.py)
# ------------------------------------------------------------------------------------------------------------------


def _field(data: dict, key: str, path: Path):
    if key not in data:
        raise BenchmarkFileError(f"3DPW sequence file {path} has no field {key!r}; re-download sequenceFiles")
    return data[key]


def _camera_rotated_root(root_rotvec: np.ndarray, R: np.ndarray) -> np.ndarray:
    """rotvec(R_w2c @ rotmat(root)) with the reference's float32 roma round trip. (3,) -> (3,) float32."""
    import roma
    import torch

    rotmat = roma.rotvec_to_rotmat(torch.from_numpy(np.asarray(root_rotvec, np.float64)).float()).numpy()
    cam = R @ rotmat  # float64 @ float32 -> float64, as numpy does in the reference
    return roma.rotmat_to_rotvec(torch.from_numpy(cam).float()).numpy()


def build_annotations(root: str | os.PathLike, pelvis_rest: PelvisRest, split: str = "test",
                      image_size: tuple[int, int] | None = None) -> dict:
    """Build the reference's ``3dpw_<split>.pkl`` dict from ``<root>/sequenceFiles/<split>/*.pkl``.

    ``pelvis_rest(gender, betas)`` gives J0 (a gendered SMPL model; see ``smpl_files.SmplModel``).
    ``image_size`` (W, H) skips reading each image's header (the reference opens every image for its size).
    """
    from PIL import Image

    root = Path(root)
    seq_dir = root / "sequenceFiles" / split
    if not seq_dir.is_dir():
        raise BenchmarkLayoutError(f"{root} is not a 3DPW release folder: {seq_dir} is missing")
    files = sorted(p for p in seq_dir.iterdir() if p.suffix == ".pkl")
    if not files:
        raise BenchmarkLayoutError(f"no 3DPW sequence file (*.pkl) in {seq_dir}")
    annots: dict = {}
    for path in files:
        data = load_pickle(path, encoding="latin1", what="3DPW sequence file")
        K = np.asarray(_field(data, "cam_intrinsics", path))
        focal, princpt = np.asarray([K[0, 0], K[1, 1]]), np.asarray([K[0, -1], K[1, -1]])
        poses, trans, betas = (_field(data, k, path) for k in ("poses", "trans", "betas"))
        genders, valid, cam_poses = (_field(data, k, path) for k in ("genders", "campose_valid", "cam_poses"))
        seq = path.stem
        for k in range(len(poses[0])):
            img_key = f"{seq}/image_{k:05d}.jpg"
            T = np.asarray(cam_poses[k])
            R, t = T[:3, :3], T[:3, -1]
            people = []
            for i in range(len(genders)):
                if valid[i][k] == 0:
                    continue
                pose = np.asarray(poses[i][k]).reshape(24, 3)
                shape = np.asarray(betas[i][:10])
                gender = "male" if genders[i] == "m" else "female"
                root_pose = _camera_rotated_root(pose[0], R)
                j0 = np.asarray(pelvis_rest(gender, shape), dtype=np.float64).reshape(3)
                root_world = j0 + np.asarray(trans[i][k]).reshape(3)
                people.append({
                    "smpl_root_pose": root_pose.reshape(1, 3).astype(np.float32),
                    "smpl_body_pose": pose[1:].reshape(23, 3).astype(np.float32),
                    "smpl_shape": shape.reshape(10).astype(np.float32),
                    "smpl_transl": (R @ root_world + t - j0).reshape(3).astype(np.float32),
                    "smpl_gender": gender,
                })
            if people:
                if image_size is None:
                    image = root / "imageFiles" / img_key
                    try:
                        with Image.open(image) as im:
                            width, height = im.size
                    except OSError as err:
                        raise BenchmarkFileError(f"cannot read 3DPW image {image} for its size: {err}") from err
                else:
                    width, height = image_size
                annots[img_key] = {
                    "focal": focal.astype(np.float32).reshape(2),
                    "princpt": princpt.astype(np.float32).reshape(2),
                    "size": np.asarray([width, height]).astype(np.int32).reshape(2),
                    "humans": people,
                    "cam_poses": T.astype(np.float32),
                }
    return annots


def write_annotations(annots: dict, path: str | os.PathLike) -> Path:
    """Write the annotation dict as the reference does (pickle, highest protocol), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as f:
        pickle.dump(annots, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------------------------------------------
# Reading the annotation file into sequences
# ------------------------------------------------------------------------------------------------------------------


def read_annotations(path: str | os.PathLike) -> dict:
    """The annotation dict, validated (every field present with its shape); one error lists every problem."""
    path = Path(path)
    annots = load_pickle(path, what="3DPW annotation file")
    if not isinstance(annots, dict) or not annots:
        raise BenchmarkFileError(f"3DPW annotation file {path} is not a non-empty dict of images")
    problems = []
    for key, entry in annots.items():
        if not isinstance(key, str) or not _IMAGE_KEY.fullmatch(key):
            problems.append(f"key {key!r} is not '<seq>/image_NNNNN.jpg'")
            continue
        want = {"focal": (2,), "princpt": (2,), "size": (2,), "cam_poses": (4, 4)}
        for name, shape in want.items():
            if np.shape(entry.get(name)) != shape:
                problems.append(f"{key}: {name} missing or not of shape {shape}")
        for h, person in enumerate(entry.get("humans", None) or [None]):
            if not isinstance(person, dict):
                problems.append(f"{key}: humans[{h}] missing")
                continue
            for name, shape in _HUMAN_FIELDS.items():
                if np.shape(person.get(name)) != shape:
                    problems.append(f"{key}: humans[{h}].{name} missing or not of shape {shape}")
            if person.get("smpl_gender") not in ("male", "female"):
                problems.append(f"{key}: humans[{h}].smpl_gender is {person.get('smpl_gender')!r}")
        if len(problems) >= 5:
            break
    if problems:
        raise BenchmarkFileError(f"3DPW annotation file {path} is malformed: " + "; ".join(problems[:5]))
    return annots


def _sequence(seq: str, keys: list[str], annots: dict, root: Path, protocol: ProtocolName) -> Sequence:
    entries = [annots[k] for k in keys]
    sizes = {tuple(int(v) for v in e["size"]) for e in entries}
    if len(sizes) != 1:
        raise BenchmarkFileError(f"3DPW sequence {seq} mixes image sizes {sorted(sizes)}")
    most = max(len(e["humans"]) for e in entries)
    if protocol == "reference" and most > 2:
        raise BenchmarkFileError(
            f"3DPW sequence {seq} has {most} people in a frame; the reference keeps 2 slots (and crashes here): "
            "evaluate it with protocol='corrected'"
        )
    slots = 2 if protocol == "reference" else most
    f = len(entries)
    slot_shapes = {"smpl_root_pose": (3,), "smpl_body_pose": (23, 3), "smpl_shape": (10,), "smpl_transl": (3,)}
    arrays = {name: np.zeros((f, slots, *shape), np.float32) for name, shape in slot_shapes.items()}
    gender = np.full((f, slots), NO_PERSON, np.int8)
    mask = np.zeros((f, slots), bool)
    for i, entry in enumerate(entries):
        # the reference: sorted(enumerate(z), key=z) -> nearest first, ties in file order
        people = sorted(entry["humans"], key=lambda h: h["smpl_transl"][-1])
        for s, person in enumerate(people):
            for name in _HUMAN_FIELDS:
                arrays[name][i, s] = np.asarray(person[name], np.float32).reshape(arrays[name].shape[2:])
            gender[i, s] = GENDER_IDS[person["smpl_gender"]]
            mask[i, s] = True
    focal = np.stack([e["focal"] for e in entries])
    princpt = np.stack([e["princpt"] for e in entries])
    K = np.zeros((f, 3, 3), np.float32)
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = focal[:, 0], focal[:, 1], *princpt.T, 1.0
    camera = Camera(T_w2c=np.stack([e["cam_poses"] for e in entries]), K=K, image_wh=sizes.pop())
    bodies = Bodies(model="smpl", frame="camera", global_orient=arrays["smpl_root_pose"],
                    body_pose=arrays["smpl_body_pose"], betas=arrays["smpl_shape"], transl=arrays["smpl_transl"],
                    gender=gender, mask=mask)
    frame_ids = np.array([int(_IMAGE_KEY.fullmatch(k)[2]) for k in keys], np.int64)
    images = tuple(root / "imageFiles" / k for k in keys)
    return Sequence("3dpw", seq, images, frame_ids, camera=camera, bodies=bodies)


def load_3dpw(root: str | os.PathLike, *, annotations: str | os.PathLike | None = None,
              protocol: ProtocolName = "reference", pelvis_rest: PelvisRest | None = None,
              check_images: bool = True) -> Benchmark:
    """3DPW test sequences from ``<root>/imageFiles`` and the annotation file.

    The annotation file is ``annotations``, else ``<root>/3dpw_test.pkl`` or ``<root>/annots/3dpw_test.pkl``;
    without one, it is built in memory from ``sequenceFiles/test`` when ``pelvis_rest`` is given. Frames are the
    annotated images sorted by name, grouped by sequence (the reference's ``get_seq_3dpw``); people sorted by depth.
    """
    root = Path(root)
    candidates = [Path(annotations)] if annotations else [root / ANNOTATION_FILE, root / "annots" / ANNOTATION_FILE]
    found = next((c for c in candidates if c.is_file()), None)
    if found is not None:
        annots = read_annotations(found)
    elif pelvis_rest is not None:
        annots = build_annotations(root, pelvis_rest)
    else:
        raise BenchmarkFileError(
            f"3DPW annotation file not found ({' or '.join(map(str, candidates))}); build it from "
            f"{root / 'sequenceFiles' / 'test'} with the SMPL male/female models (threedpw.build_annotations)"
        )
    by_seq: dict[str, list[str]] = {}
    for key in sorted(annots):
        by_seq.setdefault(key.split("/")[0], []).append(key)
    if check_images:
        absent = [s for s in by_seq if not (root / "imageFiles" / s).is_dir()]
        if absent:
            raise BenchmarkLayoutError(
                f"{root} is not a 3DPW release folder: imageFiles/{absent[0]} is missing "
                f"({len(absent)} of {len(by_seq)} sequences); unpack imageFiles.zip there"
            )
    sequences = tuple(_sequence(seq, keys, annots, root, protocol) for seq, keys in by_seq.items())
    return Benchmark("3dpw", root, protocol, sequences)
