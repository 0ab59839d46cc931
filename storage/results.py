"""Benchmark results as the paper lays them out: its tables, the official figures, and the live ``evaluations`` rows
arranged into them. What `human3r eval report` prints and the dashboard's Models page draws (plain data, no
rendering here beyond Markdown).

Tables (the paper's): local human mesh recovery (3DPW, EMDB-1: PA-MPJPE, MPJPE, PVE), global human motion
(EMDB-2, RICH: WA-MPJPE, W-MPJPE, RTE, jitter, foot sliding), camera pose (TUM: ATE, RPE), video depth (Bonn:
AbsRel and delta < 1.25, per-sequence scale and metric). Longer variants (``tum_<N>``, ``bonn_<N>``) join their
table when evaluated. Rows: the official figures first, then every evaluated model (model version, precision,
protocol, and its other parameters when they are not the defaults), then, per model evaluated under both
protocols, the corrected minus reference difference. A value whose average covers fewer sequences than the
benchmark has is marked ``*`` and its coverage given in the notes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable

import pyarrow as pa

from storage import schema as S

UNIT_LABELS = {"mm": "mm", "m": "m", "deg": "deg", "pct": "%", "10m/s3": "10 m/s³", "ratio": "", "log": "log",
               "fraction": "", "count": ""}
DIGITS = {"mm": 1, "pct": 1, "10m/s3": 1, "m": 3, "deg": 2, "ratio": 3, "fraction": 3, "log": 3, "count": 0}
METRIC_LABELS = {"pa_mpjpe": "PA-MPJPE", "mpjpe": "MPJPE", "pve": "PVE", "wa_mpjpe100": "WA-MPJPE",
                 "w_mpjpe100": "W-MPJPE", "rte_pct": "RTE", "jitter": "Jitter", "foot_sliding": "Foot sliding",
                 "ate_m": "ATE", "rpe_trans_m": "RPE trans", "rpe_rot_deg": "RPE rot", "abs_rel": "AbsRel",
                 "delta_1_25": "δ<1.25"}
BENCHMARK_LABELS = {"3dpw": "3DPW", "emdb1": "EMDB-1", "emdb2": "EMDB-2", "rich": "RICH", "tum": "TUM-dynamics",
                    "bonn": "Bonn"}
METRIC_UNITS = {"pa_mpjpe": "mm", "mpjpe": "mm", "pve": "mm", "wa_mpjpe100": "mm", "w_mpjpe100": "mm",
                "rte_pct": "pct", "jitter": "10m/s3", "foot_sliding": "mm", "ate_m": "m", "rpe_trans_m": "m",
                "rpe_rot_deg": "deg", "abs_rel": "ratio", "delta_1_25": "fraction"}

_LOCAL = ("pa_mpjpe", "mpjpe", "pve")
_GLOBAL = ("wa_mpjpe100", "w_mpjpe100", "rte_pct", "jitter", "foot_sliding")
_DEPTH = (("abs_rel", "scale"), ("delta_1_25", "scale"), ("abs_rel", "metric"), ("delta_1_25", "metric"))


@dataclasses.dataclass(frozen=True)
class Column:
    benchmark: str
    metric: str
    alignment: str | None = None

    @property
    def label(self) -> str:
        base = self.benchmark.split("_")[0]
        name = BENCHMARK_LABELS.get(base, base) + (f" ({self.benchmark.split('_')[1]} frames)"
                                                   if "_" in self.benchmark else "")
        unit = UNIT_LABELS.get(METRIC_UNITS.get(self.metric, ""), "")
        metric = METRIC_LABELS.get(self.metric, self.metric) + (f", {self.alignment}" if self.alignment else "")
        return f"{name} {metric}" + (f" ({unit})" if unit else "")


@dataclasses.dataclass(frozen=True)
class TableLayout:
    title: str
    kind: str  # benchmark kind: its longer variants join the table
    columns: tuple[Column, ...]


LAYOUT = (
    TableLayout("Local human mesh recovery", "local", tuple(Column(b, m) for b in ("3dpw", "emdb1") for m in _LOCAL)),
    TableLayout("Global human motion", "global", tuple(Column(b, m) for b in ("emdb2", "rich") for m in _GLOBAL)),
    TableLayout("Camera pose", "tum", tuple(Column("tum", m) for m in ("ate_m", "rpe_trans_m", "rpe_rot_deg"))),
    TableLayout("Video depth", "bonn", tuple(Column("bonn", m, a) for m, a in _DEPTH)),
)


# ------------------------------------------------------------------------------------------------------------------
# Official figures
# ------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Official:
    """A published figure: what the authors report, where, for which released weights."""

    label: str  # row label
    preset: str  # the released weights it is for (672S, 672B, 672L, 896L)
    source: str
    values: dict  # (benchmark, metric) -> value, in the metric's unit


_DOCS = "upstream docs/inference.md (AdrienBousquieEPFL/Human3R@402f2b2)"
_PAPER = "the paper, second-hand (a paper-notes summary)"
OFFICIAL = (
    *(Official(f"official {name}", preset, _DOCS, {
        ("3dpw", "pa_mpjpe"): pa, ("3dpw", "mpjpe"): mpjpe, ("3dpw", "pve"): pve,
        ("emdb2", "wa_mpjpe100"): wa, ("emdb2", "w_mpjpe100"): w, ("emdb2", "rte_pct"): rte})
      for name, preset, pa, mpjpe, pve, wa, w, rte in (
          ("ViT-S/672", "672S", 56.1, 87.8, 103.1, 129.9, 314.2, 2.2),
          ("ViT-B/672", "672B", 49.3, 79.6, 94.3, 122.1, 292.9, 2.2),
          ("ViT-L/672", "672L", 48.5, 83.1, 96.7, 113.6, 291.7, 2.2),
          ("ViT-L/896", "896L", 44.1, 71.2, 84.9, 112.2, 267.9, 2.2))),
    Official("paper ViT-L/896", "896L", _PAPER, {
        ("3dpw", "pa_mpjpe"): 44.1, ("emdb1", "mpjpe"): 73.9, ("emdb1", "pve"): 86.0, ("emdb2", "w_mpjpe100"): 267.9,
        ("emdb2", "rte_pct"): 2.2, ("rich", "w_mpjpe100"): 184.9, ("rich", "rte_pct"): 3.3}),
)
OFFICIAL_NOTE = (f"Official figures: {_DOCS} (its local columns are 3DPW, its global columns EMDB-2; a user's "
                 "reproduction of human3r_896L.pth on 3DPW gave PA-MPJPE 44.3, MPJPE 71.9, PVE 85.7), and "
                 f"{_PAPER}. No official TUM or Bonn figures were found.")


# ------------------------------------------------------------------------------------------------------------------
# Evaluated models
# ------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelKey:
    """One evaluated configuration: a row of the tables."""

    model_version: str
    precision: str
    protocol: str
    preset: str
    variant: str  # '' or the non-default parameters in short ('first 8 frames per sequence')

    @property
    def label(self) -> str:
        return " · ".join(x for x in (self.model_version, self.precision, self.protocol, self.variant) if x)

    @property
    def base(self) -> tuple:
        """The configuration without the protocol (what a protocol difference compares)."""
        return self.model_version, self.precision, self.preset, self.variant


@dataclasses.dataclass(frozen=True)
class Cell:
    value: float | None  # None: not evaluated
    unit: str = ""
    partial: str | None = None  # the average covers part of the benchmark: which part
    n_sequences: int | None = None

    def text(self, metric: str, signed: bool = False) -> str:
        """The value as the tables show it (the metric's digits; `signed`: a + before a positive difference)."""
        if self.value is None:
            return "—"
        if math.isnan(self.value):
            return "n/a"
        digits = DIGITS.get(self.unit or METRIC_UNITS.get(metric, ""), 2)
        rounded = round(self.value, digits)
        text = f"{abs(rounded) if rounded == 0 else rounded:.{digits}f}"
        return ("+" if signed and rounded > 0 else "") + text + ("*" if self.partial else "")


@dataclasses.dataclass(frozen=True)
class Row:
    label: str
    kind: str  # 'official', 'model' or 'difference'
    cells: tuple[Cell, ...]
    key: ModelKey | None = None
    source: str | None = None


@dataclasses.dataclass(frozen=True)
class ResultTable:
    title: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    notes: tuple[str, ...] = ()


def _variant(params_json: str | None) -> str:
    try:
        params = json.loads(params_json or "{}")
    except ValueError:
        return ""
    parts = [f"first {params['max_frames']} frames per sequence"] if params.get("max_frames") else []
    return ", ".join(parts)


def averages(live: pa.Table) -> dict[ModelKey, dict[tuple, Cell]]:
    """{model configuration: {(benchmark, metric, alignment): Cell}} of the live average rows (sequence null)."""
    out: dict[ModelKey, dict[tuple, Cell]] = {}
    cols = [S.MODEL_VERSION, S.PRECISION, S.PROTOCOL, S.PRESET, S.PARAMS_JSON, S.BENCHMARK, S.SEQUENCE, S.METRIC,
            S.ALIGNMENT, S.VALUE, S.UNIT, S.MESSAGE, S.N_SEQUENCES, S.STATUS]
    for r in live.select(cols).to_pylist():
        if r[S.SEQUENCE] is not None or r[S.METRIC] is None:
            continue
        key = ModelKey(r[S.MODEL_VERSION], r[S.PRECISION], r[S.PROTOCOL], r[S.PRESET], _variant(r[S.PARAMS_JSON]))
        out.setdefault(key, {})[(r[S.BENCHMARK], r[S.METRIC], r[S.ALIGNMENT])] = Cell(
            r[S.VALUE], r[S.UNIT] or "", r[S.MESSAGE], r[S.N_SEQUENCES])
    return dict(sorted(out.items(), key=lambda kv: (kv[0].model_version, kv[0].precision, kv[0].variant,
                                                    kv[0].protocol)))


def _columns(layout: TableLayout, evaluated: set[str]) -> tuple[Column, ...]:
    """The layout's columns, plus those of evaluated longer variants of its benchmarks (tum_500, bonn_200)."""
    extra = []
    base = {c.benchmark for c in layout.columns}
    for bench in sorted(evaluated):
        if "_" in bench and bench.split("_")[0] in base:
            extra += [dataclasses.replace(c, benchmark=bench) for c in layout.columns if c.benchmark in base
                      and c.benchmark == bench.split("_")[0]]
    return layout.columns + tuple(extra)


def paper_tables(live: pa.Table) -> list[ResultTable]:
    """The paper's tables filled with the official figures and every evaluated model of `live` (the live
    ``evaluations`` rows: `storage.catalog.live_results`)."""
    models = averages(live)
    evaluated = {k[0] for cells in models.values() for k in cells}
    tables = []
    for layout in LAYOUT:
        columns = _columns(layout, evaluated)
        rows: list[Row] = []
        for off in OFFICIAL:
            cells = tuple(Cell(off.values.get((c.benchmark, c.metric)) if c.alignment is None else None,
                               METRIC_UNITS.get(c.metric, "")) for c in columns)
            if any(c.value is not None for c in cells):
                rows.append(Row(off.label, "official", cells, source=off.source))
        notes = []
        by_base: dict[tuple, dict[str, tuple[Cell, ...]]] = {}
        for key, cells_of in models.items():
            cells = tuple(cells_of.get((c.benchmark, c.metric, c.alignment), Cell(None)) for c in columns)
            if all(c.value is None for c in cells):
                continue
            rows.append(Row(key.label, "model", cells, key))
            by_base.setdefault(key.base, {})[key.protocol] = cells
            for col, cell in zip(columns, cells, strict=True):
                if cell.partial and cell.value is not None:
                    note = f"* {key.label}, {col.benchmark}: {cell.partial}"
                    if note not in notes:
                        notes.append(note)
        for base, by_protocol in by_base.items():
            if {"reference", "corrected"} <= set(by_protocol):
                ref, cor = by_protocol["reference"], by_protocol["corrected"]
                diff = tuple(Cell(b.value - a.value if a.value is not None and b.value is not None else None, a.unit)
                             for a, b in zip(ref, cor, strict=True))
                label = " · ".join(x for x in (base[0], base[1], base[3]) if x) + " · corrected − reference"
                rows.append(Row(label, "difference", diff))
        if rows and not any(r.kind == "official" for r in rows):  # no official figures: only evaluated columns
            keep = [i for i in range(len(columns)) if any(r.cells[i].value is not None for r in rows)]
            columns = tuple(columns[i] for i in keep)
            rows = [dataclasses.replace(r, cells=tuple(r.cells[i] for i in keep)) for r in rows]
        if rows:
            tables.append(ResultTable(layout.title, columns, tuple(rows), tuple(notes)))
    return tables


def to_markdown(tables: Iterable[ResultTable], *, title: str = "Benchmark results") -> str:
    """The tables as Markdown (one table per section, the notes under it, the sources of the official figures)."""
    lines = [f"# {title}", ""]
    for t in tables:
        lines += [f"## {t.title}", "", "| | " + " | ".join(c.label for c in t.columns) + " |",
                  "|---|" + "---:|" * len(t.columns)]
        for r in t.rows:
            label = f"**{r.label}**" if r.kind == "model" else (f"*{r.label}*" if r.kind == "difference" else r.label)
            texts = [c.text(col.metric, signed=r.kind == "difference") for c, col in zip(r.cells, t.columns,
                                                                                          strict=True)]
            lines.append(f"| {label} | " + " | ".join(texts) + " |")
        lines.append("")
        lines += [*t.notes, *([""] if t.notes else [])]
    lines += [OFFICIAL_NOTE, "", "Units: mm, % (RTE), 10 m/s³ (jitter), m (ATE, RPE trans), degrees (RPE rot); "
              "AbsRel and δ<1.25 are ratios (δ the fraction of pixels). `n/a`: evaluated, but undefined (see the "
              "rows' status and message); `—`: not evaluated.", ""]
    return "\n".join(lines)


def sequence_values(live: pa.Table, benchmark: str, metric: str, alignment: str | None = None
                    ) -> dict[ModelKey, dict[str, float]]:
    """{model configuration: {sequence: value}} of one benchmark metric (the per-sequence plots)."""
    out: dict[ModelKey, dict[str, float]] = {}
    for r in live.to_pylist():
        if (r[S.SEQUENCE] is None or r[S.BENCHMARK] != benchmark or r[S.METRIC] != metric
                or r[S.ALIGNMENT] != alignment or r[S.VALUE] is None):
            continue
        key = ModelKey(r[S.MODEL_VERSION], r[S.PRECISION], r[S.PROTOCOL], r[S.PRESET], _variant(r[S.PARAMS_JSON]))
        out.setdefault(key, {})[r[S.SEQUENCE]] = r[S.VALUE]
    return out
