"""Screenshots of every merchant portal page, for docs/ui/ and for review.

Starts its own hookd and loopback receivers, fills an application with realistic data
(healthy and failing endpoints, delivered and failed messages), then captures each page at
desktop (1280x900) and phone (390x844) sizes in light and dark colour schemes:

    docs/ui/<page>-<desktop|phone>-<light|dark>.png

Run from the repo root (no pytest needed):

    HOOKD_BIN=target/debug/hookd .venv/bin/python sdk-tests/python/screenshots.py [--out docs/ui]

Captures are full-page (the viewport's width, the page's whole height).
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import sys
import tempfile
import time
import urllib.request
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
    open_fresh,
    open_path,
    set_color_scheme,
    set_viewport,
    wait_page,
    wait_until,
)

VIEWPORTS = {"desktop": (1280, 900, False), "phone": (390, 844, True)}
SCHEMES = ("light", "dark")


def payment(event: str, payment_id: str, status: str, amount: int, order: str) -> dict:
    return {
        "event": event,
        "timestamp": "2026-12-06T10:00:00Z",
        "data": {
            "paymentId": payment_id,
            "status": status,
            "amount": amount,
            "currency": "EUR",
            "orderId": order,
        },
    }


def post_json(hookd: Hookd, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        hookd.url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {hookd.token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


def populate(hookd: Hookd, ok: Receiver, failing: Receiver) -> dict:
    """An application with two endpoints and a few messages; returns ids for the pages."""
    from svix.api import ApplicationIn, EndpointIn

    svix = hookd.svix()
    app = svix.application.create(ApplicationIn(name="Acme Coffee Roasters"))
    good = svix.endpoint.create(
        app.id,
        EndpointIn(
            url=ok.url("/webhooks/payments"),
            description="Order service (production)",
            event_types=["payment.captured", "payment.failed", "payment.refunded"],
        ),
    )
    bad = svix.endpoint.create(
        app.id,
        EndpointIn(url=failing.url("/hooks/erp"), description="ERP sync"),
    )
    msgs = []
    for i, (event, status) in enumerate(
        [
            ("payment.captured", "captured"),
            ("payment.failed", "failed"),
            ("payment.captured", "captured"),
            ("payment.refunded", "refunded"),
        ]
    ):
        pid = f"pay_7Hq2{i}xK9"
        # The SDK has no field for hookd's ordering key (shown as "Payment id"): plain HTTP.
        msgs.append(
            post_json(
                hookd,
                f"/api/v1/app/{app.id}/msg",
                {
                    "eventType": event,
                    "payload": payment(event, pid, status, 1250 + 900 * i, f"ord_2026120{i}"),
                    "orderingKey": pid,
                },
            )["id"]
        )
    # Wait until the failing endpoint has given up on the first message (retries 1s,1s,1s).
    first = msgs[0]

    def settled():
        attempts = svix.message_attempt.list_by_msg(
            app.id, first, MessageAttemptListByMsgOptions(endpoint_id=bad.id)
        ).data
        return len(attempts) >= 4 and attempts

    failed_attempts = wait_until(settled, 30, what="the failing endpoint's retries")
    ok_attempt = wait_until(
        lambda: svix.message_attempt.list_by_msg(
            app.id, first, MessageAttemptListByMsgOptions(endpoint_id=good.id)
        ).data,
        what="the delivery",
    )[0]
    # A check of the healthy endpoint, whose receiver answers 204 to anything: a report with
    # failures to read.
    post_json(hookd, f"/api/v1/app/{app.id}/endpoint/{good.id}/certify", {})
    # An endpoint signing with Ed25519 (the SDK has no field for the scheme: plain HTTP).
    ledger = post_json(
        hookd,
        f"/api/v1/app/{app.id}/endpoint",
        {
            "url": ok.url("/webhooks/ledger"),
            "description": "Ledger (verifies with a public key)",
            "signatureScheme": "v1a",
            "filterTypes": ["payment.captured", "payment.refunded"],
        },
    )
    return {
        "svix": svix,
        "app": app,
        "ledger": ledger["id"],
        "good": good,
        "bad": bad,
        "msg": first,
        "failed_attempt": failed_attempts[0],
        "ok_attempt": ok_attempt,
    }


def pages(data: dict) -> list[tuple[str, str, str | None]]:
    """(name, path, heading to wait for) of each signed-in page."""
    msg, good = data["msg"], data["good"]  # msg: a message id
    return [
        ("endpoints", "/portal/", "Endpoints"),
        ("endpoint-new", "/portal/endpoints/new", "Add an endpoint"),
        ("endpoint", f"/portal/endpoints/{good.id}", None),
        ("endpoint-failing", f"/portal/endpoints/{data['bad'].id}", None),
        ("endpoint-check", f"/portal/endpoints/{good.id}/check", "Check my endpoint"),
        ("endpoint-check-never", f"/portal/endpoints/{data['bad'].id}/check", "Check my endpoint"),
        ("messages", "/portal/messages", "Delivery log"),
        ("message", f"/portal/messages/{msg}", "payment.captured"),
        ("attempt-failed", f"/portal/messages/{msg}/attempts/{data['failed_attempt'].id}", None),
        ("attempt-delivered", f"/portal/messages/{msg}/attempts/{data['ok_attempt'].id}", None),
        ("event-types", "/portal/event-types", "Event catalog"),
    ]


def capture(driver, path: Path) -> None:
    """The whole page at the emulated viewport's width."""
    time.sleep(0.2)  # fonts and the last paint
    height = driver.execute_script(
        "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)"
    )
    width = driver.execute_script("return document.documentElement.clientWidth")
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "ui"))
    args = parser.parse_args()
    missing = browser_missing()
    if missing:
        print(f"screenshots: {missing}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    hookd = Hookd()
    ok = Receiver(status=204)
    failing = Receiver(status=503, body=b'{"error":"database is read-only"}')
    profile = tempfile.mkdtemp(prefix="hookd-shots-")
    driver = None
    written = []
    try:
        data = populate(hookd, ok, failing)
        svix, app = data["svix"], data["app"]
        from svix.api import AppPortalAccessIn

        driver = make_driver(profile, block_third_party_cookies=False)
        for view, (w, h, mobile) in VIEWPORTS.items():
            for scheme in SCHEMES:
                set_viewport(driver, w, h, mobile)
                set_color_scheme(driver, scheme)
                suffix = f"{view}-{scheme}.png"

                def shot(name: str) -> None:
                    target = out / f"{name}-{suffix}"
                    capture(driver, target)
                    written.append(target)

                url = svix.authentication.app_portal_access(app.id, AppPortalAccessIn()).url
                open_fresh(driver, url, "Endpoints")
                for name, path, heading in pages(data):
                    open_path(driver, hookd.url, path, heading)
                    shot(name)
                # The form after a mistake.
                open_path(driver, hookd.url, "/portal/endpoints/new", "Add an endpoint")
                driver.find_element("id", "url").send_keys("ftp://example")
                click(driver, "button", "Save endpoint")
                wait_until(
                    lambda: driver.find_elements("css selector", ".field-error, .error"),
                    what="the form's error",
                )
                wait_page(driver)
                shot("endpoint-new-error")
                # The secret, revealed.
                open_path(driver, hookd.url, f"/portal/endpoints/{data['good'].id}")
                click(driver, "button", "Reveal secret")
                wait_until(lambda: driver.find_elements("id", "secret-value"), what="secret")
                driver.execute_script("window.scrollTo(0, 0)")
                shot("endpoint-secret")
                # An Ed25519 endpoint, its public key shown.
                open_path(driver, hookd.url, f"/portal/endpoints/{data['ledger']}")
                click(driver, "button", "Show key")
                wait_until(lambda: driver.find_elements("id", "secret-value"), what="key")
                driver.execute_script("window.scrollTo(0, 0)")
                shot("endpoint-v1a")
                # A read-only link.
                url = svix.authentication.app_portal_access(
                    app.id, AppPortalAccessIn(readOnly=True)
                ).url
                open_fresh(driver, url, "Endpoints")
                shot("readonly-endpoints")
                open_path(driver, hookd.url, f"/portal/endpoints/{data['good'].id}")
                shot("readonly-endpoint")
                # A link used twice.
                driver.get(f"{hookd.url}/portal/assets/portal.css")
                driver.delete_all_cookies()
                driver.execute_script("sessionStorage.clear()")
                driver.get("about:blank")
                driver.get(url)
                wait_until(
                    lambda: "cannot be used" in driver.find_element("id", "boot-title").text,
                    what="the expired-link page",
                )
                shot("link-expired")
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
