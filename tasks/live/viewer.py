"""The optional live Rerun stream: each feed message drawn in a Rerun viewer as it is made (`--rerun URL`), or saved
to a .rrd file.

Entities, in the session's world frame (``world`` carries the view coordinates RDF, as `human3r view` does):
``world/camera`` (the camera pose) with ``world/camera/image`` (its pinhole), ``world/people/heads`` (the head
joints, labelled with their track ids) and ``world/people/skeletons`` (the SMPL-X skeletons, with a body model).
People who leave the view disappear with the next frame. Timelines: ``frame`` (frame_idx) and ``time`` (arrival).
"""

from __future__ import annotations

import numpy as np

from storage import schema as S
from tasks.scenes.bodies import NUM_SKELETON
from tasks.scenes.view import SKELETON_CHAINS


class LiveViewer:
    """A Rerun recording fed one message at a time: `target` is a viewer's gRPC URL or a .rrd path."""

    def __init__(self, target: str, camera: str):
        import rerun as rr

        self.rr = rr
        self.rec = rr.RecordingStream("human3r-live", recording_id=camera, make_default=False)
        if target.endswith(".rrd"):
            self.rec.save(target)
        else:
            self.rec.connect_grpc(target)
        self.rec.log("world", rr.ViewCoordinates.RDF, static=True)

    def log(self, message: dict) -> None:
        rr, rec = self.rr, self.rec
        rec.set_time("frame", sequence=message[S.FRAME_IDX])
        rec.set_time("time", timestamp=message["arrival_unix_s"])
        c2w = np.asarray(message[S.CAM_TO_WORLD], dtype=np.float32).reshape(4, 4)
        rec.log("world/camera", rr.Transform3D(translation=c2w[:3, 3], mat3x3=c2w[:3, :3]))
        rec.log("world/camera/image", rr.Pinhole(
            focal_length=[message[S.FX_SRC_PX], message[S.FY_SRC_PX]],
            principal_point=[message[S.CX_SRC_PX], message[S.CY_SRC_PX]],
            resolution=[message[S.WIDTH_PX], message[S.HEIGHT_PX]], image_plane_distance=0.5))
        people = message["people"]
        tracks = [p[S.TRACK_ID] for p in people]
        heads = np.asarray([p[S.HEAD_WORLD_M] for p in people], dtype=np.float32).reshape(-1, 3)
        rec.log("world/people/heads", rr.Points3D(heads, labels=[f"track {t}" for t in tracks], class_ids=tracks,
                                                  radii=0.05, show_labels=True))
        strips, ids = [], []
        for p in people:
            if p[S.JOINTS_WORLD_M] is not None:
                joints = np.asarray(p[S.JOINTS_WORLD_M], dtype=np.float32)[:NUM_SKELETON]
                strips += [joints[chain] for chain in SKELETON_CHAINS]
                ids += [p[S.TRACK_ID]] * len(SKELETON_CHAINS)
        rec.log("world/people/skeletons", rr.LineStrips3D(strips, class_ids=ids, radii=0.01))

    def close(self) -> None:
        self.rec.flush()
        self.rec.disconnect()
