"""What an evaluation returns: plain rows ``(benchmark, sequence, metric, value, count, unit, protocol)``.

One row per sequence and metric, and one per benchmark and metric with ``sequence=None`` (the dataset average).
``count`` is how many entries the value averages (matched person-frames, frames, contact entries, pixels, pose
pairs) or, for an average, the total weight it used. Units are explicit (:data:`UNITS`). A value that could not be
computed is NaN with ``count=0``; what an average left out is an :class:`Exclusion` with the reason. This is the
shape of the future ``evaluations`` table: keep it plain data.

:data:`METRICS` names every metric once: its unit, the reference's key (``eval_camcoord``/``eval_global`` output,
evo, ``depth_evaluation``) and the label of the reference's log line.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

UNITS = {
    "mm": "millimetres",
    "m": "metres",
    "deg": "degrees",
    "pct": "percent",
    "10m/s3": "tens of metres per second cubed (jitter)",
    "ratio": "dimensionless ratio",
    "log": "natural-log units",
    "fraction": "fraction of pixels in [0, 1]",
    "count": "a number of things (people, person-frames)",
}


@dataclass(frozen=True)
class MetricSpec:
    name: str  # the row's metric name
    unit: str  # a key of UNITS
    ref_key: str  # the reference's key for it
    label: str  # the reference's log/summary label ("" when it has none)


_SPECS = (
    # camera frame (eval_camcoord), per matched person-frame
    MetricSpec("pve", "mm", "ca_pve", "PVE"),
    MetricSpec("pa_pve", "mm", "pa_pve", "PA-PVE"),
    MetricSpec("metric_pve", "mm", "me_pve", "Metric-PVE"),
    MetricSpec("mpjpe", "mm", "ca_mpjpe", "MPJPE"),
    MetricSpec("pa_mpjpe", "mm", "pa_mpjpe", "PA-MPJPE"),
    MetricSpec("metric_mpjpe", "mm", "me_mpjpe", "Metric-MPJPE"),
    MetricSpec("root_error", "mm", "rt_error", "RootError"),
    # world frame (eval_global)
    MetricSpec("w_mpjpe100", "mm", "wa2_mpjpe", "W-MPJPE"),
    MetricSpec("wa_mpjpe100", "mm", "waa_mpjpe", "WA-MPJPE"),
    MetricSpec("rte_pct", "pct", "rte", "RTE"),
    MetricSpec("rte_scaled_pct", "pct", "rte_scaled", "Scaled-RTE"),
    MetricSpec("jitter", "10m/s3", "jitter", "Jitter"),
    MetricSpec("foot_sliding", "mm", "fs", "Foot-Sliding"),
    # detection
    MetricSpec("precision", "pct", "precision", "Precision"),
    MetricSpec("recall", "pct", "recall", "Recall"),
    MetricSpec("f1", "pct", "f1_score", "F1-Score"),
    # detection counts of a sequence (the reference's counter): pooled P/R/F1 and the n_human weights come from them
    MetricSpec("n_gt", "count", "count", ""),
    MetricSpec("n_matched", "count", "n_human", ""),
    MetricSpec("n_missed", "count", "miss", ""),
    MetricSpec("n_false_pos", "count", "fp", ""),
    # camera poses (evo)
    MetricSpec("ate_m", "m", "ate", "ATE"),
    MetricSpec("rpe_trans_m", "m", "rpe_trans", "RPE trans"),
    MetricSpec("rpe_rot_deg", "deg", "rpe_rot", "RPE rot"),
    # video depth (depth_evaluation)
    MetricSpec("abs_rel", "ratio", "Abs Rel", "Abs Rel"),
    MetricSpec("sq_rel", "m", "Sq Rel", "Sq Rel"),
    MetricSpec("rmse", "m", "RMSE", "RMSE"),
    MetricSpec("log_rmse", "log", "Log RMSE", "Log RMSE"),
    MetricSpec("delta_1", "fraction", "δ < 1.", "δ < 1."),
    MetricSpec("delta_1_25", "fraction", "δ < 1.25", "δ < 1.25"),
    MetricSpec("delta_1_25_2", "fraction", "δ < 1.25^2", "δ < 1.25^2"),
    MetricSpec("delta_1_25_3", "fraction", "δ < 1.25^3", "δ < 1.25^3"),
)
METRICS: dict[str, MetricSpec] = {s.name: s for s in _SPECS}
CAMCOORD_METRICS = ("pve", "pa_pve", "metric_pve", "mpjpe", "pa_mpjpe", "metric_mpjpe", "root_error")
WORLD_METRICS = ("w_mpjpe100", "wa_mpjpe100", "rte_pct", "rte_scaled_pct", "jitter", "foot_sliding")
DETECTION_METRICS = ("precision", "recall", "f1")
HUMAN_METRICS = CAMCOORD_METRICS + WORLD_METRICS + DETECTION_METRICS  # the reference's log-line order
COUNT_METRICS = ("n_gt", "n_matched", "n_missed", "n_false_pos")  # a human sequence's counter, as rows
CAMERA_METRICS = ("ate_m", "rpe_trans_m", "rpe_rot_deg")
DEPTH_METRICS = ("abs_rel", "sq_rel", "rmse", "log_rmse", "delta_1", "delta_1_25", "delta_1_25_2", "delta_1_25_3")
BY_REF_KEY: dict[str, MetricSpec] = {s.ref_key: s for s in _SPECS}


@dataclass(frozen=True)
class MetricRow:
    """One number: a sequence's metric, or a benchmark's average (``sequence=None``)."""

    benchmark: str
    sequence: str | None  # None = the benchmark's average
    metric: str  # a key of METRICS
    value: float  # NaN when it could not be computed
    count: int  # entries averaged (or the average's total weight); 0 with NaN
    unit: str  # a key of UNITS
    protocol: str  # "reference" or "corrected"


@dataclass(frozen=True)
class Exclusion:
    """Something an average left out, and why (a sequence's inf/NaN value, a degenerate trajectory, ...)."""

    benchmark: str
    sequence: str
    metric: str | None  # None = every metric of the sequence
    reason: str
    protocol: str


@dataclass(frozen=True)
class Evaluation:
    """An evaluation's rows and what its averages left out."""

    protocol: str
    rows: tuple[MetricRow, ...] = ()
    exclusions: tuple[Exclusion, ...] = ()
    text: dict[str, str] = field(default_factory=dict)  # reports as the protocol prints them (logs, summaries)

    def value(self, metric: str, sequence: str | None = None, benchmark: str | None = None) -> float:
        """The value of one row (the average when `sequence` is None); KeyError when there is none."""
        for r in self.rows:
            if r.metric == metric and r.sequence == sequence and (benchmark is None or r.benchmark == benchmark):
                return r.value
        raise KeyError(f"no row for metric {metric!r}, sequence {sequence!r}")

    def averages(self) -> dict[str, float]:
        """{metric: value} of the average rows."""
        return {r.metric: r.value for r in self.rows if r.sequence is None}

    def records(self) -> list[dict]:
        """The rows as dicts (for Arrow/DuckDB/pandas)."""
        return [asdict(r) for r in self.rows]


def row(benchmark: str, sequence: str | None, metric: str, value: float, count: int, protocol: str) -> MetricRow:
    """A row with the metric's unit from :data:`METRICS`; a non-finite or uncounted value keeps count 0."""
    value = float(value)
    return MetricRow(benchmark, sequence, metric, value, int(count) if not math.isnan(value) else 0,
                     METRICS[metric].unit, str(protocol))
