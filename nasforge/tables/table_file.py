"""The file format of a benchmark table made by ``nasforge tabulate``: gzipped JSON lines.

Line 1 is a header object::

    {"format": "nasforge-table", "format_version": 1, "nasforge_version": "...",
     "space": {"name": "chain-cnn", "num_layers": 4, "dims": 1}, "decisions": ["L0.op", ...],
     "dataset": {"name": "mnist1d", "fingerprint": "...", "train": 3200, "val": 800, "test": 1000},
     "recipe": {...the [training] settings...}, "seed": 0, "strategy": {...},
     "columns": ["tokens", "val_acc", ...], "rows": 500, "failed": 0, "machine": {...}, "created": "...",
     "experiment": "/abs/path/of/the/tabulate/experiment"}

``failed`` counts budget slots whose final attempt failed (an interrupted attempt that was run
again is not a failure). ``experiment`` (absent from tables of nasforge before it was added)
names the folder whose trials the table holds: ``tabulate --resume`` of that experiment may
rewrite the file, anything else must be told to (``--overwrite``).

Every further line is one architecture: a JSON array in the order of ``columns``; ``tokens`` is
the list of choice indices (canonical: choices the network ignores are 0). Accuracies are
fractions in [0, 1]; ``latency_ms`` is the median wall time of one batch-1 forward pass on one
CPU thread; ``train_seconds`` the wall time of training. Text, compressed, diff-free to rebuild
(the gzip timestamp is fixed), small enough to ship inside the package. Its name ends in
``SUFFIX`` (``.jsonl.gz``), which says what it holds.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

FORMAT = "nasforge-table"
FORMAT_VERSION = 1
COLUMNS: Tuple[str, ...] = ("tokens", "val_acc", "val_acc_last", "test_acc", "params", "flops",
                            "latency_ms", "train_seconds", "seed", "trial")
REQUIRED: Tuple[str, ...] = ("tokens", "val_acc", "test_acc", "params", "flops", "latency_ms", "train_seconds")
HEADER_KEYS: Tuple[str, ...] = ("space", "decisions", "dataset", "recipe", "columns", "rows")
SUFFIX = ".jsonl.gz"  # what a table file is named: gzipped JSON lines


class TableFileError(ValueError):
    """A table file that cannot be used; the message names the file and the problem."""


def _compact(value: Any) -> Any:
    """Floats to 6 significant digits: measurement noise is far larger, and the file stays small."""
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    return value


def write_table(path: str | Path, header: Dict[str, Any], rows: Sequence[Dict[str, Any]]) -> Path:
    """Write ``rows`` (dicts with every column) under ``header``; atomically (temporary file, rename)."""
    path = Path(path)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, **header,
              "columns": list(COLUMNS), "rows": len(rows)}
    buffer = io.StringIO()
    buffer.write(json.dumps(header, sort_keys=True) + "\n")
    for row in rows:
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise TableFileError(f"row {row.get('tokens')} lacks {missing}")
        buffer.write(json.dumps([_compact(row[c]) for c in COLUMNS], separators=(",", ":")) + "\n")
    if path.is_dir():  # said before a temporary file is left beside it
        raise TableFileError(f"cannot write the benchmark table {path}: it is a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
            gz.write(buffer.getvalue().encode())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_header(path: str | Path) -> Dict[str, Any]:
    """The header of a table file alone (its first line); a TableFileError if it is not one."""
    path = Path(path)
    try:
        with gzip.open(path, "rt") as f:
            first = f.readline()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise TableFileError(f"{path} is not a gzipped nasforge table: {exc}") from None
    try:
        header = json.loads(first)
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise TableFileError(f"{path} is not a {FORMAT} file")
    return header


def read_table(path: str | Path) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """(header, rows as dicts); every problem is a TableFileError that names the file."""
    path = Path(path)
    if not path.is_file():
        raise TableFileError(f"benchmark table {path} does not exist")
    try:
        with gzip.open(path, "rt") as f:
            lines = f.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise TableFileError(f"benchmark table {path} is not a gzipped nasforge table: {exc}") from None
    if not lines:
        raise TableFileError(f"benchmark table {path} is empty")
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError as exc:
        raise TableFileError(f"benchmark table {path}: the header line is not JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise TableFileError(f"benchmark table {path} is not a {FORMAT} file (no such format in its header)")
    if header.get("format_version") != FORMAT_VERSION:
        raise TableFileError(f"benchmark table {path} has format version {header.get('format_version')!r}; "
                             f"this nasforge reads version {FORMAT_VERSION}")
    missing_keys = [k for k in HEADER_KEYS if k not in header]
    if missing_keys:
        raise TableFileError(f"benchmark table {path}: the header lacks {missing_keys}")
    columns = header["columns"]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise TableFileError(f"benchmark table {path} lacks the columns {missing} (it has {columns})")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            values = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TableFileError(f"benchmark table {path}, line {number}: not JSON ({exc})") from None
        if not isinstance(values, list) or len(values) != len(columns):
            raise TableFileError(f"benchmark table {path}, line {number}: expected {len(columns)} values "
                                 f"({', '.join(columns)})")
        rows.append(dict(zip(columns, values)))
    if len(rows) != header["rows"]:
        raise TableFileError(f"benchmark table {path}: the header promises {header['rows']} rows, "
                             f"the file holds {len(rows)} (truncated?)")
    return header, rows
