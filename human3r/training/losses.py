"""The training criterion, term by term: ConfLoss(Regr3DPoseBatchList(L21, '?avg_dis'), alpha) + RGBLoss(MSE) +
SMPLLoss(L1), as the reference computes them (`human3r.training.config.LossConfig` holds every weight).

* ConfLoss: ground-truth points in each view's camera ("self") and in view 0's ("cross"), both predictions and
  ground truth divided by one factor per sample from the ground truth (the mean distance of the valid points of all
  views, weighted by the predicted log-confidences, detached); per pixel the L2 distance `l`, per view
  `mean(l c - alpha log c)` over the valid pixels of the batch; `2 x` the mean of the 2V view terms, plus the camera
  pose loss (translation and quaternion distances to the ground-truth pose relative to view 0).
* RGBLoss: per view the mean squared error of the colour head, averaged over views.
* SMPLLoss: per view, L1 terms over the kept people (rotations, betas, head translation, joints and vertices
  pelvis-relative and in the camera frame, and their projections inside the image while the camera-frame vertex
  loss is below 1), the CenterNet focal loss of the detection scores and the mask BCE; each averaged over the views
  (a view without people counts 0).

Samples flagged without ground-truth depth (`TrainView.has_depth` False: a pseudo-label build) count in no
pointmap term and not in the camera-pose loss (their pixels are not valid, and their normalisation factor stays at
its floor, which the pose loss already drops); samples without a person mask (`has_msk` False) count in no mask
term. Without flags every sample counts, as in the reference.

Everything runs in float32 (autocast off). The names of `LossReport.terms` / `details` are the parity pack's.
"""

from __future__ import annotations

from dataclasses import dataclass

import roma
import torch
import torch.nn.functional as F

from human3r.errors import InputShapeError
from human3r.precision import float32_island
from human3r.training.bodies import TrainingBodies
from human3r.training.config import LossConfig
from human3r.training.forward import ViewPrediction
from human3r.training.teacher import Targets
from human3r.training.views import TrainView

REGR = "Regr3DPoseBatchList"
CONF = "ConfLoss(Regr3DPoseBatchList(L21Loss()))"
FOCAL_EPS = 1e-7


@dataclass
class LossReport:
    """The total loss (with its graph) and what the reference reports about it."""

    total: torch.Tensor  # () float32
    terms: dict[str, float]  # ConfLoss.total / .pose_loss, RGBLoss.total, SMPLLoss.<term> (unweighted), .total
    details: dict[str, float]  # the reference's per-view report (e.g. "SMPLLoss_j3d/2")
    norm_factor_gt: torch.Tensor  # (B, 1, 1, 1) the ConfLoss normalisation factor of each sample
    pred_smpl: dict[str, torch.Tensor]  # posed predictions of the kept people, (view, sample, slot) order


# ------------------------------------------------------------------------------------------------------------------
# small pure functions


def scalar(x: torch.Tensor) -> float:
    """A loss value for reports (no graph)."""
    return float(x.detach())


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference; 0 for empty selections."""
    return (a - b).abs().mean() if a.numel() else a.new_zeros(())


def transform_points(T: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """(B, 4, 4) rigid transforms, (B, H, W, 3) points -> (B, H, W, 3) (the reference's `geotrf` for maps)."""
    return torch.einsum("bij, bhwj -> bhwi", T[:, :3, :3], pts) + T[:, None, None, :3, 3]


def pose_encoding(c2w: torch.Tensor) -> torch.Tensor:
    """(B, 4, 4) -> (B, 7) [t, unit q (w, x, y, z) with w >= 0]."""
    q = roma.quat_xyzw_to_wxyz(roma.rotmat_to_unitquat(c2w[:, :3, :3]))
    q = F.normalize(q, p=2, dim=-1)
    return torch.cat([c2w[:, :3, 3], torch.where(q[:, :1] < 0, -q, q)], dim=-1)


def pointmap_norm_factor(pts_self: list[torch.Tensor], pts_cross: list[torch.Tensor], valid: list[torch.Tensor],
                         w_self: list[torch.Tensor], w_cross: list[torch.Tensor]) -> torch.Tensor:
    """Per sample `sum w |p| / (sum w + 1e-8)` over the valid pixels of every view's self and cross pointmaps
    ((B, H, W, 3) each, weights (B, H, W)) -> (B, 1, 1, 1), at least 1e-8."""
    dist, weight = [], []
    for ps, pc, v, ws, wc in zip(pts_self, pts_cross, valid, w_self, w_cross, strict=True):
        vv = torch.cat([v, v], dim=2)
        p = torch.cat([ps, pc], dim=2).masked_fill(~vv[..., None], 0)
        w = torch.cat([ws, wc], dim=2).masked_fill(~vv, 0)
        dist.append(p.flatten(1, 2).norm(dim=-1))
        weight.append(w.flatten(1, 2))
    d, w = torch.cat(dist, dim=1), torch.cat(weight, dim=1)
    return ((w * d).sum(dim=1) / (w.sum(dim=1) + 1e-8)).clip(min=1e-8)[:, None, None, None]


def confidence_weighted(loss: torch.Tensor, conf: torch.Tensor, alpha: float) -> torch.Tensor:
    """mean(l c - alpha log c) over the selected pixels; 0 when none."""
    out = loss * conf - alpha * torch.log(conf)
    return out.mean() if out.numel() else out.new_zeros(())


def bce(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy; 0 for empty selections."""
    return F.binary_cross_entropy(pred, target) if pred.numel() else pred.new_zeros(())


def focal_score_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """CenterNet focal loss: pred (...) in (0, 1), gt (...) {0, 1}; normalised by the positives (sum of the negative
    part when there is none)."""
    pos, neg = gt.eq(1).float(), gt.lt(1).float()
    neg_weights = torch.pow(1 - gt, 4)
    pos_loss = (torch.log(pred + FOCAL_EPS) * torch.pow(1 - pred, 2) * pos).sum()
    neg_loss = (torch.log(1 - pred + FOCAL_EPS) * torch.pow(pred, 2) * neg_weights * neg).sum()
    num_pos = pos.sum()
    return -neg_loss if num_pos == 0 else -(pos_loss + neg_loss) / num_pos


# ------------------------------------------------------------------------------------------------------------------
# ConfLoss with the camera-pose loss


def conf_loss(views: list[TrainView], preds: list[ViewPrediction], cfg: LossConfig
              ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float], torch.Tensor]:
    """-> (ConfLoss incl. pose, pose loss, details, per-sample normalisation factor (B, 1, 1, 1))."""
    eps = cfg.norm_eps
    to_view0 = torch.linalg.inv(views[0].camera_pose)
    gt_self = [transform_points(torch.linalg.inv(v.camera_pose), v.pts3d) for v in views]
    gt_cross = [transform_points(to_view0, v.pts3d) for v in views]
    valid = [v.valid_mask & v.depth_mask()[:, None, None] for v in views]
    pr_self = [p.pts3d_self for p in preds]
    pr_cross = [p.pts3d_world for p in preds]
    w_self = [torch.log(p.conf_self).detach().clip(eps) for p in preds]
    w_cross = [torch.log(p.conf_world).detach().clip(eps) for p in preds]

    f_gt = pointmap_norm_factor(gt_self, gt_cross, valid, w_self, w_cross)
    f_pr = f_gt.clone()
    not_metric = ~views[0].is_metric
    if bool(not_metric.any()):
        f_pr[not_metric] = pointmap_norm_factor(*([x[not_metric] for x in xs] for xs in (pr_self, pr_cross, valid,
                                                                                           w_self, w_cross)))
    f_gt, f_pr = f_gt.clip(eps), f_pr.clip(eps)

    # camera poses relative to view 0, translations normalised like the points
    pf_gt, pf_pr = f_gt.squeeze(3).squeeze(2), f_pr.squeeze(3).squeeze(2)  # (B, 1)
    gt_pose = [pose_encoding(to_view0 @ v.camera_pose) for v in views]
    gt_t = torch.stack([g[:, :3] / pf_gt.clip(eps) for g in gt_pose], dim=1)
    gt_q = torch.stack([g[:, 3:] for g in gt_pose], dim=1)
    pr_t = torch.stack([p.camera_pose[:, :3] / pf_pr.clip(eps) for p in preds], dim=1)
    pr_q = torch.stack([p.camera_pose[:, 3:] for p in preds], dim=1)
    keep = (pf_gt.reshape(-1) > eps) & (pf_pr.reshape(-1) > eps) & views[-1].img_mask  # the last view's (reference)
    if bool(keep.any()):
        pose = (torch.norm(pr_t - gt_t, dim=-1)[keep].mean() + torch.norm(pr_q - gt_q, dim=-1)[keep].mean())
    else:
        pose = gt_t.new_zeros(())

    details: dict[str, float] = {}
    terms = []
    for kind, gts, prs, confs in (("self", gt_self, pr_self, [p.conf_self for p in preds]),
                                  ("cross", gt_cross, pr_cross, [p.conf_world for p in preds])):
        for i, (g, p, c, v, view) in enumerate(zip(gts, prs, confs, valid, views, strict=True)):
            sky = view.sky_mask & ~v & view.depth_mask()[:, None, None]
            m = v | sky
            dist = torch.norm((p / f_pr)[m] - (g / f_gt)[m], dim=-1)
            dist = torch.where(sky[m], cfg.sky_loss, dist)
            name = f"{REGR}_self_pts3d/{i + 1}" if kind == "self" else f"{REGR}_pts3d/{i + 1}"
            details[name] = scalar(dist.mean()) if dist.numel() else 0.0
            terms.append(confidence_weighted(dist, c[m], cfg.conf_alpha))
    details["pose_loss"] = scalar(pose)
    n = len(views)
    for i, t in enumerate(terms):
        details[f"{CONF}_conf_loss_self/{i + 1}" if i < n else f"{CONF}_conf_loss/{i - n + 1}"] = scalar(t)
    total = sum(terms) / len(terms) * 2.0 + pose
    return total, pose, details, f_gt


# ------------------------------------------------------------------------------------------------------------------
# RGBLoss


def rgb_loss(views: list[TrainView], preds: list[ViewPrediction]) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean over views of the per-view MSE between the colour head and the input image (both in [-1, 1])."""
    ls = [((p.rgb - v.img.permute(0, 2, 3, 1)) ** 2).mean() for v, p in zip(views, preds, strict=True)]
    return sum(ls) / len(ls), {f"RGBLoss_rgb/{i + 1}": scalar(x) for i, x in enumerate(ls)}


# ------------------------------------------------------------------------------------------------------------------
# SMPLLoss


def _per_view(values: list[torch.Tensor]) -> torch.Tensor:
    return sum(values) / len(values)


def smpl_loss(views: list[TrainView], targets: list[Targets], preds: list[ViewPrediction], bodies: TrainingBodies,
              cfg: LossConfig) -> tuple[torch.Tensor, dict[str, float], dict[str, float], dict[str, torch.Tensor]]:
    """-> (SMPLLoss, unweighted view-averaged terms, per-view details, posed predictions of the kept people)."""
    w = cfg.smpl_terms
    img_masks = [v.img_mask for v in views]
    masks = [im[:, None] & t.smpl_mask for im, t in zip(img_masks, targets, strict=True)]
    per_view: dict[str, list[torch.Tensor]] = {}

    def add(term: str, values: list[torch.Tensor]) -> torch.Tensor:
        per_view[term] = values
        return _per_view(values)

    scores = add("scores", [focal_score_loss(p.scores[m], (t.smpl_scores >= 1).float().unsqueeze(-1)[m])
                            for p, t, m in zip(preds, targets, img_masks, strict=True)])
    msk_masks = [im & v.msk_mask() for im, v in zip(img_masks, views, strict=True)]
    msk = add("msk", [bce(p.human_mask[m], t.msk_mhmr.unsqueeze(-1)[m])
                      for p, t, m in zip(preds, targets, msk_masks, strict=True)])
    total = w.scores * scores
    selected = torch.cat(masks)  # (V * B, N), view-major
    posed: dict[str, torch.Tensor] = {}
    if bool(selected.any()):
        image = torch.where(selected)[0]
        K = torch.cat([v.camera_intrinsics for v in views])[image]

        def kept(name: str) -> torch.Tensor:
            return torch.cat([getattr(p, name) for p in preds])[selected]

        posed = bodies.predicted(kept("rotmat"), kept("betas"), kept("expression"), kept("transl"), K)
        full = {}
        for k, v in posed.items():
            out = v.new_zeros(*selected.shape, *v.shape[1:])
            out[selected] = v
            full[k] = out.chunk(len(views))
        zipped = list(zip(preds, targets, masks, range(len(views)), strict=True))
        rotmat = add("rotmat", [l1(p.rotmat[m], t.rotmat[m]) for p, t, m, _ in zipped])
        transl = add("transl", [l1(full["smpl_transl"][i][m], t.transl[m]) for _, t, m, i in zipped])
        nb = min(targets[0].shape.shape[-1], preds[0].betas.shape[-1])  # GT has 11 betas, the network 10
        shape = add("shape", [l1(p.betas[..., :nb][m], t.shape[..., :nb][m]) for p, t, m, _ in zipped])
        j3d = add("j3d", [l1(full["smpl_j3d"][i][m] - full["smpl_transl_pelvis"][i][m],
                             t.j3d[m] - t.transl_pelvis[..., None, :][m]) for _, t, m, i in zipped])
        v3d = add("v3d", [l1(full["smpl_v3d"][i][m] - full["smpl_transl_pelvis"][i][m],
                             t.v3d[m] - t.transl_pelvis[..., None, :][m]) for _, t, m, i in zipped])
        cj3d = add("cj3d", [l1(full["smpl_j3d"][i][m], t.j3d[m]) for _, t, m, i in zipped])
        cv3d = add("cv3d", [l1(full["smpl_v3d"][i][m], t.v3d[m]) for _, t, m, i in zipped])
        total = (total + w.rotmat * rotmat + w.shape * shape + w.transl * transl + w.j3d * j3d + w.v3d * v3d
                 + w.cj3d * cj3d + w.cv3d * cv3d)
        total = total + w.msk * msk
        if cv3d < cfg.two_d_below_cv3d:
            height, width = (int(x) for x in views[0].true_shape[0])

            def inside(g: torch.Tensor) -> torch.Tensor:
                return (g[..., 0] > 0) & (g[..., 0] < width) & (g[..., 1] > 0) & (g[..., 1] < height)

            j2d = add("j2d", [l1(full["smpl_j2d"][i][sel], t.j2d[sel]) for _, t, m, i in zipped
                              for sel in [m.unsqueeze(-1) & inside(t.j2d)]])
            v2d = add("v2d", [l1(full["smpl_v2d"][i][sel], t.v2d[sel]) for _, t, m, i in zipped
                              for sel in [m.unsqueeze(-1) & inside(t.v2d)]])
            total = total + (w.j2d * j2d + w.v2d * v2d)
    else:
        total = total + w.msk * msk
    terms = {k: scalar(_per_view(v)) for k, v in per_view.items()}
    details = {f"SMPLLoss_{k}/{i + 1}": scalar(x) for k, v in per_view.items() for i, x in enumerate(v)}
    return total, terms, details, posed


# ------------------------------------------------------------------------------------------------------------------
# the criterion


def check_loss_inputs(views: list[TrainView]) -> None:
    """The reference's metric multi-view path (BEDLAM): no camera-only, depth-only or non-metric single views."""
    bad = [f"view {i}: {name}" for i, v in enumerate(views)
           for name, flag in (("camera_only", v.camera_only), ("depth_only", v.depth_only),
                              ("single_view without metric scale", v.single_view & ~v.is_metric))
           if bool(flag.any())]
    if bad:
        raise InputShapeError("the training losses implement the metric multi-view path (BEDLAM); unsupported: "
                              + "; ".join(bad))


def compute_losses(views: list[TrainView], targets: list[Targets], preds: list[ViewPrediction],
                   bodies: TrainingBodies, cfg: LossConfig) -> LossReport:
    """The whole criterion: `conf * ConfLoss + (rgb * RGBLoss + smpl * SMPLLoss)`, in float32."""
    check_loss_inputs(views)
    with float32_island(views[0].img.device.type):
        conf, pose, conf_details, norm_factor = conf_loss(views, preds, cfg)
        rgb, rgb_details = rgb_loss(views, preds)
        smpl, smpl_terms, smpl_details, posed = smpl_loss(views, targets, preds, bodies, cfg)
        total = cfg.conf * conf + (cfg.rgb * rgb + cfg.smpl * smpl)
    terms = {"ConfLoss.total": scalar(conf), "ConfLoss.pose_loss": scalar(pose), "RGBLoss.total": scalar(rgb),
             **{f"SMPLLoss.{k}": v for k, v in smpl_terms.items()}, "SMPLLoss.total": scalar(smpl)}
    return LossReport(total, terms, {**conf_details, **rgb_details, **smpl_details}, norm_factor.detach(),
                      {k: v.detach() for k, v in posed.items()})
