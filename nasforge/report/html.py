"""The experiment page as HTML: the live dashboard's (plotly served beside it, data fetched) and the
self-contained report (everything inline: plotly and the data gzip-compressed and base64-encoded,
unpacked by the browser's own ``DecompressionStream``, so the file stays small and needs no network
and no server)."""

from __future__ import annotations

import base64
import gzip
import json
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Any, Dict, Optional

ASSETS = Path(__file__).with_name("assets")

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>{css}</style>
{head}
</head><body>
<header><h1>nasforge</h1><div id="experiments"></div><div class="status" id="status"></div></header>
<nav></nav>
<main>
<section class="view" id="view-trials"></section><section class="view" id="view-progress"></section>
<section class="view" id="view-workers"></section><section class="view" id="view-pareto"></section>
<section class="view" id="view-arch"></section><section class="view" id="view-learning"></section>
<section class="view" id="view-importance"></section><section class="view" id="view-final"></section>
<section class="view" id="view-benchmark"></section>
</main>
{body}
<script>{js}</script>
</body></html>
"""


def plotly_js_path() -> Path:
    """plotly.js as the plotly package ships it (offline; the version pinned by the package)."""
    try:
        import plotly
    except ImportError:
        raise ValueError("the dashboard and the report draw with plotly, which is not installed: "
                         "pip install 'nasforge[dashboard]' (or pip install plotly)") from None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise ValueError(f"the plotly package has no plotly.min.js at {path}; reinstall plotly")
    return path


@lru_cache(maxsize=1)
def _plotly_gz_b64() -> str:
    return base64.b64encode(gzip.compress(plotly_js_path().read_bytes(), 9, mtime=0)).decode("ascii")


def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def _json_for_script(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def live_page(title: str, interval_ms: int = 2000) -> str:
    boot = {"mode": "live", "interval": interval_ms}
    return _PAGE.format(title=escape(title), css=_asset("page.css"),
                        head='<script src="plotly.min.js"></script>'
                             f"<script>window.NF_BOOT = {_json_for_script(boot)};</script>",
                        body="", js=_asset("page.js"))


def report_page(title: str, experiments: list, benchmark: Optional[Dict[str, Any]] = None) -> str:
    """One file with every byte it needs."""
    payload = json.dumps({"experiments": experiments, "benchmark": benchmark}, separators=(",", ":"),
                         allow_nan=False).encode("utf-8")
    data = base64.b64encode(gzip.compress(payload, 6, mtime=0)).decode("ascii")
    body = (f'<script id="plotly-gz" type="application/octet-stream">{_plotly_gz_b64()}</script>\n'
            f'<script id="data-gz" type="application/octet-stream">{data}</script>')
    return _PAGE.format(title=escape(title), css=_asset("page.css"),
                        head=f"<script>window.NF_BOOT = {_json_for_script({'mode': 'report'})};</script>",
                        body=body, js=_asset("page.js"))
