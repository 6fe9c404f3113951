"""Whether files can be written in a folder (made first if it is missing), asked before a command
does any work. ``os.access`` says yes to root even where nothing can be made (/proc), so the
nearest existing folder is tried with a temporary file. A leaf module: the commands' output checks
and the tracking destinations ask the same question here."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional


def why_unwritable(folder: Path) -> Optional[str]:
    """Why files cannot be written in ``folder``, or None when they can (a missing folder can be,
    when it can be made)."""
    existing = next((p for p in [folder, *folder.parents] if p.exists()), Path("."))
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        where = f"the folder {folder} is not writable" if existing == folder else \
            f"the folder {folder} does not exist and cannot be made in {existing}"
        return f"{where} ({exc.strerror or exc})"
    return None
