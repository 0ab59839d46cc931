// Human3R dataset dashboard: draws the figures the server embedded as JSON, and runs the frame scrubber.
// No inline scripts (the Content-Security-Policy forbids them): every figure is a <script type="application/json">
// block named by a .plot element's data-figure attribute.
"use strict";

const PLOT_CONFIG = { responsive: true, displaylogo: false };

function readJson(id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
}

function drawEmbeddedFigures() {
  for (const div of document.querySelectorAll(".plot[data-figure]")) {
    const fig = readJson(div.dataset.figure);
    if (fig) Plotly.newPlot(div, fig.data, fig.layout, PLOT_CONFIG).then(() => { div.dataset.drawn = "1"; });
  }
}

function setupScrubber() {
  const meta = readJson("scrubber-json");
  const slider = document.getElementById("frame-slider");
  if (!meta || !slider) return;
  const label = document.getElementById("frame-label");
  const view = document.getElementById("frame-view");
  let timer = null, shown = null, pending = null;

  async function show(pos) {
    const idx = meta.frames[pos];
    if (idx === undefined || idx === shown) return;
    pending = idx;
    view.dataset.loaded = "";
    label.textContent = `frame ${idx} · t = ${meta.times[pos].toFixed(2)} s · loading…`;
    const resp = await fetch(`/api/video/${meta.video_id}/frame/${idx}`);
    const body = await resp.json();
    if (pending !== idx) return;  // a later frame was asked for meanwhile
    if (!resp.ok) { label.textContent = `frame ${idx}: ${body.error}`; return; }
    await Promise.all([
      Plotly.react("fig-overlay", body.overlay.data, body.overlay.layout, PLOT_CONFIG),
      Plotly.react("fig-scene", body.scene.data, body.scene.layout, PLOT_CONFIG),
    ]);
    shown = idx;
    label.textContent = `frame ${idx} · t = ${body.timestamp_s.toFixed(2)} s · ${body.n_humans} people · ` +
      `${body.n_points} points`;
    view.dataset.loaded = String(idx);
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(() => show(Number(slider.value)), 120);
  }

  function step(delta) {
    slider.value = Math.min(Math.max(Number(slider.value) + delta, 0), meta.frames.length - 1);
    schedule();
  }

  slider.addEventListener("input", schedule);
  document.getElementById("frame-prev").addEventListener("click", () => step(-1));
  document.getElementById("frame-next").addEventListener("click", () => step(1));
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT" || e.target.tagName === "TEXTAREA") return;
    if (e.key === "ArrowLeft") step(-1);
    if (e.key === "ArrowRight") step(1);
  });
  if (meta.frames.length) show(Number(slider.value));
  else label.textContent = "this video has no processed frames";
}

function setupSqlForm() {
  const text = document.getElementById("sql-text");
  if (!text) return;
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); text.form.submit(); }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setupScrubber();  // first: its request runs while the page's figures are drawn
  drawEmbeddedFigures();
  setupSqlForm();
});
