"""Named SQL recipes over the catalog: the README shows them, `human3r demo` runs them, tests keep them working."""

from __future__ import annotations

RECIPES: dict[str, tuple[str, str]] = {
    "overview": (
        "What is in the dataset: one line per video",
        "SELECT v.video_id, round(v.duration_s, 1) AS duration_s, r.n_frames, r.n_tracks, r.n_points, "
        "r.model_version FROM videos v JOIN runs r USING (video_id) ORDER BY v.video_id",
    ),
    "crowded_frames": (
        "Frames with at least 3 people",
        "SELECT video_id, frame_idx, round(timestamp_s, 2) AS t_s, n_humans FROM frames WHERE n_humans >= 3 "
        "ORDER BY n_humans DESC, video_id, frame_idx LIMIT 10",
    ),
    "fastest_walkers": (
        "Fastest walkers (mean head speed, tracks seen for at least a second)",
        "SELECT video_id, track_id, round(mean_speed_mps, 2) AS speed_mps, round(length_m, 1) AS length_m "
        "FROM track_speed() WHERE duration_s >= 1 ORDER BY speed_mps DESC LIMIT 5",
    ),
    "near_camera_path": (
        "People who came within 1.5 m of where the camera went",
        "SELECT h.video_id, h.track_id, round(min(dist3(h.head_world_m, c.center_m)), 2) AS closest_m "
        "FROM humans h JOIN camera_path() c USING (video_id) GROUP BY ALL HAVING closest_m < 1.5 "
        "ORDER BY closest_m LIMIT 10",
    ),
    "closest_pairs": (
        "Closest pairs of people in the same frame",
        "SELECT video_id, frame_idx, track_a, track_b, round(distance_m, 2) AS distance_m "
        "FROM person_distances() ORDER BY distance_m LIMIT 5",
    ),
    "failures": (
        "Videos that failed, and why",
        "SELECT source_uri, stage, error_type, message FROM failures ORDER BY failed_at DESC",
    ),
    "clean_tracks": (
        "Long, steady tracks worth labelling, steadiest first (track_quality: `human3r labels score`)",
        "SELECT video_id, track_id, n_frames, round(jitter_mps3) AS jitter_mps3, round(max_jump_m, 2) AS jump_m, "
        "round(foot_sliding_mps, 2) AS sliding_mps, round(ground_penetration_m, 3) AS penetration_m "
        "FROM track_quality WHERE n_frames >= 60 AND visible_frac >= 0.9 AND detection_score_mean >= 0.5 "
        "ORDER BY jitter_mps3 LIMIT 10",
    ),
    "label_yield": (
        "Per video: tracks scored, and how many pass a typical labelling filter",
        "SELECT video_id, count(*) AS tracks, count(*) FILTER (WHERE jitter_mps3 < 200 AND betas_abs_max < 3 "
        "AND coalesce(ground_penetration_m, 0) < 0.05) AS clean_tracks, round(avg(jitter_mps3)) AS mean_jitter "
        "FROM track_quality GROUP BY video_id ORDER BY clean_tracks DESC, video_id LIMIT 10",
    ),
    "unscored_videos": (
        "Videos with people whose live run has no track_quality rows yet (run `human3r labels score`)",
        "SELECT video_id, n_tracks, finished_at FROM runs WHERE n_tracks > 0 AND run_id NOT IN "
        "(SELECT run_id FROM track_quality) ORDER BY finished_at DESC",
    ),
}

# Recipes that answer only once a derived table has rows (the recipe test checks they run everywhere, and answer
# where that table is filled): recipe -> the table and the command that fills it.
NEEDS: dict[str, tuple[str, str]] = {
    "clean_tracks": ("track_quality", "human3r labels score"),
    "label_yield": ("track_quality", "human3r labels score"),
}
