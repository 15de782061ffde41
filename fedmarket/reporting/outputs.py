"""The run directory a person reads: summary.json, the figures, report.md and report.html.

``rounds.csv``, ``federated.json``, ``config.json``, ``test_scores.csv`` and checkpoints are
written while the run goes (fedmarket.federated.run_log); this joins them with the
centralised reference and the BG/NBD anchor into one honest comparison on the same test customers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedmarket.centralised import CentralisedResult
from fedmarket.config import RunConfig
from fedmarket.reporting.figures import write_figures
from fedmarket.reporting.html import to_html
from fedmarket.reporting.markdown import to_markdown
from fedmarket.reporting.retailers import retailer_summary
from fedmarket.reporting.run_report import report_blocks, title
from fedmarket.reporting.summary import build_summary
from fedmarket.rundir import RunDir, write_json


def write_run_outputs(
    run_dir: Path,
    cfg: RunConfig,
    federated: dict[str, Any],
    centralised: CentralisedResult | None,
    *,
    centralised_error: str | None = None,
    anchor: dict[str, Any] | None = None,
    local_only: str | None = None,
) -> dict[str, Path]:
    """summary.json, the figures, report.md and report.html; their paths by kind (figures
    by name, e.g. ``gains_lift``). ``anchor``: summary.json's BG/NBD block (``build_summary``).
    ``local_only``: "trained" where RUN/local holds the local-only models' scores, else why
    not (the per-retailer block then shows the federated model alone)."""
    files = RunDir(run_dir)
    summary = build_summary(
        cfg,
        federated,
        centralised,
        centralised_error=centralised_error,
        anchor=anchor,
        retailers=retailer_summary(files, cfg, local_only),
    )
    paths = {"summary": write_json(files.summary, summary)}
    rounds = files.read_rounds()
    figures = write_figures(files, cfg, rounds, summary, centralised)
    paths.update({Path(f.path).stem: files.path / f.path for f in figures})
    blocks = report_blocks(summary, rounds, figures)
    paths["report"] = files.report
    paths["report"].write_text(to_markdown(blocks))
    paths["html"] = files.report_html
    paths["html"].write_text(to_html(blocks, files.path, title=title(summary)))
    return paths
