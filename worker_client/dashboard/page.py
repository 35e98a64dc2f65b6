"""The dashboard's HTML, as string constants, so the package needs no data files and no template
engine.

Every value that comes from a study (names, worker ids, hyperparameter values) is put into the
page in one of two safe ways: `html.escape` for text and attributes, or `embed_json` for the
initial data, which the page's script then writes into the DOM with `textContent` only.
"""

from __future__ import annotations

import html
import json
from typing import Any

from worker_client.dashboard.script import LIST_SCRIPT, STUDY_SCRIPT

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2329;background:#f5f6f8}
header{background:#1d2329;color:#fff;padding:.7rem 1.5rem;display:flex;gap:1rem;align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:600}header .source{color:#aab4be;font-size:.85rem}
main{padding:1rem 1.5rem;max-width:1400px}h1{font-size:1.4rem;margin:.2rem 0 1rem}
h2{font-size:1.05rem;margin:1.2rem 0 .5rem}
table{border-collapse:collapse;background:#fff;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #e3e6ea;vertical-align:top}
th{background:#eef0f3;font-weight:600}td.empty{color:#6b7580;font-style:italic}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}
.card{background:#fff;border:1px solid #e3e6ea;border-radius:6px;padding:.6rem 1rem;min-width:10rem}
.card .label{color:#6b7580;font-size:.8rem}.card .value{font-size:1.5rem;font-weight:600}
.card .detail{color:#6b7580;font-size:.8rem}
.bar{background:#e3e6ea;border-radius:3px;height:6px;margin-top:.3rem}
.bar div{background:#2a7ab0;height:6px;border-radius:3px}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:.8rem}
.plot{background:#fff;border:1px solid #e3e6ea;border-radius:6px;min-height:360px}
.banner{background:#fdecea;color:#8a1c13;border:1px solid #f5c2bd;border-radius:6px;padding:.6rem 1rem;margin:.5rem 0}
.notice{color:#6b7580;font-style:italic}.status{color:#6b7580;font-size:.8rem;margin-left:auto}
.state-active{color:#1a7f37}.state-paused{color:#9a6700}.state-completed{color:#57606a}
"""

LIST_BODY = """
<h1>Studies</h1>
{banner}
<table><thead><tr><th>study</th><th>state</th><th>generations</th><th>trials</th><th>completed</th>
<th>active</th><th>best</th><th>workers</th></tr></thead><tbody id="studies"></tbody></table>
"""

STUDY_BODY = """
<h1>Study <span id="study-name">{name}</span> <small id="state"></small></h1>
{banner}
<div class="cards">
 <div class="card"><div class="label">completed trials</div><div class="value" id="completed-count">0</div>
  <div class="detail" id="trial-counts"></div></div>
 <div class="card"><div class="label">generations completed</div><div class="value" id="generations">0</div>
  <div class="bar"><div id="progress-bar" style="width:0"></div></div></div>
 <div class="card"><div class="label">best <span id="best-metric"></span></div>
  <div class="value" id="best-value">-</div><div class="detail" id="best-trial"></div></div>
 <div class="card"><div class="label">active trials</div><div class="value" id="active-count">0</div>
  <div class="detail" id="worker-count"></div></div>
</div>
<p id="nothing-yet" class="notice" hidden></p>
<h2>Active trials</h2>
<table><thead><tr><th>trial</th><th>generation</th><th>worker</th><th>step</th><th>last metrics</th>
<th>hyperparameters</th></tr></thead><tbody id="active"></tbody></table>
<h2>Plots</h2>
<div class="plots">{plots}</div>
<h2>Recently finished trials</h2>
<table><thead><tr><th>trial</th><th>generation</th><th>status</th><th>event</th><th>worker</th><th>metrics</th>
<th>hyperparameters</th></tr></thead><tbody id="recent"></tbody></table>
"""


def embed_json(value: Any) -> str:
    """JSON safe inside a `<script type="application/json">` element: `<`, `>` and `&` are escaped
    as `\\u003c`…, so a worker id like `</script><script>…` cannot end the element."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def banner(error: str = "") -> str:
    """The error banner, filled in already when the first read failed (visible without script)."""
    return f'<div id="error" class="banner"{"" if error else " hidden"}>{html.escape(error)}</div>'


def document(title: str, body: str, *, source: str, data: dict[str, str], initial: dict[str, Any], script: str,
             head: str = "") -> str:
    """A whole page. `data` becomes `data-*` attributes of <body>, which is how the script learns
    its settings without any value being spliced into JavaScript source."""
    attributes = "".join(f' data-{key}="{html.escape(value)}"' for key, value in data.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{html.escape(title)}</title><link rel="icon" href="data:,"><style>{STYLE}</style>{head}</head>
<body{attributes}>
<header><a href="{html.escape(data.get("root", "./"))}">PBT dashboard</a>
<span class="source">{html.escape(source)}</span><span class="status" id="updated"></span></header>
<main>{body}</main>
<script type="application/json" id="initial">{embed_json(initial)}</script>
{f"<script>{script}</script>" if script else ""}
</body></html>
"""


def list_page(*, source: str, refresh_seconds: float, initial: dict[str, Any]) -> str:
    """The study list; `initial` is `{"studies": [...]}` or `{"error": message}`."""
    body = LIST_BODY.format(banner=banner(initial.get("error", "")))
    return document("Studies - PBT dashboard", body, source=source, initial=initial, script=LIST_SCRIPT,
                    data={"root": "./", "refresh": f"{refresh_seconds:g}"})


def study_page(name: str, plots: tuple[str, ...], *, source: str, refresh_seconds: float,
               initial: dict[str, Any]) -> str:
    """One study's page; `initial` is the study JSON or `{"error": message}`."""
    divs = "".join(f'<div class="plot" id="plot-{html.escape(p)}" data-plot="{html.escape(p)}"></div>' for p in plots)
    body = STUDY_BODY.format(name=html.escape(name), plots=divs, banner=banner(initial.get("error", "")))
    head = '<script src="../static/plotly.min.js"></script>'
    return document(f"{name} - PBT dashboard", body, source=source, initial=initial, script=STUDY_SCRIPT,
                    head=head, data={"root": "../", "study": name, "refresh": f"{refresh_seconds:g}"})


def message_page(title: str, message: str, *, source: str, root: str = "./") -> str:
    """A page that only says what went wrong (an unknown study, a refused token)."""
    body = f'<h1>{html.escape(title)}</h1>{banner(message)}<p><a href="{html.escape(root)}">all studies</a></p>'
    return document(f"{title} - PBT dashboard", body, source=source, initial={}, script="",
                    data={"root": root})
