"""Options of a pseudo-label build, defined once: what `human3r labels build` and the `build-labels` flow take.

Frozen pydantic models with each default, bound and description written here (as `tasks.options` does for
reconstruction); the CLI builds its flags from the fields with `tasks.options.click_options`, the flow takes
:class:`LabelOptions` as a typed parameter, and `prefect.yaml` sets nested fields (``options: {clips: {min_frames:
30}}``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

IMAGE_MODES = ("none", "frames", "crops")
SPLITS = ("train", "val", "test")


class _Options(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ClipOptions(_Options):
    """How selected tracks become clips: a track is split wherever it is missing from a processed frame."""

    min_frames: int = Field(16, ge=1, description="Drop pieces of track shorter than this many frames.")
    max_frames: int = Field(300, ge=1, description="Cut longer pieces into near-equal clips of at most this many "
                                                   "frames.")

    @model_validator(mode="after")
    def _bounds(self) -> ClipOptions:
        if self.max_frames < self.min_frames:
            raise ValueError(f"max_frames ({self.max_frames}) must be >= min_frames ({self.min_frames})")
        return self


class SplitOptions(_Options):
    """Train / val / test by video: a video's split is a hash of (seed, video_id), so it never changes as the
    dataset grows and no video is in two splits."""

    train: float = Field(0.8, ge=0, le=1, description="Share of videos in train.")
    val: float = Field(0.1, ge=0, le=1, description="Share of videos in val.")
    test: float = Field(0.1, ge=0, le=1, description="Share of videos in test.")
    seed: int = Field(0, description="Seed of the video -> split hash.")

    @model_validator(mode="after")
    def _sum(self) -> SplitOptions:
        if abs(self.train + self.val + self.test - 1) > 1e-6:
            raise ValueError(f"train + val + test must be 1 (got {self.train} + {self.val} + {self.test})")
        return self


class FlagOptions(_Options):
    """When a per-frame label is flagged invalid (flagged, never dropped)."""

    min_detection_score: float = Field(0.5, ge=0, le=1, description="valid_detection: detection score at least "
                                                                    "this.")
    max_abs_beta: float = Field(3.0, gt=0, description="valid_shape: every |beta_i| at most this (shapes are "
                                                       "~N(0, 1)).")
    max_speed_mps: float = Field(10.0, gt=0, description="valid_motion: head speed since the previous frame of "
                                                         "the clip at most this (m/s).")
    max_penetration_m: float = Field(0.05, ge=0, description="valid_ground: lowest joint at most this far below "
                                                             "the ground plane (m).")
    min_bbox_px: float = Field(16.0, ge=0, description="valid_bbox: both sides of the box at least this many "
                                                       "source pixels.")


class LabelOptions(_Options):
    """Everything a build takes besides the dataset, the output folder and the selection SQL."""

    clips: ClipOptions = ClipOptions()
    split: SplitOptions = SplitOptions()
    flags: FlagOptions = FlagOptions()
    images: str = Field("none", description="Cut JPEGs from the source videos: none, frames (full frames) or crops "
                                            "(one per person, around the keypoint box).")
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG quality of cut images.")
    crop_margin: float = Field(0.2, ge=0, description="Crops: the keypoint box enlarged by this fraction per side.")

    @model_validator(mode="after")
    def _images(self) -> LabelOptions:
        if self.images not in IMAGE_MODES:
            raise ValueError(f"images must be one of {', '.join(IMAGE_MODES)} (got {self.images!r})")
        return self
