"""Creating a store file whole (built beside its name and linked into place) and connecting to it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .errors import StoreError
from .schema import init_schema


class Opening:
    """The part of :class:`~nasforge.store.Store` that creates and connects (uses ``path`` and
    ``_explain``)."""

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _connect_readonly(self) -> sqlite3.Connection:
        """``mode=ro`` sees a running search's latest commits. When it cannot open (no -wal file and no
        right to create the shared-memory index beside the file) no search can be writing either, so
        the file is read as immutable."""
        uri = self.path.resolve().as_uri()
        try:
            conn = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:
            if Path(str(self.path) + "-wal").exists() or not (
                    "readonly" in str(exc) or "unable to open" in str(exc)):
                raise
            conn = sqlite3.connect(uri + "?immutable=1", uri=True, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn

    def _create(self) -> None:
        """Build the new store beside its final name and link it into place, so a crash leaves either
        no store or a whole one (never a file without tables), and a store that another process has
        created meanwhile is never replaced."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the directory of {self.path}: {exc.strerror or exc}") from None
        self._remove_dead_partials()
        partial = self.path.with_name(f"{self.path.name}.new-{os.getpid()}")
        try:
            for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
                leftover.unlink(missing_ok=True)
            conn = sqlite3.connect(str(partial), isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                init_schema(conn)
            finally:
                conn.close()  # checkpoints: the file alone is the whole store
            try:
                os.link(partial, self.path)
            except FileExistsError:
                pass  # another process created it a moment ago: use theirs
            except OSError:  # no hard links here (some network or FAT file systems)
                if not self.path.exists():
                    os.replace(partial, self.path)
        except sqlite3.DatabaseError as exc:
            raise self._explain(exc) from exc
        except OSError as exc:
            raise StoreError(f"cannot create the store {self.path}: {exc.strerror or exc}") from None
        finally:
            partial.unlink(missing_ok=True)

    def _remove_dead_partials(self) -> None:
        """Stores half-built by processes that died (kill -9 during creation); never a live one's."""
        if os.name != "posix":
            return
        for leftover in self.path.parent.glob(f"{self.path.name}.new-*"):
            pid = leftover.name[len(self.path.name) + 5:].split("-")[0]
            if not pid.isdigit():
                continue
            try:
                os.kill(int(pid), 0)
                continue  # alive (or not ours to signal): leave it
            except ProcessLookupError:
                leftover.unlink(missing_ok=True)
            except OSError:
                continue
