"""Human3R's evaluation metrics, metric for metric the reference's, under two protocols.

Modules: protocol (``reference`` | ``corrected`` and what differs), results (rows, units, metric names), alignment
(similarity fits), camcoord (camera-frame MPJPE/PVE family), matching (greedy 2D matcher, P/R/F1), world
(W-/WA-MPJPE100, RTE, jitter, foot sliding), humans (one sequence through the launch loop), summary (per-sequence
values, dataset average, the reference's log texts), gt_bodies (3DPW GT gender per row), camera (ATE/RPE with
evo), depth (AbsRel, delta, ... with the scale fit), bonn (the Bonn depth folder), compare (both protocols).
Every array function is pure numpy, float64, with units in its name or docstring; every row carries its protocol.
"""

from tasks.evaluation.metrics.protocol import Protocol, ProtocolOptions
from tasks.evaluation.metrics.results import METRICS, UNITS, Evaluation, Exclusion, MetricRow

__all__ = ["METRICS", "UNITS", "Evaluation", "Exclusion", "MetricRow", "Protocol", "ProtocolOptions"]
