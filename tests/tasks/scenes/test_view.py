"""The Rerun recording (tasks.scenes.view, `human3r view`) reads back with rerun's own reader: the expected entities,
one row per frame on the `frame` and `time` timelines, mesh faces logged once and vertices per frame, the fused scene
as a static layer."""

from __future__ import annotations

import numpy as np
import pytest

from storage.synthetic import SynthSpec, write_synthetic_dataset

N_FRAMES = 9


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from storage.fs import open_root
    from tasks.scenes.fuse import FuseOptions, fuse_video

    root = open_root(tmp_path_factory.mktemp("view") / "ds")
    (vid,) = write_synthetic_dataset(root, 1, SynthSpec(n_frames=N_FRAMES, max_people=3, points_per_frame=64), seed=4)
    fuse_video(root, vid, FuseOptions(outlier_neighbors=0))
    return root, vid


def chunks_by_entity(path) -> dict:
    from rerun.chunk import RrdReader

    out: dict[str, list] = {}
    for chunk in RrdReader(str(path)).store().stream().to_chunks():
        out.setdefault(chunk.entity_path, []).append(chunk)
    return out


def frames_of(chunks) -> list[int]:
    return sorted({f for c in chunks if not c.is_static for f in c.to_record_batch().column("frame").to_pylist()})


def test_recording_holds_points_camera_people_and_scene(dataset, tmp_path, human3r_cli):
    root, vid = dataset
    out = tmp_path / "video.rrd"
    result = human3r_cli("view", "--root", root.base, "--video", vid, "--out", out)
    assert f"{N_FRAMES} frames" in result.stdout and "as skeleton" in result.stdout
    by_entity = chunks_by_entity(out)
    people = sorted({p.split("/")[3] for p in by_entity if p.startswith("/world/people/")})
    assert people  # the synthetic run has at least one track
    expected = {"/world", "/world/points", "/world/camera", "/world/camera/image", "/world/camera_path",
                "/world/scene", *(f"/world/people/{t}/{part}" for t in people for part in
                                  ("skeleton", "head", "trajectory"))}
    assert expected <= set(by_entity), expected - set(by_entity)
    assert frames_of(by_entity["/world/points"]) == list(range(N_FRAMES))
    assert frames_of(by_entity["/world/camera/image"]) == list(range(N_FRAMES))
    points = [c.to_record_batch() for c in by_entity["/world/points"]]
    assert all("time" in b.schema.names for b in points)
    assert sum(len(v) for b in points for v in b.column("Points3D:positions").to_pylist()) == N_FRAMES * 64
    assert all(c.is_static for c in by_entity["/world/scene"] + by_entity["/world/camera_path"])
    pinhole = by_entity["/world/camera/image"][0].to_record_batch()
    assert pinhole.column("Pinhole:resolution").to_pylist()[0] == [[1280.0, 720.0]]  # source-video pixels
    from storage.catalog import open_catalog

    with open_catalog(root) as cat:
        fx, cx = cat.query("SELECT fx_src_px, cx_src_px FROM frames WHERE frame_idx = 0").to_pylist()[0].values()
    k = pinhole.column("Pinhole:image_from_camera").to_pylist()[0][0]  # 3x3, column-major
    assert k[0] == pytest.approx(fx) and k[6] == pytest.approx(cx)


def test_people_as_meshes_with_a_body_model(dataset, tmp_path, body_model):
    from tasks.scenes.view import record_video

    root, vid = dataset
    s = record_video(root, vid, tmp_path / "mesh.rrd", body_model=body_model, points_per_frame=10)
    assert s.people_as == "mesh" and s.points == N_FRAMES * 10 and s.frames == N_FRAMES
    by_entity = chunks_by_entity(tmp_path / "mesh.rrd")
    meshes = [p for p in by_entity if p.endswith("/mesh")]
    assert len(meshes) == s.tracks
    for path in meshes:
        static = [c for c in by_entity[path] if c.is_static]
        assert len(static) == 1 and "Mesh3D:triangle_indices" in static[0].to_record_batch().schema.names
        temporal = [c.to_record_batch() for c in by_entity[path] if not c.is_static]
        verts = [v for b in temporal if "Mesh3D:vertex_positions" in b.schema.names
                 for v in b.column("Mesh3D:vertex_positions").to_pylist() if v]
        assert verts and all(len(v) == 10475 for v in verts)
        assert not any("Mesh3D:triangle_indices" in b.schema.names for b in temporal)  # faces once
    assert np.isfinite(s.seconds)
