"""The `fedmarket` command line (floor 4): one module per command, its options and its body.

Importing a command module registers it on ``app``. Command modules import only what their
options need at the top; the library and the experiments load inside the command, so
`fedmarket --help` stays fast.
"""

from fedmarket.cli import (  # noqa: F401  (registration)
    audit,
    baselines,
    bench,
    campaign,
    centralised,
    certs,
    compare,
    contribution,
    data,
    export,
    keys,
    score,
    serve,
    simulate,
    superlink,
    synth_private,
    tradeoff,
)
from fedmarket.cli.app import app

__all__ = ["app"]
