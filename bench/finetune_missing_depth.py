"""Pseudo-label builds lack depth and pointmaps: drop those terms for their samples, or distil them from the frozen
base model? Both measured side by side on a toy task (issue 18, part 2).

The toy: sample clips (the demo footage generator) reconstructed with a base network, a pseudo-label build of them
(frames, split by video into train / val), then the same fine-tuning run twice from the same base, `--steps` steps
each, differing only in `step.missing_depth` (the loop's own code, in this process: `tasks.training.loop.run_worker`
with a local context). On the held-out (val) samples, teacher-forced, it prints for the base and each tuned model:

* scene drift from the base model: relative change of the camera-frame pointmap (mean |p - p_base| / mean
  |p_base|), of the view-0 frame pointmap, camera translation change (relative to the base's) and rotation change
  (degrees), confidence change (relative);
* the SMPL-X terms (the training criterion's, unweighted) against the build's labels: total, j3d, cv3d, transl.

    python -P bench/finetune_missing_depth.py --steps 200                    # untrained tiny base, ~10 min on 2 cores
    python -P bench/finetune_missing_depth.py --base human3r_672S.pth --preset 672S --body-model models/smplx ...

Without real weights the base is the untrained tiny network: the figures then say how each choice moves the scene
outputs away from the base, not how good either is.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def make_build(work: Path, base: str, preset: str | None, body_model: str, videos: int, size: tuple[int, int]):
    from human3r.body import BodyModel
    from human3r.weights import load_model
    from storage.fs import open_root
    from tasks.identity import RunIdentity
    from tasks.labels.build import build_labels
    from tasks.labels.options import ClipOptions, LabelOptions, SplitOptions
    from tasks.ops.sample import make_sample_video
    from tasks.options import ConvertOptions, DecodeOptions, ReconstructOptions
    from tasks.reconstruction.video import reconstruct_video

    model, body = load_model(base, preset=preset), BodyModel(body_model)
    root = open_root(work / "ds")
    options = ReconstructOptions(decode=DecodeOptions(max_frames=24), convert=ConvertOptions(points_per_frame=50))
    identity = RunIdentity.of_network(model, options, body)
    (work / "inbox").mkdir(parents=True, exist_ok=True)
    for i in range(videos):
        video = make_sample_video(work / "inbox" / f"clip{i}.mp4", n_frames=24, width=size[0], height=size[1], seed=i)
        reconstruct_video(video, root, model, identity, body_model=body)
    for seed in range(20):  # a split seed giving both a train and a val video
        out = work / f"build{seed}"
        labels = LabelOptions(clips=ClipOptions(min_frames=1), split=SplitOptions(train=0.5, val=0.5, test=0,
                                                                                  seed=seed), images="frames")
        build_labels(root, out, "true", labels)
        if (out / "labels" / "train.parquet").exists() and (out / "labels" / "val.parquet").exists():
            return out
    raise SystemExit("no split seed gave both a train and a val video: use more --videos")


def train(build: Path, work: Path, mode: str, args) -> Path:
    from tasks.training.config import TrainOptions
    from tasks.training.context import LocalContext
    from tasks.training.loop import run_worker
    from tasks.training.plan import plan_run

    options = TrainOptions.for_labels(
        build, base_checkpoint=args.base, preset=args.preset, steps=args.steps, body_model=args.body_model,
        output_root=str(work / "runs"), name=f"toy-{mode}", overrides={
            "loop": {"batch_size": args.batch, "log_every": 50, "epochs": args.epochs},
            "data": {"loader_workers": 0, "validation": None, "sources": [source_options(args)]},
            "step": {"missing_depth": mode, "gradient_checkpointing": False,
                     "optimizer": {"lr": args.lr, "warmup_epochs": 0.5}},
            "tracking": {"tensorboard": False}})
    plan = plan_run(options)
    ctx = LocalContext(checkpoints=work / f"ckpt-{mode}")
    t0 = time.perf_counter()
    metrics = run_worker(plan, ctx, progress=True)
    print(f"{mode}: {metrics.get('step')} steps in {time.perf_counter() - t0:.0f} s, last train loss "
          f"{metrics.get('train/loss'):.4f}", flush=True)
    return sorted((work / f"ckpt-{mode}").iterdir())[-1]


def source_options(args) -> dict:
    return {"resolution": [list(args.resolution)], "num_views": args.views, "people": "body", "seed": 3}


def evaluate(build: Path, checkpoints: dict[str, Path | None], args) -> dict:
    """Held-out figures (module doc) for the base (checkpoint None) and each tuned model."""
    from safetensors.torch import load_file

    from human3r.training import TrainConfig, TrainingBodies, prepare_for_training
    from human3r.training.distill import pose_matrix
    from human3r.training.forward import training_forward
    from human3r.training.losses import compute_losses
    from human3r.training.teacher import teacher_targets
    from human3r.training.views import views_from_batch
    from human3r.weights import load_model
    from human3r.weights.keys import reference_key
    from tasks.training.config import LabelsSource
    from tasks.training.loop import make_loader, start_epoch

    bodies = TrainingBodies(args.body_model)
    held = LabelsSource(root=str(build), split="val", **source_options(args), color_jitter=False, aug_crop=0)
    loader = make_loader([held], 1, num_workers=0, rank=0, world_size=1, seed=0)
    start_epoch(loader, 0, 0)
    batches = [views_from_batch(b) for b, _ in zip(loader, range(args.eval_samples), strict=False)]
    outputs = {}
    for name, ckpt in checkpoints.items():
        model = load_model(args.base, preset=args.preset)
        if ckpt is not None:
            tensors = load_file(str(ckpt / "trainable.safetensors"))
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if reference_key(n) in tensors:
                        p.copy_(tensors[reference_key(n)])
        prepare_for_training(model, TrainConfig())
        rows = []
        with torch.no_grad():
            for views in batches:
                targets = teacher_targets(views, bodies, model.cfg.dino.image_res, model.cfg.dino.patch_size)
                preds = training_forward(model, views, targets)
                report = compute_losses(views, targets, preds, bodies, TrainConfig().losses)
                rows.append((preds, report.terms))
        outputs[name] = rows
    base = outputs["base"]
    result = {}
    for name, rows in outputs.items():
        drift = {"pts_self": [], "pts_world": [], "conf": [], "cam_t": [], "cam_deg": []}
        terms: dict[str, list[float]] = {}
        for (preds, t), (bpreds, _) in zip(rows, base, strict=True):
            for p, b in zip(preds, bpreds, strict=True):
                drift["pts_self"].append(float((p.pts3d_self - b.pts3d_self).norm(dim=-1).mean()
                                               / b.pts3d_self.norm(dim=-1).mean()))
                drift["pts_world"].append(float((p.pts3d_world - b.pts3d_world).norm(dim=-1).mean()
                                                / b.pts3d_world.norm(dim=-1).mean()))
                drift["conf"].append(float((p.conf_self - b.conf_self).abs().mean() / b.conf_self.abs().mean()))
                pm, bm = pose_matrix(p.camera_pose), pose_matrix(b.camera_pose)
                drift["cam_t"].append(float((pm[:, :3, 3] - bm[:, :3, 3]).norm(dim=-1).mean()
                                            / bm[:, :3, 3].norm(dim=-1).mean().clamp_min(1e-6)))
                rel = pm[:, :3, :3].transpose(1, 2) @ bm[:, :3, :3]
                cos = ((rel.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)
                drift["cam_deg"].append(float(torch.rad2deg(torch.arccos(cos)).mean()))
            for k, v in t.items():
                if k.startswith("SMPLLoss"):
                    terms.setdefault(k, []).append(v)
        result[name] = {**{f"drift_{k}": sum(v) / len(v) for k, v in drift.items()},
                        **{k: sum(v) / len(v) for k, v in terms.items()}}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="untrained:tiny")
    parser.add_argument("--preset", default=None)
    parser.add_argument("--body-model", default=None, help="SMPL-X file; default: the training pack's stand-in")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--resolution", type=int, nargs=2, default=(64, 48))
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--eval-samples", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.body_model is None:
        from tasks.training.pack import pack_body_model

        args.body_model = str(pack_body_model(Path(__file__).parents[1] / "tests" / "fixtures" / "train_parity"))
    work = Path(args.work or tempfile.mkdtemp(prefix="h3r-distil-"))
    build = make_build(work, args.base, args.preset, args.body_model, args.videos, (192, 108))
    checkpoints = {"base": None}
    for mode in ("drop", "distil"):
        checkpoints[mode] = train(build, work, mode, args)
    result = evaluate(build, checkpoints, args)
    keys = list(dict.fromkeys(k for r in result.values() for k in r))
    print(f"\n{'held-out (val), teacher-forced':32s}" + "".join(f"{n:>12s}" for n in result))
    for k in keys:
        print(f"{k:32s}" + "".join(f"{result[n].get(k, float('nan')):12.4g}" for n in result))
    print(json.dumps({"args": vars(args), "result": result}))


if __name__ == "__main__":
    main()
