"""The dashboard pages' JavaScript: draw the data embedded in the page at once, then fetch it again
every `data-refresh` seconds and update the page in place (no reload), and redraw the plots with
`Plotly.react` only when the study changed.

Data only ever reaches the DOM through `textContent` and `href` (of links built here), never
through `innerHTML`, so a worker id or a categorical value cannot inject markup.
"""

COMMON = r"""
"use strict";
const refreshMs = Math.max(100, Number(document.body.dataset.refresh) * 1000);
const root = document.body.dataset.root;
function $(id) { return document.getElementById(id); }
function fmt(v) {
  if (v === null || v === undefined) return "-";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
  return String(v);
}
function pairs(obj) { return Object.keys(obj || {}).map(k => k + "=" + fmt(obj[k])).join(", "); }
function link(href, text) { const a = document.createElement("a"); a.href = href; a.textContent = text; return a; }
function fill(id, items, cells, emptyText, columns) {
  const rows = items.map(item => {
    const tr = document.createElement("tr");
    for (const c of cells(item)) {
      const td = document.createElement("td");
      if (c instanceof Node) td.appendChild(c); else td.textContent = fmt(c);
      tr.appendChild(td);
    }
    return tr;
  });
  if (!rows.length) {
    const tr = document.createElement("tr"), td = document.createElement("td");
    td.colSpan = columns; td.className = "empty"; td.textContent = emptyText;
    tr.appendChild(td); rows.push(tr);
  }
  $(id).replaceChildren(...rows);
}
function showError(message) { const e = $("error"); e.textContent = message || ""; e.hidden = !message; }
function poll(url, render) {
  async function update() {
    let response;
    try {
      response = await fetch(url, {cache: "no-store", headers: {accept: "application/json"}});
    } catch (e) {
      showError("the dashboard server cannot be reached (" + e + ")");
      return;
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok || data.error) {
      showError(data.error || ("the dashboard answered HTTP " + response.status));
      return;
    }
    showError("");
    render(data);
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  }
  async function once() {
    try { await update(); } catch (e) { showError("the page could not be updated (" + e + ")"); }
    setTimeout(once, refreshMs);
  }
  const initial = JSON.parse($("initial").textContent);
  if (initial.error) showError(initial.error); else render(initial);
  setTimeout(once, refreshMs);
}
function generations(s) {
  return s.max_generations ? s.generations_completed + " / " + s.max_generations : String(s.generations_completed);
}
"""

LIST_SCRIPT = COMMON + r"""
function best(s) {
  return s.best_trial_id === null ? "nothing yet" : pairs(s.best_metrics) + " (trial " + s.best_trial_id + ")";
}
poll(root + "api/studies", data => fill("studies", data.studies, s => [
  link(root + "studies/" + encodeURIComponent(s.name), s.name), s.state, generations(s), s.trial_count,
  s.completed, s.by_status.active || 0, best(s), s.active_workers.join(", ") || "-",
], "no studies yet", 8));
"""

STUDY_SCRIPT = COMMON + r"""
const base = root + "api/studies/" + encodeURIComponent(document.body.dataset.study);
let wanted = null, drawn = null, drawing = false;
function render(d) {
  const s = d.summary, metric = d.objective.metric;
  $("state").textContent = s.state; $("state").className = "state-" + s.state;
  $("completed-count").textContent = String(s.completed);
  $("trial-counts").textContent = Object.keys(s.by_status).filter(k => s.by_status[k])
    .map(k => s.by_status[k] + " " + k).join(", ") || "no trials yet";
  $("generations").textContent = generations(s);
  $("progress-bar").style.width = s.progress === null ? "0" : (100 * s.progress).toFixed(1) + "%";
  $("best-metric").textContent = metric + " (" + d.objective.goal + ")";
  $("best-value").textContent = s.best_trial_id === null ? "-" : fmt(s.best_metrics[metric]);
  $("best-trial").textContent = s.best_trial_id === null ? d.message : "trial " + s.best_trial_id;
  $("active-count").textContent = String(d.active.length);
  $("worker-count").textContent = s.active_workers.length + " worker(s): " + (s.active_workers.join(", ") || "-");
  $("nothing-yet").textContent = d.message; $("nothing-yet").hidden = !d.message;
  fill("active", d.active, t => [t.trial_id, t.generation, t.worker_id, t.step === null ? "starting" : t.step,
    pairs(t.metrics), pairs(t.hparams)], "no active trials", 6);
  fill("recent", d.recent, t => [t.trial_id, t.generation, t.status, t.event, t.worker_id, pairs(t.metrics),
    pairs(t.hparams)], d.message || "none", 7);
  wanted = d.version;
  drawPlots();
}
async function drawPlots() {
  if (drawing || !window.Plotly) return;
  drawing = true;
  try {
    while (drawn !== wanted) {
      const version = wanted;
      for (const div of document.querySelectorAll(".plot")) {
        const response = await fetch(base + "/plots/" + encodeURIComponent(div.dataset.plot), {cache: "no-store"});
        const figure = await response.json().catch(() => ({}));
        if (!response.ok) { div.textContent = figure.error || ("HTTP " + response.status); continue; }
        if (!div.classList.contains("js-plotly-plot")) div.textContent = "";
        await Plotly.react(div, figure.data || [], figure.layout || {}, {responsive: true, displaylogo: false});
      }
      drawn = version;
    }
  } catch (e) {
    showError("a plot could not be drawn (" + e + ")");
  } finally {
    drawing = false;
  }
}
poll(base, render);
"""
