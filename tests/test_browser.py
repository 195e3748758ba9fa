"""The `dvc plots show` page in a real browser with the network off: every Vega plot drawn, every figure loaded.

The page comes from .dvc/plots/offline.html (.dvc/config `[plots] html_template`), which inlines the Vega
libraries vendored in .dvc/plots/vendor/ (tools/vendor_plots.py builds it). Headless Chromium opens it as a
file; a probe added to a copy of the page waits for the plots, then writes what it found into the DOM,
which `--dump-dom` prints.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from dvc_render.html import PAGE_HTML

from tests.helpers import ROOT, dvc, tool_module

BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # No network: no name resolves, and any connection goes to a closed local port.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--virtual-time-budget=10000",
    "--window-size=1400,4000",
]

# Before the page's own scripts: record script errors and failed loads.
CATCHER = """<script>
window.probeErrors = [];
window.addEventListener("error", (e) => window.probeErrors.push(
    e.target && e.target !== window ? "failed to load " + (e.target.src || e.target.href) : String(e.message)), true);
window.addEventListener("unhandledrejection", (e) => window.probeErrors.push("rejected: " + String(e.reason)));
</script>"""

# After the plots: wait until every Vega container (IDS: the ids the page passes to vegaEmbed) is drawn and
# every image loaded, or 8 s of page time passed, then write the findings into <pre id="probe-result">.
# Canvas "marks" are coloured pixels (axes and text are grey); SVG marks are the paths of line, area,
# symbol and rect marks.
PROBE = """<script>
(function () {
  const ids = IDS;
  function marks(div) {
    if (!div) return {renderer: null, marks: 0};
    const svg = div.querySelector("svg.marks");
    if (svg) return {renderer: "svg", marks: svg.querySelectorAll(
      ".mark-line path, .mark-area path, .mark-symbol path, .mark-rect path").length};
    const canvas = div.querySelector("canvas");
    if (!canvas) return {renderer: null, marks: 0};
    if (!canvas.width || !canvas.height) return {renderer: "canvas", marks: 0};
    const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let coloured = 0;
    for (let i = 0; i < px.length; i += 4) {
      const [r, g, b, a] = px.subarray(i, i + 4);
      if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 40) coloured++;
    }
    return {renderer: "canvas", marks: coloured};
  }
  const started = performance.now();
  function check() {
    const vega = ids.map((id) => ({id, ...marks(document.getElementById(id))}));
    const images = [...document.images].map((img) => ({
      src: img.getAttribute("src"), complete: img.complete, naturalWidth: img.naturalWidth}));
    const done = vega.every((v) => v.marks > 0) && images.every((i) => i.complete);
    if (!done && performance.now() - started < 8000) return setTimeout(check, 200);
    const out = document.createElement("pre");
    out.id = "probe-result";
    out.textContent = JSON.stringify({vega, images, errors: window.probeErrors || [], ms: performance.now() - started});
    document.body.appendChild(out);
  }
  window.addEventListener("load", check);
})();
</script>"""


def chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail("chromium is missing: install it (apt-get install -y chromium); CI's .ci/run does", pytrace=False)
    return path


def plot_page(repo: Path, out: Path, *args: str) -> Path:
    """`dvc plots show -o out` in `repo`; the page's path."""
    dvc(repo, "plots", "show", "-o", str(out), *args)
    return out / "index.html"


def browse(page: Path, screenshot: Path) -> dict:
    """Open a probed copy of `page` (next to it, so static/ resolves) offline in Chromium, save a
    screenshot, and return the probe's findings."""
    text = page.read_text(encoding="utf-8")
    assert "<head>" in text and "</body>" in text
    before, _, after = text.rpartition("</body>")
    probed = page.with_name("probed.html")
    probe = PROBE.replace("IDS", json.dumps(re.findall(r"vegaEmbed\('#([^']+)'", text)))
    probed.write_text(before.replace("<head>", "<head>" + CATCHER, 1) + probe + "</body>" + after, encoding="utf-8")
    cmd = [
        chromium(),
        *BROWSER_FLAGS,
        f"--user-data-dir={page.parent / 'chromium-profile'}",
        f"--screenshot={screenshot}",
        "--dump-dom",
        probed.as_uri(),
    ]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    seconds = time.perf_counter() - start
    print(f"chromium: {seconds:.1f} s; screenshot: {screenshot}")
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', result.stdout, re.S)
    assert found, f"no probe result in the DOM (chromium exit {result.returncode}):\n{result.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def assert_rendered(findings: dict, repo: Path) -> None:
    """Every Vega plot of dvc.yaml's top-level `plots:` drawn with marks, every image loaded."""
    plots = yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]
    n_vega = sum(isinstance(entry, dict) for entry in plots)
    n_images = sum(isinstance(entry, str) for entry in plots)
    vega, images, errors = findings["vega"], findings["images"], findings["errors"]
    empty = [v["id"] for v in vega if not v["marks"]]
    broken = [i["src"] for i in images if not i["naturalWidth"]]
    problems = []
    if len(vega) != n_vega:
        problems.append(f"{len(vega)} Vega containers, dvc.yaml declares {n_vega}")
    if empty:
        problems.append(f"{len(empty)} of {len(vega)} Vega containers empty (no svg/canvas with marks): {empty}")
    if len(images) != n_images:
        problems.append(f"{len(images)} images, dvc.yaml declares {n_images}")
    if broken:
        problems.append(f"{len(broken)} of {len(images)} images not loaded: {broken}")
    if errors:
        problems.append(f"page errors: {errors}")
    assert not problems, "; ".join(problems)


@pytest.mark.integration
def test_plots_page_renders_offline_in_chromium(tiny_repo: Path, tmp_path: Path) -> None:
    page = plot_page(tiny_repo, tmp_path / "plots")
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc=", text), "the page loads a script from elsewhere"
    print(f"page: {page.stat().st_size:,} bytes")
    assert_rendered(browse(page, tmp_path / "plots.png"), tiny_repo)


@pytest.mark.integration
def test_the_cdn_page_stays_empty_offline(tiny_repo: Path, tmp_path: Path) -> None:
    """dvc_render's own page (scripts from a CDN) fails the check above: the browser is offline, and the
    check sees empty containers."""
    template = tmp_path / "cdn.html"
    template.write_text(PAGE_HTML)
    page = plot_page(tiny_repo, tmp_path / "plots", "--html-template", str(template))
    assert "cdn.jsdelivr.net" in page.read_text(encoding="utf-8")
    with pytest.raises(AssertionError, match=r"(\d+) of \1 Vega containers empty") as failure:
        assert_rendered(browse(page, tmp_path / "cdn.png"), tiny_repo)
    assert "failed to load https://cdn.jsdelivr.net/npm/vega@" in str(failure.value)
    print(f"on the CDN page: {str(failure.value).splitlines()[0]}")


@pytest.mark.integration
def test_plots_diff_uses_the_offline_template(tiny_repo: Path, tmp_path: Path) -> None:
    dvc(tiny_repo, "plots", "diff", "HEAD", "-o", str(tmp_path / "diff"))
    text = (tmp_path / "diff" / "index.html").read_text(encoding="utf-8")
    assert "vega-embed@" in text and "vegaEmbed(" in text
    assert not re.search(r"<script[^>]*\bsrc=", text)


def vendor_tool():
    return tool_module("vendor_plots")


def test_the_offline_template_is_built_from_the_vendored_files() -> None:
    """The committed template is what tools/vendor_plots.py writes from vendor/ (hashes as in VERSIONS.txt),
    and .dvc/config points `dvc plots show` at it."""
    tool = vendor_tool()
    assert tool.TEMPLATE.read_text(encoding="utf-8") == tool.render(), "run python tools/vendor_plots.py"
    majors = {"vega": "5", "vega-lite": "5", "vega-embed": "6"}  # what dvc_render's page and v5 specs expect
    for name, (package, digest) in tool.manifest().items():
        assert hashlib.sha256((tool.VENDOR / name).read_bytes()).hexdigest() == digest, name
        library, version = package.split("@")
        assert version.split(".")[0] == majors[library], package
    config = (ROOT / ".dvc" / "config").read_text()
    assert re.search(r"^\s*html_template = plots/offline.html$", config, re.M)
    assert "{scripts}" not in tool.TEMPLATE.read_text(encoding="utf-8")
