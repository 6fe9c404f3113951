"""Rows of a chain-cnn benchmark: a ``nasforge tabulate`` table file, or (while one is being
built) the COMPLETE trials of its run's SQLite store, read-only. Shared by the estimator benchmarks."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Dict, List, Tuple

from nasforge.tables.table_file import read_table


def load_rows(path: str | Path) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """(space settings with ``name``, rows with ``tokens``, ``val_acc``, ``test_acc``, ...)."""
    path = Path(path)
    if path.is_dir():
        path = path / "trials.sqlite"
    if path.suffix == ".sqlite":
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            config = json.loads(conn.execute("select value from meta where key='config'").fetchone()[0])
            rows = []
            for tokens, metrics in conn.execute("select tokens, metrics from trials where state='COMPLETE' "
                                                "order by number"):
                m = json.loads(metrics)
                if "test_acc" in m:
                    rows.append({"tokens": json.loads(tokens), **m})
        finally:
            conn.close()
        space = dict(config["space"])
        if space.get("name") == "chain-cnn":
            space.setdefault("dims", 1)
        return space, rows
    header, rows = read_table(path)
    return dict(header["space"]), rows
