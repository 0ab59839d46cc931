"""BEDLAM as the reference's preprocessing writes it, read as the reference's ``BEDLAM_Multi`` does.

Layout (``ROOT/<Training|Test>/<scene>_<seq>/``), one file per frame in each of five subfolders::

    rgb/<seq>_<frame>.png      RGB, 8 bit
    depth/<seq>_<frame>.npy    float32 metres along the optical axis (H, W); non-finite and > 200 m -> 0
    mask/<seq>_<frame>.png     8-bit grey, 255 on people
    cam/<seq>_<frame>.npz      intrinsics (3, 3) and pose (4, 4) camera-to-world, OpenCV axes
    smpl/<seq>_<frame>.pkl     list of person dicts in the camera frame (may be empty, must exist)

Sequences are listed **sorted** (the reference uses a bare ``os.listdir``, whose order depends on the file system:
the same folder can give other indices there). Left out, as the reference does: names starting with an HDRI scene,
names containing ``closeup``, the hard-coded invalid sequences; and, as a guard for a folder where everything sits
in ``Training``, the three scenes the preprocessing puts in ``Test``. Sequences shorter than a sample are left out.
Construction checks the layout (every frame's five files); reading checks the files' contents; both raise
`DataLayoutError` naming the file and what it lacks.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from tasks.training.data.errors import DataLayoutError
from tasks.training.data.pickles import load_people
from tasks.training.data.views import Frame, MultiViewSource

SPLITS = {"train": "Training", "test": "Test"}
SUBFOLDERS = {"rgb": ".png", "depth": ".npy", "mask": ".png", "cam": ".npz", "smpl": ".pkl"}
MAX_DEPTH_M = 200.0  # depths beyond this (the sky) are unknown
HDRI_SCENES = ("20221010_3_1000_batch01hand", "20221017_3_1000_batch01hand", "20221018_3-8_250_batch01hand",
               "20221019_3_250_highbmihand")
TEST_SCENES = ("20221018_1_250_batch01hand_zoom_suburb_b", "20221018_3_250_batch01hand_orbit_archVizUI3_time15",
               "20221019_3-8_250_highbmihand_orbit_stadium")
_INVALID_PREFIXES = {  # scene -> sequence numbers the reference leaves out
    "20221010_3-10_500_batch01hand_zoom_suburb_d": (
        11, 12, 13, 23, 25, 29, 42, 44, 45, 59, 76, 80, 81, 82, 83, 84, 94, 97, 105, 114, 119, 122, 246, 249, 251,
        267, 268, 269, 283, 284, 287, 290, 293, 297, 308, 309, 311, 316, 326, 327, 332, 334, 348, 352, 361, 368, 373,
        383, 396, 419, 421, 425, 434),
    "20221012_3-10_500_batch01hand_zoom_highSchoolGym": (79, 486),
    "20221013_3_250_batch01hand_orbit_bigOffice": (120, 122, 149, 161, 182, 189, 192, 193, 196, 207, 226),
    "20221013_3_250_batch01hand_static_bigOffice": (15, 38),
    "20221014_3_250_batch01hand_orbit_archVizUI3_time15": (86, 95, 96),
    "20221019_3-8_1000_highbmihand_static_suburb_d": (
        163, 177, 250, 251, 279, 283, 310, 317, 322, 324, 453, 752, 768, 779, 785, 794, 796, 800, 804, 811, 817, 818,
        827, 841, 842, 856, 889, 890, 900, 904, 907, 969, 978, 982),
    "20221019_3-8_250_highbmihand_orbit_stadium": (3, 7, 13, 16, 27, 31, 36, 38, 46, 62, 67, 76, 85, 91, 106),
    "20221024_10_100_batch01handhair_zoom_suburb_d": (59, 60, 64, 69, 71),
    "20221024_3-10_100_batch01handhair_static_highSchoolGym": (
        2, 4, 12, 13, 17, 24, 34, 43, 53, 61, 63, 77, 79, 82, 89, 95),
}
INVALID_SEQUENCES = frozenset(f"{scene}_seq_{n:06d}" for scene, ns in _INVALID_PREFIXES.items() for n in ns)


def is_skipped(name: str, split_folder: str = "Training") -> bool:
    """Whether the reference leaves sequence folder `name` out (HDRI scene, close-up, invalid; Test scenes found in
    Training)."""
    return (name in INVALID_SEQUENCES or name.startswith(HDRI_SCENES) or "closeup" in name
            or (split_folder == "Training" and name.startswith(TEST_SCENES)))


def _files(folder: Path, suffix: str) -> set[str]:
    return {f[:-len(suffix)] for f in os.listdir(folder) if f.endswith(suffix)}


def list_sequences(root: str | os.PathLike, split: str = "train") -> list[tuple[str, list[str]]]:
    """(sequence folder, sorted frame names) of every usable sequence of `root`, sorted by name; checks that every
    frame has its five files (`DataLayoutError` names the first missing one and how many more are missing)."""
    base = Path(root)
    if split not in SPLITS:
        raise DataLayoutError(f"BEDLAM split must be one of {', '.join(SPLITS)} (got {split!r})")
    folder = base / SPLITS[split]
    if not base.is_dir():
        raise DataLayoutError(f"BEDLAM folder {base} does not exist")
    if not folder.is_dir():
        raise DataLayoutError(f"BEDLAM folder {base} lacks {SPLITS[split]}/ (expected {SPLITS[split]}/<scene>_<seq>/"
                              f"{{{','.join(SUBFOLDERS)}}}/, as datasets_preprocess/preprocess_bedlam.py writes it)")
    out, problems = [], []
    for name in sorted(os.listdir(folder)):
        if name.startswith(".") or not (folder / name).is_dir() or is_skipped(name, SPLITS[split]):
            continue
        seq = folder / name
        missing = [sub for sub in SUBFOLDERS if not (seq / sub).is_dir()]
        if missing:
            problems.append(f"{SPLITS[split]}/{name} lacks {'/, '.join(missing)}/")
            continue
        frames = sorted(_files(seq / "rgb", ".png"))
        for sub, suffix in list(SUBFOLDERS.items())[1:]:
            present = _files(seq / sub, suffix)
            problems += [f"{SPLITS[split]}/{name}/{sub}/{f}{suffix} is missing" for f in frames if f not in present]
        out.append((name, frames))
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise DataLayoutError(f"BEDLAM folder {base}: {problems[0]}{more}")
    return out


def read_frame(root: str | os.PathLike, split: str, sequence: str, frame: str) -> Frame:
    """One frame's five files -> a :class:`Frame` (depth cleaned, people as stored, in the pkl's order)."""
    from PIL import Image

    seq = Path(root) / SPLITS[split] / sequence
    rel = f"{SPLITS[split]}/{sequence}"
    rgb_path = seq / "rgb" / f"{frame}.png"
    try:
        with Image.open(rgb_path) as im:
            image = im.convert("RGB")
        with Image.open(seq / "mask" / f"{frame}.png") as im:
            mask = im.convert("RGB").getchannel(0)  # OpenCV reads it as colour; the loader keeps the first channel
        depth = np.load(seq / "depth" / f"{frame}.npy", allow_pickle=False)
        cam = dict(np.load(seq / "cam" / f"{frame}.npz", allow_pickle=False))
        people = load_people(seq / "smpl" / f"{frame}.pkl")
    except FileNotFoundError as err:
        missing = Path(err.filename).relative_to(seq)
        raise DataLayoutError(f"BEDLAM frame {rel}/{frame}: {missing} is missing") from None
    except (OSError, ValueError, EOFError, pickle.UnpicklingError) as err:
        raise DataLayoutError(f"BEDLAM frame {rel}/{frame}: cannot read it ({err})") from None
    lacking = [k for k in ("intrinsics", "pose") if k not in cam]
    if lacking:
        has = ", ".join(cam) or "nothing"
        raise DataLayoutError(f"{rel}/cam/{frame}.npz lacks {' and '.join(lacking)} (it has {has})")
    if cam["intrinsics"].shape != (3, 3) or cam["pose"].shape != (4, 4):
        raise DataLayoutError(f"{rel}/cam/{frame}.npz: intrinsics must be 3x3 and pose 4x4 "
                              f"(got {cam['intrinsics'].shape} and {cam['pose'].shape})")
    if depth.ndim != 2 or depth.shape != (image.size[1], image.size[0]) or mask.size != image.size:
        raise DataLayoutError(f"{rel}/{frame}: rgb is {image.size[0]}x{image.size[1]} but depth is "
                              f"{'x'.join(map(str, depth.shape[::-1]))} and mask {mask.size[0]}x{mask.size[1]}")
    if not isinstance(people, list) or not all(isinstance(p, dict) for p in people):
        raise DataLayoutError(f"{rel}/smpl/{frame}.pkl must hold a list of person dicts (got {type(people).__name__})")
    depth = depth.copy()
    depth[~np.isfinite(depth)] = 0
    depth[depth > MAX_DEPTH_M] = 0.0
    return Frame(image=image, depth=depth, mask=mask, intrinsics=cam["intrinsics"], cam_to_world=cam["pose"],
                 people=people, label=f"{sequence}_{frame}", instance=str(rgb_path))


class BedlamDataset(MultiViewSource):
    """``BEDLAM_Multi(split, ROOT, resolution, num_views, seed, aug_crop, transform, allow_repeat)``: samples of
    `num_views` ordered frames (interval 1-4) of one BEDLAM sequence; see `MultiViewSource` for the options."""

    dataset_name = "BEDLAM"
    supervision = {"has_depth": True, "has_msk": True, "pseudo": False}

    def __init__(self, root: str | os.PathLike, split: str = "train", **options):
        super().__init__(**options)
        self.root, self.split = str(root), split
        self.sequences = list_sequences(root, split)
        self._index_sequences([len(frames) for _, frames in self.sequences])

    def _n_frames(self, sequence: int) -> int:
        return len(self.sequences[sequence][1])

    def _read(self, sequence: int, position: int) -> Frame:
        name, frames = self.sequences[sequence]
        return read_frame(self.root, self.split, name, frames[position])

    def __repr__(self) -> str:
        sizes = ";".join(f"{w}x{h}" for w, h in self.resolutions)
        return (f"BedlamDataset({len(self)} samples of {self.num_views} views from {len(self.sequences)} sequences, "
                f"root={self.root!r}, split={self.split!r}, resolutions=[{sizes}], seed={self.seed})")
