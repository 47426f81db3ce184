"""The operator dashboard (/ui/) in a real browser: Debian's chromium, headless, driven by
Selenium, with the merchant portal's harness (portal_harness.py).

Everything stays on loopback: hookd and the webhook receivers are local servers this module
starts. Under CI=true a missing chromium/chromedriver fails the tests; elsewhere they are
skipped.

    HOOKD_BIN=target/debug/hookd .venv/bin/python -m pytest -q sdk-tests/python/test_dashboard_browser.py

The accessibility test needs axe-core: `npm ci --prefix sdk-tests/axe` first.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from portal_harness import (
    assert_page_safe,
    Hookd,
    Receiver,
    StaticSite,
    browser_missing,
    click,
    make_driver,
    open_path,
    run_axe,
    set_color_scheme,
    wait_page,
    wait_until,
)

# Selenium is in requirements.txt; without it these tests cannot run, which under CI is a failure.
try:
    import selenium  # noqa: F401, E402
except ImportError:
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip("selenium is not installed", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from svix.api import ApplicationIn, EndpointIn  # noqa: E402
from svix.api.message_attempt import MessageAttemptListByMsgOptions  # noqa: E402

DELIVERY_WAIT = 20.0
# The overview polls every 3 s and nodes flush their counts every 2 s.
LIVE_WAIT = 15.0


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    h = Hookd()
    yield h
    h.close()


@pytest.fixture(scope="module")
def svix(server):
    return server.svix()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def driver(request):
    missing = browser_missing()
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests cannot run under CI: {missing}")
        pytest.skip(missing)
    profile = tempfile.mkdtemp(prefix="hookd-chromium-")
    d = make_driver(profile)
    yield d
    d.quit()
    shutil.rmtree(profile, ignore_errors=True)


def payment(event: str, payment_id: str, status: str, amount: int = 4999) -> dict:
    """A payload in the seeded catalog's schema."""
    return {
        "event": event,
        "timestamp": "2026-12-06T10:00:00Z",
        "data": {
            "paymentId": payment_id,
            "status": status,
            "amount": amount,
            "currency": "EUR",
            "orderId": "ord_4242",
        },
    }


def send(server: Hookd, app_id: str, event: str, payload: dict, ordering_key: str | None = None) -> str:
    """POST /api/v1/app/{app}/msg over plain HTTP (the SDK has no field for the ordering
    key); answers the message id."""
    body = {"eventType": event, "payload": payload}
    if ordering_key:
        body["orderingKey"] = ordering_key
    request = urllib.request.Request(
        f"{server.url}/api/v1/app/{app_id}/msg",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())["id"]


# --------------------------------------------------------------------------
# page helpers
# --------------------------------------------------------------------------


def main_text(driver) -> str:
    return driver.find_element(By.TAG_NAME, "main").text


def sign_in(driver, base_url: str, token: str) -> None:
    """Signs in through the sign-in form; lands on the overview."""
    open_path(driver, base_url, "/ui/", "Sign in")
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    click(driver, "main button", "Sign in")
    wait_page(driver, "Overview")


def sign_out(driver) -> None:
    click(driver, "header button", "Sign out")
    wait_page(driver, "Sign in")


def tile(driver, label: str) -> str:
    """The value of the overview tile labelled `label`, as shown now."""
    for li in driver.find_elements(By.CSS_SELECTOR, "#live .tile"):
        if li.find_element(By.CSS_SELECTOR, ".tile-label").text == label:
            return li.find_element(By.CSS_SELECTOR, ".tile-value").text
    raise AssertionError(f"no overview tile {label!r}")


def endpoint_card(driver, endpoint_id: str):
    return driver.find_element(By.ID, endpoint_id)


def confirm(driver, question: str) -> None:
    """On a confirmation page asking `question`, says yes."""
    h1 = wait_page(driver, question)
    assert "Yes, do it" in main_text(driver), h1
    click(driver, "main button", "Yes, do it")


def audit_rows(driver) -> list[list[str]]:
    """The audit log's rows: [when, who, what, to, details] each."""
    return [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in driver.find_elements(By.CSS_SELECTOR, "main tbody tr")
    ]


# --------------------------------------------------------------------------
# the journey: the "done when"
# --------------------------------------------------------------------------


def test_operator_journey(server, svix, receiver, driver):
    base = server.url
    shop = svix.application.create(ApplicationIn(name="Journey Coffee", uid="journey-coffee"))
    ep = svix.endpoint.create(
        shop.id, EndpointIn(url=receiver.url("/hooks/payments"), description="Order service")
    )
    pay = "pay_J0urn3y42"

    # Signed out, a dashboard page is the sign-in form. The admin token signs in, and the
    # System page makes an org token for the on-call engineer.
    open_path(driver, base, f"/ui/apps/{shop.id}", "Sign in")
    assert "Journey Coffee" not in main_text(driver)
    sign_in(driver, base, server.token)
    open_path(driver, base, "/ui/system", "System")
    driver.find_element(By.ID, "token-name").send_keys("on-call")
    click(driver, "main button", "Create token")
    wait_page(driver, "System")
    org_token = driver.find_element(By.ID, "new-token").get_attribute("value")
    assert org_token.startswith("hookd_org_"), org_token

    # Sign out, and back in with the new org token: the header names it.
    sign_out(driver)
    sign_in(driver, base, org_token)
    assert "on-call" in driver.find_element(By.CSS_SELECTOR, "header .signout").text

    # A delivered message shows on the overview within seconds, without a reload.
    # (wait_until: a tile read while htmx swaps the figures in is read again)
    before = int(wait_until(lambda: tile(driver, "Messages in, last hour")))
    delivered_before = int(wait_until(lambda: tile(driver, "Delivered, last hour")))
    driver.execute_script("window.__notReloaded = true;")
    created = send(server, shop.id, "payment.created", payment("payment.created", pay, "created"), pay)
    wait_until(lambda: receiver.requests, DELIVERY_WAIT, what="the first delivery")
    wait_until(
        lambda: int(tile(driver, "Messages in, last hour")) > before
        and int(tile(driver, "Delivered, last hour")) > delivered_before,
        LIVE_WAIT,
        what="the overview to count the message in and delivered",
    )
    assert driver.execute_script("return window.__notReloaded === true;"), (
        "the overview was reloaded instead of refreshed in place"
    )

    # The receiver answers 500: the endpoint turns failing on its application page and on
    # the overview.
    receiver.status = 500
    captured = send(
        server, shop.id, "payment.captured", payment("payment.captured", pay, "captured"), pay
    )

    def failing_badge():
        open_path(driver, base, f"/ui/apps/{shop.id}", "Journey Coffee")
        badge = endpoint_card(driver, ep.id).find_element(By.CSS_SELECTOR, ".badge").text
        if badge.startswith("Failing since"):
            return badge
        time.sleep(0.5)
        return None

    wait_until(failing_badge, DELIVERY_WAIT, what="the endpoint's badge to read 'Failing since'")
    open_path(driver, base, "/ui/", "Overview")
    wait_until(
        lambda: int(tile(driver, "Endpoints failing")) >= 1,
        LIVE_WAIT,
        what="the overview's 'Endpoints failing' tile",
    )

    # Retries (1s,1s,1s) run out: the captured message's delivery is failed for good.
    def attempts_of(msg_id: str) -> list:
        return svix.message_attempt.list_by_msg(
            shop.id, msg_id, MessageAttemptListByMsgOptions(endpoint_id=ep.id)
        ).data

    wait_until(lambda: len(attempts_of(captured)) >= 4, DELIVERY_WAIT, what="four failed attempts")
    time.sleep(0.5)

    # Search the payment id: both messages, the endpoint, every attempt.
    open_path(driver, base, "/ui/search", "Messages")
    driver.find_element(By.ID, "q").send_keys(pay)
    click(driver, "main form button", "Search")
    wait_page(driver, "Messages")
    results = {
        s.get_attribute("aria-label").split()[-1]: s
        for s in driver.find_elements(By.CSS_SELECTOR, "main section.found")
    }
    assert set(results) == {created, captured}, sorted(results)
    for msg_id, want in ((created, "HTTP 204"), (captured, "HTTP 500")):
        section = results[msg_id]
        assert receiver.url("/hooks/payments") in section.text
        rows = section.find_elements(
            By.XPATH, ".//table[thead/tr/th[1][normalize-space()='Attempt']]/tbody/tr"
        )
        api = attempts_of(msg_id)
        assert len(rows) == len(api), (msg_id, [r.text for r in rows], len(api))
        assert all(want in r.text for r in rows), [r.text for r in rows]
    assert "Failed" in results[captured].text

    # The receiver is back; recover the endpoint's failed messages since ten minutes ago,
    # and watch the task finish on its own page (it refreshes itself).
    receiver.status = 204
    answered_500 = len(receiver.requests)
    since = (datetime.now(timezone.utc) - timedelta(minutes=10)).strftime("%Y-%m-%d %H:%M")
    open_path(driver, base, f"/ui/apps/{shop.id}", "Journey Coffee")
    field = driver.find_element(By.ID, f"since-{ep.id}")
    field.clear()
    field.send_keys(since)
    click(driver, f"li[id='{ep.id}'] button", "Recover")
    confirm(driver, f"Send again every failed message of endpoint {ep.id} since {since} UTC?")
    wait_page(driver, "Recovery of endpoint")
    assert "/ui/tasks/" in driver.current_url, driver.current_url
    driver.execute_script("window.__notReloaded = true;")
    wait_until(
        lambda: "Finished" in driver.find_element(By.CSS_SELECTOR, ".task-state").text,
        LIVE_WAIT,
        what="the recovery task to show Finished",
    )
    assert driver.execute_script("return window.__notReloaded === true;")
    wait_until(
        lambda: any(captured in json.dumps(r["headers"]) for r in receiver.requests[answered_500:]),
        DELIVERY_WAIT,
        what="the recovered message to reach the receiver",
    )

    # Disable, then enable the endpoint; each asks first.
    open_path(driver, base, f"/ui/apps/{shop.id}", "Journey Coffee")
    click(driver, f"li[id='{ep.id}'] button", "Disable")
    confirm(driver, f"Disable endpoint {ep.id}?")
    wait_page(driver, "Journey Coffee")
    assert endpoint_card(driver, ep.id).find_element(By.CSS_SELECTOR, ".badge").text == "Disabled"
    assert svix.endpoint.get(shop.id, ep.id).disabled is True
    click(driver, f"li[id='{ep.id}'] button", "Enable")
    confirm(driver, f"Enable endpoint {ep.id}?")
    wait_page(driver, "Journey Coffee")
    assert endpoint_card(driver, ep.id).find_element(By.CSS_SELECTOR, ".badge").text != "Disabled"
    assert svix.endpoint.get(shop.id, ep.id).disabled is False

    # Each action is in the audit log, newest first, under the token's name.
    open_path(driver, base, "/ui/audit", "Audit log")
    rows = audit_rows(driver)
    mine = [r for r in rows if r[1].startswith("org token “on-call”")]
    assert [r[2] for r in mine[:3]] == ["enable", "disable", "recover"], rows
    assert all(ep.id in r[3] for r in mine[:3]), mine[:3]
    assert any(r[2] == "token.create" and "admin token" in r[1] for r in rows), rows

    # Sign out: no dashboard page opens any more, not even by its address.
    sign_out(driver)
    for path, secret in (
        (f"/ui/apps/{shop.id}", "Journey Coffee"),
        (f"/ui/search?q={pay}", captured),
        ("/ui/audit", "on-call"),
        ("/ui/", "Messages in"),
    ):
        open_path(driver, base, path, "Sign in")
        assert secret not in main_text(driver), path
    driver.back()
    wait_page(driver, "Sign in")


# --------------------------------------------------------------------------
# escaping: what merchants and receivers send is shown as text
# --------------------------------------------------------------------------

APP_XSS = "<script>alert(1)</script>"
PAYLOAD_XSS = "</pre><script>alert(2)</script>"
URL_XSS = '"><img src=x onerror=alert(3)>'


def test_hostile_names_and_payloads_run_nothing(server, svix, driver):
    receiver = Receiver(status=500, body=b"<img src=x onerror=alert(4)>")
    try:
        app = svix.application.create(ApplicationIn(name=APP_XSS, uid="evil-shop"))
        ep = svix.endpoint.create(app.id, EndpointIn(url=receiver.url("/hook?x=" + URL_XSS)))
        # The seeded catalog checks payment.created payloads: the markup goes in its strings.
        hostile_payment = payment("payment.created", "pay_evil1", "created")
        hostile_payment["data"]["orderId"] = PAYLOAD_XSS
        hostile_payment["note"] = APP_XSS
        msg = send(
            server,
            app.id,
            "payment.created",
            hostile_payment,
            "pay_evil1",
        )
        wait_until(lambda: receiver.requests, DELIVERY_WAIT, what="an attempt")
        sign_in(driver, server.url, server.token)
        driver.get_log("browser")  # the sign-in page itself answers 401: not a page error
        # An action on the hostile application, for the audit log.
        open_path(driver, server.url, f"/ui/apps/{app.id}")
        click(driver, f"li[id='{ep.id}'] button", "Rotate secret")
        confirm(driver, "Rotate the signing secret")
        wait_page(driver)
        assert_page_safe(driver, "application page", [APP_XSS, ep.url])
        for name, path, literal in (
            ("overview", "/ui/", []),
            ("applications", "/ui/apps", [APP_XSS]),
            ("applications search", "/ui/apps?q=%3Cscript", [APP_XSS]),
            ("message", f"/ui/apps/{app.id}/messages/{msg}", [APP_XSS, PAYLOAD_XSS]),
            ("search by payment id", "/ui/search?q=pay_evil1", [ep.url]),
            ("search for markup", "/ui/search?q=%3Cscript%3Ealert(1)%3C/script%3E", [APP_XSS]),
            ("endpoints search", "/ui/endpoints?url=hook", [ep.url]),
            ("audit log", f"/ui/audit?app={app.id}", []),
        ):
            open_path(driver, server.url, path)
            assert_page_safe(driver, name, literal)
    finally:
        receiver.close()


def test_hostile_data_checks_catch_a_vulnerable_page(driver):
    """The checks above must fail on a page that does run injected markup."""
    site = StaticSite(
        {
            "/vulnerable.html": "<!doctype html><title>v</title><body><main><h1>v</h1>"
            f"{APP_XSS}</main>",
            "/broken.html": "<!doctype html><title>b</title><body><main><h1>b</h1>"
            "&lt;img&gt;<script>undefinedFunction()</script></main>",
        }
    )
    try:
        driver.get(f"{site.origin}/vulnerable.html")
        with pytest.raises(AssertionError, match="opened an alert"):
            assert_page_safe(driver, "vulnerable", [])
        driver.get(f"{site.origin}/broken.html")
        with pytest.raises(AssertionError, match="became elements|console errors"):
            assert_page_safe(driver, "broken", ["<img>"])
    finally:
        site.close()


# --------------------------------------------------------------------------
# accessibility (axe-core) on every page state
# --------------------------------------------------------------------------


def test_every_dashboard_page_passes_axe(server, svix, driver):
    failing = Receiver(status=500, body=b"upstream unavailable")
    ok = Receiver()
    try:
        app = svix.application.create(ApplicationIn(name="Accessible Tea", uid="accessible-tea"))
        good = svix.endpoint.create(app.id, EndpointIn(url=ok.url("/orders")))
        bad = svix.endpoint.create(app.id, EndpointIn(url=failing.url("/ledger")))
        msg = send(server, app.id, "payment.captured",
                   payment("payment.captured", "pay_a11y", "captured"), "pay_a11y")
        wait_until(lambda: ok.requests and failing.requests, DELIVERY_WAIT, what="attempts")

        found: dict[str, list] = {}

        def check(name: str) -> None:
            """axe on the page as it is, in the light and the dark colour scheme."""
            wait_page(driver)
            for scheme in ("light", "dark"):
                set_color_scheme(driver, scheme)
                found[f"{name} ({scheme})"] = [
                    v for v in run_axe(driver) if v.get("impact") in ("serious", "critical")
                ]
            set_color_scheme(driver, "light")

        open_path(driver, server.url, "/ui/", "Sign in")
        check("sign-in")
        driver.find_element(By.ID, "token").send_keys("hookd_org_wrong")
        click(driver, "main button", "Sign in")
        wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, ".error"), what="the error")
        check("sign-in refused")
        sign_in(driver, server.url, server.token)
        check("overview")
        open_path(driver, server.url, "/ui/apps", "Applications")
        check("applications")
        open_path(driver, server.url, f"/ui/apps/{app.id}", "Accessible Tea")
        check("application")
        click(driver, "main button", "Create portal link")
        wait_until(lambda: driver.find_elements(By.ID, "portal-link"), what="the portal link")
        check("application with a portal link")
        open_path(driver, server.url, f"/ui/apps/{app.id}/messages/{msg}", "payment.captured")
        check("message")
        open_path(driver, server.url, "/ui/search?q=pay_a11y", "Messages")
        check("search results")
        open_path(driver, server.url, "/ui/search?q=pay_nothing", "Messages")
        check("search with no result")
        open_path(driver, server.url, "/ui/endpoints?url=127.0.0.1", "Endpoints")
        check("endpoints search")
        open_path(driver, server.url, "/ui/event-types", "Event types")
        check("event types")
        open_path(driver, server.url, "/ui/event-types/edit", None)
        driver.find_element(By.ID, "name").send_keys("payment.disputed")
        driver.find_element(By.ID, "schema").send_keys("{")
        click(driver, "main button", "Save")
        wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, ".field-error"), what="errors")
        check("event type form with errors")
        open_path(driver, server.url, f"/ui/apps/{app.id}", "Accessible Tea")
        click(driver, f"li[id='{bad.id}'] button", "Recover")
        wait_page(driver, "Send again every failed message")
        check("confirmation")
        click(driver, "main button", "Yes, do it")
        wait_page(driver, "Recovery of endpoint")
        check("task")
        open_path(driver, server.url, f"/ui/apps/{app.id}", "Accessible Tea")
        click(driver, f"li[id='{bad.id}'] button", "Check endpoint")
        wait_page(driver, "Check endpoint")
        click(driver, "main button", "Yes, do it")
        wait_page(driver, "Checks of")
        check("endpoint check report")
        open_path(driver, server.url, "/ui/audit", "Audit log")
        check("audit log")
        open_path(driver, server.url, "/ui/system", "System")
        check("system")
        driver.find_element(By.ID, "token-name").send_keys("axe")
        click(driver, "main button", "Create token")
        wait_until(lambda: driver.find_elements(By.ID, "new-token"), what="the new token")
        check("system with a new token")

        bad_pages = {page: v for page, v in found.items() if v}
        report = "\n".join(
            f"{page}: [{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})\n"
            + "\n".join(f"    {n['target']}: {n.get('failureSummary', '')}" for n in v["nodes"])
            for page, vs in bad_pages.items()
            for v in vs
        )
        print(report or f"axe: no serious or critical violation on {len(found)} page states")
        assert not bad_pages, "serious/critical accessibility violations:\n" + report
    finally:
        ok.close()
        failing.close()
