"""The Bonn video-depth evaluation from files, as the reference's ``eval_depth.py`` reads them.

GT: ``<long_bonn>/rgbd_bonn_<seq>/depth_<N>/*.png``, 16-bit PNG in metres x 5000, a 0 pixel invalid (read as -1).
Predictions: ``<pred_root>/<seq>/frame_XXXX.npy`` (float32 depth at the network's resolution). Each sequence pairs
its sorted PNGs with its sorted predictions, resizes the predictions to the GT size (OpenCV bicubic), and evaluates
with ``max_depth`` 70 m (:func:`~tasks.evaluation.metrics.depth.depth_metrics`). ``reference``: a PNG without any
value above 255 (an all-zero, fully invalid frame) raises, as the reference's reader asserts; ``corrected``: it
counts as a fully invalid frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tasks.evaluation.metrics.depth import BONN_MAX_DEPTH_M, depth_metrics, resize_bicubic, summarize_depth
from tasks.evaluation.metrics.errors import MetricError, MetricInputError
from tasks.evaluation.metrics.protocol import Protocol, as_protocol
from tasks.evaluation.metrics.results import METRICS, Evaluation

PNG_SCALE = 5000.0  # Bonn/TUM depth PNG units per metre
SEQ_PREFIX = "rgbd_bonn_"


class InvalidDepthFrameError(MetricError):
    """A Bonn depth PNG has no value above 255 (all zero: fully invalid); the reference's reader asserts on it."""


def read_bonn_depth(path: str | Path, protocol: Protocol | str = Protocol.REFERENCE) -> np.ndarray:
    """(H, W) float64 metres of a Bonn depth PNG; 0 in the PNG becomes -1.0 (invalid)."""
    from PIL import Image

    protocol = as_protocol(protocol)
    try:
        png = np.asarray(Image.open(path))
    except OSError as err:
        raise MetricInputError(f"cannot read the depth PNG {path}: {err}") from err
    if protocol is Protocol.REFERENCE and not png.max() > 255:
        raise InvalidDepthFrameError(f"{path}: no depth value above 255 (a fully invalid frame); the reference's "
                                     "Bonn reader asserts on it (the corrected protocol counts it as invalid)")
    depth = png.astype(np.float64) / PNG_SCALE
    depth[png == 0] = -1.0
    return depth


def bonn_sequences(gt_root: str | Path, pred_root: str | Path, depth_dir: str = "depth_110"
                   ) -> dict[str, tuple[list[Path], list[Path]]]:
    """{seq: (sorted GT PNGs, sorted predictions)} for every ``rgbd_bonn_<seq>/<depth_dir>`` under `gt_root`."""
    gt_root, pred_root = Path(gt_root), Path(pred_root)
    folders = sorted(p for p in gt_root.glob(f"{SEQ_PREFIX}*/{depth_dir}") if p.is_dir())
    if not folders:
        raise MetricInputError(f"{gt_root} holds no {SEQ_PREFIX}<seq>/{depth_dir}/ folder: give the long_bonn folder")
    out = {}
    for folder in folders:
        seq = folder.parent.name[len(SEQ_PREFIX):]
        gts = sorted(folder.glob("*.png"))
        preds = sorted((pred_root / seq).glob("frame*.npy"))
        if not preds or len(preds) != len(gts):
            raise MetricInputError(f"sequence {seq}: {len(gts)} GT frames in {folder} but {len(preds)} predictions "
                                   f"frame*.npy in {pred_root / seq}")
        out[seq] = (gts, preds)
    return out


def evaluate_bonn(gt_root: str | Path, pred_root: str | Path, align: str = "scale", depth_dir: str = "depth_110",
                  protocol: Protocol | str = Protocol.REFERENCE, benchmark: str = "bonn") -> Evaluation:
    """Every Bonn sequence under `gt_root` against the predictions under `pred_root`; rows and the average."""
    protocol = as_protocol(protocol)
    per_seq = {}
    for seq, (gts, preds) in bonn_sequences(gt_root, pred_root, depth_dir).items():
        gt = np.stack([read_bonn_depth(p, protocol) for p in gts])
        pred = np.stack([resize_bicubic(np.load(p), gt.shape[1], gt.shape[2]) for p in preds])
        per_seq[seq] = depth_metrics(pred, gt, align, BONN_MAX_DEPTH_M, protocol)
    return summarize_depth(benchmark, per_seq, align, protocol)


def result_json(evaluation: Evaluation) -> str:
    """The average as the reference's ``result_<align>.json`` (its key names)."""
    return json.dumps({METRICS[m].ref_key: v for m, v in evaluation.averages().items()})
