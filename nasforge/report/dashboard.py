"""``nasforge dashboard``'s server: the standard library's HTTP server on loopback.

It only reads. Each store is opened read-only once and kept; each poll of ``/api/version`` asks
it one aggregate query (well under a millisecond; no lock taken, so a search never waits for it).
Only when that answer changes does ``/api/data`` re-read the trials. The costlier parts (Pareto
fronts and hypervolume, the controller's policy over its stored states, decision importance) are
redone at most every ``heavy_every`` seconds while the store changes, at once when it has been
quiet for a few seconds, and a stored policy already evaluated is never evaluated again. The
process lowers its own priority, so on a busy machine the search it watches comes first.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .html import live_page, plotly_js_path


QUIET_S = 3.0  # a store unchanged this long is not being searched right now


class Followed:
    """One experiment as the dashboard follows it: its last answer and what it has cached."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.cache: Dict[str, Any] = {}
        self.seen: Optional[tuple] = None  # fingerprint at the last version check
        self.data: Optional[Dict[str, Any]] = None
        self.data_fp: Optional[tuple] = None
        self.heavy: Dict[str, Any] = {}
        self.heavy_fp: Optional[tuple] = None
        self.heavy_at = 0.0  # set when the first data is read: from then the costly views wait
        self.changed_at = 0.0  # when the fingerprint last changed
        self.error: Optional[str] = None
        self.store = None
        self.inode: Optional[int] = None

    def open(self):
        """The experiment's store, opened read-only once and kept (a poll then costs one query);
        opened again when the file was replaced (a search that started over) or failed."""
        from .views import open_readonly
        from ..search import store_path

        try:
            inode = os.stat(store_path(self.path)).st_ino
        except OSError:
            inode = None
        if self.store is not None and inode != self.inode:
            self.close()
        if self.store is None:
            self.store = open_readonly(self.path)
            self.inode = inode
        return self.store

    def heavy_due(self, now: float, every: float) -> bool:
        """The costly views are stale and may be redone: ``every`` seconds after they last were,
        or at once when the store has been quiet for a few seconds (a finished or paused search),
        so that a running search shares its machine with them as little as possible."""
        return self.heavy_fp != self.seen and (now - self.heavy_at >= every or now - self.changed_at >= QUIET_S)

    def close(self) -> None:
        if self.store is not None:
            try:
                self.store.close()
            finally:
                self.store = None

    def fingerprint(self):
        import sqlite3

        from .views import NothingToShow, fingerprint
        from ..store import StoreError

        try:
            fp = fingerprint(self.open())
            self.error = None
            return fp
        except (NothingToShow, StoreError, sqlite3.DatabaseError) as exc:
            self.close()
            self.error = str(exc)
            return ("error", self.error)


class Dashboard:
    """What the handler asks: the version token and the data of every followed experiment."""

    def __init__(self, experiments: Sequence[Path], heavy_every: float = 10.0):
        self.followed = [Followed(p) for p in experiments]
        self.heavy_every = heavy_every
        self.lock = threading.Lock()
        self._body: Optional[bytes] = None
        self._body_token: Optional[str] = None

    def version(self) -> str:
        with self.lock:
            parts = []
            now = time.time()
            for f in self.followed:
                fp = f.fingerprint()
                if fp != f.seen:
                    f.changed_at = now
                f.seen = fp
                if f.error:
                    parts.append(repr(fp))
                    continue
                heavy = "fresh" if f.heavy_fp == fp else ("due" if f.heavy_due(now, self.heavy_every) else "stale")
                parts.append(f"{fp}:{heavy}:{f.data_fp == fp}")
            return str(abs(hash("|".join(parts))))

    def body(self) -> bytes:
        token = self.version()
        with self.lock:
            if self._body is not None and token == self._body_token:
                return self._body
            payload = [self._one(f) for f in self.followed]
            self._body = json.dumps({"experiments": payload}, separators=(",", ":"), allow_nan=False).encode()
            self._body_token = token
            return self._body

    def drawing(self, index: int, arch: str) -> Optional[bytes]:
        """One architecture's drawing and description, from the trials last sent (None: unknown)."""
        from .views import architecture_drawings

        with self.lock:
            if not 0 <= index < len(self.followed):
                return None
            f = self.followed[index]
            rows = [r for r in (f.data or {}).get("trials", []) if r["arch"] == arch][:1]
            known = f.cache.get("config")
            if not rows or known is None:
                return None
            drawn = architecture_drawings(known[2], rows, f.cache.setdefault("drawings", {}))[arch]
            return json.dumps(drawn).encode()

    def _one(self, f: Followed) -> Dict[str, Any]:
        from .views import NothingToShow, experiment_data
        from ..store import StoreError

        if f.error:
            return {"name": f.path.name, "path": str(f.path), "error": f.error}
        now = time.time()
        # the first answer is the quick one (the trials at once); the policy and importance follow
        heavy = f.data is not None and f.heavy_due(now, self.heavy_every)
        if f.data is not None and f.data_fp == f.seen and not heavy:
            return f.data
        try:
            # drawings are asked for one at a time (/api/drawing): they are most of the bytes
            data = experiment_data(f.path, heavy=heavy, drawings=False, cache=f.cache, store=f.open())
        except (NothingToShow, StoreError, ValueError) as exc:
            f.close()
            return {"name": f.path.name, "path": str(f.path), "error": str(exc)}
        if heavy:
            f.heavy = {k: data[k] for k in ("pareto", "learning", "importance")}
            f.heavy_fp, f.heavy_at = f.seen, now
        elif f.data is None:
            f.heavy_at = now  # the first answer: the costly views follow when due (heavy_due)
        data.update(f.heavy)
        f.data, f.data_fp = data, f.seen
        return data


def _handler(dashboard: Dashboard, page: bytes, plotly_path: Path):
    plotly_bytes = plotly_path.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - quiet: a poll every two seconds is no news
            pass

        def _send(self, status: int, body: bytes, kind: str, cache: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "max-age=86400" if cache else "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802 - the standard library's name
            route = self.path.split("?")[0]
            try:
                if route in ("/", "/index.html"):
                    self._send(200, page, "text/html; charset=utf-8")
                elif route == "/plotly.min.js":
                    self._send(200, plotly_bytes, "application/javascript", cache=True)
                elif route == "/api/version":
                    self._send(200, dashboard.version().encode(), "text/plain")
                elif route == "/api/data":
                    self._send(200, dashboard.body(), "application/json")
                elif route == "/api/drawing":
                    from urllib.parse import parse_qs, urlsplit

                    query = parse_qs(urlsplit(self.path).query)
                    try:
                        index = int(query.get("e", ["-1"])[0])
                    except ValueError:
                        index = -1
                    body = dashboard.drawing(index, query.get("arch", [""])[0])
                    if body is None:
                        self._send(404, b"no such architecture", "text/plain")
                    else:
                        self._send(200, body, "application/json")
                else:
                    self._send(404, b"not found", "text/plain")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the browser went away mid-answer

    return Handler


def make_server(experiments: Sequence[Path], host: str = "127.0.0.1", port: int = 8765,
                interval: float = 2.0, heavy_every: float = 10.0) -> HTTPServer:
    """A server ready to ``serve_forever``; a port in use is a ValueError that says what to do."""
    dashboard = Dashboard(experiments, heavy_every)
    title = "nasforge: " + ", ".join(Path(p).name or str(p) for p in experiments)
    page = live_page(title, int(interval * 1000)).encode()
    # one thread answers every request: each store's connection is kept open between polls, and
    # SQLite connections belong to the thread that made them (answers take milliseconds)
    server_class = HTTPServer
    if ":" in host:  # an IPv6 address such as ::1
        import socket

        server_class = type("HTTPServer6", (HTTPServer,), {"address_family": socket.AF_INET6})
    try:
        server = server_class((host, port), _handler(dashboard, page, plotly_js_path()))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ValueError(f"port {port} on {host} is already in use (another dashboard?); pass --port N for "
                             "another one, or --port 0 for any free port") from None
        if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, OSError) and "resolve" in str(exc):
            raise ValueError(f"cannot listen on {host}: no such address on this machine") from None
        raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    server.dashboard = dashboard  # type: ignore[attr-defined]
    return server


def lower_priority(step: int = 10) -> None:
    """A viewer should never slow down what it views."""
    try:
        os.nice(step)
    except (AttributeError, OSError):
        pass


def warm_up() -> None:
    """Pay the imports (torch, scikit-learn: seconds of CPU) before the page is announced, not
    while a search that has just started is running beside the first poll."""
    import sklearn.ensemble  # noqa: F401 - importance
    import torch

    from ..stored_config import read_config  # noqa: F401 - the store, the config
    from ..strategies.controller import Controller  # noqa: F401 - the policy view

    torch.set_num_threads(1)


def url_of(server: HTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(experiments: List[Path], host: str, port: int, interval: float, heavy_every: float,
          announce) -> None:
    server = make_server(experiments, host, port, interval, heavy_every)
    lower_priority()
    warm_up()
    announce(url_of(server))
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
