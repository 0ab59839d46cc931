"""Training data options, defined once: one typed entry per source of a mixture (what the YAML config lists).

A mixture is a list of sources, each ``{source: bedlam|labels, root: ..., samples: N, ...}``; ``samples`` is how
many samples are drawn from it per epoch (the ``N @`` of the reference's ``4000 @ BEDLAM_Multi(...)``). Defaults are
the real run's (10 aspect-ratio buckets, 4 views, crop augmentation 16, colour jitter, repeats allowed, unseeded);
the parity pack's setting is ``resolution: [[128, 80]], seed: 9, aug_crop: 0, color_jitter: false,
allow_repeat: false``. Frozen pydantic models in the style of `tasks.options`; `tasks.options.build` turns a bad
value into one `OptionsError` line.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The real run's working resolutions (W, H): the aspect-ratio buckets, six landscape then four portrait
RESOLUTIONS_512 = ((512, 384), (512, 336), (512, 288), (512, 256), (512, 208), (512, 144), (384, 512), (336, 512),
                   (288, 512), (256, 512))


class _Options(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _SourceOptions(_Options):
    root: str = Field(description="The source's folder (BEDLAM: the folder holding Training/ and Test/; labels: "
                                  "the build folder).")
    samples: int | None = Field(None, ge=1, description="Samples drawn per epoch (a fresh permutation of the "
                                                        "source's start frames each epoch, repeated as needed); "
                                                        "empty = each start frame once.")
    resolution: tuple[tuple[int, int], ...] = Field(RESOLUTIONS_512, min_length=1,
                                                    description="Working resolutions (W, H): the aspect-ratio "
                                                                "buckets, one per batch.")
    num_views: int = Field(4, ge=2, description="Views (frames) per sample.")
    seed: int | None = Field(None, description="Seed: sample idx draws from default_rng(seed + idx); empty = one "
                                               "unseeded generator per loader worker (the real run).")
    aug_crop: int = Field(16, ge=0, description="Crop augmentation: the resize target grows by up to this many "
                                                "pixels before the centre crop (off below 2).")
    seq_aug_crop: bool = Field(False, description="One crop augmentation draw per sample instead of per view.")
    color_jitter: bool = Field(True, description="Sequence-consistent colour jitter (one draw per sample, the same "
                                                 "on all its views) before normalisation.")
    allow_repeat: bool = Field(True, description="Sequence tails shorter than a sample repeat frames instead of "
                                                 "being left out.")
    max_interval: int = Field(4, ge=1, description="Largest frame interval between consecutive views.")
    max_humans: int = Field(10, ge=1, description="Person slots per view (a frame with more people is an error).")

    @field_validator("resolution")
    @classmethod
    def _sizes(cls, value: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        bad = [size for size in value if min(size) < 16]
        if bad:
            raise ValueError(f"resolutions must be at least 16 px per side (got {bad[0]})")
        return value

    def loader_kwargs(self) -> dict:
        """The keyword arguments of `MultiViewSource` (everything but the root, the source and the epoch size)."""
        return self.model_dump(exclude={"source", "root", "samples", "split", "people"})


class BedlamSource(_SourceOptions):
    """BEDLAM in the layout of the reference's preprocessing (`tasks.training.data.bedlam`)."""

    source: Literal["bedlam"] = "bedlam"
    split: Literal["train", "test"] = Field("train", description="train (Training/) or test (Test/).")


class LabelsSource(_SourceOptions):
    """A pseudo-label build made with ``--images frames`` (`tasks.training.data.labels`)."""

    source: Literal["labels"] = "labels"
    split: Literal["train", "val", "test"] = Field("train", description="Which split of the build.")
    people: Literal["valid", "body"] = Field("valid", description="People in the slots: valid = labels flagged "
                                                                  "valid with a body; body = every label with a "
                                                                  "body.")


Source = Annotated[BedlamSource | LabelsSource, Field(discriminator="source")]


class MixtureOptions(_Options):
    """Sources mixed by weight: each epoch draws `samples` from each, and batches mix them."""

    sources: tuple[Source, ...] = Field(min_length=1, description="The sources and their samples per epoch.")

    @model_validator(mode="after")
    def _same_shapes(self) -> MixtureOptions:
        first = self.sources[0]
        for other in self.sources[1:]:
            if other.resolution != first.resolution or other.num_views != first.num_views:
                raise ValueError("every source of a mixture needs the same resolution list and num_views "
                                 f"({other.source} at {other.root} differs from {first.source} at {first.root})")
        return self
