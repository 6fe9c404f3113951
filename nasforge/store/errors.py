"""Store errors: every SQLite error becomes a :class:`StoreError` that names the file and what to do."""

from __future__ import annotations

import functools
import json
import sqlite3
from pathlib import Path


class StoreError(RuntimeError):
    """A store that cannot be used as asked (wrong schema, not an experiment, damaged, full, ...)."""


class EmptyStoreError(StoreError):
    """A store file with no tables: a creation cut short (by an older nasforge); nothing to lose."""


def guarded(method):
    """Every SQLite error inside a store operation becomes a StoreError that says what to do."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise self._explain(exc) from exc
        except json.JSONDecodeError as exc:  # a valid page whose row text was damaged
            raise StoreError(f"{self.path} is damaged (a stored row is not valid JSON: {exc}): restore it from "
                             f"a backup, salvage what is readable with `sqlite3 {self.path} .recover`, or start "
                             "a new experiment") from exc

    return wrapper


def explain(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    """What an SQLite error means for the user of this store, and what to do about it."""
    text = str(exc)
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in text:
        return StoreError(f"{path}: a trial with this number and attempt is already stored ({text}); "
                          "another process has written this experiment at the same time")
    if "full" in text or "disk I/O error" in text:
        return StoreError(f"could not write {path}: {text} (the disk is full, over a file size limit, or "
                          "failing); what was committed before is intact: free some space, then continue "
                          "with --resume")
    if "readonly" in text or "read-only" in text:
        return StoreError(f"{path} is read-only for this user ({text}): its trials can be read "
                          "(nasforge trials, best), but a search cannot continue it")
    if "locked" in text or "busy" in text:
        return StoreError(f"{path} stayed locked by another process for over 30 s ({text}); try again")
    if "malformed" in text or "not a database" in text or "decode" in text or type(exc) is sqlite3.DatabaseError:
        return StoreError(f"{path} is damaged ({text}): restore it from a backup, salvage what is "
                          f"readable with `sqlite3 {path} .recover`, or start a new experiment")
    return StoreError(f"{path}: {text}")
