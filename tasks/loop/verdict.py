"""Base against tuned: per benchmark metric (the difference and the better side), how far the fine-tune moves the
output on the same videos (`tasks.evaluation.agreement`), and one line that says which model is better.

Pure functions over the ``evaluations`` rows (`storage.results.averages` of the live rows) and a
`tasks.evaluation.agreement.Comparison`; `render` makes the Markdown report the flow writes and returns.

Better: lower is better for every metric but ``delta_1_25`` (a share of pixels within 1.25x); a difference that
rounds to zero at the metric's digits in the paper's tables (`storage.results.DIGITS`) is a tie. The agreement
figures have no ground truth: they say how much the output moved, never which side is right.
"""

from __future__ import annotations

import dataclasses
import math

import pyarrow as pa

from storage import schema as S
from storage.results import DIGITS, METRIC_UNITS, UNIT_LABELS, Column, averages

HIGHER_IS_BETTER = frozenset({"delta_1_25"})


@dataclasses.dataclass(frozen=True)
class MetricDelta:
    """One benchmark metric, base against tuned (averages over the benchmark's sequences)."""

    benchmark: str
    metric: str
    alignment: str | None
    protocol: str
    unit: str
    base: float
    tuned: float
    sequences_better: int  # sequences where the tuned model is better
    sequences: int  # sequences both models have a value for

    @property
    def label(self) -> str:
        return Column(self.benchmark, self.metric, self.alignment).label

    @property
    def difference(self) -> float:
        """tuned - base, in the metric's unit."""
        return self.tuned - self.base

    @property
    def relative_pct(self) -> float:
        return 100.0 * self.difference / abs(self.base) if self.base else math.nan

    @property
    def better(self) -> str:
        """'tuned', 'base', 'tie', or 'n/a' (a value is missing)."""
        if not (math.isfinite(self.base) and math.isfinite(self.tuned)):
            return "n/a"
        digits = DIGITS.get(self.unit or METRIC_UNITS.get(self.metric, ""), 2)
        if round(self.difference, digits) == 0:
            return "tie"
        gain = -self.difference if self.metric not in HIGHER_IS_BETTER else self.difference
        return "tuned" if gain > 0 else "base"


def _key_rows(live: pa.Table, model_version: str, precision: str) -> dict:
    """{(protocol, variant): {(benchmark, metric, alignment): Cell}} of one model's averages."""
    return {(k.protocol, k.variant): cells for k, cells in averages(live).items()
            if k.model_version == model_version and k.precision == precision}


def _sequence_values(live: pa.Table, model_version: str, precision: str) -> dict[tuple, float]:
    out = {}
    cols = [S.MODEL_VERSION, S.PRECISION, S.PROTOCOL, S.BENCHMARK, S.SEQUENCE, S.METRIC, S.ALIGNMENT, S.VALUE,
            S.STATUS]
    for r in live.select(cols).to_pylist():
        if (r[S.MODEL_VERSION] == model_version and r[S.PRECISION] == precision and r[S.SEQUENCE] is not None
                and r[S.STATUS] == "ok" and r[S.VALUE] is not None):
            out[(r[S.PROTOCOL], r[S.BENCHMARK], r[S.METRIC], r[S.ALIGNMENT], r[S.SEQUENCE])] = r[S.VALUE]
    return out


def metric_deltas(live: pa.Table, base: tuple[str, str], tuned: tuple[str, str],
                  benchmarks: tuple[str, ...] | None = None) -> list[MetricDelta]:
    """Every benchmark metric both models have an average for (same protocol and variant), base against tuned.

    base, tuned: (model_version, precision); benchmarks: only these (None: all)."""
    rows_b, rows_t = _key_rows(live, *base), _key_rows(live, *tuned)
    seq_b, seq_t = _sequence_values(live, *base), _sequence_values(live, *tuned)
    out = []
    for key in sorted(rows_b.keys() & rows_t.keys()):
        protocol = key[0]
        for col in sorted(rows_b[key].keys() & rows_t[key].keys(), key=lambda c: (c[0], c[1], c[2] or "")):
            bench, metric, alignment = col
            if benchmarks is not None and bench not in benchmarks:
                continue
            cb, ct = rows_b[key][col], rows_t[key][col]
            shared = [k for k in seq_b if k[:4] == (protocol, bench, metric, alignment) and k in seq_t]
            probe = MetricDelta(bench, metric, alignment, protocol, cb.unit, 0.0, 0.0, 0, 0)
            better = sum(dataclasses.replace(probe, base=seq_b[k], tuned=seq_t[k]).better == "tuned" for k in shared)
            out.append(MetricDelta(bench, metric, alignment, protocol, cb.unit or ct.unit,
                                   math.nan if cb.value is None else cb.value,
                                   math.nan if ct.value is None else ct.value, better, len(shared)))
    return out


# ------------------------------------------------------------------------------------------------------------------
# The verdict and the report
# ------------------------------------------------------------------------------------------------------------------


def verdict(deltas: list[MetricDelta], comparison=None, *, base: str = "base", tuned: str = "tuned") -> str:
    """One line: which model is better on how many benchmark metrics, the largest change, and how far the output
    moved on the compared videos."""
    scored = [d for d in deltas if d.better != "n/a"]
    wins = [d for d in scored if d.better == "tuned"]
    losses = [d for d in scored if d.better == "base"]
    if not scored:
        head = "no benchmark scored both models: nothing says which is better"
    else:
        side = (f"the fine-tuned model ({tuned})" if len(wins) > len(losses) else
                f"the base model ({base})" if len(losses) > len(wins) else "neither model")
        head = (f"{side} is better: tuned better on {len(wins)}, worse on {len(losses)}, tied on "
                f"{len(scored) - len(wins) - len(losses)} of {len(scored)} benchmark metrics")
        decided = wins + losses
        if decided:
            largest = max(decided, key=lambda d: abs(d.relative_pct) if math.isfinite(d.relative_pct) else -1)
            head += f"; largest change {_fmt_delta(largest)} ({largest.label}, {largest.protocol})"
    if comparison is not None and comparison.videos:
        o = comparison.overall()
        head += (f"; on {len(comparison.videos)} video(s) the fine-tune moves cameras by {_num(o['ate_m'], 4)} m ATE, "
                 f"joints by {_num(o['joint_mm'], 1)} mm, depth by AbsRel {_num(o['depth_abs_rel'], 4)}")
    return "Verdict: " + head + "."


def _num(x: float, digits: int) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _fmt_delta(d: MetricDelta) -> str:
    digits = DIGITS.get(d.unit or METRIC_UNITS.get(d.metric, ""), 2)
    unit = UNIT_LABELS.get(d.unit, d.unit)
    rel = f", {d.relative_pct:+.1f}%" if math.isfinite(d.relative_pct) else ""
    return f"{d.difference:+.{digits}f}{(' ' + unit) if unit else ''}{rel}"


def benchmark_table(deltas: list[MetricDelta]) -> list[str]:
    """Markdown lines: one row per benchmark metric and protocol."""
    if not deltas:
        return ["No benchmark scored both models (none given, or every sequence failed)."]
    lines = ["| metric | protocol | base | tuned | tuned - base | relative | better | sequences tuned better |",
             "|---|---|---:|---:|---:|---:|---|---:|"]
    for d in deltas:
        digits = DIGITS.get(d.unit or METRIC_UNITS.get(d.metric, ""), 2)
        rel = f"{d.relative_pct:+.1f}%" if math.isfinite(d.relative_pct) else "n/a"
        lines.append(f"| {d.label} | {d.protocol} | {_num(d.base, digits)} | {_num(d.tuned, digits)} | "
                     f"{d.difference:+.{digits}f} | {rel} | **{d.better}** | {d.sequences_better}/{d.sequences} |")
    return lines


def render(*, title: str, facts: list[str], deltas: list[MetricDelta], comparison=None, compare_line: str = "",
           base: str, tuned: str) -> str:
    """The loop's report as Markdown: the verdict, what was done, the benchmark table, the agreement table."""
    from tasks.evaluation.agreement import to_markdown

    lines = [f"# {title}", "", verdict(deltas, comparison, base=base, tuned=tuned), "", f"- base: `{base}`",
             f"- tuned: `{tuned}`", *[f"- {f}" for f in facts], "", "## Benchmarks (lower is better except δ<1.25)",
             "", *benchmark_table(deltas), ""]
    lines += ["## Agreement on the same videos (base = A, tuned = B; no ground truth: how far the output moved)", ""]
    if comparison is None:
        lines += ["Not compared: no video was reconstructed by both models (see the failures tables of the two "
                  "comparison datasets).", ""]
    else:
        if compare_line:
            lines += [f"Videos: {compare_line}.", ""]
        lines += to_markdown(comparison).split("\n")[2:]  # without its own title
    return "\n".join(lines).rstrip() + "\n"
