"""A benchmark's average from its sequences' stored rows, by the rule of each protocol.

Sequences are evaluated one at a time (on any machine, resumed after a crash), so the average is made from the
``evaluations`` rows of the sequences, never from objects held in memory. Each rule is the metrics module's own,
fed the stored values:

* humans, ``reference``: the sequences' log lines rebuilt from their one-decimal values (`log_line`), parsed back
  with the reference's regex (a line with inf or nan is dropped) and averaged by `reference_average` (every column
  weighted by n_human); ``corrected``: each metric weighted by n_human over the finite values, P/R/F1 from the
  pooled detection counts;
* camera: the plain mean over sequences (``reference``: of the 6-decimal values evo's report prints);
* depth: per alignment, the valid-pixel-weighted mean (`average_depth`).

Excluded sequences (rows with status ``excluded``: the reference crashes or drops them) never enter an average.
The test suite holds these rules to the metrics' own `summarize_*` over all sequences at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from tasks.evaluation.benchmarks.protocol import BenchmarkProtocol, ProtocolName
from tasks.evaluation.metrics.results import (
    CAMCOORD_METRICS,
    CAMERA_METRICS,
    DEPTH_METRICS,
    DETECTION_METRICS,
    HUMAN_METRICS,
    METRICS,
    WORLD_METRICS,
)
from tasks.evaluation.scoring import ScoredRow

SequenceRows = Mapping[str, list[ScoredRow]]  # sequence name -> its rows (one protocol)


def _values(rows: list[ScoredRow], alignment: str | None = None) -> dict[str, ScoredRow]:
    return {r.metric: r for r in rows if r.alignment == alignment}


def _included(rows: list[ScoredRow]) -> bool:
    return bool(rows) and not all(r.status == "excluded" for r in rows)


def _row(metric: str, value: float, count: int, alignment: str | None = None) -> ScoredRow:
    value = float(value)
    return ScoredRow(metric, value, int(count) if math.isfinite(value) else 0, METRICS[metric].unit, alignment)


def human_average(bp: BenchmarkProtocol, protocol: ProtocolName, sequences: SequenceRows
                  ) -> tuple[list[ScoredRow], int]:
    """(average rows, sequences used) of a human benchmark."""
    from tasks.evaluation.metrics.matching import prf1_pct
    from tasks.evaluation.metrics.summary import log_line, parse_log_lines, reference_average

    metrics = CAMCOORD_METRICS + (WORLD_METRICS if bp.world_metrics else ()) + DETECTION_METRICS
    used = {name: _values(rows) for name, rows in sequences.items() if _included(rows)}
    if protocol == "reference":
        lines = [log_line(bp.name, name, int(v["n_matched"].value), {m: v[m].value for m in metrics if m in v})
                 for name, v in used.items()]
        parsed = parse_log_lines(lines)
        total, averages = reference_average(parsed)
        avg = dict(zip(HUMAN_METRICS, averages, strict=True))
        return [_row(m, avg[m], total) for m in metrics], len(parsed)
    out = []
    for m in metrics:
        if m in DETECTION_METRICS:
            continue
        num = den = 0.0
        for v in used.values():
            value, n = v[m].value, v["n_matched"].value
            if math.isfinite(value) and n:
                num += n * value
                den += n
        out.append(_row(m, num / den if den else math.nan, int(den)))
    pooled = {k: sum(v[k].value for v in used.values()) for k in ("n_gt", "n_missed", "n_false_pos")}
    prf = prf1_pct(int(pooled["n_gt"]), int(pooled["n_missed"]), int(pooled["n_false_pos"]), protocol)
    out += [_row(m, value, int(pooled["n_gt"])) for m, value in zip(DETECTION_METRICS, prf, strict=True)]
    order = {m: i for i, m in enumerate(metrics)}
    return sorted(out, key=lambda r: order[r.metric]), len(used)


def camera_average(protocol: ProtocolName, sequences: SequenceRows) -> tuple[list[ScoredRow], int]:
    """(average rows, sequences used) of a camera benchmark: the plain mean over its sequences."""
    used = [_values(rows) for rows in sequences.values() if _included(rows)]
    out = []
    for m in CAMERA_METRICS:
        if protocol == "reference":  # the mean of the values evo's report prints (6 decimals), 0.0 without any
            vals = [float(f"{v[m].value:.6f}") for v in used]
            out.append(_row(m, sum(vals) / len(vals) if vals else 0.0, len(vals)))
        else:
            vals = [v[m].value for v in used if math.isfinite(v[m].value)]
            out.append(_row(m, sum(vals) / len(vals) if vals else math.nan, len(vals)))
    return out, len(used)


def depth_average(bp: BenchmarkProtocol, protocol: ProtocolName, sequences: SequenceRows
                  ) -> tuple[list[ScoredRow], int]:
    """(average rows, sequences used) of a depth benchmark: per alignment, weighted by valid pixels."""
    from tasks.evaluation.metrics.depth import average_depth
    from tasks.evaluation.metrics.errors import NoValidPixelsError

    out, n_used = [], 0
    for align in bp.depth_alignments:
        per_seq = []
        for rows in sequences.values():
            v = _values(rows, align)
            if not _included(list(v.values())):
                continue
            per_seq.append({**{m: r.value for m, r in v.items() if m in DEPTH_METRICS},
                            "valid_pixels": next(iter(v.values())).count})
        n_used = max(n_used, len(per_seq))
        if not per_seq:
            continue
        total = sum(s["valid_pixels"] for s in per_seq)
        try:
            avg = average_depth(per_seq, protocol)
        except NoValidPixelsError as err:
            out += [ScoredRow(m, math.nan, 0, METRICS[m].unit, align, "excluded", type(err).__name__, str(err))
                    for m in per_seq[0] if m in METRICS]
            continue
        out += [_row(m, v, total, align) for m, v in avg.items()]
    return out, n_used


def benchmark_average(bp: BenchmarkProtocol, protocol: ProtocolName, sequences: SequenceRows
                      ) -> tuple[list[ScoredRow], int]:
    """(the benchmark's average rows, how many sequences entered it) from its sequences' rows under `protocol`."""
    if bp.kind == "human":
        return human_average(bp, protocol, sequences)
    if bp.kind == "camera":
        return camera_average(protocol, sequences)
    return depth_average(bp, protocol, sequences)
