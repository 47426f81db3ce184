"""The merchant portal in a real browser: Debian's chromium, headless, driven by Selenium.

Everything stays on loopback: hookd, the webhook receivers and the page that embeds the
portal in an iframe are local servers this module starts. Under CI=true a missing
chromium/chromedriver fails the tests; elsewhere they are skipped.

    HOOKD_BIN=target/debug/hookd .venv/bin/python -m pytest -q sdk-tests/python/test_portal_browser.py

The accessibility test needs axe-core: `npm ci --prefix sdk-tests/axe` first.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import pytest

from portal_harness import (
    assert_no_alert,
    assert_page_safe,
    Hookd,
    Receiver,
    StaticSite,
    browser_missing,
    click,
    make_driver,
    open_fresh,
    open_path,
    run_axe,
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
from selenium.webdriver.support.ui import Select  # noqa: E402
from svix.api import AppPortalAccessIn, ApplicationIn, EndpointIn, MessageIn  # noqa: E402

DELIVERY_WAIT = 20.0


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def host_site():
    """Another origin (http://localhost:<port>) whose pages embed the portal."""
    site = StaticSite({}, host="localhost")
    yield site
    site.close()


@pytest.fixture(scope="module")
def server(host_site):
    h = Hookd({"HOOKD_PORTAL_FRAME_ANCESTORS": host_site.origin})
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


def portal_link(svix, app_id: str, **access) -> str:
    url = svix.authentication.app_portal_access(app_id, AppPortalAccessIn(**access)).url
    assert "/portal/#key=" in url, url
    return url


def payment(payment_id: str, order_id: str, event: str = "payment.captured") -> dict:
    """A payload in the seeded catalog's schema."""
    return {
        "event": event,
        "timestamp": "2026-12-06T10:00:00Z",
        "data": {
            "paymentId": payment_id,
            "status": "captured",
            "amount": 4999,
            "currency": "EUR",
            "orderId": order_id,
        },
    }


# --------------------------------------------------------------------------
# page helpers
# --------------------------------------------------------------------------


def section_rows(driver, heading_id: str) -> list[str]:
    """The text of each body row of the table in the panel titled by `heading_id`."""
    return [
        row.text
        for row in driver.find_elements(
            By.CSS_SELECTOR, f"section[aria-labelledby='{heading_id}'] tbody tr"
        )
    ]


def wait_for_attempt(driver, base_url: str, msg_path: str, want: str, result: str, after: int = 0):
    """Reloads the message page until an attempt row beyond the first `after` rows reads
    `result` (Delivered/Failed) with `want` (e.g. "HTTP 204"); returns all rows."""

    def look():
        open_path(driver, base_url, msg_path)
        rows = section_rows(driver, "a-h")
        # The table lists attempts newest first.
        new = rows[: len(rows) - after] if after else rows
        if any(want in r and result in r for r in new):
            return rows
        time.sleep(0.3)
        return None

    return wait_until(look, DELIVERY_WAIT, what=f"an attempt '{result} … {want}' on {msg_path}")


def delivery_status(driver) -> str:
    rows = section_rows(driver, "d-h")
    assert len(rows) == 1, rows
    return rows[0]


# --------------------------------------------------------------------------
# the journey: the "done when"
# --------------------------------------------------------------------------


def test_merchant_journey(server, svix, receiver, driver):
    app = svix.application.create(ApplicationIn(name="Journey shop"))
    url = portal_link(svix, app.id)

    driver.get(url)
    assert wait_page(driver, "Endpoints") == "Endpoints"
    assert "#key=" not in driver.current_url, "the one-time key must leave the address bar"
    assert "No endpoints yet" in driver.find_element(By.TAG_NAME, "main").text

    # Add an endpoint on the receiver for two payment events.
    click(driver, "a.button", "Add endpoint")
    wait_page(driver, "Add an endpoint")
    driver.find_element(By.ID, "url").send_keys(receiver.url("/journey"))
    driver.find_element(By.ID, "description").send_keys("Journey receiver")
    for name in ("payment.captured", "payment.failed"):
        driver.find_element(
            By.CSS_SELECTOR, f"input[name=event_types][value='{name}']"
        ).click()
    click(driver, "button", "Save endpoint")
    wait_page(driver, receiver.url("/journey"))
    assert "The endpoint is added" in driver.find_element(By.TAG_NAME, "main").text
    ep_id = driver.current_url.split("/portal/endpoints/")[1].split("?")[0]
    ep = svix.endpoint.get(app.id, ep_id)
    assert ep.url == receiver.url("/journey")
    assert sorted(ep.event_types or []) == ["payment.captured", "payment.failed"]
    facts = driver.find_element(By.CSS_SELECTOR, "dl.facts").text
    assert "payment.captured" in facts and "payment.failed" in facts, facts

    # Reveal the secret: the API's secret.
    click(driver, "button", "Reveal secret")
    shown = wait_until(
        lambda: driver.find_element(By.ID, "secret-value").text, what="the revealed secret"
    )
    assert shown.startswith("whsec_"), shown
    assert shown == svix.endpoint.get_secret(app.id, ep_id).key

    # Rotate it: a new secret is shown, and it is the API's.
    click(driver, "button", "Rotate secret")
    rotated = wait_until(
        lambda: (t := driver.find_element(By.ID, "secret-value").text) != shown and t,
        what="a rotated secret",
    )
    assert rotated.startswith("whsec_"), rotated
    assert "The secret was rotated" in driver.find_element(By.TAG_NAME, "main").text
    assert rotated == svix.endpoint.get_secret(app.id, ep_id).key

    # A test event, delivered with the receiver's answer.
    open_path(driver, server.url, f"/portal/endpoints/{ep_id}")
    Select(driver.find_element(By.ID, "event_type")).select_by_value("payment.captured")
    click(driver, "button", "Send test event")
    wait_page(driver, "payment.captured")
    msg_path = driver.current_url.split(server.url, 1)[1]
    assert msg_path.startswith("/portal/messages/msg_"), msg_path
    wait_for_attempt(driver, server.url, msg_path, "HTTP 204", "Delivered")
    assert "Delivered" in delivery_status(driver)
    assert receiver.requests and receiver.requests[0]["path"] == "/journey"

    # The receiver fails: the attempt shows as failed with its status code.
    receiver.status = 500
    open_path(driver, server.url, f"/portal/endpoints/{ep_id}")
    Select(driver.find_element(By.ID, "event_type")).select_by_value("payment.captured")
    click(driver, "button", "Send test event")
    wait_page(driver, "payment.captured")
    failed_path = driver.current_url.split(server.url, 1)[1]
    assert failed_path != msg_path
    wait_for_attempt(driver, server.url, failed_path, "HTTP 500", "Failed")
    # Let the retries (1s, 1s, 1s) run out so only Resend can deliver it.
    wait_until(
        lambda: open_path(driver, server.url, failed_path)
        and "Failed" in delivery_status(driver),
        DELIVERY_WAIT,
        what="the delivery to give up",
    )
    before = section_rows(driver, "a-h")
    assert before and all("HTTP 500" in r and "Failed" in r for r in before), before

    # The receiver is back: Resend delivers it.
    receiver.status = 204
    click(driver, "button", "Resend")
    wait_page(driver, "payment.captured")
    rows = wait_for_attempt(
        driver, server.url, failed_path, "HTTP 204", "Delivered", after=len(before)
    )
    assert len(rows) == len(before) + 1, rows
    assert "Delivered" in delivery_status(driver)


# --------------------------------------------------------------------------
# the portal in an iframe on another origin, third-party cookies blocked
# --------------------------------------------------------------------------


def test_check_my_endpoint_shows_the_apis_grades(server, svix, receiver, driver):
    """The merchant checks an endpoint whose server answers 204 to anything: the page shows,
    check by check, the grades the API keeps for the endpoint."""
    import json
    import urllib.request

    app = svix.application.create(ApplicationIn(name="Trusting shop"))
    ep = svix.endpoint.create(app.id, EndpointIn(url=receiver.url("/trusting")))
    driver.get(portal_link(svix, app.id))
    wait_page(driver, "Endpoints")
    open_path(driver, server.url, f"/portal/endpoints/{ep.id}")
    click(driver, "a.button", "Check my endpoint")
    wait_page(driver, "Check my endpoint")
    assert "never checked" in driver.find_element(By.TAG_NAME, "main").text
    click(driver, "button", "Run the check")
    rows = wait_until(lambda: section_rows(driver, "latest-h"), what="the report's rows")

    request = urllib.request.Request(
        f"{server.url}/api/v1/app/{app.id}/endpoint/{ep.id}/certify",
        headers={"Authorization": f"Bearer {server.token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        report = json.loads(answer.read())["data"][0]
    labels = {"pass": "Passed", "fail": "Failed", "info": "Note"}
    assert len(rows) == len(report["checks"]), rows
    for row, check in zip(rows, report["checks"]):
        name = check["name"][0].upper() + check["name"][1:]
        assert row.startswith(labels[check["verdict"]]), (row, check)
        assert name in row, (row, check)
    failed = [c["name"] for c in report["checks"] if c["verdict"] == "fail"]
    assert len(failed) == 6, failed
    heading = driver.find_element(By.CSS_SELECTOR, ".heading").text
    assert "6 to fix" in heading, heading
    # The busy note is hidden once the check is done.
    assert not [e for e in driver.find_elements(By.CSS_SELECTOR, ".htmx-indicator") if e.is_displayed()]
    # The endpoint page sums it up.
    open_path(driver, server.url, f"/portal/endpoints/{ep.id}")
    assert "6 checks failed" in driver.find_element(By.TAG_NAME, "main").text


def test_portal_in_cross_origin_iframe(server, svix, host_site, receiver, driver):
    app = svix.application.create(ApplicationIn(name="Framed shop"))
    url = portal_link(svix, app.id)
    host_site.pages["/host.html"] = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Dashboard</title></head>"
        "<body><h1>Merchant dashboard</h1>"
        f'<iframe id="portal" title="Webhooks" src="{url}" width="1200" height="800"></iframe>'
        "</body></html>"
    )
    driver.get(f"{host_site.origin}/host.html")
    assert driver.execute_script("return location.origin") == host_site.origin
    frame = wait_until(
        lambda: driver.find_element(By.ID, "portal"), what="the iframe"
    )
    driver.switch_to.frame(frame)
    assert driver.execute_script("return location.origin") == server.url
    wait_page(driver, "Endpoints")

    click(driver, "a.button", "Add endpoint")
    wait_page(driver, "Add an endpoint")
    driver.find_element(By.ID, "url").send_keys(receiver.url("/framed"))
    click(driver, "button", "Save endpoint")
    wait_page(driver, receiver.url("/framed"))
    assert "The endpoint is added" in driver.find_element(By.TAG_NAME, "main").text
    eps = svix.endpoint.list(app.id).data
    assert [e.url for e in eps] == [receiver.url("/framed")]

    # The framed page got no cookie: a cross-site iframe must not depend on one.
    driver.switch_to.default_content()
    cookies = driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
    sent = [c for c in cookies if c["name"] == "hookd_portal"]
    assert not sent or all(c.get("sameSite") == "Lax" for c in sent), sent
    assert_no_alert(driver, "iframe host")


# --------------------------------------------------------------------------
# data shown on pages never runs as code
# --------------------------------------------------------------------------

APP_XSS = "<img src=x onerror=alert(1)>"
PAYLOAD_XSS = "<script>alert(2)</script>"
RESPONSE_XSS = "<script>alert(3)</script>"


def test_hostile_data_is_shown_as_text(server, svix, driver):
    receiver = Receiver(status=200, body=RESPONSE_XSS.encode())
    try:
        app = svix.application.create(ApplicationIn(name=APP_XSS))
        ep = svix.endpoint.create(
            app.id,
            EndpointIn(url=receiver.url("/xss"), description="<b onmouseover=alert(4)>desc</b>"),
        )
        msg = svix.message.create(
            app.id,
            MessageIn(event_type="payment.captured", payload=payment("pay_xss", PAYLOAD_XSS)),
        )
        attempts = wait_until(
            lambda: svix.message_attempt.list_by_msg(app.id, msg.id).data,
            DELIVERY_WAIT,
            what="the delivery",
        )
        attempt = attempts[0]
        assert attempt.response_status_code == 200

        driver.get(portal_link(svix, app.id))
        wait_page(driver, "Endpoints")
        assert_page_safe(driver, "endpoints list", [APP_XSS, "<b onmouseover=alert(4)>desc</b>"])

        open_path(driver, server.url, f"/portal/endpoints/{ep.id}")
        assert_page_safe(driver, "endpoint page", [APP_XSS])

        open_path(driver, server.url, "/portal/messages")
        assert_page_safe(driver, "delivery log", [APP_XSS])

        open_path(driver, server.url, f"/portal/messages/{msg.id}", "payment.captured")
        assert_page_safe(driver, "message page", [APP_XSS, PAYLOAD_XSS])

        open_path(driver, server.url, f"/portal/messages/{msg.id}/attempts/{attempt.id}")
        assert_page_safe(driver, "attempt page", [APP_XSS, PAYLOAD_XSS, RESPONSE_XSS])
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
# accessibility (axe-core) on every page
# --------------------------------------------------------------------------


def test_every_page_passes_axe(server, svix, driver):
    receiver = Receiver(status=500, body=b"upstream unavailable")
    try:
        app = svix.application.create(ApplicationIn(name="Accessible shop"))
        ep = svix.endpoint.create(
            app.id,
            EndpointIn(
                url=receiver.url("/a11y"),
                description="Order service",
                event_types=["payment.captured", "payment.failed"],
            ),
        )
        msg = svix.message.create(
            app.id,
            MessageIn(
                event_type="payment.captured",
                payload=payment("pay_1a2b3c4d", "ord_1001"),
            ),
        )
        attempt = wait_until(
            lambda: svix.message_attempt.list_by_msg(app.id, msg.id).data,
            DELIVERY_WAIT,
            what="an attempt",
        )[0]

        found: dict[str, list] = {}

        def check(name: str) -> None:
            found[name] = [
                v for v in run_axe(driver) if v.get("impact") in ("serious", "critical")
            ]

        driver.get(portal_link(svix, app.id))
        wait_page(driver, "Endpoints")
        check("endpoints list")
        open_path(driver, server.url, "/portal/endpoints/new", "Add an endpoint")
        check("new endpoint form")
        driver.find_element(By.ID, "url").send_keys("not a url")
        click(driver, "button", "Save endpoint")
        wait_until(
            lambda: page_has(driver, ".field-error, .error"), what="the form's error"
        )
        check("form with a validation error")
        open_path(driver, server.url, f"/portal/endpoints/{ep.id}")
        check("endpoint detail")
        open_path(driver, server.url, "/portal/messages", "Delivery log")
        check("delivery log")
        open_path(driver, server.url, f"/portal/messages/{msg.id}", "payment.captured")
        check("message")
        open_path(driver, server.url, f"/portal/messages/{msg.id}/attempts/{attempt.id}")
        check("attempt")
        open_path(driver, server.url, "/portal/event-types", "Event catalog")
        check("event catalog")
        open_path(driver, server.url, f"/portal/endpoints/{ep.id}/check", "Check my endpoint")
        check("check page, never checked")
        click(driver, "button", "Run the check")
        wait_until(lambda: section_rows(driver, "latest-h"), what="the report")
        check("check report")

        open_fresh(driver, portal_link(svix, app.id, readOnly=True), "Endpoints")
        assert "read-only access" in driver.find_element(By.TAG_NAME, "main").text
        check("read-only endpoints list")
        open_path(driver, server.url, f"/portal/endpoints/{ep.id}")
        check("read-only endpoint detail")

        bad = {page: v for page, v in found.items() if v}
        report = "\n".join(
            f"{page}: [{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})\n"
            + "\n".join(f"    {n['target']}: {n.get('failureSummary', '')}" for n in v["nodes"])
            for page, vs in bad.items()
            for v in vs
        )
        print(report or f"axe: no serious or critical violation on {len(found)} pages")
        assert not bad, "serious/critical accessibility violations:\n" + report
    finally:
        receiver.close()


def page_has(driver, css: str) -> bool:
    return bool(driver.find_elements(By.CSS_SELECTOR, css)) and not driver.find_elements(
        By.CSS_SELECTOR, ".htmx-request"
    )


# --------------------------------------------------------------------------
# the browser's own buttons: reload, and a second link
# --------------------------------------------------------------------------


def test_reload_after_a_form_shows_a_portal_page(server, svix, receiver, driver):
    """After a form's answer is shown, the address bar must hold a URL that reloads to a
    portal page (not the POST-only action URL, which answers 405 to a GET)."""
    app = svix.application.create(ApplicationIn(name="Reload shop"))
    ep = svix.endpoint.create(app.id, EndpointIn(url=receiver.url("/reload")))
    driver.get(portal_link(svix, app.id))
    wait_page(driver, "Endpoints")
    problems = []

    open_path(driver, server.url, f"/portal/endpoints/{ep.id}")
    click(driver, "button", "Reveal secret")
    wait_until(lambda: driver.find_elements(By.ID, "secret-value"), what="the secret")
    after_reveal = driver.current_url
    driver.refresh()
    try:
        wait_page(driver, receiver.url("/reload"), timeout=5)
    except AssertionError:
        problems.append(
            f"reload after Reveal secret ({after_reveal}): "
            + driver.find_element(By.TAG_NAME, "body").text[:200]
        )

    open_path(driver, server.url, "/portal/endpoints/new", "Add an endpoint")
    driver.find_element(By.ID, "url").send_keys("not a url")
    click(driver, "button", "Save endpoint")
    wait_until(lambda: page_has(driver, ".field-error, .error"), what="the form's error")
    after_error = driver.current_url
    driver.refresh()
    try:
        wait_page(driver, timeout=5)
    except AssertionError:
        problems.append(
            f"reload after a form error ({after_error}): "
            + driver.find_element(By.TAG_NAME, "body").text[:200]
        )
    assert not problems, "\n".join(problems)


def test_a_new_link_replaces_the_session_of_an_old_one(server, svix, driver):
    """Opening another portal link in the same browser signs in with that link, even while
    an earlier session (another account, read-only) is still alive."""
    first = svix.application.create(ApplicationIn(name="First shop"))
    second = svix.application.create(ApplicationIn(name="Second shop"))
    driver.get(portal_link(svix, first.id, readOnly=True))
    wait_page(driver, "Endpoints")
    assert driver.find_element(By.CSS_SELECTOR, ".account").text == "First shop"

    driver.get("about:blank")
    driver.get(portal_link(svix, second.id))
    time.sleep(1.5)  # the key exchange, when the link is used at all
    wait_page(driver)
    account = driver.find_element(By.CSS_SELECTOR, ".account").text
    read_only = bool(driver.find_elements(By.CSS_SELECTOR, ".banner"))
    assert (account, read_only, "#key=" in driver.current_url) == ("Second shop", False, False), (
        f"after opening Second shop's full-access link the portal shows {account!r}"
        f"{' read-only' if read_only else ''} at {driver.current_url}"
    )
