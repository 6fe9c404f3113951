"""``nasforge`` with the test plugin space imported first, for retrain and export of a search of it
(the command line does not import a stored search's plugins for them)."""

import sys

import mlp_plugin_space  # noqa: F401  registers test-mlp, its network module, and the two that break the protocol
from nasforge.cli.main import main

sys.exit(main())
