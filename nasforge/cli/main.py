"""The ``nasforge`` command's parser and entry point.

Bad input (unknown names, malformed config, unusable data) exits with status 2 and a one-line
message before any trial runs; nothing stored is touched.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from .. import __version__
from .benchmark import add_benchmark_parser
from .common import EXIT_SIGINT, EXIT_SIGPIPE, user_errors
from .dashboard import add_dashboard_parser
from .export import add_export_parser
from .inspect import add_best_parser, add_trials_parser
from .pareto import add_pareto_parser
from .report import add_report_parser
from .retrain import add_retrain_parser
from .search import add_search_parser
from .tabulate import add_tabulate_parser
from .track import add_track_parser


# what a command does, for commands whose module gives its parser no description of its own
DESCRIPTIONS = {
    "retrain": "Choose the final architecture and measure it: the search's top --rerank trials are trained "
               "with the final recipe and re-ranked on the validation split (skipped with --trial), then the "
               "chosen one is trained from scratch on training + validation data and tested on the test "
               "split, for each seed. The model is saved with the experiment for `nasforge export`.",
    "export": "Write the model `nasforge retrain` trained as a standalone PyTorch module with its weights and "
              "as an ONNX file, each checked on write; run `nasforge retrain` first.",
}


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps help text between words only: registry names such as local-search stay whole."""

    def _split_lines(self, text, width):
        import textwrap

        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width, break_on_hyphens=False)

    def _fill_text(self, text, width, indent):
        import textwrap

        return textwrap.fill(self._whitespace_matcher.sub(" ", text).strip(), width, initial_indent=indent,
                             subsequent_indent=indent, break_on_hyphens=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nasforge", formatter_class=_HelpFormatter,
        description="Neural architecture search with an RL controller (Zoph & Le, 2017) and friends.")
    parser.add_argument("--version", action="version", version=f"nasforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (add_search_parser, add_trials_parser, add_best_parser, add_retrain_parser, add_export_parser,
                add_pareto_parser, add_benchmark_parser, add_tabulate_parser, add_dashboard_parser, add_report_parser,
                add_track_parser):
        add(sub)
    for name, command in sub.choices.items():
        command.formatter_class = _HelpFormatter
        if not command.description:
            command.description = DESCRIPTIONS.get(name) or next(
                (a.help for a in sub._choices_actions if a.dest == name), None)
    return parser


def _plain_warnings() -> None:
    """Show nasforge's own warnings (a class missing from y_test: ``DataWarning``) as one line,
    ``warning: ...``: the source line Python's format adds is nasforge's code, which tells a user
    nothing. Other libraries' warnings keep Python's format. The command owns its process, so the
    library leaves the format alone and the command sets it."""
    import warnings

    default = warnings.formatwarning
    if getattr(default, "nasforge_plain", False):  # main() called again in one process
        return

    def formatwarning(message, category, filename, lineno, line=None):
        if getattr(category, "__module__", "").split(".")[0] == "nasforge":
            return f"warning: {message}\n"
        return default(message, category, filename, lineno, line)

    formatwarning.nasforge_plain = True  # type: ignore[attr-defined]
    warnings.formatwarning = formatwarning


def main(argv: Optional[List[str]] = None) -> int:
    _plain_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `nasforge trials --json | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's final flush does not fail too
        return EXIT_SIGPIPE
    except Exception as exc:  # noqa: BLE001 - bad input becomes one line; anything else is re-raised
        if not isinstance(exc, user_errors()):
            raise
        if os.environ.get("NASFORGE_DEBUG"):
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"nasforge {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside a search's own handling (set-up, final report): nothing to save
        print(f"nasforge {args.command}: interrupted", file=sys.stderr)
        return EXIT_SIGINT


if __name__ == "__main__":
    sys.exit(main())
