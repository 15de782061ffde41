"""report.html as a person sees it: a real browser (headless Chromium) decodes every figure
and lays out the tables, with nothing but the file (no network, no script of the page's)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# Run after the page has loaded: what the browser made of it, into the title --dump-dom prints.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const tables = [...document.querySelectorAll("table")];
  document.title = "PROBE" + JSON.stringify({
    images: images.length,
    decoded: images.filter((i) => i.complete && i.naturalWidth > 0).length,
    widths: images.map((i) => i.naturalWidth),
    tables: tables.map((t) => t.querySelectorAll("tbody tr").length),
    headings: [...document.querySelectorAll("h2")].map((h) => h.textContent),
  });
});
</script>"""


def _browser() -> str:
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    pytest.skip(f"no {'/'.join(BROWSERS)} on PATH; install one: apt-get install chromium")


def rendered(page: Path, tmp_path: Path) -> dict:
    """What headless Chromium shows of ``page`` (a copy with the probe added at its end)."""
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", PROBE + "\n</body>"))
    result = subprocess.run(
        [
            _browser(),
            "--headless=new",
            "--no-sandbox",  # tests may run as root, where the sandbox refuses to start
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"<title>PROBE(.*?)</title>", result.stdout, re.DOTALL)
    assert found, f"no probe in the DOM (exit {result.returncode}): {result.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_chromium_shows_every_figure_and_table(make_run, tmp_path):
    _, paths = make_run()
    seen = rendered(paths["html"], tmp_path)
    assert seen["images"] == 4 and seen["decoded"] == 4, seen
    assert all(width > 300 for width in seen["widths"]), seen
    assert len(seen["tables"]) == 6 and all(rows > 0 for rows in seen["tables"]), seen
    assert seen["headings"][:4] == [
        "Does joining pay for each retailer?",
        "In short",
        "What the model is worth for targeting",
        "Privacy",
    ]


def test_chromium_shows_an_incomplete_run_problems_first(make_run, tmp_path):
    _, paths = make_run(centralised_error="DataError: <X.npy> missing", skipped_rounds=[2])
    seen = rendered(paths["html"], tmp_path)
    assert seen["headings"][0] == "This run is incomplete"
    assert seen["decoded"] == seen["images"] == 4  # the federated curves without the reference
