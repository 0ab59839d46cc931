"""Bodies for animation tools (tasks.scenes.export, tasks.scenes.rig, tasks.scenes.bvh): the GLB's characters load back
with SMPL-X's vertex and joint counts, and posed at a frame their joints land on the stored joints_world_m (after the
documented axis change); BVH likewise; absent tracks are hidden; per-frame meshes; a clear error without a body
model."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest

from storage import schema as S
from storage.geometry import SMPLX_PARENTS
from storage.synthetic import SynthSpec, synth_video
from storage.writer import RunInfo, write_video

C = np.diag([1.0, -1.0, -1.0])  # the documented map: dataset (y down, z forward) -> export (y up)
TRACKS = {0: [0, 1, 2, 3, 4, 5], 7: [1, 2, 4, 5]}  # track 7 is not seen in frames 0 and 3


def _rotmat(rotvec: np.ndarray) -> np.ndarray:
    import roma
    import torch

    return roma.rotvec_to_rotmat(torch.as_tensor(rotvec, dtype=torch.float64)).numpy()


def _rotvec(rotmat: np.ndarray) -> np.ndarray:
    import roma
    import torch

    return roma.rotmat_to_rotvec(torch.as_tensor(rotmat, dtype=torch.float64)).numpy()


@pytest.fixture(scope="module")
def posed_dataset(tmp_path_factory, body_model):
    """Two tracks whose stored joints come from posing the stand-in body model (shape constant per track)."""
    import torch

    from storage.fs import open_root

    root = open_root(tmp_path_factory.mktemp("export") / "ds")
    rng = np.random.default_rng(3)
    v = synth_video(0, 0, SynthSpec(n_frames=6, max_people=1, points_per_frame=40, with_joints=False))
    rows = [(f, t) for f in range(6) for t in sorted(TRACKS) if f in TRACKS[t]]
    n = len(rows)
    shape = {t: (rng.normal(0, 0.5, 10), rng.normal(0, 0.3, 10)) for t in TRACKS}
    upright = np.array([np.pi, 0, 0])  # a standing SMPL-X body (y up) in the y-down world
    rot53 = rng.normal(0, 0.25, (n, 53, 3))  # global, 21 body, 15 + 15 hands, jaw (BodyModel's order)
    rot53[:, 0] = _rotvec(_rotmat(upright)[None] @ _rotmat(rot53[:, 0] * 0.3))  # upright, turned a little
    betas = np.stack([shape[t][0] for _, t in rows]).astype(np.float32)
    expression = np.stack([shape[t][1] for _, t in rows]).astype(np.float32)
    transl = np.stack([[t * 0.3 + f * 0.05, 0.2, 3.0 + f * 0.02] for f, t in rows]).astype(np.float32)
    _, joints = body_model.pose(torch.as_tensor(_rotmat(rot53), dtype=torch.float32), torch.as_tensor(betas),
                                torch.as_tensor(expression))
    joints = joints.numpy() + transl[:, None]
    rot = rot53.astype(np.float32)
    humans = {
        S.FRAME_IDX: np.array([f for f, _ in rows], np.int32), S.TIMESTAMP_S: np.array([f / 30 for f, _ in rows]),
        S.TRACK_ID: np.array([t for _, t in rows], np.int32), S.DETECTION_SCORE: np.ones(n, np.float32),
        S.GLOBAL_ORIENT_CAM: list(rot[:, 0]), S.GLOBAL_ORIENT_WORLD: list(rot[:, 0]),
        S.BODY_POSE: list(rot[:, 1:22].reshape(n, 63)), S.LEFT_HAND_POSE: list(rot[:, 22:37].reshape(n, 45)),
        S.RIGHT_HAND_POSE: list(rot[:, 37:52].reshape(n, 45)), S.JAW_POSE: list(rot[:, 52]), S.BETAS: list(betas),
        S.EXPRESSION: list(expression), S.HEAD_CAM_M: list(joints[:, 15]), S.HEAD_WORLD_M: list(joints[:, 15]),
        S.TRANSL_WORLD_M: list(transl), S.JOINTS_WORLD_M: [list(j) for j in joints],
    }
    run = RunInfo(model_version="test", preset="tiny", params={}, started_at=dt.datetime.now(dt.UTC),
                  source_uri=v["videos"][S.SOURCE_URI][0])
    write_video(root, v["video_id"], run=run, videos=v["videos"], frames=v["frames"], humans=humans,
                points=v["points"])
    # the same people from a run without a body model: parameters and heads only (no transl, no joints)
    v2 = synth_video(0, 1, SynthSpec(n_frames=6, max_people=1, points_per_frame=40, with_joints=False))
    params_only = humans | {S.TRANSL_WORLD_M: [None] * n, S.JOINTS_WORLD_M: [None] * n}
    write_video(root, v2["video_id"], run=dataclasses.replace(run, run_id=S.new_run_id()), videos=v2["videos"],
                frames=v2["frames"], humans=params_only, points=v2["points"])
    stored = {(f, t): joints[i] for i, (f, t) in enumerate(rows)}
    return root, v["video_id"], stored, v2["video_id"]


@pytest.fixture(scope="module")
def exported(posed_dataset, body_model):
    from tasks.scenes.export import export_video
    from tasks.scenes.fuse import FuseOptions, fuse_video

    root, vid, stored, _ = posed_dataset
    fuse_video(root, vid, FuseOptions(outlier_neighbors=0, conf_min=0))
    summary = export_video(root, vid, body_model, bvh=True, meshes="ply")
    return root, vid, stored, summary


class Glb:
    """A GLB read back with pygltflib: accessors as arrays, node parents, animation samplers by (node, path)."""

    def __init__(self, path):
        import pygltflib

        self.doc = pygltflib.GLTF2().load(str(path))
        self.blob = self.doc.binary_blob()
        self.parent = {c: i for i, node in enumerate(self.doc.nodes) for c in (node.children or [])}
        self.samplers = {}
        for anim in self.doc.animations:
            for ch in anim.channels:
                s = anim.samplers[ch.sampler]
                self.samplers[(ch.target.node, ch.target.path)] = (self.array(s.input), self.array(s.output),
                                                                   s.interpolation)

    def array(self, index: int) -> np.ndarray:
        acc = self.doc.accessors[index]
        view = self.doc.bufferViews[acc.bufferView]
        dtype = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}[acc.componentType]
        width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc.type]
        data = np.frombuffer(self.blob, dtype, acc.count * width, view.byteOffset + (acc.byteOffset or 0))
        return data.reshape(acc.count, width) if width > 1 else data

    def value(self, node: int, path: str, t: float):
        if (node, path) not in self.samplers:
            return getattr(self.doc.nodes[node], path)
        times, values, interpolation = self.samplers[(node, path)]
        k = int(np.flatnonzero(times <= t + 1e-6)[-1]) if interpolation == "STEP" else int(
            np.argmin(np.abs(times - t)))
        assert interpolation == "STEP" or abs(times[k] - t) < 1e-6  # a key at every frame the track was seen
        return values[k]

    def world_position(self, node: int, t: float) -> np.ndarray:
        """The node's origin in the scene at time t (translation, rotation; scale ignored)."""
        p, r = np.zeros(3), np.eye(3)
        chain = [node]
        while chain[-1] in self.parent:
            chain.append(self.parent[chain[-1]])
        for n in reversed(chain):
            tr = self.value(n, "translation", t)
            q = self.value(n, "rotation", t)
            local = np.eye(3) if q is None else _quat_to_rotmat(np.asarray(q, np.float64))
            p = p + r @ (np.zeros(3) if tr is None else np.asarray(tr, np.float64))
            r = r @ local
        return p


def _quat_to_rotmat(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def test_glb_characters_land_on_the_stored_joints(exported):
    root, vid, stored, summary = exported
    glb = Glb(root.local_path(summary.glb))
    assert summary.tracks == 2 and summary.glb == f"_exports/{vid}/{summary.run_id}/bodies.glb"
    assert len(glb.doc.skins) == 2
    for skin, track in zip(glb.doc.skins, sorted(TRACKS)):
        assert len(skin.joints) == 55 and skin.name == f"track_{track}"
        for f in TRACKS[track]:
            got = np.stack([glb.world_position(j, f / 30) for j in skin.joints]) @ C.T  # back to the dataset frame
            err = np.abs(got - stored[(f, track)][:55]).max()
            assert err < 1e-4, (track, f, err)
    bodies = [m for m in glb.doc.meshes if m.name.startswith("track_")]
    assert [glb.doc.accessors[m.primitives[0].attributes.POSITION].count for m in bodies] == [10475, 10475]
    weights = glb.array(bodies[0].primitives[0].attributes.WEIGHTS_0)
    np.testing.assert_allclose(weights.sum(1), 1, atol=1e-5)


def test_runs_without_a_body_model_export_from_the_stored_heads(posed_dataset, body_model, tmp_path):
    from tasks.scenes.export import export_video

    root, _, stored, vid = posed_dataset
    summary = export_video(root, vid, body_model, out=tmp_path / "heads.glb", scene=False)
    glb = Glb(tmp_path / "heads.glb")
    for skin, track in zip(glb.doc.skins, sorted(TRACKS)):
        f = TRACKS[track][-1]
        got = np.stack([glb.world_position(j, f / 30) for j in skin.joints]) @ C.T
        assert np.abs(got - stored[(f, track)][:55]).max() < 1e-4  # the head lands on head_world_m, so all do
    assert summary.scene_points == 0


def test_rotation_keys_are_continuous(exported):
    root, vid, stored, summary = exported
    glb = Glb(root.local_path(summary.glb))
    for (node, path), (_, values, _) in glb.samplers.items():
        if path == "rotation" and len(values) > 1:
            assert ((values[1:] * values[:-1]).sum(1) >= 0).all(), glb.doc.nodes[node].name  # no sign flips


def test_quaternions_stay_continuous_through_half_turns():
    from tasks.scenes.export import rotmat_to_quat_xyzw

    angles = np.radians(np.arange(160, 201, 5))  # about x through 180 degrees, where w changes sign
    q = rotmat_to_quat_xyzw(_rotmat(np.stack([angles, 0 * angles, 0 * angles], 1)))
    assert ((q[1:] * q[:-1]).sum(1) > 0.99).all()
    np.testing.assert_allclose(np.abs(q[:, 0]), np.abs(np.sin(angles / 2)), atol=1e-9)


def test_absent_tracks_are_hidden_and_the_camera_and_scene_are_there(exported):
    root, vid, stored, summary = exported
    glb = Glb(root.local_path(summary.glb))
    root7 = glb.doc.skins[1].joints[0]
    scale = [float(glb.value(root7, "scale", f / 30)[0]) for f in range(6)]
    assert scale == [0, 1, 1, 0, 1, 1]
    names = {n.name for n in glb.doc.nodes}
    assert {"camera", "scene", "track_0", "track_7"} <= names and summary.scene_points > 0
    scene = next(m for m in glb.doc.meshes if m.name == "scene").primitives[0]
    assert scene.mode == 0 and glb.doc.accessors[scene.attributes.POSITION].count == summary.scene_points
    camera = next(i for i, n in enumerate(glb.doc.nodes) if n.name == "camera")
    assert np.allclose(glb.world_position(camera, 0.0), 0, atol=1e-6)  # the first camera is the origin


def test_trimesh_loads_the_glb(exported):
    trimesh = pytest.importorskip("trimesh")
    root, vid, stored, summary = exported
    scene = trimesh.load(str(root.local_path(summary.glb)), force="scene")
    counts = sorted(len(g.vertices) for g in scene.geometry.values())
    assert counts.count(10475) == 2 and summary.scene_points in counts


def _read_bvh(text: str):
    names, parents, offsets, stack = [], [], [], []
    lines = iter(text.splitlines())
    for line in lines:
        words = line.split()
        if words[0] in ("ROOT", "JOINT"):
            names.append(words[1])
            parents.append(stack[-1] if stack else -1)
        elif words[0] == "OFFSET" and len(offsets) < len(names):
            offsets.append([float(w) for w in words[1:]])
        elif words[0] == "End":
            next(lines), next(lines), next(lines)  # { OFFSET }
        elif words[0] == "{":
            stack.append(len(names) - 1)
        elif words[0] == "}":
            stack.pop()
        elif words[0] == "MOTION":
            break
    next(lines), next(lines)
    motion = np.array([[float(w) for w in line.split()] for line in lines])
    return names, parents, np.array(offsets), motion


def _euler_zyx(deg: np.ndarray) -> np.ndarray:
    z, y, x = np.radians(deg)
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    return rz @ ry @ rx


def test_bvh_poses_onto_the_stored_joints(exported):
    from smplx.joint_names import JOINT_NAMES

    root, vid, stored, summary = exported
    assert summary.bvh == [f"_exports/{vid}/{summary.run_id}/bodies-track-{t}.bvh" for t in sorted(TRACKS)]
    names, parents, offsets, motion = _read_bvh(root.local_path(summary.bvh[1]).read_text())
    assert len(names) == 55 and motion.shape == (5, 3 + 3 * 55)  # frames 1..5 of track 7 (3 holds frame 2's pose)
    order = [names.index(n) for n in JOINT_NAMES[:55]]  # BVH order -> smplx order
    tree = [-1 if parents[j] < 0 else order.index(parents[j]) for j in order]
    assert tree == list(SMPLX_PARENTS)  # the body model file's tree, as the readers without one draw it
    for line, frame in ((0, 1), (3, 4), (2, 2)):
        values = motion[line]
        pos, rot = {}, {}
        for j, p in enumerate(parents):
            local = _euler_zyx(values[3 + 3 * j:6 + 3 * j])  # root: position, then rotation
            if p < 0:
                pos[j], rot[j] = values[:3], local
            else:
                pos[j], rot[j] = pos[p] + rot[p] @ offsets[j], rot[p] @ local
        got = np.stack([pos[j] for j in order]) @ C.T
        assert np.abs(got - stored[(frame, 7)][:55]).max() < 1e-4


def test_per_frame_meshes(exported, body_model):
    import open3d as o3d

    root, vid, stored, summary = exported
    folder = root.local_path(f"_exports/{vid}/{summary.run_id}/bodies-meshes")
    files = sorted(folder.rglob("*.ply"))
    assert summary.meshes == len(files) == sum(len(f) for f in TRACKS.values())
    mesh = o3d.io.read_triangle_mesh(str(folder / "track-7" / "frame-000004.ply"))
    assert len(mesh.vertices) == 10475 and len(mesh.triangles) == len(body_model.faces)


def test_export_without_a_body_model_says_how_to_get_one(posed_dataset, human3r_cli, monkeypatch):
    root, vid, _, _ = posed_dataset
    monkeypatch.delenv("HUMAN3R_BODY_MODEL", raising=False)
    result = human3r_cli("export", "--root", root.base, "--video", vid, code=2)
    assert "smpl-x.is.tue.mpg.de" in result.stderr and "HUMAN3R_BODY_MODEL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_export_cli_writes_where_asked(posed_dataset, human3r_cli, smplx_npz, tmp_path):
    root, vid, _, _ = posed_dataset
    out = tmp_path / "out" / "people.glb"
    result = human3r_cli("export", "--root", root.base, "--video", vid, "--body-model", smplx_npz, "--out", out,
                         "--no-scene")
    assert out.exists() and "2 characters over 6 frames" in result.stdout


BLENDER_CHECK = """
import json, sys
import bpy
import numpy
numpy.bool = bool  # Debian's blender 3.4 glTF importer still uses an alias numpy 1.24 removed
glb, stored_json = sys.argv[sys.argv.index("--") + 1:]
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.context.scene.render.fps = 30  # the importer turns glTF seconds into frames at the scene's rate
bpy.ops.import_scene.gltf(filepath=glb)
data = json.load(open(stored_json))
arms = [o for o in bpy.data.objects if o.type == "ARMATURE"]
worst = 0.0
for arm in arms:
    bones = {pb.name: pb for pb in arm.pose.bones}
    track = arm.name.split("_")[1]
    for key, joints in data["joints"].items():
        f, t = key.split("_")
        if t != track:
            continue
        bpy.context.scene.frame_set(int(f))  # glTF time f / 30 s is frame f at 30 fps
        bpy.context.view_layer.update()
        for name, want in zip(data["names"], joints):
            b = arm.matrix_world @ bones[f"track_{track}_{name}"].head
            worst = max(worst, *(abs(g - w) for g, w in zip((b.x, -b.z, b.y), want)))  # z-up -> dataset frame
meshes = sorted(len(o.data.vertices) for o in bpy.data.objects if o.type == "MESH")
print("RESULT", json.dumps({"bones": sorted(len(a.data.bones) for a in arms), "meshes": meshes, "worst": worst,
                            "actions": len(bpy.data.actions)}))
"""


def test_blender_imports_animated_characters(exported, tmp_path):
    """Blender's own glTF importer (when Blender is installed: `apt-get install blender`): two armatures of 55 bones
    with skinned meshes and actions, whose posed bones land on the stored joints (Blender is z-up: it turns glTF's
    y-up by +90 degrees about x, which the check undoes)."""
    import json
    import shutil
    import subprocess

    from smplx.joint_names import JOINT_NAMES

    blender = shutil.which("blender")
    if blender is None:
        pytest.skip("Blender is not installed")
    root, vid, stored, summary = exported
    data = {"names": JOINT_NAMES[:55], "joints": {f"{f}_{t}": j[:55].tolist() for (f, t), j in stored.items()}}
    (tmp_path / "joints.json").write_text(json.dumps(data))
    (tmp_path / "check.py").write_text(BLENDER_CHECK)
    proc = subprocess.run([blender, "-b", "--factory-startup", "--python", tmp_path / "check.py", "--",
                           root.local_path(summary.glb), tmp_path / "joints.json"],
                          capture_output=True, text=True, timeout=300)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(line.removeprefix("RESULT "))
    assert result["bones"] == [55, 55] and result["meshes"].count(10475) == 2 and result["actions"] >= 2
    assert result["worst"] < 1e-4, result
