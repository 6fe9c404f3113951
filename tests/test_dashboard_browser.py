"""The dashboard and the report as a person sees them: a real headless Chromium (Debian's
``chromium`` and ``chromium-driver``, driven by selenium; nothing downloaded at run time).

Without a browser these tests are skipped with the packages to install, never silently. Screenshots
of every view go to the test's temporary folder, and to ``$NASFORGE_SCREENSHOTS`` when set (that is
how the README's pictures under docs/screenshots were made)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
VIEWS = ("trials", "progress", "workers", "pareto", "arch", "learning", "importance", "final")


def _browser_or_skip():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing:
        pytest.skip(f"no headless browser ({', '.join(missing)} missing): install Debian's chromium and "
                    "chromium-driver (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed: pip install -e '.[test]' (or pip install selenium)")


@pytest.fixture(scope="module")
def browser():
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def _nasforge(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nasforge", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def _wait(condition, timeout: float, what: str):
    end = time.time() + timeout
    while time.time() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"waited {timeout:.0f} s for {what}")


def _shoot(driver, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / f"{name}.png"))
    extra = os.environ.get("NASFORGE_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / f"{name}.png", Path(extra) / f"{name}.png")


def _click(driver, selector: str) -> None:
    """A click on what the page shows now (a live page may redraw the table between find and click)."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(20):
        try:
            driver.find_element("css selector", selector).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.2)
    raise AssertionError(f"{selector} kept being redrawn")


def _errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _rendered(driver, view: str) -> list:
    """Ids of the charts of the shown view that plotly has finished drawing (and all charts there)."""
    driver.execute_script(f"NF_show({view!r})")
    charts = lambda: driver.execute_script(  # noqa: E731
        f"return Array.from(document.querySelectorAll('#view-{view} .chart')).map(c => [c.id, c.dataset.rendered"
        " === '1' && c.querySelector('.main-svg') !== null])")
    _wait(lambda: all(ok for _, ok in charts()), 60, f"the charts of the {view} view")
    return [cid for cid, _ in charts()]


def _search(folder: Path, budget: int, resume: bool = False) -> subprocess.Popen:
    return _nasforge("search", "--space", "mnist1d-chain", "--strategy", "reinforce", "--budget", str(budget),
                     "--experiment", str(folder), "--seed", "3",
                     "--set", "strategy.batch_size=4", "--set", "strategy.learning_rate=0.05",
                     *(["--resume"] if resume else []))


def test_dashboard_follows_a_running_search(browser, tmp_path):
    folder, shots = tmp_path / "exp", tmp_path / "screenshots"
    first = _search(folder, 12)
    assert first.wait(timeout=600) == 0, first.stdout.read()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dashboard = _nasforge("dashboard", "--experiment", str(folder), "--port", str(port), "--interval", "0.5",
                          "--heavy-every", "1")
    try:
        assert f"http://127.0.0.1:{port}/" in dashboard.stdout.readline()
        browser.get(f"http://127.0.0.1:{port}/")
        rows = lambda: browser.execute_script(  # noqa: E731
            "return document.querySelectorAll('#trials-table tbody tr').length")
        _wait(lambda: rows() == 12, 180, "the 12 stored trials in the table")
        browser.execute_script("window.notReloaded = true")
        more = _search(folder, 40, resume=True)  # a search in the background, the page open
        try:
            _wait(lambda: rows() > 12, 300, "a new trial to appear without reloading")
            assert browser.execute_script("return window.notReloaded === true")
            assert more.wait(timeout=600) == 0
        finally:
            if more.poll() is None:
                more.kill()
        _wait(lambda: rows() == 40, 120, "all 40 trials")
        _wait(lambda: browser.execute_script(
            "const e = NF_STATE.experiments[0]; return e.learning && e.learning.updates.length === 10"), 120,
            "the policy of the 10th controller update")
        _shoot(browser, shots, "trials")
        # click a trial: its architecture drawing appears
        browser.execute_script("NF_show('trials')")
        _click(browser, '#trials-table tbody tr[data-number="7"]')
        # found and read in one script: the page may redraw it between two WebDriver calls (a stale element)
        text = _wait(lambda: browser.execute_script(
            "const svg = document.querySelector('#arch-drawing[data-trial=\"7\"] svg'); return svg && svg.textContent"),
            30, "trial 7's drawing")
        assert "input" in text and "L0:" in text and "L3:" in text and "readout" in text and "fc to classes" in text
        _shoot(browser, shots, "arch")
        for view in ("progress", "workers", "pareto", "learning", "importance"):
            charts = _rendered(browser, view)
            assert charts, f"no chart in the {view} view"
            _shoot(browser, shots, view)
        browser.execute_script("NF_show('final')")
        final = browser.find_element("id", "view-final").text  # a table: nothing to retrain or export, and why
        assert "Nothing to retrain: mnist1d-chain is a tabular benchmark" in final, final
        assert "run `nasforge retrain`" not in final and "No export yet" not in final
        _shoot(browser, shots, "final")
        assert _rendered(browser, "pareto") == ["chart-pareto", "chart-hv"]
        assert _rendered(browser, "learning") == ["chart-policy", "chart-policy-map", "chart-entropy",
                                                  "chart-baseline"]
        # the policy view: 10 updates drawn, one line per choice of the first decision (L0.op: 4 operations)
        assert browser.execute_script(
            "return document.getElementById('chart-policy').data.map(t => t.x.length)") == [10, 10, 10, 10]
        assert _errors(browser) == []
    finally:
        browser.get("about:blank")  # stop the page's polling before its server goes
        dashboard.terminate()
        dashboard.wait(timeout=30)



@pytest.mark.slow  # 40 s of real waiting for the back-off; the default run keeps the live-follow test
def test_dashboard_page_backs_off_while_unchanged_and_rests_while_hidden(browser, tmp_path):
    """The live page asks only the change marker, less and less often while the store is unchanged
    (up to 8 times the interval), and nothing at all while its tab is hidden."""
    folder = tmp_path / "exp"
    assert _search(folder, 8).wait(timeout=600) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dashboard = _nasforge("dashboard", "--experiment", str(folder), "--port", str(port), "--interval", "0.5",
                          "--heavy-every", "1")
    polls = lambda: browser.execute_script("return NF_STATE.polls || 0")  # noqa: E731
    try:
        assert f"http://127.0.0.1:{port}/" in dashboard.stdout.readline()
        browser.get(f"http://127.0.0.1:{port}/")
        _wait(lambda: browser.execute_script(
            "const e = (NF_STATE.experiments || [])[0]; return e && e.importance && e.trials.length === 8"), 120,
            "the stored trials and the costly views")
        time.sleep(6)  # the last changes of the answer (costly views done) are behind us
        before = polls()
        time.sleep(10)
        assert polls() - before <= 5  # every 0.5 s would be 20; backing off to 4 s makes 3 or 4
        browser.execute_script("Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});"
                               "document.dispatchEvent(new Event('visibilitychange'))")
        time.sleep(5)  # a poll asked before hiding has come back; its timer found the tab hidden
        hidden = polls()
        time.sleep(6)
        assert polls() == hidden
        browser.execute_script("Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});"
                               "document.dispatchEvent(new Event('visibilitychange'))")
        _wait(lambda: polls() > hidden, 10, "a poll as soon as the tab is shown again")
        assert _errors(browser) == []
    finally:
        browser.get("about:blank")
        dashboard.terminate()
        dashboard.wait(timeout=30)


def test_report_renders_offline_from_a_file(browser, tmp_path):
    folder, shots = tmp_path / "exp", tmp_path / "report-screenshots"
    search = _search(folder, 16)
    assert search.wait(timeout=600) == 0, search.stdout.read()
    out = tmp_path / "report.html"
    report = _nasforge("report", "--experiment", str(folder), "--out", str(out))
    assert report.wait(timeout=600) == 0, report.stdout.read()
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    browser.get_log("browser")  # what earlier pages logged is not this page's
    try:
        browser.get(out.as_uri())
        _wait(lambda: browser.execute_script("return window.NF_STATE && NF_STATE.loads === 1"), 120,
              "the report's data")
        assert browser.execute_script("return typeof Plotly") == "object"  # unpacked from the file itself
        drawn = []
        for view in VIEWS:
            drawn += _rendered(browser, view)
            _shoot(browser, shots, "report-" + view)
        assert drawn == ["chart-progress", "chart-workers", "chart-pareto", "chart-hv", "chart-policy",
                         "chart-policy-map", "chart-entropy", "chart-baseline", "chart-importance"]
        (none,) = browser.find_elements("css selector", "#final-none")  # a table: nothing to retrain, and why
        assert "Nothing to retrain: mnist1d-chain is a tabular benchmark" in none.text, none.text
        assert "run `nasforge retrain`" not in none.text  # which the command would refuse
        assert _errors(browser) == []
    finally:
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})


def test_a_long_trials_table_is_shown_a_page_at_a_time(browser, tmp_path):
    """150 trials: 100 rows drawn, the next page has the other 50 (nothing lost between pages), and
    sorting starts again at the first page with the best trial on top."""
    folder = tmp_path / "exp"
    search = _search(folder, 150)
    assert search.wait(timeout=600) == 0, search.stdout.read()
    out = tmp_path / "report.html"
    report = _nasforge("report", "--experiment", str(folder), "--out", str(out))
    assert report.wait(timeout=600) == 0, report.stdout.read()
    browser.get(out.as_uri())
    _wait(lambda: browser.execute_script("return window.NF_STATE && NF_STATE.loads === 1"), 120, "the report's data")
    numbers = lambda: [int(n) for n in browser.execute_script(  # noqa: E731
        "return Array.from(document.querySelectorAll('#trials-table tbody tr')).map(r => r.dataset.number)")]
    assert numbers() == list(range(100))
    assert "rows 1-100 of 150" in browser.find_element("css selector", "#trials-pager").text
    assert browser.find_element("css selector", "#trials-prev").get_attribute("disabled") is not None
    _click(browser, "#trials-next")
    assert numbers() == list(range(100, 150))
    assert browser.find_element("css selector", "#trials-next").get_attribute("disabled") is not None
    _click(browser, '#trials-table th[data-key="objective"]')  # maximised: best first
    objectives = browser.execute_script("return NF_STATE.experiments[0].trials.map(t => [t.number, t.objective])")
    best = max(objectives, key=lambda p: (p[1], -p[0]))[0]
    assert len(numbers()) == 100 and numbers()[0] == best
    assert _errors(browser) == []


def test_without_a_browser_the_skip_names_what_to_install(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(pytest.skip.Exception) as skipped:
        _browser_or_skip()
    assert "apt-get install chromium chromium-driver" in str(skipped.value)
    assert "/nonexistent/chromium missing" in str(skipped.value)
