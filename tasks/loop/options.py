"""The options of the `improve-model` loop, defined once: what the flow takes besides the dataset, the output
folder, the selection SQL, the base model and the cluster.

Each stage keeps its own options model (labels: `tasks.labels.options.LabelOptions`; fine-tuning: the train-loop's
config, built from the label build; evaluation: `tasks.evaluation.options.EvalOptions`; the comparison runs:
`tasks.options.ReconstructOptions`), nested here so a deployment sets them as ``options: {labels: {clips:
{min_frames: 30}}, finetune: {loop: {max_steps: 500}}}``. Frozen pydantic models in the style of `tasks.options`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.evaluation.options import EvalOptions
from tasks.labels.options import LabelOptions
from tasks.options import ReconstructOptions


class _Options(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CompareOptions(_Options):
    """The videos both models reconstruct, so `compare` measures how far the fine-tune moves the output."""

    source: str | None = Field(None, description="Videos to reconstruct with both models (folder, file, glob or "
                                                 "s3:// prefix); empty = the label build's held-out videos (val and "
                                                 "test splits), or all its videos when it holds none (the report "
                                                 "then says they were trained on).")
    max_videos: int = Field(20, ge=1, description="At most this many videos (the first by video id): each is "
                                                  "reconstructed twice.")
    reconstruct: ReconstructOptions = Field(ReconstructOptions(), description="How both models reconstruct them "
                                                                             "(the same for both sides).")


def _label_defaults() -> LabelOptions:
    return LabelOptions(images="frames")


class ImproveOptions(_Options):
    """Everything the loop takes besides where it reads and writes, the selection, the model and the cluster."""

    labels: LabelOptions = Field(default_factory=_label_defaults, description="The pseudo-label build (clips, "
                                                                              "split, flags); images must be "
                                                                              "'frames': training reads the full "
                                                                              "frames.")
    finetune: dict[str, Any] = Field(default_factory=dict, description="Overrides of the fine-tuning config built "
                                                                       "from the label build (its sections: step, "
                                                                       "loop, data, cluster, tracking), e.g. "
                                                                       "{\"loop\": {\"max_steps\": 500}}.")
    evaluation: EvalOptions = Field(EvalOptions(), description="The benchmarks' protocol, SMPL files, max_frames "
                                                               "and sequences (the same for both models).")
    compare: CompareOptions = Field(CompareOptions(), description="The videos both models reconstruct.")

    @field_validator("labels")
    @classmethod
    def _frames(cls, value: LabelOptions) -> LabelOptions:
        if value.images != "frames":
            raise ValueError(f"labels.images must be 'frames' (got {value.images!r}): fine-tuning reads the full "
                             "frames of the build")
        return value
