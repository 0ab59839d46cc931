"""3D and 4D outputs of a video (`human3r fuse`, `human3r export`, `human3r view`, flow `fuse-scenes`).

fuse (stored world points -> a fused, cleaned point cloud and the `scenes` table) with people (leaving the people's
points out); bodies (a live run's people and their posed SMPL-X bodies), rig (SMPL-X as a rigged character), export
(GLB per video), bvh (BVH per track), view (a Rerun recording); outfiles (where exported files go); stages (Prefect
tasks).
"""
