"""Human benchmark sequences -> rows: per-sequence values, the dataset average, and the reference's log texts.

``reference`` (``write_log``/``extract_metrics``/``calculate_averages``): a sequence's value is the mean of all its
entries written with **one decimal** (P/R/F1 are already whole percents); the dataset value is the n_human-weighted
mean of those one-decimal values, for every column, P/R/F1 included. A sequence whose log line holds ``inf`` or
``nan`` does not match the reference's regex and is dropped from the average without a word. Benchmarks without
world metrics log 0.0 there (kept in the text, no rows). The summary calls the world section "cm".

``corrected``: unrounded float64 means; a non-finite or empty value is reported (its row) and left out of that
metric's average only (an :class:`~tasks.evaluation.metrics.results.Exclusion`); P/R/F1 from the pooled counts;
every section labelled with its units.
"""

from __future__ import annotations

import math
import re

import numpy as np

from tasks.evaluation.metrics.humans import HumanSequence
from tasks.evaluation.metrics.matching import prf1_pct
from tasks.evaluation.metrics.protocol import Protocol, as_protocol
from tasks.evaluation.metrics.results import (
    CAMCOORD_METRICS,
    DETECTION_METRICS,
    HUMAN_METRICS,
    METRICS,
    WORLD_METRICS,
    Evaluation,
    Exclusion,
    row,
)

# the reference's regex over a log line: a value with a sign, inf or nan fails it and drops the line
_LINE = re.compile(r"n_human: (\d+).*?" + ", ".join(f"{METRICS[m].label}: ([\\d.]+)" for m in HUMAN_METRICS))


def sequence_means(seq: HumanSequence) -> dict[str, float]:
    """{metric: unrounded mean of its entries} (NaN when it has none), and P/R/F1 unrounded."""
    out = {}
    for m in CAMCOORD_METRICS + WORLD_METRICS:
        e = seq.entries(METRICS[m].ref_key)
        out[m] = float(np.mean(e)) if e.size else float("nan")
    c = seq.counter
    out.update(zip(DETECTION_METRICS, prf1_pct(c["count"], c["miss"], c["fp"], Protocol.CORRECTED), strict=True))
    return out


def logged_values(seq: HumanSequence, decimals: int = 1) -> dict[str, float]:
    """{metric: the value the reference's log line shows} (``write_log``: mean of the entries with one decimal,
    0.0 for a metric without entries; P/R/F1 whole percents); inf/nan stay as they are."""
    out = {}
    for m in CAMCOORD_METRICS + WORLD_METRICS:
        e = seq.entries(METRICS[m].ref_key)
        out[m] = float(np.mean(e)) if e.size else 0.0
    c = seq.counter
    out.update(zip(DETECTION_METRICS, prf1_pct(c["count"], c["miss"], c["fp"], Protocol.REFERENCE), strict=True))
    return {m: float(f"{v:.{decimals}f}") for m, v in out.items()}


def log_line(dataset: str, name: str, n_human: int, values: dict[str, float], decimals: int = 1) -> str:
    """A per-sequence log line in the reference's format (``write_log``)."""
    body = ", ".join(f"{METRICS[m].label}: {values.get(m, 0.0):.{decimals}f}" for m in HUMAN_METRICS)
    return f"{dataset}-{name: <16} |  n_human: {n_human:06d} | {body}"


def parse_log_lines(lines: list[str]) -> list[tuple[int, list[float]]]:
    """(n_human, 16 values) of every line the reference's regex accepts (others are silently skipped)."""
    out = []
    for line in lines:
        for match in _LINE.findall(line):
            out.append((int(match[0]), [float(x) for x in match[1:]]))
    return out


def reference_average(parsed: list[tuple[int, list[float]]]) -> tuple[int, list[float]]:
    """(total humans, 16 averages) as ``extract_metrics`` then ``calculate_averages`` compute them (one log file)."""
    total = sum(n for n, _ in parsed)
    if total == 0:
        return 0, [0.0] * len(HUMAN_METRICS)
    sums = [0.0] * len(HUMAN_METRICS)
    for n, vals in parsed:
        for i, v in enumerate(vals):
            sums[i] += v * n
    per_file = [s / total for s in sums]
    return total, [(a * total) / total for a in per_file]


def summary_text(total: int, averages: dict[str, float], protocol: Protocol) -> str:
    """The summary block (``get_summary_log``); ``corrected`` labels the world section with its real units."""
    a = {m: averages.get(m, 0.0) for m in HUMAN_METRICS}
    world = ("Global Coordinate Metrics (cm):" if protocol is Protocol.REFERENCE else
             "Global Coordinate Metrics (W-/WA-MPJPE mm, RTE %, jitter 10 m/s^3, foot sliding mm):")
    return (
        f"EVALUATION SUMMARY\n{'=' * 7}EVALUATION SUMMARY{'=' * 7}\nTotal Humans: {total}\n\n"
        f"Camera Coordinate Metrics (mm):\n"
        f"  PVE:         {a['pve']:6.1f}\n  PA-PVE:      {a['pa_pve']:6.1f}\n  Metric-PVE:  {a['metric_pve']:6.1f}\n\n"
        f"  MPJPE:       {a['mpjpe']:6.1f}\n  PA-MPJPE:    {a['pa_mpjpe']:6.1f}\n"
        f"  Metric-MPJPE: {a['metric_mpjpe']:6.1f}\n  Root-Error:  {a['root_error']:6.1f}\n\n"
        f"{world}\n"
        f"  W-MPJPE:     {a['w_mpjpe100']:6.1f}\n  WA-MPJPE:    {a['wa_mpjpe100']:6.1f}\n"
        f"  RTE:         {a['rte_pct']:6.1f}\n  Scaled-RTE:  {a['rte_scaled_pct']:6.1f}\n"
        f"  Jitter:      {a['jitter']:6.1f}\n  Foot-Sliding: {a['foot_sliding']:6.1f}\n\n"
        f"Detection Metrics (%):\n"
        f"  Precision:   {a['precision']:6.1f}\n  Recall:      {a['recall']:6.1f}\n  F1-Score:    {a['f1']:6.1f}\n"
        f"{'=' * 32}\n"
    )


def _entry_count(seq: HumanSequence, metric: str) -> int:
    if metric in DETECTION_METRICS:
        return seq.counter["count"]
    return int(seq.entries(METRICS[metric].ref_key).size)


def summarize_humans(benchmark: str, sequences: dict[str, HumanSequence], world: bool,
                     protocol: Protocol | str = Protocol.REFERENCE) -> Evaluation:
    """Rows per sequence and for the benchmark's average, with the reference's log and summary texts."""
    protocol = as_protocol(protocol)
    metrics = CAMCOORD_METRICS + (WORLD_METRICS if world else ()) + DETECTION_METRICS
    rows, exclusions = [], []
    if protocol is Protocol.REFERENCE:
        lines = []
        for name, seq in sequences.items():
            shown = logged_values(seq)
            lines.append(log_line(benchmark, name, seq.counter["n_human"], shown))
            if not parse_log_lines(lines[-1:]):
                exclusions.append(Exclusion(benchmark, name, None, "its log line holds inf or nan: the reference's "
                                            "summary regex skips it", protocol.value))
            rows += [row(benchmark, name, m, shown[m], _entry_count(seq, m), protocol) for m in metrics]
        total, avgs = reference_average(parse_log_lines(lines))
        averages = dict(zip(HUMAN_METRICS, avgs, strict=True))
        rows += [row(benchmark, None, m, averages[m], total, protocol) for m in metrics]
        text = {"log": "\n".join(lines) + "\n", "summary": summary_text(total, averages, protocol)}
        return Evaluation(protocol.value, tuple(rows), tuple(exclusions), text)

    means = {name: sequence_means(seq) for name, seq in sequences.items()}
    averages = {}
    for m in metrics:
        num = den = 0.0
        for name, seq in sequences.items():
            v = means[name][m]
            rows.append(row(benchmark, name, m, v, _entry_count(seq, m) if math.isfinite(v) else 0, protocol))
            if m in DETECTION_METRICS:
                continue
            n = seq.counter["n_human"]
            if not math.isfinite(v):
                exclusions.append(Exclusion(benchmark, name, m, f"value {v} (no entries or non-finite): left out of "
                                            "the average", protocol.value))
            elif n:
                num += n * v
                den += n
        averages[m] = num / den if den else float("nan")
        if m not in DETECTION_METRICS:
            rows.append(row(benchmark, None, m, averages[m], int(den), protocol))
    pooled = {k: sum(s.counter[k] for s in sequences.values()) for k in ("count", "miss", "fp")}
    for m, v in zip(DETECTION_METRICS, prf1_pct(pooled["count"], pooled["miss"], pooled["fp"], protocol), strict=True):
        averages[m] = v
        rows.append(row(benchmark, None, m, v, pooled["count"], protocol))
    total = sum(s.counter["n_human"] for s in sequences.values())
    lines = [log_line(benchmark, name, seq.counter["n_human"], means[name], decimals=4)
             for name, seq in sequences.items()]
    text = {"log": "\n".join(lines) + "\n", "summary": summary_text(total, averages, protocol)}
    return Evaluation(protocol.value, tuple(rows), tuple(exclusions), text)
