"""report.html: one self-contained page with the content of report.md."""

from __future__ import annotations

import base64
import re

from fedmarket.reporting.document import Code, Heading, Image, Paragraph, bullets, table
from fedmarket.reporting.html import inline, to_html

FIGURES = ("roc_auc_per_round", "epsilon_per_round", "gains_lift", "learning_curves")


def test_the_page_embeds_every_figure_and_asks_for_nothing_outside(make_run):
    run, paths = make_run()
    page = paths["html"].read_text()
    assert paths["html"] == run.path / "report.html"
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == len(FIGURES)
    for name, source in zip(FIGURES, sources, strict=True):
        assert source.startswith("data:image/png;base64,")
        # the bytes of the PNG in the run directory, not a link to it
        assert base64.b64decode(source.split(",", 1)[1]) == run.figure(name).read_bytes()
    for outside in ("http://", "https://", "<script", "<link", "href=", "url(", "@import"):
        assert outside not in page, outside


def test_the_page_says_what_report_md_says(make_run):
    _, paths = make_run()
    page, md = paths["html"].read_text(), paths["report"].read_text()
    short = md[md.index("## In short") :].split("\n\n")[1].splitlines()
    assert len(short) == 3
    for line in short:  # the three answers, escaped, with the command as code
        assert inline(line[2:]) in page
    assert "<h2>Privacy</h2>" in page and "only model weights and aggregate metrics" in page
    assert "epsilon = 7.5, delta = 0.0001" in page
    assert page.count("<table>") == md.count("\n|---") == 6  # per retailer first
    for name in FIGURES:
        assert f"]({name}.png)" in md
    assert "Gains and lift, federated and centralised" in page


def test_an_incomplete_run_says_so_first_and_its_text_is_escaped(make_run):
    error = "DataError: <b>X.npy</b> & 'y' missing"
    _, paths = make_run(centralised_error=error, skipped_rounds=[2])
    page = paths["html"].read_text()
    assert page.index('<h2 class="alert">This run is incomplete</h2>') < page.index("In short")
    assert "DataError: &lt;b&gt;X.npy&lt;/b&gt; &amp; &#x27;y&#x27; missing" in page
    assert "<b>X.npy" not in page
    assert "round(s) 2 were not aggregated" in page


def test_blocks_are_laid_out_and_escaped(tmp_path):
    png = b"\x89PNG fake"
    (tmp_path / "a.png").write_bytes(png)
    page = to_html(
        [
            Heading("A <title>", 1),
            Paragraph("run `fedmarket simulate --x '<y>'` & see"),
            bullets(["one < two"]),
            table(("k", "v"), [("a&b", "1")]),
            Code("cmd --run-config \"dp='none'\""),
            Image("a.png", 'the "figure"', "what it <shows>"),
        ],
        tmp_path,
        title="t <1>",
    )
    assert "<title>t &lt;1&gt;</title>" in page
    assert "<h1>A &lt;title&gt;</h1>" in page
    assert "<p>run <code>fedmarket simulate --x &#x27;&lt;y&gt;&#x27;</code> &amp; see</p>" in page
    assert "<li>one &lt; two</li>" in page and "<td>a&amp;b</td>" in page
    assert "<pre><code>cmd --run-config &quot;dp=&#x27;none&#x27;&quot;</code></pre>" in page
    assert 'alt="the &quot;figure&quot;"' in page and "what it &lt;shows&gt;" in page
    assert f'src="data:image/png;base64,{base64.b64encode(png).decode()}"' in page


def test_a_sweep_page_from_its_blocks(tmp_path):
    """Anything made of blocks gets the same page (the trade-off sweep is one)."""
    page = to_html([table(("setting", "ε"), [("centralised-dp", "∞")])], tmp_path, title="s")
    assert "<td>centralised-dp</td><td>∞</td>" in page and '<meta charset="utf-8">' in page


def test_the_anchor_goes_into_summary_json_the_table_and_the_privacy_words(make_run):
    import json

    from fedmarket.tasks import get_task
    from tests.reporting.fake_run import scores

    y, score = scores(0, 0.8)
    anchor = {
        "model": "bg-nbd",
        "fitted": "federated fit with client DP: 3 retailers",
        "retailers": 3,
        "dp": True,
        "epsilon": 8.0,
        "delta": 1e-4,
        "fit_s": 0.3,
        "params": {"r": 0.3},
        "note": "",
        "test": get_task("purchase").report(y, score),
        "paired": None,
    }
    _, paths = make_run(anchor=anchor)
    summary = json.loads(paths["summary"].read_text())
    assert summary["anchor"]["params"] == {"r": 0.3} and summary["anchor"]["epsilon"] == 8.0
    assert summary["anchor"]["combined_epsilon"] == 15.5  # the training's 7.5, plus 8
    assert summary["anchor"]["test"]["roc_auc_low"] < summary["anchor"]["test"]["roc_auc"]
    assert summary["problems"] == []
    page, md = paths["html"].read_text(), paths["report"].read_text()
    assert "<th>BG/NBD anchor</th>" in page and "| BG/NBD anchor |" in md
    assert "a retailer that answers both spends both, at most epsilon = 15.5" in page
    assert "- The classical BG/NBD anchor, fitted across the retailers without pooling" in md


def test_a_failed_anchor_is_a_problem_but_the_run_is_reported(make_run):
    import json

    _, paths = make_run(anchor={"failed": "DataError: bad aggregates"})
    summary = json.loads(paths["summary"].read_text())
    assert summary["anchor"] == {"failed": "DataError: bad aggregates"}
    assert summary["problems"] == [
        "the BG/NBD anchor failed: DataError: bad aggregates (see log.txt)"
    ]
    assert "- BG/NBD anchor: failed (DataError: bad aggregates); see log.txt." in (
        paths["report"].read_text()
    )


def test_a_noise_free_anchor_is_said_not_dp_where_the_run_has_a_guarantee(make_run):
    import json

    from fedmarket.tasks import get_task
    from tests.reporting.fake_run import scores

    y, score = scores(0, 0.8)
    anchor = {"model": "bg-nbd", "dp": False, "epsilon": None, "delta": None, "fitted": "f"}
    anchor |= {"fit_s": 0.3, "params": {}, "test": get_task("purchase").report(y, score)}
    _, paths = make_run(dp="central", anchor=anchor)
    privacy = json.loads(paths["summary"].read_text())["privacy"]
    assert privacy.endswith(
        "The BG/NBD anchor is fitted from each retailer's exact log-likelihood sums and "
        "gradients, without noise: its row is not DP, a reference a consortium would compute "
        "only under a separate agreement."
    )
