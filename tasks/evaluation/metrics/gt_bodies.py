"""Which gendered body poses each 3DPW GT actor (the reference's ``SMPLModel.forward_smpl``, 3DPW branch).

The benchmark runner poses the GT with the body model; this module only decides, per GT row, which gender's model
that row gets, so the choice is a flag the runner passes through (its protocol).

``reference``: every row is posed with the male body; then, when any actor is female, the rows at
``torch.where(gender_id == 2)[1]`` get the female body. Those indices are the female actors' *slots within their
frame* (0 or 1), not their rows in the flattened batch, so female actors get the male body, except that rows 0/1 of
the whole sequence get the female body whatever their gender (pack README section 6.2: genders [1,2,1,2,2,1,1] are
posed with [2,2,1,1,1,1,1]). ``corrected``: every row gets its own gender.
"""

from __future__ import annotations

import numpy as np

from tasks.evaluation.metrics.errors import MetricInputError
from tasks.evaluation.metrics.protocol import Protocol, as_protocol

MALE, FEMALE = 1, 2  # smpl_gender_id values of the 3DPW loader


def gt_body_genders(gender_id: np.ndarray, mask: np.ndarray, protocol: Protocol | str = Protocol.REFERENCE
                    ) -> np.ndarray:
    """(R,) gender id (1 male, 2 female) of the body that poses each GT row.

    gender_id (F, H) per frame and actor slot (any value where `mask` is False), mask (F, H) bool; the rows are
    the True entries of `mask` in row-major order (frame, then slot), as the reference flattens them.
    """
    protocol = as_protocol(protocol)
    gender_id = np.asarray(gender_id).astype(np.int64)
    mask = np.asarray(mask, bool)
    if gender_id.shape != mask.shape or gender_id.ndim != 2:
        raise MetricInputError(f"gender_id {gender_id.shape} and mask {mask.shape} must both be (frames, slots)")
    own = gender_id[mask]
    if protocol is Protocol.CORRECTED:
        return own
    used = np.full(len(own), MALE, np.int64)
    if gender_id.size and int(gender_id.max()) == FEMALE:
        slots = np.nonzero(gender_id == FEMALE)[1]  # the slot within the frame, as the reference indexes
        if slots.size and slots.max() >= len(own):
            raise MetricInputError(f"the reference would index GT row {int(slots.max())} of {len(own)} rows "
                                   "(IndexError): a female actor in a slot beyond the sequence's rows")
        used[slots] = FEMALE
    return used
