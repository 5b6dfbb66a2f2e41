"""The report's page in a real browser at a laptop and a desktop width: the headline first, the
chosen row highlighted, columns labelled with their split, nothing overlapping or running off the page."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from slimforge.report import write_report


def _row(name, acc, ms, macs):
    lat = {"p50_ms": ms, "p90_ms": ms * 1.1, "throughput": 32 / ms * 1000}
    return {"name": name, "kind": "pytorch", "accuracy": acc, "macs": macs, "params": 1000, "size_bytes": 4096, "latency": {"32": lat}}


def _optimize_like_report(tmp_path):
    """Ten candidates with long names and every extra column optimize writes: the widest page it makes."""
    names = ["baseline"] + [f"prune-macs0.{i:02d}-int8-onnxruntime-long-name" for i in range(1, 10)] + ["baseline-int8-torch"]
    variants = [_row(n, 0.98 - 0.001 * i, 10.0 / (1 + i), 5e6 / (1 + i)) for i, n in enumerate(names)]
    forms = {"eager": {"32": {"p50_ms": 10.0}}, "channels_last": {"32": {"p50_ms": 8.0}}}
    measurement = {"threads": 1, "batch_sizes": [32], "variants": variants, "machine": {"cpu": "Test CPU", "isa": "AVX2", "cores": 2},
                   "reference": {"forms": forms, "unavailable": {"compile": "not asked"}, "best_fp32_form": {"32": "channels_last"}}}
    extra = {n: {"val accuracy": "97.50%", "Δ val (pts)": "-0.50", "val gained/lost": "12/17", "noise margin (pts)": "1.23",
                 "verdict": "rejected: validation drop 1.25 + noise margin 1.23 = 2.48 points > budget 1"} for n in names}
    headline = "Best: baseline-int8-torch, 10.00x faster than PyTorch eager and 8.00x faster than the fastest fp32 deployment (channels_last)"
    return write_report(tmp_path / "report", measurement, title="slimforge optimize", headline=headline, highlight="baseline-int8-torch",
                        extra=extra, notes=["a note"], split="test")


def test_the_page_says_what_was_chosen_and_on_which_split(tmp_path):
    paths = _optimize_like_report(tmp_path)
    page = paths["html"].read_text()
    assert page.index('id="headline"') < page.index('id="variants"')  # the headline comes before the table
    assert '<tr class="best"><td>baseline-int8-torch</td>' in page
    assert "<th>test accuracy</th>" in page and "<th>val accuracy</th>" in page and "<th>verdict</th>" in page
    assert "Test CPU (AVX2, 2 cores)" in page
    md = paths["markdown"].read_text()
    assert md.splitlines()[2].startswith("**Best: baseline-int8-torch") and "| **baseline-int8-torch** |" in md


CHECK = """
const box = e => e.getBoundingClientRect();
const blocks = [document.getElementById('headline'), document.querySelector('.table-wrap'), document.querySelector('ul'),
                ...document.querySelectorAll('figure')];
let overlaps = 0;
for (let i = 0; i < blocks.length; i++) for (let j = i + 1; j < blocks.length; j++) {
  const a = box(blocks[i]), b = box(blocks[j]);
  if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) overlaps++;
}
const imgs = Array.from(document.images);
document.title = JSON.stringify({
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  overlaps: overlaps,
  images: imgs.filter(i => i.complete && i.naturalWidth > 100 && box(i).right <= window.innerWidth + 1).length,
  headlineTop: box(blocks[0]).top < box(blocks[1]).top,
  best: document.querySelectorAll('tr.best').length,
});
"""


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed (make test installs it)")
@pytest.mark.parametrize("width, height", [(1366, 768), (1920, 1080)])  # a laptop, a desktop
def test_the_report_fits_the_page_in_chromium(tmp_path, width, height):
    paths = _optimize_like_report(tmp_path)
    page = paths["html"].read_text().replace("</body>", f"<script>{CHECK}</script></body>")
    paths["html"].write_text(page)
    shot = tmp_path / "shot.png"
    common = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
              f"--window-size={width},{height}", "--virtual-time-budget=3000"]
    dom = subprocess.run([*common, "--dump-dom", paths["html"].as_uri()], capture_output=True, text=True, timeout=120)
    title = dom.stdout.split("<title>", 1)[1].split("</title>", 1)[0]
    result = json.loads(title.replace("&quot;", '"'))
    assert result == {"overflow": 0, "overlaps": 0, "images": 1, "headlineTop": True, "best": 1}, result
    subprocess.run([*common, f"--screenshot={shot}", paths["html"].as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000  # a rendered page, not a blank one


def test_every_batch_size_measured_has_its_rows(tmp_path):
    """issue 25: `--batch-sizes 1,32` tabulated only 32."""
    def row(name, ms):
        return {"name": name, "kind": "pytorch", "accuracy": 0.9,
                "latency": {bs: {"p50_ms": ms * int(bs), "p90_ms": ms, "throughput": 1.0} for bs in ("1", "32")}}

    measurement = {"threads": 1, "batch_sizes": [1, 32], "variants": [row("base", 1.0), row("small", 0.5)]}
    page = write_report(tmp_path / "r", measurement, extra={"small": {"verdict": "kept"}})["markdown"].read_text()
    table = [line for line in page.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| variant | batch | test accuracy | Δ test (pts) | verdict |")
    assert [line.split(" | ")[:2] for line in table[1:]] == [["| base", "1"], ["| small", "1"], ["| base", "32"], ["| small", "32"]]
