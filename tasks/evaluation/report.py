"""`human3r eval report`: the paper's tables with the official figures beside every evaluated model (the layout and
figures are `storage.results`, shared with the dashboard's Models page), and what each average covers.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from storage import schema as S
from storage.fs import Root
from storage.results import paper_tables, to_markdown
from tasks.evaluation.store import live_results


def coverage_lines(live: pa.Table) -> list[str]:
    """One Markdown bullet per evaluated model and benchmark: sequences ok / excluded / failed, frames."""
    seqs: dict[tuple, Counter] = {}
    frames: Counter = Counter()
    for r in live.select([S.MODEL_VERSION, S.PRECISION, S.PROTOCOL, S.BENCHMARK, S.SEQUENCE, S.STATUS,
                          S.N_FRAMES]).to_pylist():
        if r[S.SEQUENCE] is None:
            continue
        key = (r[S.MODEL_VERSION], r[S.PRECISION], r[S.PROTOCOL], r[S.BENCHMARK])
        status = seqs.setdefault(key, Counter())
        tag = (r[S.SEQUENCE], r[S.STATUS])
        if tag not in status:
            status[tag] = 1
            if r[S.STATUS] != "failed":
                frames[key] += r[S.N_FRAMES] or 0
    lines = []
    for key, tags in sorted(seqs.items()):
        by = Counter(status for (_, status) in tags)
        parts = [f"{by[s]} {s}" for s in ("ok", "excluded", "failed") if by[s]]
        n = len({name for name, _ in tags})
        what = f"{n} sequence(s) ({', '.join(parts)}), {frames[key]:,} frames"
        lines.append(f"- {' · '.join(key[:3])}, {key[3]}: {what}")
    return lines


def build_report(root: Root) -> str:
    """The report of every evaluation in the dataset at `root`, as Markdown."""
    live = live_results(root)
    if live.num_rows == 0:
        return to_markdown(paper_tables(live)) + ("\nNo evaluation in this dataset yet: "
                                                  "`human3r eval BENCHMARK --data DIR --out ROOT`.\n")
    text = to_markdown(paper_tables(live))
    lines = coverage_lines(live)
    return text + "\n## Coverage\n\n" + "\n".join(lines) + "\n" if lines else text
