"""Plotly figures as plain dicts (``{"data": [...], "layout": {...}}``), drawn in the browser by the bundled plotly.js.

Plain dicts rather than ``plotly.graph_objects``: the same JSON, without the per-figure validation cost on every page
load (the tests validate every figure with ``plotly.graph_objects.Figure``). Positions are the dataset's: world frame
x right, y down, z forward, metres; the top-down view is the x-z plane seen from above (y down is into the page).
"""

from __future__ import annotations

import numpy as np

from dashboards.geometry import BODY_PARENTS

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f")
CAMERA = "#222222"
FONT = {"family": "DejaVu Sans, Arial, sans-serif", "size": 12}


def track_colour(track_id: int) -> str:
    return PALETTE[int(track_id) % len(PALETTE)]


def _r(values, digits: int = 3) -> list:
    """Rounded plain list (JSON-friendly, smaller pages)."""
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def _layout(title: str, **extra) -> dict:
    layout = {"title": {"text": title, "font": {"size": 14}}, "font": FONT, "margin": {"l": 55, "r": 15, "t": 40,
              "b": 45}, "paper_bgcolor": "white", "plot_bgcolor": "#fafafa", "legend": {"orientation": "h"}}
    layout.update(extra)
    return layout


def empty(title: str, message: str) -> dict:
    """A figure that says why it has nothing to show."""
    return {"data": [], "layout": _layout(title, xaxis={"visible": False}, yaxis={"visible": False}, annotations=[
        {"text": message, "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}])}


# ---------------------------------------------------------------------------------------------------- overview
def runs_over_time(bucket: str, rows: list[dict]) -> dict:
    """Stacked bars: committed runs per time bucket, one colour per model version."""
    if not rows:
        return empty("Runs over time", "no runs committed yet")
    models = sorted({r["model"] for r in rows})
    data = [{"type": "bar", "name": m, "x": [r["t"].isoformat() for r in rows if r["model"] == m],
             "y": [r["n"] for r in rows if r["model"] == m], "marker": {"color": PALETTE[i % len(PALETTE)]}}
            for i, m in enumerate(models)]
    return {"data": data, "layout": _layout(f"Runs committed per {bucket} (UTC)", barmode="stack",
                                            xaxis={"type": "date"}, yaxis={"title": {"text": "runs"}})}


# ---------------------------------------------------------------------------------------------------- one video
def top_down(camera_xyz: np.ndarray, tracks: dict[int, np.ndarray], scene_xz: np.ndarray) -> dict:
    """Camera path and every track's head path in the world frame, seen from above (x across, z forward)."""
    data = []
    if len(scene_xz):
        data.append({"type": "scatter", "mode": "markers", "name": "scene points", "x": _r(scene_xz[:, 0], 2),
                     "y": _r(scene_xz[:, 1], 2), "marker": {"size": 2, "color": "#c8c8c8"}, "hoverinfo": "skip"})
    if len(camera_xyz):
        data.append({"type": "scatter", "mode": "lines", "name": "camera", "x": _r(camera_xyz[:, 0]),
                     "y": _r(camera_xyz[:, 2]), "line": {"color": CAMERA, "width": 3}})
        data.append({"type": "scatter", "mode": "markers", "name": "camera start", "showlegend": False,
                     "x": _r(camera_xyz[:1, 0]), "y": _r(camera_xyz[:1, 2]),
                     "marker": {"symbol": "square", "size": 10, "color": CAMERA}})
    for track, heads in tracks.items():
        data.append({"type": "scatter", "mode": "lines", "name": f"track {track}", "x": _r(heads[:, 0]),
                     "y": _r(heads[:, 2]), "line": {"color": track_colour(track), "width": 2}})
    if not data:
        return empty("Top-down view (world frame)", "no camera poses or people in this video")
    return {"data": data, "layout": _layout(
        "Top-down view (world frame): camera and head paths", xaxis={"title": {"text": "x (m, right)"}},
        yaxis={"title": {"text": "z (m, forward)"}, "scaleanchor": "x", "scaleratio": 1})}


def people_per_frame(timestamp_s: np.ndarray, n_humans: np.ndarray) -> dict:
    if not len(timestamp_s):
        return empty("People per frame", "no frames")
    return {"data": [{"type": "scatter", "mode": "lines", "name": "people", "x": _r(timestamp_s),
                      "y": np.asarray(n_humans).tolist(), "line": {"shape": "hv", "color": PALETTE[0]}}],
            "layout": _layout("People per frame", xaxis={"title": {"text": "time (s)"}},
                              yaxis={"title": {"text": "people"}, "rangemode": "tozero", "dtick": 1})}


def speed_histogram(speeds_mps: np.ndarray) -> dict:
    speeds = np.asarray(speeds_mps, dtype=np.float64)
    speeds = speeds[np.isfinite(speeds)]
    if not len(speeds):
        return empty("Head speed", "no track was seen in two frames")
    return {"data": [{"type": "histogram", "name": "steps", "x": _r(speeds), "nbinsx": 40,
                      "marker": {"color": PALETTE[2]}}],
            "layout": _layout(f"Head speed between frames ({len(speeds):,} steps)", bargap=0.05,
                              xaxis={"title": {"text": "speed (m/s)"}}, yaxis={"title": {"text": "steps"}})}


def track_quality(rows: list[dict], metrics: tuple[str, ...], key: str) -> list[dict]:
    """One bar chart per metric column of the ``track_quality`` rows that has a value (x: `key`, the track id)."""
    figures = []
    for col in metrics:
        values = [r.get(col) for r in rows]
        if not any(isinstance(v, int | float) for v in values):
            continue
        figures.append({"data": [{"type": "bar", "x": [str(r[key]) for r in rows], "y": values, "name": col,
                                  "marker": {"color": [track_colour(r[key]) for r in rows]}}],
                        "layout": _layout(col, xaxis={"title": {"text": "track"}, "type": "category"}, height=260,
                                          margin={"l": 50, "r": 10, "t": 36, "b": 40})})
    return figures


# ---------------------------------------------------------------------------------------------------- one frame
def frame_overlay(width: int, height: int, image_url: str | None, note: str, people: list[dict]) -> dict:
    """The source frame (or a grey canvas of its size) with each person's projected joints and head, in source
    pixels. `people`: dicts with track_id, head_uv (2,) or None, joints_uv (J, 2)."""
    data = []
    for p in people:
        colour = track_colour(p["track_id"])
        if len(p["joints_uv"]):
            uv = np.asarray(p["joints_uv"])
            data.append({"type": "scatter", "mode": "markers", "name": f"track {p['track_id']} joints",
                         "x": _r(uv[:, 0], 1), "y": _r(uv[:, 1], 1),
                         "marker": {"size": 4, "color": colour, "line": {"width": 0.5, "color": "white"}}})
        if p["head_uv"] is not None:
            data.append({"type": "scatter", "mode": "markers+text", "name": f"track {p['track_id']}",
                         "x": _r([p["head_uv"][0]], 1), "y": _r([p["head_uv"][1]], 1),
                         "text": [f"track {p['track_id']}"], "textposition": "top center",
                         "textfont": {"color": colour, "size": 13},
                         "marker": {"size": 14, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": colour}}})
    layout = _layout("Source frame with projected heads and joints (source pixels)",
                     xaxis={"range": [0, width], "showgrid": False, "zeroline": False, "constrain": "domain"},
                     yaxis={"range": [height, 0], "showgrid": False, "zeroline": False, "scaleanchor": "x",
                            "scaleratio": 1, "constrain": "domain"}, showlegend=False, plot_bgcolor="#3a3a3a")
    if image_url:
        layout["images"] = [{"source": image_url, "xref": "x", "yref": "y", "x": 0, "y": 0, "sizex": width,
                             "sizey": height, "sizing": "stretch", "layer": "below", "xanchor": "left",
                             "yanchor": "top"}]
    if note:
        layout["annotations"] = [{"text": note, "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.5,
                                  "y": 0.02, "font": {"color": "white"}, "bgcolor": "rgba(0,0,0,0.6)"}]
    return {"data": data, "layout": layout}


def scene_3d(points: dict[str, np.ndarray], people: list[dict], cam_to_world: np.ndarray) -> dict:
    """That frame's scene points (their colours), bodies (joints, body bones) and heads, and the camera, in the
    world frame. `people`: dicts with track_id, head (3,), joints (J, 3) or empty."""
    data = []
    xyz = points["xyz"]
    if len(xyz):
        rgb = points["rgb"]
        data.append({"type": "scatter3d", "mode": "markers", "name": "scene points", "x": _r(xyz[:, 0]),
                     "y": _r(xyz[:, 1]), "z": _r(xyz[:, 2]), "hoverinfo": "skip",
                     "marker": {"size": 2, "color": [f"rgb({r},{g},{b})" for r, g, b in rgb.tolist()]}})
    for p in people:
        colour = track_colour(p["track_id"])
        joints = np.asarray(p["joints"], dtype=np.float64).reshape(-1, 3)
        if len(joints) >= len(BODY_PARENTS):
            xs, ys, zs = [], [], []
            for child, parent in enumerate(BODY_PARENTS):
                if parent >= 0:
                    for axis, out in zip(range(3), (xs, ys, zs)):
                        out.extend([round(float(joints[parent, axis]), 3), round(float(joints[child, axis]), 3),
                                    None])
            data.append({"type": "scatter3d", "mode": "lines", "name": f"track {p['track_id']} body", "x": xs,
                         "y": ys, "z": zs, "line": {"color": colour, "width": 5}})
        if len(joints):
            data.append({"type": "scatter3d", "mode": "markers", "name": f"track {p['track_id']} joints",
                         "x": _r(joints[:, 0]), "y": _r(joints[:, 1]), "z": _r(joints[:, 2]),
                         "marker": {"size": 2, "color": colour}, "showlegend": False})
        head = np.asarray(p["head"], dtype=np.float64)
        data.append({"type": "scatter3d", "mode": "markers+text", "name": f"track {p['track_id']}",
                     "x": _r(head[:1]), "y": _r(head[1:2]), "z": _r(head[2:3]), "text": [f"track {p['track_id']}"],
                     "marker": {"size": 6, "color": colour}})
    c2w = np.asarray(cam_to_world, dtype=np.float64).reshape(4, 4)
    centre, forward = c2w[:3, 3], c2w[:3, 3] + c2w[:3, 2] * 0.5
    data.append({"type": "scatter3d", "mode": "lines+markers", "name": "camera (0.5 m forward)",
                 "x": _r([centre[0], forward[0]]), "y": _r([centre[1], forward[1]]), "z": _r([centre[2], forward[2]]),
                 "line": {"color": CAMERA, "width": 6}, "marker": {"size": [6, 2], "color": CAMERA}})
    axis = {"backgroundcolor": "#f4f4f4", "showbackground": True}
    return {"data": data, "layout": _layout(
        "That frame in 3D (world frame, metres)", showlegend=False, uirevision="keep",
        scene={"aspectmode": "data", "xaxis": {**axis, "title": {"text": "x"}}, "yaxis": {**axis, "title": {"text":
               "y (down)"}}, "zaxis": {**axis, "title": {"text": "z"}},
               "camera": {"up": {"x": 0, "y": -1, "z": 0}, "eye": {"x": 0.6, "y": -1.2, "z": -1.6}}})}


# ---------------------------------------------------------------------------------------------------- models
def sequence_bars(title: str, unit: str, by_model: dict[str, dict[str, float]]) -> dict:
    """Grouped bars: one metric per sequence (x), one bar per model configuration (`by_model`: label ->
    {sequence: value}); NaN values (evaluated, undefined) are left out."""
    sequences = sorted({s for values in by_model.values() for s in values})
    data = []
    for i, (label, values) in enumerate(by_model.items()):
        xs = [s for s in sequences if s in values and values[s] is not None and np.isfinite(values[s])]
        data.append({"type": "bar", "name": label, "x": xs, "y": _r([values[s] for s in xs], 4),
                     "marker": {"color": PALETTE[i % len(PALETTE)]}})
    if not any(d["x"] for d in data):
        return empty(title, "no finite value: every sequence was excluded (see the table)")
    return {"data": data, "layout": _layout(title, barmode="group", height=320,
                                            xaxis={"type": "category"},
                                            yaxis={"title": {"text": unit}, "rangemode": "tozero"})}
