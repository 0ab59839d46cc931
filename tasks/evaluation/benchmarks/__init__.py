"""Benchmarks: loaders (released files -> sequences with ground truth) and the protocol each is evaluated with.

``load_benchmark(name, root)`` reads a benchmark from its release folder; ``benchmark_protocol(name)`` says how it is
run and scored. Modules: :mod:`.sequence` (the typed result), :mod:`.protocol` (the table and the reference's
quirks), :mod:`.pickles` (restricted unpickler), one module per benchmark (:mod:`.threedpw`, :mod:`.emdb`,
:mod:`.rich`, :mod:`.tum`, :mod:`.bonn`), :mod:`.views` (per-frame targets at the working size, as the reference's
view loaders give them), :mod:`.smpl_files` (SMPL-X -> SMPL matrix, joint regressors, SMPL models) and
:mod:`.synthetic` (a mini benchmark in EMDB's format, for smoke runs).
"""

from __future__ import annotations

import os
from pathlib import Path

from tasks.evaluation.benchmarks.errors import (
    BenchmarkError,
    BenchmarkFileError,
    BenchmarkLayoutError,
    ConversionFileError,
    UnknownBenchmarkError,
    UnsafePickleError,
)
from tasks.evaluation.benchmarks.protocol import (
    BENCHMARK_PROTOCOLS,
    PROTOCOL_NAMES,
    QUIRKS,
    BenchmarkProtocol,
    ProtocolName,
    benchmark_names,
    benchmark_protocol,
)
from tasks.evaluation.benchmarks.sequence import Benchmark, Bodies, Camera, Sequence, Trajectory

__all__ = [
    "PROTOCOL_NAMES",
    "BENCHMARK_PROTOCOLS",
    "QUIRKS",
    "Benchmark",
    "BenchmarkError",
    "BenchmarkFileError",
    "BenchmarkLayoutError",
    "Bodies",
    "Camera",
    "ConversionFileError",
    "ProtocolName",
    "BenchmarkProtocol",
    "Sequence",
    "Trajectory",
    "UnknownBenchmarkError",
    "UnsafePickleError",
    "benchmark_names",
    "load_benchmark",
    "benchmark_protocol",
]


def load_benchmark(name: str, root: str | os.PathLike, *, protocol: ProtocolName = "reference",
                   **options) -> Benchmark:
    """Load benchmark ``name`` from its folder ``root``.

    ``protocol``: "reference" follows the reference loaders (defects included); "corrected" fixes the defects
    listed in :data:`QUIRKS`. ``options`` go to the benchmark's loader (3DPW: ``annotations``, ``pelvis_rest``,
    ``check_images``; RICH: ``labels``).
    """
    benchmark_protocol(name)  # unknown names fail here, with the list of known ones
    protocol = str(protocol)  # the metrics' Protocol enum is a str enum
    if protocol not in PROTOCOL_NAMES:
        raise UnknownBenchmarkError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOL_NAMES)}")
    root = Path(root)
    if name == "3dpw":
        from tasks.evaluation.benchmarks.threedpw import load_3dpw

        return load_3dpw(root, protocol=protocol, **options)
    if name in ("emdb1", "emdb2"):
        from tasks.evaluation.benchmarks.emdb import load_emdb

        return load_emdb(root, int(name[-1]), protocol=protocol, **options)
    if name == "rich":
        from tasks.evaluation.benchmarks.rich import load_rich

        return load_rich(root, protocol=protocol, **options)
    if name.startswith("tum"):
        from tasks.evaluation.benchmarks.tum import load_tum

        return load_tum(root, name, protocol=protocol, **options)
    from tasks.evaluation.benchmarks.bonn import load_bonn

    return load_bonn(root, name, protocol=protocol, **options)
