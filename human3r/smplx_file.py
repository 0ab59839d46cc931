"""The SMPL-X body model file: where it is (argument, folder layouts, $HUMAN3R_BODY_MODEL) and whether it has the
arrays smplx reads with SMPL-X's shapes. The file needs a registration (smpl-x.is.tue.mpg.de); nothing here
downloads it, and every error says how to get it. `human3r.body.BodyModel` builds on these."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from human3r.errors import BodyModelError

BODY_MODEL_ENV = "HUMAN3R_BODY_MODEL"  # path of SMPLX_NEUTRAL.npz or of a folder holding it
NUM_BETAS = 10
NUM_EXPRESSION = 10
NUM_VERTICES = 10475  # SMPL-X v1.x; smplx hard-codes vertex ids up to 9929
NUM_SKELETON_JOINTS = 55

GET_SMPLX = (
    "Get SMPL-X: register at https://smpl-x.is.tue.mpg.de, download 'SMPL-X v1.1 (NPZ+PKL)', and pass the path of "
    f"models/smplx/SMPLX_NEUTRAL.npz (or its folder) as the body-model path, or set {BODY_MODEL_ENV}."
)


def resolve_body_model_path(path: str | os.PathLike | None = None) -> Path:
    """Find SMPLX_NEUTRAL.npz from ``path`` (file or folder) or, when ``path`` is None, ``$HUMAN3R_BODY_MODEL``.

    A folder may hold ``SMPLX_NEUTRAL.npz`` directly or in ``smplx/`` (the smplx package's layout).
    """
    source = "argument"
    if path is None:
        path, source = os.environ.get(BODY_MODEL_ENV), f"${BODY_MODEL_ENV}"
        if not path:
            raise BodyModelError(f"no SMPL-X body model path given and ${BODY_MODEL_ENV} is not set. {GET_SMPLX}")
    p = Path(path).expanduser()
    candidates = [p] if not p.is_dir() else [p / "SMPLX_NEUTRAL.npz", p / "smplx" / "SMPLX_NEUTRAL.npz"]
    for c in candidates:
        if c.is_file():
            if c.suffix != ".npz":
                raise BodyModelError(
                    f"SMPL-X body model {c} (from {source}) is not an .npz file; the .pkl release needs chumpy, "
                    f"which does not work with numpy 2. Use SMPLX_NEUTRAL.npz from the same download. {GET_SMPLX}"
                )
            return c
    raise BodyModelError(
        f"SMPL-X body model not found: {p} (from {source}) has no {' or '.join(str(c) for c in candidates)}. "
        f"{GET_SMPLX}"
    )


def validate_body_model_file(path: Path) -> None:
    """Check the arrays smplx reads, without unpickling anything; one error lists every problem."""
    required = {  # key -> expected shape (None = any size along that axis)
        "v_template": (NUM_VERTICES, 3),
        "f": (None, 3),
        "shapedirs": (NUM_VERTICES, 3, None),
        "posedirs": (NUM_VERTICES, 3, (NUM_SKELETON_JOINTS - 1) * 9),
        "J_regressor": (NUM_SKELETON_JOINTS, NUM_VERTICES),
        "weights": (NUM_VERTICES, NUM_SKELETON_JOINTS),
        "kintree_table": (2, NUM_SKELETON_JOINTS),
        "hands_componentsl": (45, 45),
        "hands_componentsr": (45, 45),
        "hands_meanl": (45,),
        "hands_meanr": (45,),
        "lmk_faces_idx": (None,),
        "lmk_bary_coords": (None, 3),
    }
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as err:  # any failure to open means the same thing to the user
        raise BodyModelError(f"cannot read SMPL-X body model {path}: {err}. {GET_SMPLX}") from err
    problems = []
    with data:
        for key, shape in required.items():
            if key not in data.files:
                problems.append(f"missing array {key!r}")
                continue
            try:
                got = data[key].shape
            except ValueError as err:  # an object array
                problems.append(f"{key!r} is not a plain array ({err})")
                continue
            if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got)):
                want = tuple("*" if s is None else s for s in shape)
                problems.append(f"{key!r} has shape {got}, expected {want}")
        n_comps = data["shapedirs"].shape[-1] if not problems else NUM_BETAS + NUM_EXPRESSION
        if n_comps < NUM_BETAS + NUM_EXPRESSION:
            problems.append(f"'shapedirs' has {n_comps} components, need >= 20 (10 betas + 10 expression)")
    if problems:
        raise BodyModelError(
            f"{path} is not a usable SMPL-X v1.x NEUTRAL model: " + "; ".join(problems) + f". {GET_SMPLX}"
        )
