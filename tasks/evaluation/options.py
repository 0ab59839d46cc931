"""The options of an evaluation, defined once: what `human3r eval`, the flow `evaluate-model` and the actors take.

`EvalOptions` holds what is evaluated beyond the model (`tasks.options.ModelOptions`: weights, body model, device,
precision, compile) and where the actors run (`tasks.options.ClusterOptions`). ``max_frames`` changes the results
(it is part of the evaluation's identity, `tasks.evaluation.identity`); the protocol is a column of every row; the
sequence filter only selects.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PROTOCOL_CHOICES = ("reference", "corrected", "both")
SMPL_FILES_ENV = "HUMAN3R_SMPL_FILES"  # = tasks.evaluation.benchmarks.smpl_files.SMPL_FILES_ENV


class EvalOptions(BaseModel):
    """What an evaluation computes besides the model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    protocol: str = Field(
        "reference", description="reference: the published evaluation code, defects included (the paper's numbers); "
                                 "corrected: its defects fixed; both: the network runs once per sequence and both "
                                 "protocols score it.")
    smpl_files: str | None = Field(None, description="Folder of the SMPL files the human benchmarks need "
                                                     "(smplx2smpl.pkl, J_regressor_h36m.npy, SMPL_NEUTRAL/MALE/"
                                                     "FEMALE; SMPLX_MALE/FEMALE for RICH); empty = "
                                                     "$HUMAN3R_SMPL_FILES.")
    max_frames: int | None = Field(None, ge=1, description="Cut every sequence to its first N frames (a smoke run; "
                                                           "recorded with the results, never mixed with whole "
                                                           "sequences).")
    sequences: tuple[str, ...] = Field((), description="Only these sequences (names as the benchmark gives them); "
                                                       "empty = all.")

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, value: str) -> str:
        if value not in PROTOCOL_CHOICES:
            raise ValueError(f"must be {', '.join(PROTOCOL_CHOICES[:-1])} or {PROTOCOL_CHOICES[-1]}")
        return value

    @property
    def protocols(self) -> tuple[str, ...]:
        return ("reference", "corrected") if self.protocol == "both" else (self.protocol,)

    @model_validator(mode="before")
    @classmethod
    def _smpl_files(cls, data: Any) -> Any:
        """No folder given: $HUMAN3R_SMPL_FILES, read here where the options are built (the actors get these options,
        not this environment); a local path becomes absolute."""
        if not isinstance(data, dict):
            return data
        path = data.get("smpl_files") or os.environ.get(SMPL_FILES_ENV) or None
        if isinstance(path, str):
            path = os.path.abspath(os.path.expanduser(path))
        return {**data, "smpl_files": path}
