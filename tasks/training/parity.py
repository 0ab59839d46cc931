"""Training-step parity: redo a reference training step from a training parity pack and compare every recorded
quantity with the pack's tolerances (`human3r parity train PACK_DIR`; `tests/fixtures/train_parity` is one).

A pack (`tasks.training.pack`; README of `tests/fixtures/train_parity`) holds per case `case_<name>.npz` / `.json`:
the collated loader views (`batch.*`), the teacher-forcing targets (`gt.*`), tokens (`tok.*`), predictions
(`pred.*`, `pred_smpl.*`), the loss normaliser, scalars and per-view details, gradient norms, clip coefficient,
gradients and the parameters after one AdamW step.

Per case: the pack's model (+ post-overrides) set up by `human3r.training.prepare_for_training`, the case's recorded
`batch.*` views through `train_step`, then `optimizer_step` at the pack's learning rate; everything is recorded
under the pack's key names and compared by `tasks.training.parity_rules` (README §5). `views_for(case, fixture)` is
the hook for a data loader: it returns the collated views to use instead of the recorded ones, and they are then
compared with `batch.*` too (`check_loader_views`); `views="loader"` plugs in the BEDLAM loader
(`tasks.training.data.parity.pack_batch`: the pack's `bedlam/` folder read as the case's `dataset` section says).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator

from tasks.options import _Options
from tasks.training.pack import (
    load_bodies,
    pack_body_model,
    pack_cases,
    pack_model,
    pack_train_config,
    read_pack,
    recorded_views,
)
from tasks.training.parity_rules import (
    LOSS_SCALARS,
    NORM_SCALARS,
    Check,
    array_rule,
    compare_array,
    compare_params,
    compare_scalar,
    describe,
    quantity,
)

NAME_LISTS = ("trainable", "trainable_with_grad", "trainable_without_grad")
PRED_KEYS = {  # pack name -> ViewPrediction field
    "pts3d_in_self_view": "pts3d_self", "conf_self": "conf_self", "pts3d_in_other_view": "pts3d_world",
    "conf": "conf_world", "rgb": "rgb", "camera_pose": "camera_pose", "msk": "human_mask", "smpl_scores": "scores",
    "smpl_loc": "loc", "smpl_rotmat": "rotmat", "smpl_shape": "betas", "smpl_expression": "expression",
    "smpl_transl": "transl",
}
PRED_SMPL_KEYS = ("smpl_j3d", "smpl_j2d", "smpl_transl", "smpl_transl_pelvis")  # the loss's posed predictions
GT_KEYS = {  # pack name -> Targets field
    "smpl_mask": "smpl_mask", "smpl_uv": "smpl_uv", "smpl_uv_16": "smpl_uv_16", "smpl_scores": "smpl_scores",
    "K_mhmr": "K_mhmr", "msk_mhmr": "msk_mhmr", "smpl_transl": "transl", "smpl_transl_pelvis": "transl_pelvis",
    "smpl_j3d": "j3d", "smpl_j2d": "j2d", "smpl_rotvec": "rotvec", "smpl_rotmat": "rotmat", "smpl_shape": "shape",
}


class TrainParityOptions(_Options):
    """How the training step is redone."""

    clip_norm: str = Field("reference", description="Gradient-norm clipping over 'reference' (every parameter with a "
                                                    "gradient, fixed modules included: the pack's numbers) or "
                                                    "'trainable' (trained parameters only: faster, fails the "
                                                    "clip coefficient and parameter checks by design).")
    gradient_checkpointing: bool = Field(False, description="Recompute the decoder blocks and DPT heads in the "
                                                            "backward pass (same numbers).")
    body_model: str | None = Field(None, description="The pack's SMPL-X stand-in (SMPLX_NEUTRAL.npz or its folder), "
                                                     "checked against standin_manifest.json; default: generated "
                                                     "once (~20 s) into the cache folder.")
    record: str | None = Field(None, description="Also write the recording as <case>.npz / .json into this folder "
                                                 "(the pack's compare_to_fixture.py reads them).")
    threads: int = Field(2, ge=1, description="torch CPU threads (the packs were recorded with 2).")
    views: str = Field("recorded", description="The step's input: 'recorded' (the case's batch.* views) or 'loader' "
                                               "(the BEDLAM loader over the pack's bedlam/ folder, whose views are "
                                               "then checked against batch.* too).")

    @field_validator("views")
    @classmethod
    def _views(cls, value: str) -> str:
        if value not in ("recorded", "loader"):
            raise ValueError("must be recorded or loader")
        return value

    @field_validator("clip_norm")
    @classmethod
    def _clip(cls, value: str) -> str:
        if value not in ("reference", "trainable"):
            raise ValueError("must be reference or trainable")
        return value


@dataclass
class CaseResult:
    case: str
    checks: list[Check]
    not_checked: list[str]  # fixture keys nothing was recorded for

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


@dataclass
class TrainParityReport:
    cases: list[CaseResult]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.cases)

    def table(self) -> str:
        lines = [f"{'case':<10} {'quantity':<36} {'n':>4} {'worst':>10} {'ratio':>8}  tolerance / status"]
        for c in self.cases:
            for k in c.checks:
                status = "ok" if k.ok else "FAIL " + "; ".join(k.problems[:3] or ["beyond tolerance"])
                lines.append(f"{c.case:<10} {k.quantity:<36} {k.count:>4} {k.worst:>10.3g} {k.ratio:>8.3g}  "
                             f"{k.tolerance}: {status}")
            if c.not_checked:
                lines.append(f"{c.case:<10} not recorded: {', '.join(c.not_checked[:12])}"
                             + (" ..." if len(c.not_checked) > 12 else ""))
        return "\n".join(lines)


def check_loader_views(views: Sequence[Mapping[str, object]], fixture: Mapping[str, np.ndarray]) -> list[Check]:
    """The hook for a data loader: its collated views against the case's `batch.*` (one check per quantity)."""
    arrays = {f"batch.v{i}.{k}": np.asarray(v.numpy() if hasattr(v, "numpy") else v)
              for i, view in enumerate(views) for k, v in view.items() if not isinstance(v, (list, tuple, str))}
    checks, _ = compare_arrays(arrays, {k: fixture[k] for k in fixture if k.startswith("batch.")})
    return checks


# ------------------------------------------------------------------------------------------------------------------
# recording one step


def record_step(model, views: list[dict], bodies, cfg) -> tuple[dict[str, np.ndarray], dict]:
    """One training step (train_step + optimizer_step) on a prepared copy of the model, recorded with the pack's
    key names: (arrays, scalars)."""
    import torch

    from human3r.training.params import named_parameters, prepare_for_training
    from human3r.training.step import build_optimizer, optimizer_step, train_step

    sets = prepare_for_training(model, cfg)
    optimizer = build_optimizer(model, sets, cfg)
    fused: list[tuple[torch.Tensor, torch.Tensor]] = []
    hook = model.downstream_head.mlp_fuse.register_forward_hook(
        lambda module, args, out: fused.append((args[0].detach(), out.detach())))
    try:
        out = train_step(model, views, bodies, cfg)
    finally:
        hook.remove()
    params = named_parameters(model)
    arrays: dict[str, np.ndarray] = {}
    cd = model.cfg.dino.embed_dim
    for i, (pred, tgt, (x, y)) in enumerate(zip(out.predictions, out.targets, fused, strict=True)):
        b, n = tgt.smpl_mask.shape
        for key, name in PRED_KEYS.items():
            arrays[f"pred.v{i}.{key}"] = getattr(pred, name).detach().numpy()
        for key, name in GT_KEYS.items():
            arrays[f"gt.v{i}.{key}"] = getattr(tgt, name).numpy()
        arrays[f"gt.v{i}.smpl_v3d_valid"] = tgt.v3d[tgt.smpl_mask].numpy()
        arrays[f"tok.v{i}.mhmr_token"] = x[0, :, :cd].reshape(b, n, -1).numpy()
        arrays[f"tok.v{i}.cut3r_token"] = x[0, :, cd:].reshape(b, n, -1).numpy()
        arrays[f"tok.v{i}.fused"] = y[0].reshape(b, n, -1).numpy()
        arrays[f"tok.v{i}.mhmr_loc"] = pred.loc.detach().numpy()
        arrays[f"tok.v{i}.cut3r_pos"] = pred.host.numpy()
        arrays[f"tok.v{i}.cut3r_uv"] = pred.host[..., [1, 0]].int().numpy()
    for key in PRED_SMPL_KEYS:
        if key in out.report.pred_smpl:
            arrays[f"pred_smpl.{key}"] = out.report.pred_smpl[key].numpy()
    arrays["loss.norm_factor_gt.0"] = out.report.norm_factor_gt.numpy()
    with_grad = [n for n in sets.trainable if params[n].grad is not None]
    for name in with_grad:
        arrays[f"grad.{name}"] = params[name].grad.numpy().copy()
    clip = optimizer_step(model, optimizer, sets, cfg)
    for name in sets.trainable:
        arrays[f"param_after.{name}"] = params[name].detach().numpy().copy()
    scalars = {"loss_total": out.loss, "loss_terms": out.report.terms, "loss_details": out.report.details,
               "grad_norm_trainable_pre_clip": clip.grad_norm_trainable, "clip_coef": clip.clip_coef,
               "trainable": list(sets.trainable), "trainable_with_grad": with_grad,
               "trainable_without_grad": [n for n in sets.trainable if n not in with_grad]}
    if cfg.optimizer.clip_norm == "reference":
        scalars["grad_norm_all_params_pre_clip"] = clip.grad_norm
    return arrays, scalars


# ------------------------------------------------------------------------------------------------------------------
# comparing


def compare_arrays(arrays: Mapping[str, np.ndarray], fixture: Mapping[str, np.ndarray]
                   ) -> tuple[list[Check], list[str]]:
    """Every fixture array that was recorded, by its rule, one check per quantity; and the keys not recorded."""
    checks: dict[str, Check] = {}
    params, missing = [], []
    for key in fixture:
        if key not in arrays:
            missing.append(key)
            continue
        q = quantity(key)
        check = checks.setdefault(q, Check(q, describe(array_rule(key))))
        got, exp = np.asarray(arrays[key]), np.asarray(fixture[key])
        if array_rule(key)[0] == "param":
            check.count += 1
            if got.shape != exp.shape:
                check.fail(f"{key}: shape {got.shape} vs {exp.shape}")
            else:
                params.append(np.abs(got.astype(np.float64) - exp.astype(np.float64)))
        else:
            compare_array(check, key, got, exp)
    if "param_after" in checks:
        compare_params(checks["param_after"], params)
    extra = sorted(k for k in arrays if k not in fixture and not k.startswith("batch."))
    if extra:
        checks.setdefault("recording", Check("recording", "keys of the fixture")).fail(
            f"recorded keys the fixture lacks: {extra[:5]}")
    return list(checks.values()), missing


def compare_scalars(scalars: dict, expected: dict) -> list[Check]:
    """Loss scalars and details (atol 1e-6, rtol 2e-5), gradient norms and clip coefficient (rtol 5e-5), name lists
    (exact); a reported term the fixture lacks, or the reverse, fails."""
    checks = []
    for section in ("loss_total", "loss_terms", "loss_details"):
        check = Check(section, f"atol {LOSS_SCALARS[0]:g}, rtol {LOSS_SCALARS[1]:g}")
        got, exp = scalars.get(section), expected.get(section)
        if section == "loss_total":
            got, exp = {section: got}, {section: exp}
        for name in sorted(set(got) | set(exp)):
            if name not in got or name not in exp:
                check.fail(f"{name}: {'missing here' if name not in got else 'not in the fixture'}")
                continue
            compare_scalar(check, name, got[name], exp[name], *LOSS_SCALARS)
        checks.append(check)
    for name in ("grad_norm_all_params_pre_clip", "grad_norm_trainable_pre_clip", "clip_coef"):
        if name in scalars:
            check = Check(name, f"rtol {NORM_SCALARS[1]:g}")
            compare_scalar(check, name, scalars[name], expected[name], *NORM_SCALARS)
            checks.append(check)
    for name in NAME_LISTS:
        check = Check(name, "exact", count=1)
        diff = sorted(set(scalars[name]) ^ set(expected[name]))
        if diff:
            check.fail(f"differs: {diff[:5]}")
        checks.append(check)
    return checks


# ------------------------------------------------------------------------------------------------------------------
# running a pack


def run_train_parity(pack: str | Path, options: TrainParityOptions | None = None, *, cases: Sequence[str] = (),
                     model=None, bodies=None, perturb: Callable | None = None,
                     views_for: Callable[[str, Mapping[str, np.ndarray]], list[dict]] | None = None
                     ) -> TrainParityReport:
    """Run the pack's cases (all, or `cases`). `model`: the pack's model (`pack_model`) to copy per case (built
    here when None); `bodies`: a `TrainingBodies` of the pack's stand-in; `perturb(model)` edits each case's copy
    first (tests); `views_for`: the data-loader hook (module docstring)."""
    import torch

    pack = Path(pack)
    options = options or TrainParityOptions()
    train_config = read_pack(pack)
    if views_for is None and options.views == "loader":
        from tasks.training.data.parity import pack_batch

        def views_for(case: str, fixture: Mapping[str, np.ndarray]) -> list[dict]:
            return pack_batch(pack, case)

    names = pack_cases(pack, cases)
    threads = torch.get_num_threads()
    torch.set_num_threads(options.threads)
    try:
        template = model if model is not None else pack_model(pack, train_config)
        bodies = bodies or load_bodies(pack_body_model(pack, options.body_model))
        cfg = pack_train_config(train_config, options.clip_norm, options.gradient_checkpointing)
        return TrainParityReport([_run_case(pack, name, template, bodies, cfg, options, perturb, views_for)
                                  for name in names])
    finally:
        torch.set_num_threads(threads)


def _run_case(pack: Path, name: str, template, bodies, cfg, options: TrainParityOptions, perturb, views_for
              ) -> CaseResult:
    """One case on a fresh copy of the model: record the step, compare it with the fixture."""
    import torch

    fixture = np.load(pack / f"{name}.npz")
    expected = json.loads((pack / f"{name}.json").read_text())
    loader_checks = []
    if views_for is None:
        views = recorded_views(fixture)
    else:
        views = views_for(name, fixture)
        loader_checks = check_loader_views(views, fixture)
    case_model = copy.deepcopy(template)
    if perturb is not None:
        with torch.no_grad():
            perturb(case_model)
    arrays, scalars = record_step(case_model, views, bodies, cfg)
    if options.record:
        _write_recording(Path(options.record), name, arrays, scalars)
    checks, missing = compare_arrays(arrays, {k: fixture[k] for k in fixture.files if not k.startswith("batch.")})
    if missing:
        checks.append(Check("recorded keys", "every fixture key", count=len(missing),
                            problems=[f"{len(missing)} fixture keys not recorded"]))
    return CaseResult(name.removeprefix("case_"), loader_checks + checks + compare_scalars(scalars, expected),
                      missing)


def _write_recording(folder: Path, name: str, arrays: dict, scalars: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"{name}.npz", **arrays)
    (folder / f"{name}.json").write_text(json.dumps(scalars, indent=1))


def summary(report: TrainParityReport) -> str:
    n_bad = sum(not k.ok for c in report.cases for k in c.checks)
    n = sum(len(c.checks) for c in report.cases)
    return f"train parity {'PASSED' if report.ok else 'FAILED'}: {n - n_bad} ok / {n_bad} failed"
