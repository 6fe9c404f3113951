"""The ``nasforge`` command: one module per subcommand, shared helpers in :mod:`.common`.

Command modules import the heavy parts of nasforge (torch, the search loop) inside their
functions, so building the parser for ``--help`` stays cheap.
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
