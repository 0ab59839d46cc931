"""How each benchmark is evaluated: one typed row per benchmark, as Human3R's evaluation scripts run it.

Sources (reference Human3R ``b1b578a``/``402f2b2``): ``eval/global_human/run.sh`` (3DPW, EMDB-1: size 512,
``--reset_interval 100 --use_ttt3r``), ``run_emdb2.sh`` (reset 50), ``run_rich.sh`` (reset 1e6, i.e. never),
``eval/relpose/run.sh`` (TUM: reset 100), ``eval/video_depth/run.sh`` (Bonn: reset 1e9, i.e. never; ``--align
scale`` and ``--align metric``, ``max_depth=70``); ``src/dust3r/smpl_model.py`` (which body model, regressor and
pelvis joints); ``eval/global_human/metadata.py`` (which benchmarks have world metrics, frame subsampling).

Metric names are the ones :mod:`tasks.evaluation.metrics` reports. :data:`QUIRKS` lists where the reference
loaders or ground truth differ from what the data means; loaders follow the reference under the ``"reference"``
protocol and the corrected behaviour under ``"corrected"`` (only where the quirk is a defect), the same two
protocols the metrics take.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from tasks.evaluation.benchmarks.errors import UnknownBenchmarkError

ProtocolName = Literal["reference", "corrected"]
PROTOCOL_NAMES: tuple[ProtocolName, ...] = ("reference", "corrected")

CAMERA_FRAME_METRICS = ("pa_mpjpe", "mpjpe", "pve")  # mm, per matched person-frame, centred on the pelvis joints
WORLD_METRICS = ("wa_mpjpe100", "w_mpjpe100", "rte_pct", "jitter", "foot_sliding")  # per sequence, world frame
CAMERA_METRICS = ("ate_m", "rpe_trans_m", "rpe_rot_deg")  # evo, Sim(3)-aligned
DEPTH_METRICS = ("abs_rel", "delta_1_25")  # per sequence, pooled over frames, weighted by valid pixels

TUM_FRAME_COUNTS = (50, 100, 150, 200, 300, 400, 500, 600, 700, 800, 900, 1000)  # tum_<N> (TTT3R, stride 1)
BONN_FRAME_COUNTS = (50, 100, 150, 200, 250, 300, 350, 400, 450, 500)  # bonn_<N> (TTT3R)
H36M_TO_LSP14 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)  # rows of J_regressor_h36m -> 3DPW's 14 joints


@dataclass(frozen=True)
class BenchmarkProtocol:
    """How one benchmark is run and scored."""

    name: str  # registry name ("3dpw", "emdb1", "emdb2", "rich", "tum", "tum_<N>", "bonn", "bonn_<N>")
    kind: Literal["human", "camera", "depth"]
    metrics: tuple[str, ...]  # metric names reported, in this order
    working_size: int = 512  # long side of the network's input (dust3r load_images(size=512), centred crop to /16)
    use_ttt3r: bool = True  # TTT3R state update (--use_ttt3r)
    reset_interval: int | None = 100  # state reset every N frames (reference: view (i+1) % N == 0); None: never
    frame_stride: int = 1  # keep every N-th frame of the benchmark's frame list
    n_frames: int | None = None  # keep the first N frames (after the stride) of each sequence; None: all
    first_frame: int = 0  # skip this many frames of the raw sequence first (Bonn: 30)
    # ---- human benchmarks
    gt_body_model: Literal["smpl", "smplx"] | None = None  # what the ground-truth parameters are for
    gt_frame: Literal["camera", "world"] | None = None  # frame of the ground-truth parameters
    gt_hand_pca: int | None = None  # SMPL-X GT posed with this many hand PCA components at 0 (mean hands)
    to_smpl: bool = True  # predicted (and SMPL-X GT) vertices -> SMPL with the smplx2smpl matrix
    joint_set: Literal["smpl24", "h36m14"] | None = None  # J_regressor (24) or H36M rows H36M_TO_LSP14
    pelvis_joints: tuple[int, ...] = ()  # camera-frame metrics centre on the mean of these joints (the hips)
    root_joint: int = 0  # RTE follows this joint (SMPL pelvis)
    max_people: int | None = None  # people per frame the reference keeps (3DPW: 2, sorted by depth)
    world_metrics: bool = False  # W-MPJPE / WA-MPJPE / RTE / jitter / foot sliding
    # ---- camera / depth benchmarks
    depth_max_m: float | None = None  # valid GT depth: 0 < d < depth_max_m
    depth_alignments: tuple[str, ...] = ()  # eval_depth.py --align values the reference reports

    @property
    def needs_smpl_files(self) -> bool:
        """The evaluation needs the SMPL conversion files (smplx2smpl, joint regressors, SMPL models)."""
        return self.kind == "human"


def _human(name: str, *, metrics, reset, gt_model, gt_frame, joint_set, pelvis, **kw) -> BenchmarkProtocol:
    return BenchmarkProtocol(name=name, kind="human", metrics=metrics, reset_interval=reset, gt_body_model=gt_model,
                    gt_frame=gt_frame, joint_set=joint_set, pelvis_joints=pelvis, **kw)


BENCHMARK_PROTOCOLS: dict[str, BenchmarkProtocol] = {
    "3dpw": _human("3dpw", metrics=CAMERA_FRAME_METRICS, reset=100, gt_model="smpl", gt_frame="camera",
                   joint_set="h36m14", pelvis=(2, 3), max_people=2),
    "emdb1": _human("emdb1", metrics=CAMERA_FRAME_METRICS, reset=100, gt_model="smpl", gt_frame="world",
                    joint_set="smpl24", pelvis=(1, 2), max_people=1),
    "emdb2": _human("emdb2", metrics=CAMERA_FRAME_METRICS + WORLD_METRICS, reset=50, gt_model="smpl",
                    gt_frame="world", joint_set="smpl24", pelvis=(1, 2), max_people=1, world_metrics=True),
    "rich": _human("rich", metrics=CAMERA_FRAME_METRICS + WORLD_METRICS, reset=None, gt_model="smplx",
                   gt_frame="world", joint_set="smpl24", pelvis=(1, 2), max_people=1, world_metrics=True,
                   gt_hand_pca=12),
    "tum": BenchmarkProtocol("tum", "camera", CAMERA_METRICS, reset_interval=100, frame_stride=3, n_frames=90),
    "bonn": BenchmarkProtocol("bonn", "depth", DEPTH_METRICS, reset_interval=None, first_frame=30, n_frames=110,
                     depth_max_m=70.0, depth_alignments=("scale", "metric")),
}


def benchmark_protocol(name: str) -> BenchmarkProtocol:
    """The protocol of ``name``; ``tum_<N>`` and ``bonn_<N>`` are the long-sequence variants (TTT3R's subsets)."""
    if name in BENCHMARK_PROTOCOLS:
        return BENCHMARK_PROTOCOLS[name]
    m = re.fullmatch(r"(tum|bonn)_(\d+)", name)
    if m and int(m[2]) in (TUM_FRAME_COUNTS if m[1] == "tum" else BONN_FRAME_COUNTS):
        base = BENCHMARK_PROTOCOLS[m[1]]
        return BenchmarkProtocol(**{**base.__dict__, "name": name, "n_frames": int(m[2]), "frame_stride": 1})
    raise UnknownBenchmarkError(
        f"unknown benchmark {name!r}; known: {', '.join(benchmark_names())}"
    )


def benchmark_names() -> list[str]:
    """Every registry name, long variants included."""
    return [*BENCHMARK_PROTOCOLS, *(f"tum_{n}" for n in TUM_FRAME_COUNTS), *(f"bonn_{n}" for n in BONN_FRAME_COUNTS)]


# ------------------------------------------------------------------------------------------------------------------
# Where the reference differs from what the data means
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quirk:
    """One behaviour of the reference loaders / ground truth, and whether ``protocol="corrected"`` changes it."""

    benchmark: str
    name: str
    reference: str  # what the reference does
    corrected: str | None  # what protocol="corrected" does instead; None: kept (not a defect)


QUIRKS: tuple[Quirk, ...] = (
    Quirk("3dpw", "max_two_people", "keeps the people of a frame sorted by camera depth (transl z) in 2 slots and "
          "crashes (IndexError) on a third", "as many slots as the sequence's most crowded frame, same order"),
    Quirk("3dpw", "gender_slot_index", "poses every GT body with the male SMPL, then replaces rows "
          "torch.where(gender_id == 2)[1] (slot indices, not batch rows) with the female body: female actors get "
          "the male body except rows 0/1 of the sequence, which get the female one whatever their gender "
          "(tasks.evaluation.metrics.gt_bodies.gt_body_genders; the loader gives the ids 1 male / 2 female)",
          "each body posed with its own gender's SMPL"),
    Quirk("*", "intrinsics_per_axis", "scales K by working/original size per axis (fx by W ratio, fy by H ratio, "
          "cx, cy likewise), ignoring the centred crop and the half-pixel convention: exact only when nothing is "
          "cropped (3DPW 1920x1080, EMDB 1440x1920), wrong when the 512 resize crops (RICH 4112x3008 -> 512x368: fy "
          "2% too small)", "K of the resized and cropped image (human3r.geometry.source_to_working_intrinsics)"),
    Quirk("emdb1/emdb2", "sequence_lists", "evaluates the hard-coded EMDB1_LIST (17) / EMDB2_LIST (25) files, not "
          "the files' emdb1/emdb2 flags", "the files whose emdb1 / emdb2 flag is set (same sets in the release)"),
    Quirk("emdb1/emdb2", "neutral_gender", "gender 'neutral' raises KeyError ({'male': 1, 'female': 2})",
          "gender id 0: evaluated with the neutral SMPL"),
    Quirk("emdb1/emdb2", "good_frames_mask", "frames are the sorted images/ listing masked by good_frames_mask; "
          "parameters and cameras are indexed [mask][i]", None),
    Quirk("rich", "frame_id_positional", "frame_id indexes the sorted image listing of <root>/<vid>/ by position "
          "(as GVHMR indexes its videos), not by the number in the file name", None),
    Quirk("bonn", "all_zero_depth", "asserts max(png) > 255, so a fully invalid depth frame raises",
          "a fully invalid frame reads as all -1.0 (no valid pixel)"),
    Quirk("bonn", "positional_subsets", "rgb, depth and groundtruth rows are cut at the same positions [30:30+N] "
          "of their sorted lists (no time-stamp association)", None),
    Quirk("tum", "association", "TTT3R/MonST3R association: rgb/GT pairs with |dt| < 0.02 s, greedy by |dt|, "
          "then the first N (tum_<N>, stride 1) or every 3rd of the first 270 (tum: 90 frames)", None),
)
