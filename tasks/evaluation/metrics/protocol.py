"""Which rules a metric follows: the reference's, defects included, or the corrected ones.

* ``reference`` (the default) reproduces Human3R's evaluation code (upstream ``b1b578a``) number for number,
  including what the parity pack's README (section 6) lists as defects, so the paper's tables can be reproduced.
* ``corrected`` fixes each of those defects and nothing else:

  =====================================  ============================================================================
  reference                              corrected
  =====================================  ============================================================================
  3DPW female GT posed with the male     each actor posed with its own gendered body (:func:`gt_body_genders`)
  body (rows at the female *slots* get
  the female body)
  greedy matcher stops early (a low-IoU  every pair is looked at; unmatched predictions are false positives
  pair of a matched prediction counts
  as a false positive)
  one decimal per sequence, whole-       no rounding; P/R/F1 from the pooled counts
  percent P/R/F1, then the weighted
  mean
  inf/NaN sequences vanish from the      they are reported (rows with their value) and left out of that metric's
  dataset average                        average only, with an :class:`~tasks.evaluation.metrics.results.Exclusion`
  missed frames are removed before the   chunks by frame number, jitter and foot sliding only across consecutive
  world metrics (chunks, jitter, foot    frames
  sliding span the gaps)
  depth scale: 10 unconverged IRLS       the converged L1 scale (the weighted median the IRLS tends to), float64;
  steps in mixed float32/float64; the    the always-zero "delta < 1." left out; delta as exact fractions
  always-zero "delta < 1."
  Bonn reader asserts on an all-zero     the frame counts as fully invalid
  PNG; all-invalid input raises
  a missing pose voids the trajectory    predicted stamps are frame numbers into the GT: the N-1 poses are evaluated
  (no stamp matches)
  a static camera's sequence vanishes    reported as excluded with the reason
  from the average
  the summary calls mm, %, 10 m/s^3      every section labelled with its units
  "cm"
  =====================================  ============================================================================

Every row carries its protocol's name; :func:`~tasks.evaluation.metrics.compare.compare_protocols` runs both.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Protocol(StrEnum):
    """The rules a metric follows (see the module docstring for the list of differences)."""

    REFERENCE = "reference"
    CORRECTED = "corrected"


class ProtocolOptions(BaseModel):
    """The evaluation protocol, as the CLI and the benchmark runner take it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    protocol: Protocol = Field(Protocol.REFERENCE, description="'reference' reproduces the published numbers, "
                                                                 "defects included; 'corrected' fixes them.")


def as_protocol(value: Protocol | str) -> Protocol:
    """`value` as a :class:`Protocol`, with a one-line error naming the choices."""
    from tasks.evaluation.metrics.errors import MetricInputError

    try:
        return Protocol(value)
    except ValueError:
        raise MetricInputError(f"unknown protocol {value!r}: use one of {', '.join(p.value for p in Protocol)}") \
            from None
