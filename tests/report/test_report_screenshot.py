"""report.html in a real headless browser (Chromium from Debian's packages: ``apt-get install chromium``): every
plot loads, and the screenshot shows the page with its charts. Skipped where Chromium is not installed."""

import shutil
import subprocess

import pytest

CHROMIUM = next((path for name in ("chromium", "chromium-browser", "google-chrome")
                 if (path := shutil.which(name))), None)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")]

# the fine-tuned + calculator bars' colour (report.plots.COLORS), as the PNG has it
TUNED_CALC = (0xE6, 0x55, 0x0D)


def chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--no-first-run", "--disable-dev-shm-usage", *args],
                          capture_output=True, text=True, timeout=180)


def test_every_plot_loads_in_chromium(run, tmp_path):
    page = run["html"]
    probe = run["root"] / "probe.html"  # beside the report, so the plots' relative paths resolve the same
    probe.write_text(page.replace("</body>", "<script>addEventListener('load', () => {const i = [...document."
                                  "images]; document.title = 'loaded ' + i.filter(x => x.complete && "
                                  "x.naturalWidth > 0).length + '/' + i.length;});</script></body>"),
                     encoding="utf-8")
    try:
        done = chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    finally:
        probe.unlink()
    images = page.count("<img ")
    assert images >= 4  # accuracy, levels, checkpoints, training
    assert f"<title>loaded {images}/{images}</title>" in done.stdout, done.stderr[-2000:]


def test_the_screenshot_is_the_page_with_its_charts(run, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    done = chromium(f"--screenshot={shot}", "--window-size=1100,9000", "--virtual-time-budget=10000",
                    run["lay"].report_html.as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1100, 9000)
    colours = image.getcolors(maxcolors=1 << 20)
    assert len(colours) > 200  # text, tables and charts, not a blank page
    near = sum(n for n, rgb in colours if all(abs(a - b) <= 12 for a, b in zip(rgb, TUNED_CALC)))
    assert near > 500  # the accuracy charts' bars are on the page
