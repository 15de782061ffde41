"""What a person reads of a run: summary.json, report.md, report.html and the figures.

One concept a module: ``summary`` (the comparison as data), ``words`` (its sentences),
``run_report`` (what the report says, as blocks of ``document``), ``markdown`` and ``html``
(two layouts of the same blocks), ``figures`` (the run's plots), ``outputs`` (writes them
all into the run directory).
"""

from fedmarket.reporting.markdown import render_report, to_markdown
from fedmarket.reporting.outputs import write_run_outputs
from fedmarket.reporting.summary import build_summary, privacy_cost_command

__all__ = [
    "build_summary",
    "privacy_cost_command",
    "render_report",
    "to_markdown",
    "write_run_outputs",
]
