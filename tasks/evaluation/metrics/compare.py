"""Both protocols on the same inputs, and how far they differ."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from tasks.evaluation.metrics.protocol import Protocol
from tasks.evaluation.metrics.results import Evaluation


@dataclass(frozen=True)
class ProtocolDifference:
    benchmark: str
    sequence: str | None  # None = the average
    metric: str
    unit: str
    reference: float  # NaN when the reference has no such row
    corrected: float  # NaN when the corrected protocol has no such row
    difference: float  # corrected - reference (NaN when either is missing or not finite)


def compare_protocols(evaluate: Callable[[Protocol], Evaluation]) -> tuple[Evaluation, Evaluation,
                                                                              list[ProtocolDifference]]:
    """Run `evaluate` under both protocols; returns (reference, corrected, one difference per row of either)."""
    ref, cor = evaluate(Protocol.REFERENCE), evaluate(Protocol.CORRECTED)
    key = lambda r: (r.benchmark, r.sequence, r.metric)  # noqa: E731
    a, b = {key(r): r for r in ref.rows}, {key(r): r for r in cor.rows}
    out = []
    for k in list(a) + [k for k in b if k not in a]:
        ra, rb = a.get(k), b.get(k)
        va = ra.value if ra else math.nan
        vb = rb.value if rb else math.nan
        diff = vb - va if math.isfinite(va) and math.isfinite(vb) else math.nan
        out.append(ProtocolDifference(*k, (ra or rb).unit, va, vb, diff))
    return ref, cor, out


def differing(diffs: list[ProtocolDifference], rel: float = 1e-12) -> list[ProtocolDifference]:
    """The differences that are not equal (relative `rel`), or where one side is missing or not finite."""
    def same(d: ProtocolDifference) -> bool:
        if math.isnan(d.reference) and math.isnan(d.corrected):
            return True
        return d.reference == d.corrected or (math.isfinite(d.difference)
                                             and abs(d.difference) <= rel * max(abs(d.reference), 1e-300))
    return [d for d in diffs if not same(d)]
