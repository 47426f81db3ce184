"""Screenshots of every operator dashboard page (/ui/), for docs/ui/ and for review.

The dashboard's counterpart of screenshots.py, with the same conventions: starts its own hookd
and loopback receivers, fills it with realistic data (a few merchants, healthy, failing and
disabled endpoints, messages over a payment's lifecycle, a recovery task, audit entries), then
captures each page at desktop (1280x900) and phone (390x844) sizes in light and dark colour
schemes:

    docs/ui/dashboard-<page>-<desktop|phone>-<light|dark>.png

Run from the repo root (no pytest needed):

    HOOKD_BIN=target/debug/hookd .venv/bin/python sdk-tests/python/dashboard_screenshots.py [--out docs/ui]

Captures are full-page (the viewport's width, the page's whole height).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from svix.api.message_attempt import MessageAttemptListByMsgOptions  # noqa: E402

from portal_harness import (  # noqa: E402
    REPO,
    Hookd,
    Receiver,
    browser_missing,
    click,
    make_driver,
    open_path,
    set_color_scheme,
    set_viewport,
    wait_page,
    wait_until,
)
from screenshots import SCHEMES, VIEWPORTS, capture, payment  # noqa: E402


def post_json(hookd: Hookd, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        hookd.url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {hookd.token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


def send(hookd: Hookd, app_id: str, event: str, pid: str, status: str, amount: int, order: str) -> str:
    return post_json(
        hookd,
        f"/api/v1/app/{app_id}/msg",
        {
            "eventType": event,
            "payload": payment(event, pid, status, amount, order),
            "orderingKey": pid,
        },
    )["id"]


def populate(hookd: Hookd, ok: Receiver, failing: Receiver) -> dict:
    """Three merchants and a payment's lifecycle; answers ids for the pages."""
    from svix.api import ApplicationIn, EndpointIn

    svix = hookd.svix()
    acme = svix.application.create(
        ApplicationIn(name="Acme Coffee Roasters", uid="acme-coffee")
    )
    northwind = svix.application.create(ApplicationIn(name="Northwind Bikes", uid="northwind"))
    harbor = svix.application.create(ApplicationIn(name="Blue Harbor Books", uid="blue-harbor"))
    orders = svix.endpoint.create(
        acme.id,
        EndpointIn(url=ok.url("/webhooks/payments"), description="Order service (production)"),
    )
    erp = svix.endpoint.create(
        acme.id, EndpointIn(url=failing.url("/hooks/erp"), description="ERP sync")
    )
    svix.endpoint.create(
        northwind.id, EndpointIn(url=ok.url("/northwind/hookd"), description="Checkout")
    )
    harbor_ep = svix.endpoint.create(
        harbor.id, EndpointIn(url=ok.url("/harbor/events"), description="Bookshop backend")
    )

    # One payment's lifecycle at Acme; a few more payments elsewhere.
    pid = "pay_7Hq2xK9mB3"
    lifecycle = [
        ("payment.created", "created"),
        ("payment.authorized", "authorized"),
        ("payment.captured", "captured"),
        ("payment.refunded", "refunded"),
    ]
    msgs = [send(hookd, acme.id, e, pid, s, 2450, "ord_20261206_118") for e, s in lifecycle]
    for i, (app, event, status) in enumerate(
        [
            (northwind, "payment.captured", "captured"),
            (northwind, "payment.failed", "failed"),
            (harbor, "payment.captured", "captured"),
            (acme, "payment.captured", "captured"),
        ]
    ):
        send(hookd, app.id, event, f"pay_4Lm{i}Zt8Qe", status, 1200 + 750 * i, f"ord_2026120{i}")

    # Until the failing endpoint has given up on the captured payment (retries 1s,1s,1s).
    captured = msgs[2]
    wait_until(
        lambda: len(
            svix.message_attempt.list_by_msg(
                acme.id, captured, MessageAttemptListByMsgOptions(endpoint_id=erp.id)
            ).data
        )
        >= 4,
        30,
        what="the failing endpoint's retries",
    )
    return {
        "svix": svix,
        "acme": acme,
        "harbor": harbor,
        "orders": orders,
        "erp": erp,
        "harbor_ep": harbor_ep,
        "pid": pid,
        "msg": captured,
    }


def act(driver, base: str, app_id: str, endpoint_id: str, button: str) -> None:
    """Clicks an endpoint's button on its application page and confirms."""
    open_path(driver, base, f"/ui/apps/{app_id}")
    click(driver, f"li[id='{endpoint_id}'] button", button)
    wait_page(driver)
    click(driver, "main button", "Yes, do it")
    wait_page(driver)


def sign_in(driver, base: str, token: str) -> None:
    open_path(driver, base, "/ui/", "Sign in")
    driver.find_element("id", "token").send_keys(token)
    click(driver, "main button", "Sign in")
    wait_page(driver, "Overview")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "ui"))
    parser.add_argument(
        "--only", default="", help="comma-separated views or schemes, e.g. desktop,light"
    )
    args = parser.parse_args()
    missing = browser_missing()
    if missing:
        print(f"dashboard screenshots: {missing}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = {s for s in args.only.split(",") if s}

    hookd = Hookd()
    ok = Receiver(status=204)
    failing = Receiver(status=503, body=b'{"error":"database is read-only"}')
    profile = tempfile.mkdtemp(prefix="hookd-shots-")
    driver = None
    written = []
    try:
        data = populate(hookd, ok, failing)
        acme, erp, base = data["acme"], data["erp"], hookd.url
        driver = make_driver(profile, block_third_party_cookies=False)

        # Actions, for the audit log: an org token for the on-call engineer, made by the
        # admin; then, under that token, a rate limit, a disabled endpoint and a recovery.
        sign_in(driver, base, hookd.token)
        open_path(driver, base, "/ui/system", "System")
        driver.find_element("id", "token-name").send_keys("on-call (Dana)")
        click(driver, "main button", "Create token")
        wait_page(driver, "System")
        org_token = driver.find_element("id", "new-token").get_attribute("value")
        click(driver, "header button", "Sign out")
        wait_page(driver, "Sign in")
        sign_in(driver, base, org_token)
        open_path(driver, base, f"/ui/apps/{acme.id}")
        field = driver.find_element("id", f"rate-{data['orders'].id}")
        field.send_keys("25")
        click(driver, f"li[id='{data['orders'].id}'] button", "Set")
        wait_page(driver)
        click(driver, "main button", "Yes, do it")
        wait_page(driver)
        act(driver, base, data["harbor"].id, data["harbor_ep"].id, "Disable")
        since = (datetime.now(timezone.utc) - timedelta(minutes=30)).strftime("%Y-%m-%d %H:%M")
        open_path(driver, base, f"/ui/apps/{acme.id}")
        field = driver.find_element("id", f"since-{erp.id}")
        field.clear()
        field.send_keys(since)
        click(driver, f"li[id='{erp.id}'] button", "Recover")
        wait_page(driver)
        click(driver, "main button", "Yes, do it")
        wait_page(driver, "Recovery of endpoint")
        task = driver.current_url.split(base, 1)[1]
        wait_until(
            lambda: "Running" not in driver.find_element("css selector", ".task-state").text,
            what="the recovery to finish",
        )
        # A check of the orders endpoint (its receiver answers 204 to anything).
        open_path(driver, base, f"/ui/apps/{acme.id}")
        click(driver, f"li[id='{data['orders'].id}'] button", "Check endpoint")
        wait_page(driver)
        click(driver, "main button", "Yes, do it")
        wait_page(driver, "Checks of")
        checks = driver.current_url.split(base, 1)[1]
        time.sleep(4)  # the overview's counts are flushed every 2 s

        pages = [
            ("overview", "/ui/", "Overview"),
            ("applications", "/ui/apps", "Applications"),
            ("application", f"/ui/apps/{acme.id}", "Acme Coffee Roasters"),
            ("message", f"/ui/apps/{acme.id}/messages/{data['msg']}", None),
            ("search", f"/ui/search?q={data['pid']}", "Messages"),
            ("endpoints", "/ui/endpoints?url=127.0.0.1", "Endpoints"),
            ("event-types", "/ui/event-types", "Event types"),
            ("task", task, "Recovery of endpoint"),
            ("endpoint-check", checks, "Checks of"),
            ("audit", "/ui/audit", "Audit log"),
            ("system", "/ui/system", "System"),
        ]
        for view, (w, h, mobile) in VIEWPORTS.items():
            for scheme in SCHEMES:
                if view not in (only & set(VIEWPORTS) or VIEWPORTS) or scheme not in (
                    only & set(SCHEMES) or SCHEMES
                ):
                    continue
                set_viewport(driver, w, h, mobile)
                set_color_scheme(driver, scheme)
                suffix = f"{view}-{scheme}.png"

                def shot(name: str) -> None:
                    target = out / f"dashboard-{name}-{suffix}"
                    capture(driver, target)
                    written.append(target)

                # Signed out: the sign-in form.
                driver.delete_all_cookies()
                open_path(driver, base, "/ui/", "Sign in")
                shot("signin")
                for name, path, heading in pages:
                    if name == "overview":
                        sign_in(driver, base, org_token)
                    open_path(driver, base, path, heading)
                    shot(name)
                # The event type form after a mistake.
                open_path(driver, base, "/ui/event-types/edit")
                driver.find_element("id", "name").send_keys("payment.disputed")
                driver.find_element("id", "description").send_keys(
                    "A cardholder disputed the payment."
                )
                driver.find_element("id", "schema").send_keys(
                    '{"type": "object", "required": ["amount"], '
                    '"properties": {"amount": {"type": "integer"}}}'
                )
                driver.find_element("id", "example").send_keys('{"amount": "ten"}')
                click(driver, "main button", "Save")
                wait_until(
                    lambda: driver.find_elements("css selector", ".field-error"),
                    what="the form's error",
                )
                wait_page(driver)
                shot("event-type-error")
                # A confirmation page (not confirmed).
                open_path(driver, base, f"/ui/apps/{acme.id}")
                click(driver, f"li[id='{erp.id}'] button", "Disable")
                wait_page(driver, "Disable endpoint")
                shot("confirm")
        print(f"wrote {len(written)} screenshots to {out}")
        return 0
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        ok.close()
        failing.close()
        hookd.close()


if __name__ == "__main__":
    sys.exit(main())
