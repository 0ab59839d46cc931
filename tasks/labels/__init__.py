"""Pseudo-labelled datasets from the archive (`human3r labels`, flow `build-labels`).

quality (the `track_quality` metrics) and ground (the scene's ground plane, the Z-up export frame); build (select
tracks by SQL, cut clips, split by video, export), amass (SMPL-X .npz per clip), rows (per-frame labels), images
(JPEG frames or crops), card (the dataset card), options (a build's options, defined once), stages (Prefect tasks).
"""
