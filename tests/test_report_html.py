"""The HTML report in a real headless Chromium, driven over the DevTools protocol (a pipe, no extra packages):
the page loads from disk with no console errors, a filter hides rows, a click on a cell shows its details."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from compat_tests.core.result import Result
from compat_tests.report import html as report_html

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def chromium() -> str | None:
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


class Browser:
    """A headless Chromium speaking CDP over --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-separated JSON)."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", f"--user-data-dir={profile}",
                "--remote-debugging-pipe", "about:blank"]
        command = " ".join(f"'{a}'" for a in args) + f" 3<&{to_browser_r} 4>&{from_browser_w}"
        self.proc = subprocess.Popen(["bash", "-c", "exec " + command], pass_fds=(to_browser_r, from_browser_w),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self._events: queue.Queue[dict] = queue.Queue()
        self.events: list[dict] = []
        self._lock = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.session = ""

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_browser, 65536):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                with self._lock:
                    if "id" in message:
                        self._replies[message["id"]] = message
                    else:
                        self.events.append(message)
                    self._lock.notify_all()

    def send(self, method: str, params: dict | None = None, session: bool = True, timeout: float = 60) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        with self._lock:
            if not self._lock.wait_for(lambda: self._next_id in self._replies, timeout):
                raise TimeoutError(f"no reply to {method}")
            reply = self._replies.pop(self._next_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def wait_event(self, method: str, timeout: float = 60) -> dict:
        with self._lock:
            if not self._lock.wait_for(lambda: any(e["method"] == method for e in self.events), timeout):
                raise TimeoutError(f"no {method} event")
        return next(e for e in self.events if e["method"] == method)

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable")
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def js(self, expression: str):
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) at the element's centre."""
        box = self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView(); "
                      "const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                   "clickCount": 1})

    def console_errors(self) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e["method"] == "Runtime.exceptionThrown"
                    or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
                    or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False, timeout=10)
        except Exception:  # already gone: make sure below
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def record(model: str, path: str, status: str, signature: str = "", message: str = "", override: str = "base",
           **kw) -> Result:
    return Result(id=f"{model}-{path}-{override}", model=model, path=path, override=override, status=status,
                  signature=signature, message=message, run_id="20261124T000000Z-abc123",
                  versions={"python": "3.11.7", "torch": "2.14.1", "timm": "1.0.31", "transformers": "5.23.0"}, **kw)


REPRO = '"""Repro for resnet18-hf_auto-base."""\nimport timm\nprint("</script><b>not markup</b>")\n'


def sample() -> list[Result]:
    models = {"resnet18": "cnn", "convnext_atto": "layerscale", "swin_tiny_patch4_window7_224": "swin",
              "test_vit": "tiny"}
    records = []
    for model in models:
        for path in ("state_dict", "safetensors", "hf_auto", "hf_custom"):
            if path == "hf_auto":
                records.append(record(model, path, "failed", "kwarg-conflict",
                                      "argument 'num_classes' was given twice", repro=REPRO,
                                      evidence={"exception": {"type": "TypeError", "message": "got multiple"}}))
            elif path == "safetensors" and model == "resnet18":  # real reports hold NaN output errors
                records.append(record(model, path, "failed", "output-mismatch", "max abs error nan",
                                      evidence={"output": {"ok": False, "max_error": float("nan")}}))
            elif path == "hf_custom" and model.startswith("swin"):
                records.append(record(model, path, "xfailed", "nonpersistent-buffer-not-rebuilt", "17 differ",
                                      known={"id": "swin*", "signature": "nonpersistent-buffer-not-rebuilt",
                                             "reason": "meta init", "upstream": "not yet filed"}))
            else:
                records.append(record(model, path, "passed"))
    records.append(record("test_vit", "state_dict", "failed", "exception:KeyError", "KeyError: 'x'",
                          override="in_chans=1", override_kwargs={"in_chans": 1}))
    return records


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required on CI (tox's selftest env installs Debian's chromium when root)")
        pytest.skip("no chromium found; install Debian's chromium or set CHROMIUM=/path/to/chrome")
    b = Browser(binary, tmp_path_factory.mktemp("profile"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def page(browser, tmp_path_factory):
    file = report_html.write(tmp_path_factory.mktemp("html") / "report.html", sample())
    browser.open(file.as_uri())
    deadline = time.monotonic() + 30
    while browser.js("document.body.dataset.ready") != "1":
        assert time.monotonic() < deadline, f"the page never finished its script: {browser.console_errors()}"
        time.sleep(0.1)
    return browser


def visible_rows(b: Browser) -> list[str]:
    return b.js("Array.from(document.querySelectorAll('#matrix tbody tr')).filter(r => !r.hidden)"
                ".map(r => r.dataset.model)")


def test_the_page_is_self_contained(tmp_path):
    text = report_html.render(sample())
    assert "http://" not in text and "https://" not in text, "nothing may be fetched"
    assert "</script><b>" not in text, "data cannot close the script element"


def test_page_loads_without_console_errors_and_shows_the_matrix(page):
    assert page.console_errors() == []
    assert sorted(visible_rows(page)) == ["convnext_atto", "resnet18", "swin_tiny_patch4_window7_224", "test_vit"]
    headers = page.js("Array.from(document.querySelectorAll('#matrix thead th')).map(t => t.textContent)")
    assert page.js("document.querySelector('td[data-id=\"resnet18-safetensors-base\"]').dataset.status") == "failed"
    assert "state_dict/in_chans=1" in headers and "hf_auto" in headers


def choose(b: Browser, select: str, value: str) -> None:
    """Pick a filter value as a user does: set the <select> and fire its change event."""
    b.js(f"(() => {{ const s = document.getElementById({json.dumps(select)}); s.value = {json.dumps(value)}; "
         "s.dispatchEvent(new Event('change')); })()")


def test_filters_hide_rows_and_columns(page):
    choose(page, "f-status", "xfailed")
    assert visible_rows(page) == ["swin_tiny_patch4_window7_224"]
    choose(page, "f-status", "")
    choose(page, "f-family", "cnn")
    assert visible_rows(page) == ["resnet18"]
    choose(page, "f-family", "")
    choose(page, "f-signature", "exception:KeyError")
    assert visible_rows(page) == ["test_vit"]
    choose(page, "f-signature", "")
    choose(page, "f-path", "hf_auto")
    shown = page.js("Array.from(document.querySelectorAll('#matrix thead th[data-path]')).filter(t => !t.hidden)"
                    ".map(t => t.textContent)")
    assert shown == ["hf_auto"]
    choose(page, "f-path", "")
    assert len(visible_rows(page)) == 4
    assert page.console_errors() == []


def test_clicking_a_cell_shows_message_versions_and_repro(page):
    for select in ("f-status", "f-family", "f-signature", "f-path"):
        choose(page, select, "")
    page.click('td[data-id="resnet18-hf_auto-base"]')
    details = page.js("document.getElementById('details').innerText")
    assert "resnet18-hf_auto-base" in details and "kwarg-conflict" in details
    assert "argument 'num_classes' was given twice" in details
    assert "timm 1.0.31" in details and "transformers 5.23.0" in details
    assert page.js("document.getElementById('repro').textContent") == REPRO
    assert page.console_errors() == []
