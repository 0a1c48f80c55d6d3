"""DeepMoLM Chat in a real browser: the app as a user starts it, driven in headless Chromium.

`python -m deepmolm_plugin.gui` runs on the demo-size fusion checkpoint (conftest's
`trained_checkpoint`, trained through the real launcher) and on a one-step `linear`
(image-only) checkpoint; Selenium drives Debian's `chromium` through `chromium-driver`
(`make test` installs both, as it does WordNet). The page must work with no internet: every
request the browser makes goes to the app itself. A screenshot of the loaded page is saved
under the test's tmp folder (and at $DEEPMOLM_GUI_SCREENSHOT when set: docs/gui.png).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from host_fixtures import run_module, train_args

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
MISSING = ("headless Chromium is missing: `make chromium` installs it (as root: apt-get install -y chromium "
           "chromium-driver)")
ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
STARTUP_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """`python -m deepmolm_plugin.gui` in a subprocess, until `stop()`."""

    def __init__(self, checkpoint: Path, log: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = log
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deepmolm_plugin.gui", "--model-path", str(checkpoint), "--port", str(self.port)],
            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=log.parent)
        deadline = time.monotonic() + STARTUP_S
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"the GUI exited with {self.process.returncode}:\n{log.read_text()[-6000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the GUI did not answer within {STARTUP_S} s:\n{log.read_text()[-6000:]}")
            time.sleep(1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.fail(MISSING)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1480,1900",
                "--hide-scrollbars", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"):
        options.add_argument(arg)  # swiftshader: WebGL (the 3D view) without a GPU
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every request the page makes
    # The driver is named: Selenium must not look for (or download) one of its own.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def linear_checkpoint(tiny_setup, tmp_path_factory):
    """An image-only ablation (`linear` projector, no cross-attention), saved by the launcher."""
    out = tmp_path_factory.mktemp("linear") / "checkpoint"
    run_module("deepmolm_plugin.train", train_args(tiny_setup, out, "--mm_projector", "linear", steps=1),
               cwd=out.parent)
    return out


# --- page helpers ---------------------------------------------------------------------------
def _wait(driver, condition, what: str, timeout: float = 90):
    """`condition(driver)`'s first true value; an element the page re-rendered meanwhile
    (stale) or has not rendered yet counts as not yet."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25,
                             ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(
            lambda d: condition(d))
    except TimeoutException:
        page = driver.find_element("tag name", "body").text
        raise AssertionError(f"timed out waiting for {what}; page text:\n{page[-3000:]}")


def _css(driver, selector: str):
    return driver.find_element("css selector", selector)


def _text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def _pixels(element):
    from PIL import Image

    return Image.open(io.BytesIO(element.screenshot_as_png)).convert("RGB")


def _non_blank(image, least: float = 0.02) -> bool:
    """More than `least` of the pixels differ from the most common colour (the background)."""
    colors = image.getcolors(image.width * image.height)
    background = max(colors)[0]
    return 1 - background / (image.width * image.height) > least


def _load_smiles(driver, smiles: str) -> str:
    """Load `smiles`; the status text once it says the molecule loaded."""
    box = _css(driver, "#smiles-input input")
    box.clear()
    box.send_keys(smiles)
    _css(driver, "#load-smiles").click()
    return _wait(driver, lambda d: "heavy atoms" in (t := _text(d, "molecule-status")) and t, "the molecule to load")


def _set_number(driver, element_id: str, value: str) -> None:
    box = _css(driver, f"#{element_id} input[type=number]")
    box.clear()
    box.send_keys(f"{value}\n")


def _external_requests(driver, url: str) -> list:
    """URLs the page requested from anywhere but the app (data: URIs are inline, not requests)."""
    seen = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            target = message["params"]["request"]["url"]
            if not target.startswith((url, "data:", "blob:", "ws://127.0.0.1", "about:")):
                seen.append(target)
    return seen


def _tab(driver, name: str):
    return next(t for t in driver.find_elements("css selector", "button[role='tab']") if t.text == name)


def _choose_atom(driver, row: int) -> None:
    _css(driver, "#atom-choice input").click()
    option = _wait(driver, lambda d: next((o for o in d.find_elements("css selector", "#atom-choice li")
                                           if o.text.strip().lstrip("✓").strip().startswith(f"{row} ·")), None),
                   f"atom {row} in the list")
    option.click()


# --- the tests ------------------------------------------------------------------------------
def test_chat_panels_attention_and_bad_input_in_a_browser(trained_checkpoint, browser, tmp_path):
    app = App(trained_checkpoint, tmp_path / "gui.log")
    try:
        browser.get(app.url)
        _wait(browser, lambda d: d.find_elements("css selector", "#smiles-input input"), "the page")
        assert "projector fusion" in _text(browser, "header")

        status = _load_smiles(browser, ASPIRIN)
        assert "13 heavy atoms" in status and "molecule_fp (13, 4)" in status, status

        # 2D: the encoder's view, drawn; 3D: plotly's WebGL canvas with the conformer.
        depiction = _wait(browser, lambda d: d.find_elements("css selector", "#depiction img"), "the depiction")[0]
        _wait(browser, lambda d: d.find_elements("css selector", "#viewer3d canvas"), "the 3D canvas")
        time.sleep(1.5)  # WebGL draws after the canvas appears
        assert _non_blank(_pixels(depiction)), "the depiction is blank"
        assert _non_blank(_pixels(_css(browser, "#viewer3d .js-plotly-plot")), 0.01), "the 3D view is blank"

        # Where the model looks: another atom gives another heatmap; the reduction is stated.
        info = _text(browser, "attention-info")
        assert "summed over the atom's E3FP levels and averaged over the heads" in info, info
        assert "divided by tokens x heads" in info, info
        before = _pixels(_css(browser, "#depiction img"))
        first = int(_css(browser, "#atom-choice input").get_attribute("value").split(" ")[0])
        other = 0 if first != 0 else 1
        _choose_atom(browser, other)
        _wait(browser, lambda d: f"Atom {other} (" in _text(d, "attention-info"), "the attention text of the new atom")
        after = _wait(browser, lambda d: (p := _pixels(_css(d, "#depiction img"))).tobytes() != before.tobytes() and p,
                      "the heatmap to change")
        assert after.size == before.size

        # The chat: greedy, short answers streamed into the page, two turns, then cleared.
        _set_number(browser, "temperature", "0")
        _set_number(browser, "max-new-tokens", "24")
        for turn, question in enumerate(("What is this molecule?", "And its formula?"), start=1):
            _css(browser, "#question textarea").send_keys(question)
            _css(browser, "#send").click()
            # Send is off while a reply is written: on again, the answer is complete.
            _wait(browser, lambda d: len(answers := d.find_elements("css selector", "#chat .bot")) == turn
                  and answers[-1].text.strip() and _css(d, "#send").is_enabled(), f"answer {turn}")
            # the keyboard is back in the question box (it fell to the page while the box was off)
            _wait(browser, lambda d: d.execute_script(
                "return document.activeElement === document.querySelector('#question textarea')"),
                f"the question box to take the focus after answer {turn}")
        assert [e.text for e in browser.find_elements("css selector", "#chat .user")] == [
            "What is this molecule?", "And its formula?"]

        screenshot = tmp_path / "gui.png"
        browser.save_screenshot(str(screenshot))
        if os.environ.get("DEEPMOLM_GUI_SCREENSHOT"):
            shutil.copyfile(screenshot, os.environ["DEEPMOLM_GUI_SCREENSHOT"])
        print(f"screenshot: {screenshot}")
        _css(browser, "#clear").click()
        _wait(browser, lambda d: not d.find_elements("css selector", "#chat .user"), "the chat to clear")

        # A broken SDF: the resolver's message in the page, and the app goes on.
        broken = tmp_path / "broken.sdf"
        broken.write_text("broken\n  RDKit          3D\n\n  2  1  0  0  0  0  0  0  0  0999 V2000\n"
                          "    0.0000    0.0000    0.0000 C   0  0\nM  END\n$$$$\n")
        _tab(browser, "Structure file").click()
        _css(browser, "#structure-input input[type=file]").send_keys(str(broken))
        _wait(browser, lambda d: "broken" in _text(d, "structure-input"), "the upload")
        _css(browser, "#load-structure").click()
        message = _wait(browser, lambda d: "Cannot use this input" in (t := _text(d, "molecule-status")) and t,
                        "the error message")
        assert "molecule 'broken.sdf'" in message, message
        _tab(browser, "SMILES").click()
        assert "13 heavy atoms" in _load_smiles(browser, ASPIRIN)  # still serving

        assert _external_requests(browser, app.url) == []  # offline: scripts, styles, fonts all local
    finally:
        app.stop()


def test_ablation_without_cross_attention_says_so(linear_checkpoint, browser, tmp_path):
    app = App(linear_checkpoint, tmp_path / "gui.log")
    try:
        browser.get(app.url)
        _wait(browser, lambda d: d.find_elements("css selector", "#smiles-input input"), "the page")
        example = next(b for b in browser.find_elements("css selector", "button") if b.text.strip() == "CCO")
        example.click()  # one click loads an example
        status = _wait(browser, lambda d: "heavy atoms" in (t := _text(d, "molecule-status")) and t, "the example")
        assert "does not use molecules" in status, status
        info = _text(browser, "attention-info")
        assert "linear" in info and "no cross-attention" in info, info
        assert not browser.find_elements("css selector", "#atom-choice input")  # nothing to choose
        _wait(browser, lambda d: d.find_elements("css selector", "#depiction img"), "the depiction")
    finally:
        app.stop()
