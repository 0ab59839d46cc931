"""Scene fusion: a video's stored world points -> one fused, cleaned point cloud (PLY), optionally a surface mesh,
recorded as a row of the ``scenes`` table.

1. **Stream** the live run's points from the catalog in record batches, one window of frames (about a batch of
   points) per DuckDB query over the Parquet files, the confidence filter inside the scan; reading, the people mask
   and the voxel grid run as three pipelined threads (DuckDB, numpy and Open3D release the GIL in their loops).
   Memory is bounded by the batch size and the number of occupied voxels, never by the video's point count
   (`bench/fusion.py` measures it).
2. **People** (optional, on by default): drop points within a margin of a person of the same frame
   (`tasks.scenes.people`: posed SMPL-X meshes with a body model, else capsules around the stored joints or the head).
3. **Voxel grid**: each batch is reduced per voxel in numpy (a one-byte occupancy grid over the batch's bounding
   box, or a sort when the box is large), then merged into an Open3D tensor hash map (``open3d.core.HashMap``: voxel
   coordinates -> running sums of position, colour, confidence, and hit counts).
4. **Clean**: voxels -> ``open3d.t.geometry.PointCloud`` (mean position, colour, confidence; hits), voxels with
   fewer than ``min_hits`` hits dropped, statistical outlier removal.
5. **Write** a binary PLY (x, y, z float; red, green, blue uchar; confidence float; hits int), optionally a Poisson
   mesh (normals oriented towards the mean camera centre, low-density vertices trimmed), and the ``scenes`` row.

Files go to ``ROOT/_exports/<video_id>/<run_id>/scene-<params_hash>.ply`` (``storage.schema.SCENE_FILE``) unless an
output path is given. A fusion whose live ``scenes`` row has the same run and parameters is not redone.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from storage import schema as S

_PACK_BITS = 21  # bits per axis when voxel coordinates are packed into one int64 (the sort path)
_PACK_LIMIT = 1 << (_PACK_BITS - 1)  # voxel coordinates must lie in [-2^20, 2^20): +-52 km at 5 cm


class FuseOptions(BaseModel):
    """How a video's points become a scene (the CLI flags, the flow's parameter and prefect.yaml take these)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    voxel_size_m: float = Field(0.05, gt=0, le=10, description="Voxel edge length in metres.")
    conf_min: float = Field(2.0, ge=0, description="Leave out points with a lower confidence (confidence is >= 1).")
    drop_people: bool = Field(True, description="Leave out points on people (scene only).")
    people_margin_m: float = Field(0.1, ge=0, le=2, description="How far around a person points are left out, m.")
    min_hits: int = Field(1, ge=1, description="Drop voxels hit by fewer points (transient and noise points).")
    outlier_neighbors: int = Field(20, ge=0, description="Statistical outlier removal: neighbours (0 = off).")
    outlier_std_ratio: float = Field(2.0, gt=0, description="Statistical outlier removal: std ratio.")
    mesh: bool = Field(False, description="Also write a Poisson surface mesh of the fused cloud.")
    poisson_depth: int = Field(9, ge=4, le=14, description="Octree depth of the Poisson reconstruction.")
    batch_points: int = Field(1_000_000, ge=1000, description="Points read per batch (memory, not the result).")

    def params(self, people_from: str | None) -> dict:
        """What defines the output (the batch size left out), as recorded in scenes.params_json."""
        return {**self.model_dump(exclude={"batch_points"}), "people_from": people_from}


@dataclasses.dataclass(frozen=True)
class SceneSummary:
    """What a fusion did (or found done)."""

    video_id: str
    run_id: str
    status: str  # 'fused' or 'skipped' (the live scenes row has this run and these parameters)
    scene_path: str
    n_points_in: int
    n_points_fused: int
    n_voxels: int
    n_points_out: int
    seconds: float
    mesh_path: str | None = None

    @property
    def line(self) -> str:
        what = "already fused" if self.status == "skipped" else f"fused in {self.seconds:.1f} s"
        return (f"{self.video_id}: {self.n_points_in:,} points in -> {self.n_points_fused:,} fused -> "
                f"{self.n_voxels:,} voxels -> {self.n_points_out:,} points out ({what}): {self.scene_path}"
                + (f" + mesh {self.mesh_path}" if self.mesh_path else ""))


# ------------------------------------------------------------------------------------------------ the voxel grid
def reduce_batch(keys: tuple[np.ndarray, np.ndarray, np.ndarray], bounds: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel coordinates (three (N,) int32 arrays; `bounds` (3, 2) their min and max if known) -> (unique (M, 3)
    int32, inverse (N,) index of each point in unique, hits (M,) points per unique voxel).

    A dense bincount over the batch's bounding box when it is small (no sort: O(N + box)), else a sort of the
    coordinates packed into one int64."""
    if bounds is None:
        bounds = np.array([(k.min(), k.max()) for k in keys])
    lo = bounds[:, 0].astype(np.int64)
    ext = bounds[:, 1].astype(np.int64) - lo + 1
    volume = int(ext.prod())
    if volume <= max(8 * len(keys[0]), 1 << 22):  # < 2^31 as well
        e1, e2 = np.int32(ext[1]), np.int32(ext[2])  # the box has < 2^31 cells: int32 throughout
        lin = ((keys[0] - np.int32(lo[0])) * e1 + (keys[1] - np.int32(lo[1]))) * e2 + (keys[2] - np.int32(lo[2]))
        occupied_cells = np.zeros(volume, np.bool_)  # one byte per cell: stays in cache where counts would not
        occupied_cells[lin] = True
        occupied = np.flatnonzero(occupied_cells)
        remap = np.empty(volume, np.int32)
        remap[occupied] = np.arange(len(occupied), dtype=np.int32)
        inverse = remap[lin].astype(np.intp)  # once: np.bincount would convert it on every call
        unique = np.stack(np.unravel_index(occupied, tuple(ext)), 1) + lo
        return unique.astype(np.int32), inverse, np.bincount(inverse, minlength=len(occupied))
    shifted = [k.astype(np.int64) + _PACK_LIMIT for k in keys]
    lin = (shifted[0] << (2 * _PACK_BITS)) | (shifted[1] << _PACK_BITS) | shifted[2]
    packed, inverse, hits = np.unique(lin, return_inverse=True, return_counts=True)
    mask = (1 << _PACK_BITS) - 1
    unique = np.stack([packed >> (2 * _PACK_BITS), (packed >> _PACK_BITS) & mask, packed & mask], 1) - _PACK_LIMIT
    return unique.astype(np.int32), inverse, hits


class VoxelGrid:
    """Running per-voxel sums in an Open3D tensor hash map: voxel (int32 x3) -> [sum x, y, z, r, g, b, conf]
    (float64 x7) and hits (int64). Memory grows with the occupied voxels, not with the points added."""

    def __init__(self, voxel_size_m: float):
        import open3d.core as o3c

        self.voxel_size_m = float(voxel_size_m)
        self._o3c = o3c
        self.map = o3c.HashMap(1 << 16, o3c.int32, (3,), [o3c.float64, o3c.int64], [(7,), (1,)])
        self.n_points = 0

    def add(self, x, y, z, r, g, b, conf) -> None:
        """Add points given as (N,) columns: x, y, z metres, r, g, b 0-255, conf. Points with a non-finite or
        far-away (> 2^20 voxels) coordinate are skipped."""
        if not len(x):
            return
        scale = np.float32(1.0 / self.voxel_size_m)
        keys = [np.floor(c * scale) for c in (x, y, z)]
        bounds = np.array([(k.min(), k.max()) for k in keys])
        if not (np.isfinite(bounds).all() and (np.abs(bounds) < _PACK_LIMIT - 1).all()):
            ok = np.logical_and.reduce([np.isfinite(k) & (np.abs(k) < _PACK_LIMIT - 1) for k in keys])
            x, y, z, r, g, b, conf = (c[ok] for c in (x, y, z, r, g, b, conf))
            keys, bounds = [k[ok] for k in keys], None
            if not len(x):
                return
        unique, inverse, hits = reduce_batch(tuple(k.astype(np.int32) for k in keys), bounds)
        m = len(unique)
        sums = np.empty((m, 7))
        for i, column in enumerate((x, y, z, r, g, b, conf)):
            sums[:, i] = np.bincount(inverse, column, minlength=m)
        index = self._index(unique)
        self.map.value_tensor(0).numpy()[index] += sums  # views of the map's buffers (no duplicates in index)
        self.map.value_tensor(1).numpy()[index, 0] += hits
        self.n_points += len(x)

    def _index(self, unique: np.ndarray) -> np.ndarray:
        """Buffer index of each voxel, inserting the new ones (looked up first: most voxels recur batch to batch)."""
        tensor = self._o3c.Tensor.from_numpy(unique)
        index, found = (t.numpy() for t in self.map.find(tensor))
        if not found.all():
            missing = np.flatnonzero(~found)
            fresh = self._o3c.Tensor.from_numpy(np.ascontiguousarray(unique[missing]))
            capacity = self.map.capacity()
            if self.map.size() + len(missing) > capacity:  # grow by doubling (activate alone grows to fit exactly,
                self.map.reserve(2 * (self.map.size() + len(missing)))  # so every later batch would rehash)
            self.map.activate(fresh)
            if self.map.capacity() != capacity:  # it grew (rehashed): every index moved, look them all up again
                index = self.map.find(tensor)[0].numpy()
            else:
                index = index.copy()
                index[missing] = self.map.find(fresh)[0].numpy()
        return index.astype(np.int64)

    def __len__(self) -> int:
        return int(self.map.size())

    def means(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per occupied voxel: mean position (M, 3) float32, mean colour (M, 3) uint8, mean confidence (M,)
        float32, hits (M,) int64; in voxel-coordinate order (deterministic)."""
        active = self.map.active_buf_indices().numpy().astype(np.int64)
        keys = self.map.key_tensor().numpy()[active]
        order = np.lexsort((keys[:, 2], keys[:, 1], keys[:, 0]))
        sums = self.map.value_tensor(0).numpy()[active[order]]
        hits = self.map.value_tensor(1).numpy()[active[order], 0]
        mean = sums / hits[:, None]
        colour = np.clip(np.rint(mean[:, 3:6]), 0, 255).astype(np.uint8)
        return mean[:, :3].astype(np.float32), colour, mean[:, 6].astype(np.float32), hits


# ------------------------------------------------------------------------------------------------ reading
def stream_points(catalog, run, conf_min: float, batch_points: int, frames: tuple[int, int]):
    """Record batches (frame_idx, x_m, y_m, z_m, r, g, b, conf) of one run's points with conf >= conf_min, read a
    window of frames (about `batch_points` points) per query: DuckDB's read-ahead then stays within the window, so
    memory does not grow with the video (one query over the whole video reads ahead further as it gets longer)."""
    cols = ", ".join([S.FRAME_IDX, S.X_M, S.Y_M, S.Z_M, S.RED, S.GREEN, S.BLUE, S.CONF])
    sql = (f"SELECT {cols} FROM {S.POINTS.name}_all WHERE {S.VIDEO_ID} = ? AND {S.RUN_ID} = ? AND {S.CONF} >= ? "
           f"AND {S.FRAME_IDX} BETWEEN ? AND ?")
    first, last = frames
    per_frame = run.n_points / max(run.n_frames, 1)
    step = max(1, int(batch_points / max(per_frame, 1.0)))
    for start in range(first, last + 1, step):
        params = [run.video_id, run.run_id, conf_min, start, start + step - 1]
        yield from catalog.con.sql(sql, params=params).to_arrow_reader(batch_points)


def _prefetched(items, prepare: Callable, depth: int = 2):
    """`prepare(item)` for each item, computed ahead in a thread (at most `depth` results waiting). Leaving early
    (an error downstream) stops the thread and closes `items` before returning, so nothing reads on in the
    background."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def run() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(prepare(item))
        except BaseException as err:  # noqa: BLE001 - re-raised in the consumer
            q.put(err)
        finally:
            if hasattr(items, "close"):
                items.close()
        q.put(done)

    thread = threading.Thread(target=run, daemon=True, name="fuse-stage")
    thread.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # keep the queue drained so a blocked put returns and the thread sees `stop`
            try:
                q.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.05)


def camera_centres(catalog, video_id: str, run_id: str) -> np.ndarray:
    """(F, 3) camera centres of the run's frames, world frame."""
    rows = catalog.query(f"SELECT {S.CAM_TO_WORLD} FROM {S.FRAMES.name}_all WHERE {S.VIDEO_ID} = ? AND "
                         f"{S.RUN_ID} = ?", [video_id, run_id]).column(0)
    c2w = np.asarray(rows.combine_chunks().flatten().to_numpy(), np.float64).reshape(-1, 4, 4)
    return c2w[:, :3, 3]


# ------------------------------------------------------------------------------------------------ the whole video
def fuse_points(batches, options: FuseOptions, mask=None, progress: Callable[[int], None] | None = None):
    """Fuse record batches (`stream_points`) into a `VoxelGrid`. `mask(frame_idx, x, y, z) -> keep` drops points on
    people; `progress(frame_idx)` gets the last frame index of each batch."""

    def to_numpy(batch) -> list[np.ndarray]:
        return [batch.column(i).to_numpy(zero_copy_only=False) for i in range(batch.num_columns)]

    def prepare(cols: list[np.ndarray]) -> tuple[int, list[np.ndarray]]:
        frame_idx, columns = cols[0], cols[1:]  # frame_idx, then x, y, z, r, g, b, conf
        if mask is not None:
            keep = mask(frame_idx, *columns[:3])
            if not keep.all():
                columns = [c[keep] for c in columns]
        return (int(frame_idx[-1]) if len(frame_idx) else -1), columns

    grid = VoxelGrid(options.voxel_size_m)
    # three stages, each in its own thread: DuckDB reads, the mask filters, the grid fuses
    for last_frame, columns in _prefetched(_prefetched(batches, to_numpy, depth=1), prepare, depth=1):
        grid.add(*columns)
        if progress is not None and last_frame >= 0:
            progress(last_frame)
    return grid


def clean_cloud(grid: VoxelGrid, options: FuseOptions):
    """The fused cloud as an ``open3d.t.geometry.PointCloud`` (positions, colors uint8, confidence, hits), voxels
    with too few hits and statistical outliers removed."""
    import open3d as o3d
    import open3d.core as o3c

    xyz, colour, conf, hits = grid.means()
    keep = hits >= options.min_hits
    cloud = o3d.t.geometry.PointCloud(o3c.Tensor.from_numpy(np.ascontiguousarray(xyz[keep])))
    cloud.point.colors = o3c.Tensor.from_numpy(np.ascontiguousarray(colour[keep]))
    cloud.point.confidence = o3c.Tensor.from_numpy(np.ascontiguousarray(conf[keep, None]))
    cloud.point.hits = o3c.Tensor.from_numpy(np.ascontiguousarray(hits[keep, None].astype(np.int32)))
    n = int(keep.sum())
    if options.outlier_neighbors and n > options.outlier_neighbors:
        cloud, _ = cloud.remove_statistical_outliers(options.outlier_neighbors, options.outlier_std_ratio)
    return cloud


def poisson_mesh(cloud, options: FuseOptions, viewpoint: np.ndarray):
    """A Poisson surface of the cloud (legacy ``TriangleMesh``), vertices of the lowest 5 % density trimmed."""
    import open3d as o3d

    cloud = cloud.clone()
    cloud.estimate_normals(max_nn=30, radius=4 * options.voxel_size_m)
    cloud.orient_normals_towards_camera_location(o3d.core.Tensor(viewpoint.astype(np.float32)))
    legacy = cloud.to_legacy()
    mesh, density = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(legacy, depth=options.poisson_depth)
    density = np.asarray(density)
    if len(density):
        mesh.remove_vertices_by_mask(density < np.quantile(density, 0.05))
    return mesh


def fuse_video(root, video_id: str, options: FuseOptions = FuseOptions(), *, body_model=None, out=None,
               force: bool = False, progress: Callable[[int, int], None] | None = None) -> SceneSummary:
    """Fuse the live run of `video_id` in the dataset `root` (a `storage.fs.Root`) into a scene; write the PLY (to
    `out`, or under ROOT/_exports/) and the ``scenes`` row. `progress(frame_idx, last_frame_idx)` is called per
    batch. Skipped when the live scenes row has this run and these parameters (and `force` is not set)."""
    from storage import dataset
    from storage.catalog import open_catalog
    from storage.writer import write_rows
    from tasks.scenes.bodies import live_run, read_people
    from tasks.scenes.outfiles import Target, write_point_cloud, write_triangle_mesh
    from tasks.scenes.people import PeopleMask, people_source

    t0 = time.perf_counter()
    with open_catalog(root) as catalog:
        run = live_run(catalog, video_id)
        people = read_people(catalog, run) if options.drop_people else None
        source = people_source(people, body_model) if people is not None and len(people) else None
        params = options.params(source)
        params_hash = dataset.params_hash(params)
        rel = S.SCENE_FILE.format(video_id=video_id, run_id=run.run_id, params_hash=params_hash)
        target = Target.in_root(root, rel) if out is None else Target.at(out)
        if not force:
            done = _already_fused(catalog, run, params_hash, target)
            if done is not None:
                return done
        mask = PeopleMask(people, options.people_margin_m, body_model) if source else None
        span = catalog.query(f"SELECT min({S.FRAME_IDX}), max({S.FRAME_IDX}) FROM frames_all WHERE {S.VIDEO_ID} = ? "
                             f"AND {S.RUN_ID} = ?", [video_id, run.run_id]).to_pylist()[0].values()
        first, last = (0 if v is None else int(v) for v in span)
        batches = stream_points(catalog, run, options.conf_min, options.batch_points, (first, last))
        grid = fuse_points(batches, options, mask, None if progress is None else (lambda f: progress(f, last)))
        n_in = run.n_points  # every point of the run went through the scan (the confidence filter is part of it)
        centres = camera_centres(catalog, video_id, run.run_id) if options.mesh else None
    cloud = clean_cloud(grid, options)
    n_out = int(cloud.point.positions.shape[0])
    if n_out == 0:
        from tasks.errors import UsageError

        raise UsageError(f"nothing to fuse for video {video_id}: {run.n_points:,} stored points, {grid.n_points:,} "
                         f"with confidence >= {options.conf_min:g} off people, {len(grid):,} voxels of which none "
                         f"is kept (min hits {options.min_hits}); lower --conf-min or --min-hits, or reconstruct "
                         "with --points-per-frame > 0")
    write_point_cloud(target, cloud)
    mesh_target, n_triangles = None, None
    if options.mesh and n_out > options.outlier_neighbors + 3:
        mesh = poisson_mesh(cloud, options, centres.mean(0) if len(centres) else np.zeros(3))
        mesh_target = target.sibling(target.stem + "-mesh.ply")
        write_triangle_mesh(mesh_target, mesh)
        n_triangles = len(mesh.triangles)
    seconds = time.perf_counter() - t0
    summary = SceneSummary(video_id, run.run_id, "fused", target.shown, n_in, grid.n_points, len(grid), n_out,
                           seconds, mesh_target.shown if mesh_target else None)
    write_rows(root, S.SCENES.name, {
        S.VIDEO_ID: [video_id], S.RUN_ID: [run.run_id], S.MODEL_VERSION: [run.model_version],
        S.VOXEL_SIZE_M: [options.voxel_size_m], S.CONF_MIN: [options.conf_min],
        S.PEOPLE_MARGIN_M: [options.people_margin_m if mask is not None else None],
        S.PEOPLE_FROM: [params["people_from"]], S.N_POINTS_IN: [n_in], S.N_POINTS_FUSED: [grid.n_points],
        S.N_VOXELS: [len(grid)], S.N_POINTS_OUT: [n_out], S.SCENE_PATH: [target.shown],
        S.MESH_PATH: [summary.mesh_path], S.N_MESH_TRIANGLES: [n_triangles],
        S.PARAMS_JSON: [dataset.canonical_json(params)], S.PARAMS_HASH: [params_hash], S.SECONDS: [seconds],
        S.FUSED_AT: [dataset.utc_now()],
    })
    return summary


def _already_fused(catalog, run, params_hash: str, target) -> SceneSummary | None:
    rows = catalog.query(f"SELECT * FROM {S.SCENES.name} WHERE {S.VIDEO_ID} = ? AND {S.RUN_ID} = ? AND "
                         f"{S.PARAMS_HASH} = ? AND {S.SCENE_PATH} = ?",
                         [run.video_id, run.run_id, params_hash, target.shown]).to_pylist()
    if not rows or not target.exists():
        return None
    r = rows[0]
    return SceneSummary(run.video_id, run.run_id, "skipped", r[S.SCENE_PATH], r[S.N_POINTS_IN], r[S.N_POINTS_FUSED],
                        r[S.N_VOXELS], r[S.N_POINTS_OUT], r[S.SECONDS], r[S.MESH_PATH])
