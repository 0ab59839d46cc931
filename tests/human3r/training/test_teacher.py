"""Teacher forcing: the pack's ground truth from its recorded views, and the reference's drop rules."""

from pathlib import Path

import numpy as np
import pytest
import torch

from human3r.errors import InputShapeError
from human3r.training.teacher import keep_heads, square_intrinsics, teacher_targets
from human3r.training.views import views_from_batch

PACK = Path(__file__).parents[2] / "fixtures" / "train_parity"
GT = {"smpl_mask": "smpl_mask", "smpl_uv": "smpl_uv", "smpl_uv_16": "smpl_uv_16", "smpl_scores": "smpl_scores",
      "K_mhmr": "K_mhmr", "msk_mhmr": "msk_mhmr", "smpl_transl": "transl", "smpl_transl_pelvis": "transl_pelvis",
      "smpl_j3d": "j3d", "smpl_j2d": "j2d", "smpl_rotvec": "rotvec", "smpl_rotmat": "rotmat", "smpl_shape": "shape"}


def pack_views():
    case = np.load(PACK / "case_basic.npz")
    return case, [{k.split(".", 2)[2]: torch.from_numpy(case[k]) for k in case.files if k.startswith(f"batch.v{i}.")}
                  for i in range(4)]


def test_targets_equal_the_packs(train_bodies):
    case, batch = pack_views()
    targets = teacher_targets(views_from_batch(batch), train_bodies, res=224)
    for i, t in enumerate(targets):
        for key, name in GT.items():
            got, want = getattr(t, name).numpy(), case[f"gt.v{i}.{key}"]
            assert got.shape == want.shape and got.dtype == want.dtype, key
            # exact for integers, masks and score maps; floats to the pack's 1e-5 (here they come out identical)
            np.testing.assert_allclose(got, want, atol=1e-3 if key == "smpl_j2d" else 1e-5, rtol=1e-5, err_msg=key)
        np.testing.assert_allclose(t.v3d[t.smpl_mask].numpy(), case[f"gt.v{i}.smpl_v3d_valid"], atol=1e-5)
        assert torch.equal(t.prompts.mask, t.smpl_mask)
        assert t.img_mhmr.shape == (2, 3, 224, 224) and float(t.img_mhmr[0, :, 0, 0].max()) == -1.0


def test_keep_heads_drops_out_of_grid_and_taken_cells_and_leaves_holes():
    # image 0: slots 0, 1, 2 (nearest first); slot 1 lands on slot 0's cell, slot 2 outside the grid
    # image 1: slot 0 on the same cell as image 0's slot 0 (another image: kept)
    cells = torch.tensor([[3, 2], [3, 2], [16, 0], [3, 2]], dtype=torch.int32)  # (col, row)
    image, slot = torch.tensor([0, 0, 0, 1]), torch.tensor([0, 1, 2, 0])
    kept, mask, scores = keep_heads(cells, image, slot, grid=16, num_images=2, num_slots=4)
    assert kept.tolist() == [True, False, False, True]
    assert mask.tolist() == [[True, False, False, False], [True, False, False, False]]
    assert scores[0, 2, 3] == 1 and scores[1, 2, 3] == 1 and scores.sum() == 2
    negative = keep_heads(torch.tensor([[-1, 4]], dtype=torch.int32), torch.tensor([0]), torch.tensor([0]), 16, 1, 1)
    assert negative[0].tolist() == [False]


def test_square_intrinsics_scale_focal_by_the_long_side():
    K = torch.tensor([[[110.0, 0, 64.0], [0, 110.0, 40.0], [0, 0, 1]]])
    out = square_intrinsics(K, height=80, width=128, res=224)
    assert out[0, 0, 0] == pytest.approx(110 * 224 / 128) and out[0, 1, 1] == pytest.approx(110 * 224 / 128)
    assert out[0, :2, 2].tolist() == pytest.approx([112.0, 112.0])


def test_views_with_different_sizes_or_missing_keys_are_refused(train_bodies):
    _, batch = pack_views()
    broken = [dict(v) for v in batch]
    del broken[2]["ray_map"]
    with pytest.raises(InputShapeError, match="view 2 lacks ray_map"):
        views_from_batch(broken)
    views = views_from_batch(batch)
    views[1].true_shape = torch.tensor([[64, 128], [64, 128]], dtype=torch.int32)
    with pytest.raises(InputShapeError, match="one working size"):
        teacher_targets(views, train_bodies, res=224)
