"""Pseudo-label builds: AMASS npz files round-trip through smplx (the SMPL-X stand-in) to the stored joints, the
camera-frame labels give back the camera-frame body, bad labels are flagged and kept, selection picks exactly what
the SQL says, splits are by video and deterministic, the labels load with `datasets`, the card says what and from
what."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from storage import schema as S
from storage.catalog import open_catalog
from storage.fs import open_root
from storage.synthetic import SynthSpec, synth_video, write_synthetic_dataset
from storage.writer import RunInfo, write_video
from tasks.labels.amass import AMASS_KEYS
from tasks.labels.build import build_labels, cut_clips, split_of
from tasks.labels.ground import GroundPlane, apply, zup_transform
from tasks.labels.options import ClipOptions, LabelOptions, SplitOptions

pytestmark = pytest.mark.usefixtures("one_torch_thread")
N, W, H, FX = 20, 640, 480, 500.0
K = np.array([[FX, 0, W / 2], [0, FX, H / 2], [0, 0, 1]])


def rotmats(rotvecs: np.ndarray) -> torch.Tensor:
    import roma

    return roma.rotvec_to_rotmat(torch.as_tensor(np.asarray(rotvecs), dtype=torch.float32))


def cameras() -> np.ndarray:
    """(N, 4, 4) cam_to_world: identity first (the world is the first camera), then panning and moving."""
    import roma

    c2w = np.tile(np.eye(4), (N, 1, 1))
    yaw = np.linspace(0, 0.3, N)
    c2w[:, :3, :3] = roma.rotvec_to_rotmat(torch.as_tensor(np.stack([0 * yaw, yaw, 0 * yaw], 1))).numpy()
    c2w[:, :3, 3] = np.stack([np.linspace(0, 0.5, N), np.zeros(N), np.linspace(0, 0.4, N)], 1)
    return c2w


UP = np.array([0.0, -np.cos(0.2), np.sin(0.2)])  # the floor's normal: the first camera pitched by 0.2 rad


def posed_video(body_model, seed: int = 0) -> dict:
    """A video whose track 0 is the stand-in body posed frame by frame (stored exactly as reconstruct stores it),
    track 1 a parameters-only person (no joints) with one implausible shape; scene points on a tilted floor."""
    rng = np.random.default_rng(seed)
    c2w = cameras()
    rot = (rng.standard_normal((1, 53, 3)) * 0.3 + rng.standard_normal((N, 53, 3)) * 0.05).astype(np.float32)
    betas = torch.as_tensor(rng.standard_normal((1, 10)), dtype=torch.float32)
    head_world = np.stack([np.linspace(-0.5, 0.5, N), np.full(N, -0.2), np.full(N, 4.0)], 1)
    cols = {k: [] for k in ("global_orient_cam", "global_orient_world", "body_pose", "left_hand_pose",
                            "right_hand_pose", "jaw_pose", "head_cam", "head_world", "transl_world", "joints_world")}
    # constant shape and expression over the track: the stand-in's pelvis moves with both (SMPL-X's only with betas)
    expression = torch.as_tensor(rng.standard_normal((1, 10)) * 0.5, dtype=torch.float32).repeat(N, 1)
    for i in range(N):
        head_cam = np.linalg.inv(c2w[i]) @ np.r_[head_world[i], 1]
        out = body_model(rotmats(rot[i:i + 1]), betas, expression[i:i + 1],
                         torch.as_tensor(head_cam[None, :3], dtype=torch.float32),
                         torch.as_tensor(c2w[i], dtype=torch.float32), with_vertices=False)
        for k in cols:
            cols[k].append(getattr(out, k)[0].numpy().reshape(-1, 3) if k == "joints_world" else
                           getattr(out, k)[0].numpy().reshape(-1))
    score = np.full(N, 0.9, np.float32)
    score[3] = 0.2  # one doubtful detection: flagged, kept
    other_betas = np.zeros((N, 10), np.float32)
    other_betas[7, 0] = 5.0  # one implausible shape on the parameters-only person
    f = np.arange(N, dtype=np.int32)
    humans = {
        S.FRAME_IDX: np.r_[f, f], S.TIMESTAMP_S: np.r_[f, f] / 30.0, S.TRACK_ID: np.r_[np.zeros(N), np.ones(N)],
        S.DETECTION_SCORE: np.r_[score, np.full(N, 0.9)],
        S.GLOBAL_ORIENT_CAM: cols["global_orient_cam"] * 2, S.BODY_POSE: cols["body_pose"] * 2,
        S.LEFT_HAND_POSE: cols["left_hand_pose"] * 2, S.RIGHT_HAND_POSE: cols["right_hand_pose"] * 2,
        S.JAW_POSE: cols["jaw_pose"] * 2, S.BETAS: list(betas.numpy().repeat(N, 0)) + list(other_betas),
        S.EXPRESSION: list(expression.numpy()) * 2, S.HEAD_CAM_M: cols["head_cam"] * 2,
        S.HEAD_WORLD_M: cols["head_world"] * 2, S.GLOBAL_ORIENT_WORLD: cols["global_orient_world"] * 2,
        S.TRANSL_WORLD_M: cols["transl_world"] + [None] * N,
        S.JOINTS_WORLD_M: [list(j) for j in cols["joints_world"]] + [None] * N,
    }
    span = rng.uniform(-4, 4, (N * 150, 2))
    side = np.cross(UP, [1, 0, 0])
    floor = -1.5 * UP + span[:, :1] * np.array([1, 0, 0]) + span[:, 1:] * side / np.linalg.norm(side)
    v = synth_video(11, seed, SynthSpec(n_frames=N, points_per_frame=150, width=W, height=H))
    p = v["points"]
    p[S.X_M], p[S.Y_M], p[S.Z_M] = (floor[:, i].astype(np.float32) for i in range(3))
    fr = v["frames"]
    fr[S.CAM_TO_WORLD] = list(c2w.reshape(N, 16).astype(np.float32))
    fr[S.FX_SRC_PX], fr[S.FY_SRC_PX] = np.full(N, FX, np.float32), np.full(N, FX, np.float32)
    fr[S.CX_SRC_PX], fr[S.CY_SRC_PX] = np.full(N, W / 2, np.float32), np.full(N, H / 2, np.float32)
    v.update(humans=humans, c2w=c2w, floor=floor)
    return v


@pytest.fixture(scope="module")
def posed_build(tmp_path_factory, body_model):
    folder = tmp_path_factory.mktemp("labels")
    root = open_root(folder / "ds")
    v = posed_video(body_model)
    run = RunInfo(model_version="untrained-tiny-seed0", preset="tiny", params={},
                  started_at=dt.datetime.now(dt.UTC), source_uri=v["videos"][S.SOURCE_URI][0])
    write_video(root, v["video_id"], run=run, videos=v["videos"], frames=v["frames"], humans=v["humans"],
                points=v["points"])
    options = LabelOptions(clips=ClipOptions(min_frames=5, max_frames=12))
    report = build_labels(root, folder / "out", "true", options)
    return root, v, folder / "out", report


def test_amass_files_round_trip_through_smplx(posed_build, body_model):
    root, v, out, report = posed_build
    clips = pq.read_table(out / "clips.parquet").to_pylist()
    assert sorted((c["track_id"], c["n_frames"]) for c in clips) == [(0, 10), (0, 10), (1, 10), (1, 10)]
    assert report.info["counts"]["clips_without_npz"] == 2  # the parameters-only person: labels, no npz
    with open_catalog(root) as cat:
        q = cat.query("SELECT * FROM track_quality WHERE track_id = 0").to_pylist()[0]
    T = zup_transform(GroundPlane(np.array(q[S.GROUND_NORMAL_WORLD]), q[S.GROUND_OFFSET_M], 1.0))
    assert np.abs(apply(T, v["floor"])[:, 2]).max() < 1e-3  # Z up: the floor is z = 0
    joints_world = np.array(v["humans"][S.JOINTS_WORLD_M][:N], np.float64)
    for clip in (c for c in clips if c["track_id"] == 0):
        z = np.load(out / clip["amass_path"])
        n = clip["n_frames"]
        assert set(z.files) == {*AMASS_KEYS, "expression"}
        shapes = {k: z[k].shape for k in z.files}
        assert shapes == {"poses": (n, 165), "trans": (n, 3), "betas": (10,), "gender": (), "surface_model_type": (),
                          "mocap_frame_rate": (), "root_orient": (n, 3), "pose_body": (n, 63), "pose_hand": (n, 90),
                          "pose_jaw": (n, 3), "pose_eye": (n, 6), "num_betas": (), "expression": (n, 10)}
        assert (str(z["gender"]), str(z["surface_model_type"]), int(z["num_betas"])) == ("neutral", "smplx", 10)
        assert float(z["mocap_frame_rate"]) == pytest.approx(30.0)
        np.testing.assert_array_equal(z["poses"], np.concatenate(
            [z["root_orient"], z["pose_body"], z["pose_jaw"], z["pose_eye"], z["pose_hand"]], 1))
        rot = rotmats(np.concatenate([z["root_orient"][:, None], z["pose_body"].reshape(n, 21, 3),
                                      z["pose_hand"].reshape(n, 30, 3), z["pose_jaw"][:, None]], 1))
        betas = torch.as_tensor(np.tile(z["betas"], (n, 1)), dtype=torch.float32)
        _, joints = body_model.pose(rot, betas, torch.as_tensor(z["expression"], dtype=torch.float32))
        got = joints.double().numpy() + z["trans"][:, None]
        start = clip["first_frame_idx"]
        np.testing.assert_allclose(got, apply(T, joints_world[start:start + n]), atol=1e-4)


def test_camera_frame_labels_give_back_the_body(posed_build, body_model):
    root, v, out, _ = posed_build
    rows = pq.read_table(out / "labels" / f"{split_of(v['video_id'], SplitOptions())}.parquet").to_pylist()
    assert len(rows) == 2 * N  # every frame of both people: nothing dropped
    body = sorted((r for r in rows if r["track_id"] == 0), key=lambda r: r["frame_idx"])
    rot = rotmats(np.stack([np.concatenate([r["global_orient_cam"], r["body_pose"], r["left_hand_pose"],
                                            r["right_hand_pose"], r["jaw_pose"]]).reshape(53, 3) for r in body]))
    betas = torch.as_tensor(np.array([r["betas"] for r in body]))
    _, joints = body_model.pose(rot, betas, torch.as_tensor(np.array([r["expression"] for r in body])))
    joints_cam = joints.double().numpy() + np.array([r["transl_cam_m"] for r in body])[:, None]
    joints_world = np.array(v["humans"][S.JOINTS_WORLD_M][:N], np.float64)
    w2c = np.linalg.inv(v["c2w"])
    expected = np.einsum("nij,nkj->nki", w2c[:, :3, :3], joints_world) + w2c[:, None, :3, 3]
    np.testing.assert_allclose(joints_cam, expected, atol=1e-4)  # SMPL-X in the camera frame = the stored body
    with open_catalog(root) as cat:
        q = cat.query("SELECT * FROM track_quality WHERE track_id = 0").to_pylist()[0]
    zup = zup_transform(GroundPlane(np.array(q[S.GROUND_NORMAL_WORLD]), q[S.GROUND_OFFSET_M], 1.0))
    for r, e, c2w in zip(body, expected, v["c2w"]):
        uv = e[:, :2] / e[:, 2:] * FX + [W / 2, H / 2]
        np.testing.assert_allclose(np.array(r["keypoints_2d_src_px"]), uv, atol=1e-2)
        np.testing.assert_allclose(np.array(r["intrinsics_src_px"]).reshape(3, 3), K)
        # world_to_cam starts from the Z-up world of the npz files: after the Z-up map and c2w, the identity
        np.testing.assert_allclose(np.array(r["world_to_cam"]).reshape(4, 4) @ zup @ c2w, np.eye(4), atol=1e-5)
        front = e[:, 2] > 0
        box = np.array([uv[front, 0].min(), uv[front, 1].min(), uv[front, 0].max(), uv[front, 1].max()])
        np.testing.assert_allclose(r["bbox_xyxy_src_px"], box.clip(0, [W, H, W, H]), atol=1e-2)
    flags = {(r["track_id"], r["frame_idx"]): r for r in rows}
    assert not flags[(0, 3)]["valid_detection"] and not flags[(0, 3)]["valid"]  # flagged, not dropped
    assert flags[(0, 4)]["valid_detection"] and flags[(0, 4)]["valid_body"] and flags[(0, 4)]["valid_pose"]
    assert not flags[(1, 7)]["valid_shape"] and flags[(1, 6)]["valid_shape"]
    assert not flags[(1, 6)]["valid_body"] and flags[(1, 6)]["keypoints_2d_src_px"] is None
    assert flags[(1, 6)]["valid_ground"] is None  # unknown without joints


def test_cut_clips():
    position = np.r_[0:10, 12:40, 41:44]  # gaps after 10 and 40
    clips, short = cut_clips(position, ClipOptions(min_frames=5, max_frames=12))
    assert clips == [(0, 10), (10, 19), (19, 28), (28, 38)] and short == [3]  # 28 frames -> 3 near-equal clips
    assert cut_clips(np.arange(4), ClipOptions(min_frames=5, max_frames=12)) == ([], [4])


def test_split_is_by_video_seeded_and_follows_the_shares():
    ids = [f"{i:016x}" for i in range(2000)]
    a = [split_of(v, SplitOptions(seed=0)) for v in ids]
    assert a == [split_of(v, SplitOptions(seed=0)) for v in ids]
    assert a != [split_of(v, SplitOptions(seed=1)) for v in ids]
    share = {s: a.count(s) / len(a) for s in ("train", "val", "test")}
    assert share["train"] == pytest.approx(0.8, abs=0.03) and share["val"] == pytest.approx(0.1, abs=0.02)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labels-synth")
    root = open_root(folder / "ds")
    ids = write_synthetic_dataset(root, 8, SynthSpec(n_frames=40, points_per_frame=32, max_people=3), seed=5)
    return root, ids, folder


def test_selection_splits_and_determinism(synthetic):
    root, ids, folder = synthetic
    where = f"n_frames >= 25 AND video_id <> '{ids[0]}'"
    options = LabelOptions(clips=ClipOptions(min_frames=10, max_frames=20))
    report = build_labels(root, folder / "a", where, options)
    with open_catalog(root) as cat:
        expected = {tuple(r.values()) for r in cat.query(
            f"SELECT video_id, track_id FROM track_quality WHERE {where}").to_pylist()}
        all_tracks = cat.query("SELECT count(*) FROM track_quality").column(0)[0].as_py()
    assert 0 < len(expected) < all_tracks
    clips = pq.read_table(folder / "a" / "clips.parquet").to_pylist()
    assert {(c["video_id"], c["track_id"]) for c in clips} == expected
    assert all(10 <= c["n_frames"] <= 20 and c["last_frame_idx"] - c["first_frame_idx"] + 1 == c["n_frames"]
               for c in clips)
    splits_of_video: dict[str, set] = {}
    for name, path in report.info["label_files"].items():
        for r in pq.read_table(folder / "a" / path, columns=["video_id", "split"]).to_pylist():
            splits_of_video.setdefault(r["video_id"], set()).add(r["split"])
            assert r["split"] == name
    assert all(len(s) == 1 for s in splits_of_video.values())  # no video in two splits
    assert {v: s.pop() for v, s in splits_of_video.items()} == {v: split_of(v, options.split) for v in splits_of_video}
    build_labels(root, folder / "b", where, options, score=False)
    for name in ("clips.parquet", *report.info["label_files"].values()):
        assert pq.read_table(folder / "a" / name).equals(pq.read_table(folder / "b" / name)), name
    with pytest.raises(Exception, match="exists and is not empty"):
        build_labels(root, folder / "a", where, options)
    card = (folder / "a" / "README.md").read_text()
    assert where in card and "CC BY-NC-SA 4.0" in card and "SMPL-X" in card and "synthetic:0" in card
    assert f"**{len(clips)} clips**" in card and f"schema version {S.SCHEMA_VERSION}" in card
    videos = pq.read_table(folder / "a" / "videos.parquet").to_pylist()
    assert all(v["run_id"] in card and v["content_sha256"] in card for v in videos)


def test_labels_load_with_datasets(synthetic, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    root, ids, folder = synthetic
    report = build_labels(root, tmp_path / "build", "true", LabelOptions(clips=ClipOptions(min_frames=10)))
    files = {s: str(tmp_path / "build" / p) for s, p in report.info["label_files"].items()}
    ds = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "cache"))
    assert {s: ds[s].num_rows for s in files} == {s: v["frames"] for s, v in report.info["splits"].items() if
                                                   s in files}
    row = ds[next(iter(files))][0]
    assert len(row["body_pose"]) == 63 and len(row["keypoints_2d_src_px"]) == 127 and isinstance(row["valid"], bool)
    whole = datasets.load_dataset(str(tmp_path / "build"), cache_dir=str(tmp_path / "cache2"))  # the card's configs
    assert set(whole) == set(files)
