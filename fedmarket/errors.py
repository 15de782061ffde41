"""One small error hierarchy, so the CLI can print any of them without a traceback.

Every message says what is wrong, where (file, row, column, key) and what to do.
``FedmarketError`` subclasses ``ValueError`` so library callers that already catch
``ValueError`` for bad input keep working.
"""

from __future__ import annotations


class FedmarketError(ValueError):
    """Base class of every error fedmarket raises on purpose."""


class ConfigError(FedmarketError):
    """A setting (run config, CLI option, mapping file) has a bad value."""


class DataError(FedmarketError):
    """Input data cannot be read or violates the schema."""


class PrivacyError(FedmarketError):
    """A privacy setting is impossible or a budget would be exceeded."""


class RunStopped(FedmarketError):
    """The user asked the run to stop (Ctrl-C, SIGTERM); it stopped at a round boundary.

    ``signum`` is the signal that asked (2 for Ctrl-C): the CLI exits with 128 + it, as a
    shell reports a command a signal ended, so a script or supervisor can tell which.
    """

    def __init__(self, run_dir: object, committed: int, signum: int = 2) -> None:
        self.run_dir, self.committed, self.signum = run_dir, committed, signum
        super().__init__(
            f"stopped after round {committed}, as asked; {run_dir} is at that round: continue "
            f"with `fedmarket simulate --resume {run_dir}`"
        )


class BudgetExhaustedError(PrivacyError):
    """Training further would spend more epsilon than the target allows."""
