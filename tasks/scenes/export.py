"""Bodies for animation tools: per video one GLB with every track as a rigged, animated SMPL-X character, the camera
path and the fused scene, in one frame and unit; BVH per track and per-frame PLY/OBJ meshes as options.

The GLB (glTF 2.0 binary, written with pygltflib) holds, in the export frame of `tasks.scenes.rig` (y up: the dataset's
world frame turned 180 degrees about x, metres):

* per track a node ``track_<id>`` with the skinned mesh (SMPL-X's rest mesh for the track's median shape, 4 skin
  weights per vertex) and its 55-joint skeleton (nodes ``track_<id>_<joint name>``);
* one animation ``video`` (times in seconds from the first processed frame): per track the root joint's translation
  and every joint's rotation at the frames it was seen (linear), and its root scale (step: 0 while the track is
  not in view, so an absent person is hidden);
* a perspective camera ``camera`` moving along the stored camera path (vertical field of view from the source
  intrinsics);
* the fused scene (`tasks.scenes.fuse`) as a point primitive ``scene`` with vertex colours, when there is one.

Blender (File > Import > glTF 2.0) and Unity (glTFast) import the characters with their armatures and the action.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from storage import schema as S
from tasks.scenes.rig import TO_EXPORT, Motion, Rig, build_rig, track_motion, track_shape

_FLOAT, _UINT, _USHORT, _UBYTE = 5126, 5125, 5123, 5121
_ARRAY, _ELEMENTS = 34962, 34963
_TYPES = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4", 16: "MAT4"}


def rotmat_to_quat_xyzw(rotmat: np.ndarray) -> np.ndarray:
    """(T, ..., 3, 3) -> (T, ..., 4) unit quaternions (x, y, z, w), glTF's order, signs chosen continuous along the
    first (time) axis: q and -q are the same rotation, and a sign flip between keys would make an importer that
    interpolates component-wise (Blender's f-curves) swing the long way round."""
    import roma
    import torch

    q = roma.rotmat_to_unitquat(torch.as_tensor(np.asarray(rotmat, np.float64))).numpy()
    for t in range(1, len(q)):
        q[t] = np.where((q[t] * q[t - 1]).sum(-1, keepdims=True) < 0, -q[t], q[t])
    return q


class GlbBuilder:
    """A glTF document and its one binary buffer, filled accessor by accessor."""

    def __init__(self):
        import pygltflib as G

        self.G = G
        self.doc = G.GLTF2(asset=G.Asset(generator="human3r-archive", version="2.0"), scene=0,
                           scenes=[G.Scene(nodes=[])], nodes=[], meshes=[], skins=[], accessors=[], bufferViews=[],
                           buffers=[], animations=[], materials=[], cameras=[])
        self.blob = bytearray()

    def accessor(self, array: np.ndarray, component: int, *, target: int | None = None, bounds: bool = False,
                 normalized: bool = False) -> int:
        """Append `array` ((N,) or (N, k)) as one buffer view + accessor; returns the accessor index."""
        G = self.G
        dtype = {_FLOAT: np.float32, _UINT: np.uint32, _USHORT: np.uint16, _UBYTE: np.uint8}[component]
        data = np.ascontiguousarray(array, dtype=dtype)
        width = 1 if data.ndim == 1 else int(np.prod(data.shape[1:]))
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        self.doc.bufferViews.append(G.BufferView(buffer=0, byteOffset=len(self.blob), byteLength=data.nbytes,
                                                 target=target))
        self.blob.extend(data.tobytes())
        flat = data.reshape(len(data), width)
        acc = G.Accessor(bufferView=len(self.doc.bufferViews) - 1, componentType=component, count=len(data),
                         type=_TYPES[width], normalized=normalized or None)
        if bounds:
            acc.min, acc.max = flat.min(0).tolist(), flat.max(0).tolist()
        self.doc.accessors.append(acc)
        return len(self.doc.accessors) - 1

    def node(self, **fields) -> int:
        self.doc.nodes.append(self.G.Node(**fields))
        return len(self.doc.nodes) - 1

    def save(self, path) -> None:
        self.doc.buffers = [self.G.Buffer(byteLength=len(self.blob))]
        self.doc.set_binary_blob(bytes(self.blob))
        self.doc.save_binary(str(path))


def _channel(b: GlbBuilder, anim, node: int, path: str, times: int, values: np.ndarray, step: bool = False):
    G = b.G
    anim.samplers.append(G.AnimationSampler(input=times, output=b.accessor(values, _FLOAT),
                                            interpolation="STEP" if step else "LINEAR"))
    anim.channels.append(G.AnimationChannel(sampler=len(anim.samplers) - 1,
                                            target=G.AnimationChannelTarget(node=node, path=path)))


def add_character(b: GlbBuilder, anim, track: int, rig: Rig, motion: Motion, frame_times: np.ndarray,
                  frame_idx: np.ndarray, material: int) -> int:
    """One skinned, animated character; returns its top node."""
    G = b.G
    joint_nodes = [b.node(name=f"track_{track}_{name}") for name in rig.names]
    offsets = rig.offsets
    for j, p in enumerate(rig.parents):
        node = b.doc.nodes[joint_nodes[j]]
        node.translation = offsets[j].tolist() if p >= 0 else motion.root_translation[0].tolist()
        if p >= 0:
            b.doc.nodes[joint_nodes[p]].children.append(joint_nodes[j])
    ibm = np.tile(np.eye(4, dtype=np.float32), (len(rig.names), 1, 1))
    ibm[:, :3, 3] = -rig.rest_joints
    b.doc.skins.append(G.Skin(name=f"track_{track}", joints=joint_nodes, skeleton=joint_nodes[0],
                              inverseBindMatrices=b.accessor(ibm.transpose(0, 2, 1).reshape(-1, 16), _FLOAT)))
    attributes = G.Attributes(POSITION=b.accessor(rig.rest_vertices, _FLOAT, target=_ARRAY, bounds=True),
                              JOINTS_0=b.accessor(rig.joints4, _UBYTE, target=_ARRAY),
                              WEIGHTS_0=b.accessor(rig.weights4, _FLOAT, target=_ARRAY))
    primitive = G.Primitive(attributes=attributes, indices=b.accessor(rig.faces.reshape(-1), _UINT, target=_ELEMENTS),
                            material=material)
    b.doc.meshes.append(G.Mesh(name=f"track_{track}", primitives=[primitive]))
    mesh_node = b.node(name=f"track_{track}_body", mesh=len(b.doc.meshes) - 1, skin=len(b.doc.skins) - 1)
    times = b.accessor(motion.times_s, _FLOAT, bounds=True)
    _channel(b, anim, joint_nodes[0], "translation", times, motion.root_translation)
    quats = rotmat_to_quat_xyzw(motion.rotations)  # (T, 55, 4)
    for j in range(len(rig.names)):
        if j == 0 or np.abs(quats[:, j, :3]).max() > 0:  # joints never rotated (eyes) stay at rest
            b.doc.nodes[joint_nodes[j]].rotation = quats[0, j].tolist()  # the first frame, for static viewers
            _channel(b, anim, joint_nodes[j], "rotation", times, quats[:, j])
    seen = np.isin(frame_idx, motion.frame_idx)
    change = np.flatnonzero(np.diff(seen.astype(np.int8), prepend=1 - seen[0]))
    _channel(b, anim, joint_nodes[0], "scale", b.accessor(frame_times[change], _FLOAT, bounds=True),
             np.repeat(seen[change, None].astype(np.float32), 3, 1), step=True)
    return b.node(name=f"track_{track}", children=[mesh_node, joint_nodes[0]])


def add_camera(b: GlbBuilder, anim, c2w: np.ndarray, frame_times: np.ndarray, fy_px: float, width: int,
               height: int) -> int:
    """A perspective camera along the path: rotation C R C, translation C t (OpenCV camera axes -> glTF's)."""
    G = b.G
    b.doc.cameras.append(G.Camera(type="perspective", perspective=G.Perspective(
        yfov=2 * math.atan(height / (2 * fy_px)), aspectRatio=width / height, znear=0.01)))
    rot = TO_EXPORT @ c2w[:, :3, :3] @ TO_EXPORT
    node = b.node(name="camera", camera=len(b.doc.cameras) - 1)
    times = b.accessor(frame_times, _FLOAT, bounds=True)
    _channel(b, anim, node, "translation", times, c2w[:, :3, 3] @ TO_EXPORT.T)
    _channel(b, anim, node, "rotation", times, rotmat_to_quat_xyzw(rot))
    return node


def add_scene_points(b: GlbBuilder, xyz: np.ndarray, rgb: np.ndarray) -> int:
    """The fused scene as a point primitive (mode 0) with vertex colours."""
    G = b.G
    attributes = G.Attributes(POSITION=b.accessor(xyz @ TO_EXPORT.T, _FLOAT, target=_ARRAY, bounds=True),
                              COLOR_0=b.accessor(rgb, _UBYTE, target=_ARRAY, normalized=True))
    b.doc.meshes.append(G.Mesh(name="scene", primitives=[G.Primitive(attributes=attributes, mode=0)]))
    return b.node(name="scene", mesh=len(b.doc.meshes) - 1)


@dataclasses.dataclass(frozen=True)
class ExportSummary:
    video_id: str
    run_id: str
    glb: str
    tracks: int
    frames: int
    scene_points: int
    bvh: list[str]
    meshes: int

    @property
    def line(self) -> str:
        extra = (f", {len(self.bvh)} BVH" if self.bvh else "") + (f", {self.meshes:,} meshes" if self.meshes else "")
        return (f"{self.video_id}: {self.tracks} characters over {self.frames} frames, scene of "
                f"{self.scene_points:,} points -> {self.glb}{extra}")


def _frames(catalog, run) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    t = catalog.query(f"SELECT {S.FRAME_IDX}, {S.TIMESTAMP_S}, {S.CAM_TO_WORLD}, {S.FY_SRC_PX} FROM frames_all "
                      f"WHERE {S.VIDEO_ID} = ? AND {S.RUN_ID} = ? ORDER BY {S.FRAME_IDX}", [run.video_id, run.run_id])
    c2w = np.asarray(t.column(S.CAM_TO_WORLD).combine_chunks().flatten().to_numpy(), np.float64).reshape(-1, 4, 4)
    size = catalog.query(f"SELECT {S.WIDTH_PX}, {S.HEIGHT_PX} FROM runs WHERE {S.VIDEO_ID} = ?", [run.video_id])
    info = {"fy": float(np.median(t.column(S.FY_SRC_PX).to_numpy())) if t.num_rows else 1.0,
            "width": size.column(0)[0].as_py(), "height": size.column(1)[0].as_py()}
    return t.column(S.FRAME_IDX).to_numpy(), t.column(S.TIMESTAMP_S).to_numpy(), c2w, info


def live_scene_cloud(root, catalog, run) -> tuple[np.ndarray, np.ndarray] | None:
    """The fused scene of the live run (the live ``scenes`` row's PLY), or None when it was never fused."""
    rows = catalog.query(f"SELECT {S.SCENE_PATH} FROM {S.SCENES.name} WHERE {S.VIDEO_ID} = ? AND {S.RUN_ID} = ?",
                         [run.video_id, run.run_id]).to_pylist()
    if not rows:
        return None
    return read_cloud(root, rows[0][S.SCENE_PATH])


def read_cloud(root, path: str) -> tuple[np.ndarray, np.ndarray]:
    """(xyz (N, 3) float32, rgb (N, 3) uint8) of a PLY: relative to the dataset root, or an absolute path."""
    import os
    import tempfile

    import open3d as o3d

    local = path if os.path.isabs(path) else (root.local_path(path) if root.is_local else None)
    with tempfile.TemporaryDirectory() as tmp:
        if local is None:  # a remote root: fetch the file once
            local = os.path.join(tmp, "scene.ply")
            with root.fs.open_input_stream(root.path(path)) as src, open(local, "wb") as dst:
                dst.write(src.read())
        cloud = o3d.t.io.read_point_cloud(str(local))
    xyz = cloud.point.positions.numpy().astype(np.float32)
    rgb = cloud.point.colors.numpy() if "colors" in cloud.point else np.full((len(xyz), 3), 200)
    rgb = (rgb * 255 if rgb.dtype.kind == "f" else rgb).clip(0, 255).astype(np.uint8)
    return xyz, rgb


def export_video(root, video_id: str, body_model, *, out=None, scene: str | bool = True, bvh: bool = False,
                 meshes: str | None = None, progress: Callable[[str, int, int], None] | None = None) -> ExportSummary:
    """Write the GLB (to `out`, default ROOT/_exports/<video>/<run>/bodies.glb), and optionally one BVH per track
    and per-frame meshes (`meshes` = 'ply' or 'obj') beside it. `scene`: True = the live fused scene if any, a path
    = that PLY, False = none. `progress(stage, done, total)`."""
    from storage.catalog import open_catalog
    from tasks.scenes.bodies import live_run, read_people
    from tasks.scenes.bvh import write_bvh
    from tasks.scenes.outfiles import Target, export_dir

    with open_catalog(root) as catalog:
        run = live_run(catalog, video_id)
        people = read_people(catalog, run)
        frame_idx, frame_times, c2w, info = _frames(catalog, run)
        cloud = (live_scene_cloud(root, catalog, run) if scene is True else
                 read_cloud(root, scene) if isinstance(scene, str) else None)
    target = export_dir(root, video_id, run.run_id).child("bodies.glb") if out is None else Target.at(out)
    t0 = float(frame_times[0]) if len(frame_times) else 0.0
    times = (frame_times - t0).astype(np.float32)
    b = GlbBuilder()
    anim = b.G.Animation(name="video", samplers=[], channels=[])
    b.doc.materials.append(b.G.Material(name="body", pbrMetallicRoughness=b.G.PbrMetallicRoughness(
        baseColorFactor=[0.75, 0.72, 0.68, 1.0], metallicFactor=0.0, roughnessFactor=0.8), doubleSided=True))
    top, bvh_files = [], []
    for i, track in enumerate(people.tracks):
        rows = people.rows_of(track)
        rig = build_rig(body_model, *track_shape(people, rows))
        motion = track_motion(body_model, people, rows, rig, t0)
        top.append(add_character(b, anim, track, rig, motion, times, frame_idx, material=0))
        if bvh:
            bvh_target = target.sibling(f"{target.stem}-track-{track}.bvh")
            write_bvh(bvh_target, rig, motion, frame_idx, times)
            bvh_files.append(bvh_target.shown)
        if progress is not None:
            progress("characters", i + 1, len(people.tracks))
    if len(frame_idx):
        top.append(add_camera(b, anim, c2w, times, info["fy"], info["width"], info["height"]))
    if cloud is not None:
        top.append(add_scene_points(b, *cloud))
    if anim.channels:
        b.doc.animations.append(anim)
    b.doc.scenes[0].nodes = top
    with target.write() as tmp:
        b.save(tmp)
    n_meshes = write_meshes(target, body_model, people, meshes, progress) if meshes else 0
    return ExportSummary(video_id, run.run_id, target.shown, len(people.tracks), len(frame_idx),
                         0 if cloud is None else len(cloud[0]), bvh_files, n_meshes)


def write_meshes(target, body_model, people, fmt: str, progress=None) -> int:
    """Every person in every frame as a full SMPL-X mesh (stored per-frame shape, pose correctives), dataset world
    frame: <glb stem>-meshes/track-<id>/frame-<frame_idx>.<fmt> beside the GLB."""
    import open3d as o3d

    from tasks.scenes.bodies import pose_world
    from tasks.scenes.outfiles import write_triangle_mesh

    faces = o3d.utility.Vector3iVector(body_model.faces.numpy().astype(np.int32))
    folder = target.sibling(f"{target.stem}-meshes")
    n = len(people)
    for start in range(0, n, 32):
        rows = np.arange(start, min(start + 32, n))
        verts = pose_world(body_model, people, rows)[0]
        for r, v in zip(rows, verts):
            mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v.astype(np.float64)), faces)
            name = f"track-{people.track_id[r]}/frame-{people.frame_idx[r]:06d}.{fmt}"
            write_triangle_mesh(folder.child(name), mesh)
        if progress is not None:
            progress("meshes", rows[-1] + 1, n)
    return n
