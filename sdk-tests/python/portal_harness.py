"""Shared pieces of the merchant portal's browser tests and screenshot script.

Everything here talks to loopback only: a hookd it starts itself, loopback webhook
receivers, and a Debian chromium driven through /usr/bin/chromedriver (Selenium Manager is
never asked to download anything).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("HOOKD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("HOOKD_CHROMEDRIVER", "/usr/bin/chromedriver")
AXE_JS = REPO / "sdk-tests" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
WAIT = 15.0  # seconds a page or a delivery may take to show up

# Selenium Manager must never go to the network.
os.environ["SE_OFFLINE"] = "true"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    return None


# --------------------------------------------------------------------------
# hookd
# --------------------------------------------------------------------------


class _PortTaken(Exception):
    pass


class Hookd:
    """A hookd process on a free loopback port with a fresh SQLite database."""

    def __init__(self, extra_env: dict | None = None) -> None:
        binary = os.environ.get("HOOKD_BIN") or str(REPO / "target" / "debug" / "hookd")
        binary = str(Path(binary).resolve())
        if not os.path.exists(binary):
            raise RuntimeError(f"hookd binary not found at {binary} (cargo build -p hookd)")
        self._binary = binary
        self._extra_env = extra_env or {}
        self.tmpdir = tempfile.mkdtemp(prefix="hookd-portal-")
        self.token = secrets.token_urlsafe(32)
        self.log_path = os.path.join(self.tmpdir, "hookd.log")
        self._log = open(self.log_path, "wb")
        # The free port may be taken by another process before hookd binds it: then hookd
        # exits, or someone else answers; try another port.
        for attempt in range(3):
            try:
                self._start()
                return
            except _PortTaken:
                if attempt == 2:
                    self.close()
                    raise RuntimeError("hookd could not get a free port")
            except BaseException:
                self.close()
                raise

    def _start(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update(
            {
                "HOOKD_LISTEN": f"127.0.0.1:{self.port}",
                "HOOKD_DATABASE_URL": f"sqlite://{self.tmpdir}/h.db",
                "HOOKD_ADMIN_TOKEN": self.token,
                "HOOKD_SEED": "payments",
                "HOOKD_ALLOW_DESTINATIONS": "127.0.0.0/8",
                "HOOKD_RETRY_SCHEDULE": "1s,1s,1s",
                "HOOKD_LOG": "warn",
            }
        )
        env.update(self._extra_env)
        self.proc = subprocess.Popen(
            [self._binary, "serve"], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._wait_healthy()
        # The server that answered must be ours: it knows our admin token.
        request = urllib.request.Request(
            f"{self.url}/api/v1/app", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                ours = r.status == 200
        except urllib.error.HTTPError:
            ours = False
        if not ours or self.proc.poll() is not None:
            self._stop()
            raise _PortTaken()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                self._log.flush()
                if "in use" in Path(self.log_path).read_text(errors="replace").lower():
                    raise _PortTaken()
                raise RuntimeError(
                    f"hookd exited with {self.proc.returncode}:\n"
                    f"{Path(self.log_path).read_text(errors='replace')}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=1) as r:
                    if r.status == 204:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("hookd did not answer 204 on /api/v1/health within 30s")
            time.sleep(0.1)

    def svix(self, token: str | None = None):
        from svix.api import Svix, SvixOptions

        return Svix(token or self.token, SvixOptions(server_url=self.url))

    def log(self) -> str:
        self._log.flush()
        return Path(self.log_path).read_text(errors="replace")

    def close(self) -> None:
        self._stop()
        self._log.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def _stop(self) -> None:
        proc = getattr(self, "proc", None)
        if proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------
# loopback HTTP servers
# --------------------------------------------------------------------------


class Receiver:
    """A webhook receiver on 127.0.0.1 whose answer (status, body) can be switched."""

    def __init__(self, status: int = 204, body: bytes = b"") -> None:
        self.status = status
        self.body = body
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    status, answer = receiver.status, receiver.body
                self.send_response(status)
                if answer:
                    self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                if answer:
                    self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/webhook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class StaticSite:
    """Serves fixed pages (path -> html) on `host`:port, e.g. a host page for an iframe."""

    def __init__(self, pages: dict[str, str], host: str = "127.0.0.1") -> None:
        self.pages = pages

        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                page = site.pages.get(self.path.split("?")[0])
                if page is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = page.encode()
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.origin = f"http://{host}:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------
# the browser
# --------------------------------------------------------------------------


def make_driver(profile_dir: str, block_third_party_cookies: bool = True):
    """A headless chromium from Debian's packages, logging the console."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        "--window-size=1280,900",
        f"--user-data-dir={profile_dir}",
    ):
        options.add_argument(flag)
    if block_third_party_cookies:
        options.add_argument("--test-third-party-cookie-phaseout")
        options.add_experimental_option(
            "prefs",
            {
                "profile.block_third_party_cookies": True,
                "profile.cookie_controls_mode": 1,
            },
        )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(60)
    return driver


def wait_until(fn, timeout: float = WAIT, interval: float = 0.1, what: str = "condition"):
    """Calls fn until it returns something truthy; stale elements mid-swap count as not yet."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        WebDriverException,
    )

    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = fn()
            if value:
                return value
        except (StaleElementReferenceException, NoSuchElementException) as err:
            last_error = err
        except WebDriverException as err:
            # Chromium's word for a stale element when the page is swapped between finding an
            # element and reading it: not yet, like any stale element.
            if "does not belong to the document" not in str(err):
                raise
            last_error = err
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} ({last_error})")
        time.sleep(interval)


def page_ready(driver) -> bool:
    """The portal page is in: the boot shell is gone and htmx has nothing in flight."""
    return driver.execute_script(
        "return document.readyState === 'complete'"
        " && !document.getElementById('boot')"
        " && !document.querySelector('.htmx-request')"
        " && !!document.querySelector('main h1');"
    )


def wait_page(driver, heading: str | None = None, timeout: float = WAIT) -> str:
    """Waits for a portal page (optionally one whose h1 contains `heading`); returns the h1."""
    from selenium.webdriver.common.by import By

    def ready():
        if not page_ready(driver):
            return None
        h1 = driver.find_element(By.CSS_SELECTOR, "main h1").text
        if "Your session has ended" in h1 and (heading is None or heading not in h1):
            raise AssertionError(
                f"the portal signed the session out at {driver.execute_script('return location.href')} "
                f"(wanted a page with heading {heading!r}); sessionStorage: "
                + str(driver.execute_script("return Object.keys(sessionStorage)"))
            )
        if heading is not None and heading not in h1:
            return None
        return h1 or " "

    return wait_until(ready, timeout, what=f"a portal page with heading {heading!r}")


def click(driver, css: str | None = None, text: str | None = None):
    """Clicks the first element matching css (and containing text)."""
    from selenium.webdriver.common.by import By

    def find():
        for el in driver.find_elements(By.CSS_SELECTOR, css or "a, button"):
            if text is None or text in el.text:
                return el
        return None

    el = wait_until(find, what=f"element {css!r} with text {text!r}")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
    el.click()
    return el


def open_path(driver, base_url: str, path: str, heading: str | None = None) -> str:
    """A full page load of a portal path, like a reload or a bookmark."""
    driver.get(base_url + path)
    return wait_page(driver, heading)


def open_fresh(driver, url: str, heading: str | None = None) -> str:
    """Opens a magic link in a clean tab state: no cookie, no stored session."""
    driver.get(url.split("#")[0].rsplit("/portal/", 1)[0] + "/portal/assets/portal.css")
    driver.delete_all_cookies()
    driver.execute_script("sessionStorage.clear();")
    driver.get("about:blank")
    driver.get(url)
    return wait_page(driver, heading)


def set_color_scheme(driver, scheme: str) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
    )


def set_viewport(driver, width: int, height: int, mobile: bool) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )


def run_axe(driver) -> list[dict]:
    """Injects axe-core into the page and returns its violations."""
    if not AXE_JS.exists():
        raise AssertionError(f"{AXE_JS} is missing: run `npm ci` in sdk-tests/axe")
    driver.execute_script(AXE_JS.read_text())
    result = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ['violations']})
          .then(r => done({ok: true, violations: r.violations}))
          .catch(e => done({ok: false, error: String(e)}));
        """
    )
    if not result.get("ok"):
        raise AssertionError(f"axe.run failed: {result.get('error')}")
    return result["violations"]


# --------------------------------------------------------------------------
# pages that show hostile data (the portal's and the dashboard's tests)
# --------------------------------------------------------------------------


def assert_no_alert(driver, where: str) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        alert = driver.switch_to.alert
        text = alert.text
        alert.dismiss()
    except NoAlertPresentException:
        return
    raise AssertionError(f"{where}: a script ran and opened an alert saying {text!r}")


IGNORED_CONSOLE = ("/favicon.ico - Failed to load resource",)


def assert_clean_console(driver, where: str) -> None:
    """No SEVERE console entry (script errors, CSP violations, failed loads)."""
    entries = driver.get_log("browser")
    severe = [
        e
        for e in entries
        if e["level"] == "SEVERE" and not any(s in e["message"] for s in IGNORED_CONSOLE)
    ]
    assert not severe, f"{where}: console errors:\n" + "\n".join(e["message"] for e in severe)


def assert_page_safe(driver, where: str, literal: list[str]) -> None:
    """The page shows `literal` as text, ran none of it, and logged no error."""
    from selenium.webdriver.common.by import By

    time.sleep(0.5)  # an onerror handler runs once the broken image fails to load
    assert_no_alert(driver, where)
    def shown():
        text = driver.find_element(By.TAG_NAME, "body").text
        return text if all(s in text for s in literal) else None

    try:
        text = wait_until(shown, 5, what="the literal text")
    except AssertionError:
        text = driver.find_element(By.TAG_NAME, "body").text
    for s in literal:
        assert s in text, (
            f"{where}: {s!r} is not shown literally; page text:\n{text[:2000]}\nheader: "
            + driver.execute_script("return document.querySelector('header').outerHTML")
        )
    injected = driver.execute_script(
        "return [...document.querySelectorAll('img[src=x], img[onerror], body script')]"
        ".map(e => e.outerHTML);"
    )
    assert not injected, f"{where}: markup from data became elements: {injected}"
    assert_clean_console(driver, where)
