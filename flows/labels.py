"""`build-labels`: a pseudo-labelled dataset from the archive. Scores the tracks of runs not scored yet, selects tracks
by SQL over `track_quality`, cuts clips, splits by video, and exports AMASS npz files, per-frame Parquet labels,
optional JPEGs and a dataset card.

    prefect deployment run build-labels/weekly-labels --watch -p where="jitter_mps3 < 100"   # see prefect.yaml
    python flows/labels.py          # locally with the defaults (data/archive -> data/labels/latest), no server

`human3r labels score` and `human3r labels build` do the same in one process, without Prefect.
"""

from __future__ import annotations

from prefect import flow

from tasks.labels.options import LabelOptions
from tasks.labels.stages import export_labels, score_tracks


@flow(name="build-labels", log_prints=False)
def build_labels(
    dataset: str = "data/archive",
    out: str = "data/labels/latest",
    where: str = "true",
    options: LabelOptions = LabelOptions(),
    score: bool = True,
    overwrite: bool = True,
) -> dict:
    """Build the pseudo-labelled dataset `out` from the tracks of `dataset` that `where` chooses.

    Args:
        dataset: dataset root (folder or s3://bucket/prefix).
        out: local folder of the build; replaced in one rename when the build is complete.
        where: SQL condition over track_quality (see `human3r schema`), e.g. "jitter_mps3 < 100 AND n_frames >= 60".
        options: clips, split, validity-flag thresholds and images (`tasks.labels.options.LabelOptions`).
        score: score the tracks of runs not scored yet first.
        overwrite: replace an existing build at `out`.
    """
    if score:
        score_tracks(dataset)
    return export_labels(dataset, out, where, options, overwrite)


if __name__ == "__main__":
    build_labels()
