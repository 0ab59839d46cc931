"""Where exported files go, and how they get there: next to the dataset under ``ROOT/_exports/`` (local folder or
S3, `storage.schema.EXPORT_DIR`) or at a path the user gives. Never inside a table folder (those are Delta tables).

Writers (Open3D, pygltflib, rerun) write a local file; :meth:`Target.write` hands them a temporary name in the
target's folder (or a local temporary folder for remote targets) and then renames it into place (or uploads it in
one PUT), so a reader never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from storage import schema as S
from storage.fs import Root, open_location


@dataclasses.dataclass(frozen=True)
class Target:
    """One output file: its filesystem, its path there, and how a user sees it (relative to the root, or as given)."""

    fs: object  # pyarrow.fs.FileSystem
    path: str
    shown: str
    is_local: bool

    @classmethod
    def in_root(cls, root: Root, rel: str) -> Target:
        return cls(root.fs, root.path(rel), rel, root.is_local)

    @classmethod
    def at(cls, location: str | os.PathLike) -> Target:
        fs, path = open_location(location)
        local = "://" not in os.fspath(location) or os.fspath(location).startswith("file://")
        return cls(fs, path, path if local else os.fspath(location), local)

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    @property
    def stem(self) -> str:
        return PurePosixPath(self.path).stem

    def sibling(self, name: str) -> Target:
        """A file in the same folder."""
        shown = str(PurePosixPath(self.shown).with_name(name))
        return dataclasses.replace(self, path=str(PurePosixPath(self.path).with_name(name)), shown=shown)

    def child(self, rel: str) -> Target:
        """A file below this target taken as a folder."""
        return dataclasses.replace(self, path=f"{self.path}/{rel}", shown=f"{self.shown}/{rel}")

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(self.path).type != pafs.FileType.NotFound

    @contextlib.contextmanager
    def write(self) -> Iterator[Path]:
        """Yields a local path to write; on success it becomes this target atomically."""
        if self.is_local:
            final = Path(self.path)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(f".{final.stem}.tmp-{uuid.uuid4().hex[:8]}{final.suffix}")
            try:
                yield tmp
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
            return
        with tempfile.TemporaryDirectory(prefix="human3r-export-") as folder:
            tmp = Path(folder) / self.name
            yield tmp
            with open(tmp, "rb") as src, self.fs.open_output_stream(self.path) as dst:
                shutil.copyfileobj(src, dst, length=8 << 20)


def export_dir(root: Root, video_id: str, run_id: str) -> Target:
    """ROOT/_exports/<video_id>/<run_id>: where a run's exports go by default."""
    return Target.in_root(root, S.EXPORT_DIR.format(video_id=video_id, run_id=run_id))


def write_point_cloud(target: Target, cloud) -> None:
    """An ``open3d.t.geometry.PointCloud`` as binary PLY (every point attribute kept)."""
    import open3d as o3d

    with target.write() as tmp:
        if not o3d.t.io.write_point_cloud(str(tmp), cloud, write_ascii=False):
            raise OSError(f"Open3D could not write {target.shown}")


def write_triangle_mesh(target: Target, mesh) -> None:
    """A legacy ``open3d.geometry.TriangleMesh`` as PLY or OBJ (by the target's suffix)."""
    import open3d as o3d

    with target.write() as tmp:
        if not o3d.io.write_triangle_mesh(str(tmp), mesh, write_ascii=False, write_vertex_normals=False):
            raise OSError(f"Open3D could not write {target.shown}")
