"""Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON messages ending in NUL on file descriptors 3 and 4), with no Python dependency: open a
page, record its console errors, uncaught exceptions and network requests, evaluate
JavaScript, take a screenshot."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """$CHROMIUM, else the first of :data:`NAMES` on PATH."""
    return os.environ.get("CHROMIUM") or next(filter(None, map(shutil.which, NAMES)), None)


@dataclass
class Page:
    """What one page did while loading: error messages and the URLs it requested."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


class Browser:
    """``with Browser(path) as b: page = b.open(url); b.evaluate(js); b.screenshot()``."""

    def __init__(self, executable: str, timeout: float = 60.0):
        self.timeout, self._id, self._buffer, self._events = timeout, 0, b"", []
        to_browser, self._from_browser = os.pipe(), os.pipe()
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        command = [executable, "--headless=new", "--no-sandbox", "--disable-gpu",
                   "--no-first-run", "--disable-extensions", "--remote-debugging-pipe",
                   "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1200,1600",
                   f"--user-data-dir={self._profile.name}", "about:blank"]  # fmt: skip
        # the browser reads commands on fd 3 and writes answers on fd 4 (bash: dash's exec
        # takes single-digit descriptors only)
        shell = f'exec 3<&{to_browser[0]} 4>&{self._from_browser[1]}; exec "$@"'
        self._process = subprocess.Popen(
            ["bash", "-c", shell, "bash", *command],
            pass_fds=(to_browser[0], self._from_browser[1]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser[0])
        os.close(self._from_browser[1])
        self._write, self._read = to_browser[1], self._from_browser[0]
        self._session = None

    def __enter__(self) -> Browser:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        attached = self.send("Target.attachToTarget", targetId=target, flatten=True)
        self._session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self.send("Browser.close", session=False)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._write)
        os.close(self._read)
        self._profile.cleanup()

    def open(self, url: str) -> Page:
        """Navigate to ``url`` and wait for its load event; return what happened meanwhile."""
        self._events.clear()
        self.send("Page.navigate", url=url)
        self._wait_for("Page.loadEventFired")
        time.sleep(0.2)  # let the page's script run after load
        self.evaluate("0")  # flushes the events sent before this answer
        return self._page(self._events)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (an exception: RuntimeError)."""
        answer = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression!r}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def screenshot(self) -> bytes:
        """A PNG of the whole page."""
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(data["data"])

    def send(self, method: str, session: bool = True, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session and self._session:
            message["sessionId"] = self._session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._next()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def _wait_for(self, event: str) -> None:
        while not any(e.get("method") == event for e in self._events):
            self._events.append(self._next())

    def _next(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError(f"no answer from Chromium in {self.timeout} s")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe (did it start?)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    @staticmethod
    def _page(events: list[dict]) -> Page:
        page = Page()
        for event in events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                page.errors.append(details.get("exception", {}).get("description") or str(details))
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                page.errors.append(str(params.get("args")))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                page.errors.append(params["entry"].get("text", ""))
            elif method == "Network.requestWillBeSent":
                page.requests.append(params["request"]["url"])
        return page
