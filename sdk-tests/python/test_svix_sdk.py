"""Conformance test: the official Svix Python SDK against a live hookd.

The SDK is used exactly as a Svix customer would use it (only `server_url` points
at hookd). Every test asserts concrete values returned by hookd, parsed by the
SDK's own models, so a wrong field name, a missing required field, a wrong
status code or a wrong route shows up as a failure here.
"""

import datetime as dt
import json
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

import pytest

from svix.api import (
    AppPortalAccessIn,
    ApplicationIn,
    ApplicationPatch,
    BackgroundTaskStatus,
    BackgroundTaskType,
    EndpointHeadersIn,
    EndpointHeadersPatchIn,
    EndpointIn,
    EndpointPatch,
    EndpointSecretRotateIn,
    EndpointUpsertIn,
    EventExampleIn,
    EventTypeIn,
    EventTypePatch,
    MessageIn,
    RecoverIn,
    Svix,
    SvixOptions,
)
from svix.api.message import MessageGetOptions, MessageListOptions
from svix.api.message_attempt import MessageAttemptListByMsgOptions
from svix.exceptions import HttpError, HTTPValidationError
from svix.models import MessageAttemptTriggerType, MessageStatus, MessageStatusText
from svix.webhooks import Webhook, WebhookVerificationError

REPO = Path(__file__).resolve().parents[2]
EVENT_TYPE = "payment.captured"
DELIVERY_TIMEOUT = 10.0


# --------------------------------------------------------------------------
# infrastructure
# --------------------------------------------------------------------------


def _msg_id(request):
    """The message id of a delivery: Svix's `svix-id` or Standard Webhooks' `webhook-id`.

    The SDK's `Webhook.verify` accepts either header family, so both count as compatible.
    """
    h = request["headers"]
    return h.get("svix-id") or h.get("webhook-id")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A tiny webhook receiver: records every POST and answers 204."""

    def __init__(self) -> None:
        self.requests = []  # list of dicts: path, headers, body
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with receiver._cond:
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                        }
                    )
                    receiver._cond.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self, path: str, msg_id: str):
        with self._cond:
            return [r for r in self.requests if r["path"] == path and _msg_id(r) == msg_id]

    def wait_for(self, path: str, msg_id: str, count: int = 1, timeout: float = DELIVERY_TIMEOUT):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self.requests if r["path"] == path and _msg_id(r) == msg_id]
                if len(got) >= count:
                    return got
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"receiver got {len(got)} deliveries of {msg_id} at {path} "
                        f"within {timeout}s, expected {count}; all: "
                        f"{[(r['path'], _msg_id(r)) for r in self.requests]}"
                    )
                self._cond.wait(remaining)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _poll(fn, timeout: float = DELIVERY_TIMEOUT, interval: float = 0.1):
    """Call fn until it returns a truthy value or the timeout expires."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    return last


@pytest.fixture(scope="session")
def hookd():
    binary = os.environ.get("HOOKD_BIN") or str(REPO / "target" / "debug" / "hookd")
    binary = str(Path(binary).resolve())
    assert os.path.exists(binary), f"hookd binary not found at {binary}"
    tmpdir = tempfile.mkdtemp(prefix="hookd-sdk-py-")
    port = _free_port()
    token = secrets.token_urlsafe(32)  # 43 chars
    env = dict(os.environ)
    env.update(
        {
            "HOOKD_LISTEN": f"127.0.0.1:{port}",
            "HOOKD_DATABASE_URL": f"sqlite://{tmpdir}/hookd.db",
            "HOOKD_ADMIN_TOKEN": token,
            "HOOKD_ALLOW_DESTINATIONS": "127.0.0.0/8",
            "HOOKD_RETRY_SCHEDULE": "50ms,100ms",
            "HOOKD_LOG": "warn",
        }
    )
    log_path = os.path.join(tmpdir, "hookd.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                log.flush()
                raise RuntimeError(
                    f"hookd exited with {proc.returncode}:\n{Path(log_path).read_text(errors='replace')}"
                )
            try:
                with urllib.request.urlopen(f"{base_url}/api/v1/health", timeout=1) as r:
                    if r.status == 204:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("hookd did not answer 204 on /api/v1/health within 30s")
            time.sleep(0.1)
        yield {"url": base_url, "token": token, "log": log_path}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(tmpdir, ignore_errors=True)


@pytest.fixture(scope="session")
def receiver():
    r = Receiver()
    yield r
    r.close()


def _client(hookd, token=None) -> Svix:
    return Svix(token or hookd["token"], SvixOptions(server_url=hookd["url"]))


@pytest.fixture(scope="session")
def svix(hookd) -> Svix:
    return _client(hookd)


@pytest.fixture(scope="session")
def event_type(svix):
    return svix.event_type.create(
        EventTypeIn(name=EVENT_TYPE, description="A payment was captured")
    )


@pytest.fixture(scope="session")
def app(svix):
    return svix.application.create(
        ApplicationIn(name="SDK test app", uid="sdk-py-main", metadata={"suite": "python"})
    )


@pytest.fixture
def scratch_app(svix, request):
    """A throw-away application, deleted after the test."""
    a = svix.application.create(ApplicationIn(name=f"scratch {request.node.name}"))
    yield a
    svix.application.delete(a.id)


@pytest.fixture(scope="session")
def endpoint(svix, app, event_type, receiver):
    return svix.endpoint.create(
        app.id,
        EndpointIn(
            url=receiver.url("/hook/main"),
            description="main receiver",
            uid="ep-main",
            event_types=[event_type.name],
            metadata={"role": "main"},
        ),
    )


@pytest.fixture(scope="session")
def delivered(svix, app, endpoint, receiver):
    """A message created through the SDK and its (first) delivery at the receiver."""
    payload = {"id": "pay_123", "amount": 4200, "currency": "EUR", "nested": {"ok": True}}
    msg = svix.message.create(
        app.id,
        MessageIn(event_type=EVENT_TYPE, payload=payload, event_id="evt-delivery-1"),
    )
    got = receiver.wait_for("/hook/main", msg.id)
    return {"msg": msg, "payload": payload, "request": got[0]}


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------


def test_health(svix):
    assert svix.health.get() is None


def test_event_types(svix, event_type):
    assert event_type.name == EVENT_TYPE
    assert event_type.description == "A payment was captured"
    assert event_type.deprecated is False
    assert not event_type.archived
    assert event_type.created_at is not None

    got = svix.event_type.get(EVENT_TYPE)
    assert got.name == EVENT_TYPE
    assert got.description == "A payment was captured"

    listed = svix.event_type.list()
    assert EVENT_TYPE in [et.name for et in listed.data]
    assert isinstance(listed.done, bool)

    patched = svix.event_type.patch(
        EVENT_TYPE, EventTypePatch(description="A payment was captured (patched)")
    )
    assert patched.name == EVENT_TYPE
    assert patched.description == "A payment was captured (patched)"
    assert svix.event_type.get(EVENT_TYPE).description == "A payment was captured (patched)"


def test_application_lifecycle(svix):
    created = svix.application.create(
        ApplicationIn(name="Lifecycle app", uid="sdk-py-lifecycle", metadata={"k": "v"})
    )
    assert created.id
    assert created.name == "Lifecycle app"
    assert created.uid == "sdk-py-lifecycle"
    assert created.metadata == {"k": "v"}

    by_id = svix.application.get(created.id)
    assert by_id.id == created.id and by_id.name == "Lifecycle app"
    by_uid = svix.application.get("sdk-py-lifecycle")
    assert by_uid.id == created.id and by_uid.uid == "sdk-py-lifecycle"

    listed = svix.application.list()
    assert created.id in [a.id for a in listed.data]

    updated = svix.application.upsert(
        created.id, ApplicationIn(name="Lifecycle app v2", uid="sdk-py-lifecycle")
    )
    assert updated.id == created.id
    assert updated.name == "Lifecycle app v2"
    assert svix.application.get(created.id).name == "Lifecycle app v2"

    patched = svix.application.patch(created.id, ApplicationPatch(metadata={"k": "patched"}))
    assert patched.id == created.id
    assert patched.name == "Lifecycle app v2"
    assert patched.metadata == {"k": "patched"}

    # get_or_create on an existing uid returns the existing application ...
    existing = svix.application.get_or_create(
        ApplicationIn(name="ignored", uid="sdk-py-lifecycle")
    )
    assert existing.id == created.id
    assert existing.name == "Lifecycle app v2"
    # ... and creates one for a new uid.
    fresh = svix.application.get_or_create(ApplicationIn(name="Fresh app", uid="sdk-py-fresh"))
    assert fresh.id != created.id
    assert fresh.uid == "sdk-py-fresh" and fresh.name == "Fresh app"

    for app_id in (created.id, fresh.id):
        assert svix.application.delete(app_id) is None
        with pytest.raises(HttpError) as exc:
            svix.application.get(app_id)
        assert exc.value.status_code == 404
    assert created.id not in [a.id for a in svix.application.list().data]


def test_endpoint_crud(svix, app, endpoint, receiver):
    url = receiver.url("/hook/main")
    assert endpoint.id
    assert endpoint.url == url
    assert endpoint.uid == "ep-main"
    assert endpoint.description == "main receiver"
    assert endpoint.event_types == [EVENT_TYPE]
    assert endpoint.metadata == {"role": "main"}
    assert not endpoint.disabled

    got = svix.endpoint.get(app.id, endpoint.id)
    assert got.id == endpoint.id and got.url == url
    assert got.event_types == [EVENT_TYPE]
    assert svix.endpoint.get(app.id, "ep-main").id == endpoint.id  # by uid

    listed = svix.endpoint.list(app.id)
    assert endpoint.id in [e.id for e in listed.data]

    updated = svix.endpoint.upsert(
        app.id,
        endpoint.id,
        EndpointUpsertIn(
            url=url,
            uid="ep-main",
            description="main receiver (updated)",
            event_types=[EVENT_TYPE],
            metadata={"role": "main"},
        ),
    )
    assert updated.id == endpoint.id
    assert updated.description == "main receiver (updated)"
    assert updated.url == url

    patched = svix.endpoint.patch(
        app.id, endpoint.id, EndpointPatch(description="main receiver (patched)")
    )
    assert patched.id == endpoint.id
    assert patched.description == "main receiver (patched)"
    assert patched.url == url
    assert patched.event_types == [EVENT_TYPE]
    assert svix.endpoint.get(app.id, endpoint.id).description == "main receiver (patched)"


def test_endpoint_delete(svix, scratch_app, receiver):
    app = scratch_app
    ep = svix.endpoint.create(app.id, EndpointIn(url=receiver.url("/hook/doomed")))
    assert ep.description == ""
    assert ep.metadata == {}
    assert svix.endpoint.delete(app.id, ep.id) is None
    with pytest.raises(HttpError) as exc:
        svix.endpoint.get(app.id, ep.id)
    assert exc.value.status_code == 404
    assert ep.id not in [e.id for e in svix.endpoint.list(app.id).data]


def test_endpoint_secret_and_rotation(svix, scratch_app, receiver):
    app = scratch_app  # a dedicated app, so the rotation cannot disturb other tests
    ep = svix.endpoint.create(app.id, EndpointIn(url=receiver.url("/hook/rotate")))
    old = svix.endpoint.get_secret(app.id, ep.id)
    assert old.key.startswith("whsec_")
    assert len(old.key) > len("whsec_") + 20

    rotated = svix.endpoint.rotate_secret(app.id, ep.id, EndpointSecretRotateIn())
    assert rotated.key.startswith("whsec_")
    new = svix.endpoint.get_secret(app.id, ep.id)
    assert new.key.startswith("whsec_")
    assert new.key != old.key
    assert rotated.key == new.key

    # rotating to a caller-supplied key
    chosen = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    rotated2 = svix.endpoint.rotate_secret(app.id, ep.id, EndpointSecretRotateIn(key=chosen))
    assert rotated2.key == chosen
    assert svix.endpoint.get_secret(app.id, ep.id).key == chosen

    # a message sent after the rotation is signed with the new secret
    msg = svix.message.create(app.id, MessageIn(event_type=EVENT_TYPE, payload={"r": 1}))
    req = receiver.wait_for("/hook/rotate", msg.id)[0]
    Webhook(chosen).verify(req["body"], req["headers"])


def _portal_python_v1a_verifier(public_key: str):
    """The `verify` function of the Python code the merchant portal shows for a v1a endpoint,
    taken from the page's template and run as a merchant would paste it."""
    import html
    import re

    template = (REPO / "crates/hookd/templates/portal/verify_v1a.html").read_text()
    found = re.search(r"<summary>Python</summary>\s*<pre>(.*?)</pre>", template, re.S)
    assert found, "the portal shows no Python code for v1a endpoints"
    code = html.unescape(found.group(1))
    for part in ("id", "timestamp", "signature"):
        code = code.replace("{{ snippets.%s_header }}" % part, f"webhook-{part}")
    os.environ["WEBHOOK_PUBLIC_KEY"] = public_key
    namespace = {}
    exec(compile(code, "portal-v1a-snippet.py", "exec"), namespace)
    return namespace["verify"]


def test_v1a_endpoint_from_the_sdk_verifies_independently(svix, scratch_app, receiver):
    """An endpoint created through the Svix SDK with an Ed25519 key (`whsk_`) signs `v1a`;
    `cryptography` (independent of hookd) and the portal's Python code verify its deliveries,
    and a `v1` verifier does not."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    app = scratch_app
    private = Ed25519PrivateKey.generate()
    signing_key = "whsk_" + base64.b64encode(private.private_bytes_raw()).decode()
    public_bytes = private.public_key().public_bytes_raw()
    expected_public = "whpk_" + base64.b64encode(public_bytes).decode()

    ep = svix.endpoint.create(
        app.id, EndpointIn(url=receiver.url("/hook/v1a"), secret=signing_key)
    )
    shown = svix.endpoint.get_secret(app.id, ep.id).key
    assert shown == expected_public, "hookd derives the public key cryptography does"

    msg = svix.message.create(app.id, MessageIn(event_type=EVENT_TYPE, payload={"v1a": 1}))
    req = receiver.wait_for("/hook/v1a", msg.id)[0]
    headers = req["headers"]
    entries = headers["webhook-signature"].split(" ")
    assert [e.split(",")[0] for e in entries] == ["v1a"], entries
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + req["body"]
    private.public_key().verify(base64.b64decode(entries[0][4:]), signed)  # raises if invalid

    verify = _portal_python_v1a_verifier(shown)
    assert verify(headers, req["body"]) == json.loads(req["body"])
    tampered = req["body"].replace(b'"v1a":1', b'"v1a":2')
    assert tampered != req["body"]
    with pytest.raises(ValueError):
        verify(headers, tampered)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(os.urandom(32)).decode()).verify(req["body"], headers)


def test_endpoint_headers(svix, scratch_app, receiver):
    app = scratch_app
    ep = svix.endpoint.create(app.id, EndpointIn(url=receiver.url("/hook/headers")))
    assert svix.endpoint.get_headers(app.id, ep.id).headers == {}

    assert (
        svix.endpoint.set_headers(
            app.id, ep.id, EndpointHeadersIn(headers={"X-Tenant": "acme", "X-Extra": "1"})
        )
        is None
    )
    got = svix.endpoint.get_headers(app.id, ep.id)
    assert {k.lower(): v for k, v in got.headers.items()} == {"x-tenant": "acme", "x-extra": "1"}
    assert got.sensitive == []

    svix.endpoint.patch_headers(
        app.id,
        ep.id,
        EndpointHeadersPatchIn(headers={"X-Region": "eu"}, delete_headers=["X-Extra"]),
    )
    got = svix.endpoint.get_headers(app.id, ep.id)
    assert {k.lower(): v for k, v in got.headers.items()} == {"x-tenant": "acme", "x-region": "eu"}

    # the custom headers are sent with each delivery
    msg = svix.message.create(app.id, MessageIn(event_type=EVENT_TYPE, payload={"h": 1}))
    req = receiver.wait_for("/hook/headers", msg.id)[0]
    assert req["headers"].get("x-tenant") == "acme"
    assert req["headers"].get("x-region") == "eu"
    assert "x-extra" not in req["headers"]


def test_message_delivery_and_signature(svix, app, endpoint, delivered):
    msg, payload, req = delivered["msg"], delivered["payload"], delivered["request"]
    assert msg.id
    assert msg.event_type == EVENT_TYPE
    assert msg.event_id == "evt-delivery-1"
    assert msg.timestamp is not None

    headers = req["headers"]
    prefix = "svix-" if "svix-id" in headers else "webhook-"
    assert headers[prefix + "id"] == msg.id
    ts = headers.get(prefix + "timestamp", "")
    assert ts.isdigit() and abs(int(ts) - time.time()) < 300
    assert headers.get(prefix + "signature", "").startswith("v1,")
    assert headers.get("content-type", "").startswith("application/json")
    assert json.loads(req["body"]) == payload

    secret = svix.endpoint.get_secret(app.id, endpoint.id).key
    Webhook(secret).verify(req["body"], headers)  # raises on a bad signature
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(req["body"] + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(req["body"], headers)

    got = svix.message.get(app.id, msg.id, MessageGetOptions(with_content=True))
    assert got.id == msg.id
    assert got.event_type == EVENT_TYPE
    assert got.payload == payload
    by_event_id = svix.message.get(app.id, "evt-delivery-1")
    assert by_event_id.id == msg.id

    listed = svix.message.list(app.id, MessageListOptions(with_content=True))
    match = [m for m in listed.data if m.id == msg.id]
    assert len(match) == 1
    assert match[0].payload == payload
    assert match[0].event_type == EVENT_TYPE


def test_endpoint_stats(svix, app, endpoint, delivered):
    def stats_ok():
        s = svix.endpoint.get_stats(app.id, endpoint.id)
        return s if s.success >= 1 else None

    stats = _poll(stats_ok)
    assert stats is not None, "endpoint stats never showed a successful delivery"
    assert stats.fail == 0
    assert stats.pending >= 0 and stats.sending >= 0 and stats.canceled >= 0


def test_attempts(svix, app, endpoint, delivered, receiver):
    msg = delivered["msg"]

    def attempts_by_msg():
        r = svix.message_attempt.list_by_msg(app.id, msg.id)
        return r if r.data else None

    by_msg = _poll(attempts_by_msg)
    assert by_msg is not None and by_msg.data, "no attempts listed for the message"
    mine = [a for a in by_msg.data if a.endpoint_id == endpoint.id]
    assert len(mine) == 1, [(a.endpoint_id, a.trigger_type) for a in by_msg.data]
    att = mine[0]
    assert att.msg_id == msg.id
    assert att.endpoint_id == endpoint.id
    assert att.status == MessageStatus.SUCCESS
    assert att.status_text == MessageStatusText.SUCCESS
    assert att.response_status_code == 204
    assert att.url == endpoint.url
    assert att.trigger_type == MessageAttemptTriggerType.SCHEDULED
    assert att.response_duration_ms >= 0

    filtered = svix.message_attempt.list_by_msg(
        app.id, msg.id, MessageAttemptListByMsgOptions(endpoint_id=endpoint.id)
    )
    assert att.id in [a.id for a in filtered.data]

    one = svix.message_attempt.get(app.id, msg.id, att.id)
    assert one.id == att.id and one.response_status_code == 204

    by_ep = svix.message_attempt.list_by_endpoint(app.id, endpoint.id)
    ours = [a for a in by_ep.data if a.id == att.id]
    assert len(ours) == 1
    assert ours[0].status == MessageStatus.SUCCESS
    assert ours[0].response_status_code == 204

    dests = svix.message_attempt.list_attempted_destinations(app.id, msg.id)
    d = [e for e in dests.data if e.id == endpoint.id]
    assert len(d) == 1
    assert d[0].status == MessageStatus.SUCCESS
    assert d[0].url == endpoint.url

    msgs = svix.message_attempt.list_attempted_messages(app.id, endpoint.id)
    m = [x for x in msgs.data if x.id == msg.id]
    assert len(m) == 1
    assert m[0].status == MessageStatus.SUCCESS
    assert m[0].event_type == EVENT_TYPE

    # resend: a second delivery reaches the receiver and a manual attempt is recorded
    before = len(receiver.received("/hook/main", msg.id))
    svix.message_attempt.resend(app.id, msg.id, endpoint.id)
    receiver.wait_for("/hook/main", msg.id, count=before + 1)

    def manual_attempt():
        r = svix.message_attempt.list_by_msg(app.id, msg.id)
        manual = [
            a
            for a in r.data
            if a.trigger_type == MessageAttemptTriggerType.MANUAL and a.endpoint_id == endpoint.id
        ]
        return manual if manual and manual[0].status == MessageStatus.SUCCESS else None

    manual = _poll(manual_attempt)
    assert manual, "no successful manual attempt after resend"
    assert manual[0].response_status_code == 204
    assert manual[0].endpoint_id == endpoint.id


def test_app_portal_access(hookd, svix, app, endpoint):
    access = svix.authentication.app_portal_access(app.id, AppPortalAccessIn())
    assert access.token
    assert access.url
    assert access.token != hookd["token"]

    portal = _client(hookd, access.token)
    eps = portal.endpoint.list(app.id)
    assert endpoint.id in [e.id for e in eps.data]
    assert portal.endpoint.get(app.id, endpoint.id).url == endpoint.url

    other = svix.application.create(ApplicationIn(name="Other app", uid="sdk-py-other"))
    try:
        with pytest.raises(HttpError) as exc:
            portal.endpoint.list(other.id)
        assert exc.value.status_code in (403, 404)
    finally:
        svix.application.delete(other.id)


def test_errors(svix, app):
    with pytest.raises(HttpError) as exc:
        svix.application.get("app_doesnotexist0000000000000")
    assert exc.value.status_code == 404
    assert exc.value.code  # machine-readable code, e.g. "not_found"

    with pytest.raises(HTTPValidationError) as exc:
        svix.endpoint.create(app.id, EndpointIn(url="not a url"))
    assert exc.value.status_code == 422
    assert exc.value.detail, "422 body must carry a non-empty `detail` list"
    item = exc.value.detail[0]
    assert item.loc and item.msg and item.type

    bad = _client({"url": svix._client.base_url, "token": "wrong-token"})
    with pytest.raises(HttpError) as exc:
        bad.application.list()
    assert exc.value.status_code == 401


def test_ingest_controls(svix, scratch_app, receiver):
    """eventId reuse, send-example, content deletion and recover, through the SDK's models
    (which also send an `idempotency-key` with every POST)."""
    app_id = scratch_app.id
    ep = svix.endpoint.create(app_id, EndpointIn(url=receiver.url("/hook/controls")))
    msg = svix.message.create(
        app_id, MessageIn(event_type=EVENT_TYPE, payload={"n": 1}, event_id="evt-controls-1")
    )
    receiver.wait_for("/hook/controls", msg.id)
    with pytest.raises(HttpError) as exc:
        svix.message.create(
            app_id, MessageIn(event_type=EVENT_TYPE, payload={"n": 2}, event_id="evt-controls-1")
        )
    assert exc.value.status_code == 409

    example = svix.endpoint.send_example(
        app_id, ep.id, EventExampleIn(event_type="payment.captured")
    )
    assert example.event_type == "payment.captured"
    assert example.payload["data"]["status"] == "captured"
    receiver.wait_for("/hook/controls", example.id)

    svix.message.expunge_content(app_id, msg.id)
    got = svix.message.get(app_id, msg.id, MessageGetOptions(with_content=True))
    assert got.payload == {}

    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    task = svix.endpoint.recover(app_id, ep.id, RecoverIn(since=since))
    assert task.task == BackgroundTaskType.ENDPOINT_RECOVER
    assert task.status == BackgroundTaskStatus.RUNNING
    done = _poll(
        lambda: (t := svix.background_task.get(task.id)).status == BackgroundTaskStatus.FINISHED
        and t
    )
    assert done, "the recovery did not finish"
    assert done.data["messagesSent"] == 0  # nothing had failed
