"""`hookd certify` (the real binary) against real receivers on loopback.

- `examples/payments-consumer`, the reference merchant (Rust, hookd-receiver): passes every
  check, exit code 0.
- `sdk-tests/certify/naive.js`, the Express consumer payment-platform tutorials show
  (`express.json()`, log, `res.sendStatus(200)`): fails every signature, tamper and timestamp
  check, exit code non-zero.
- `sdk-tests/certify/no-timestamp.js`, an Express consumer that verifies the signature over the
  raw body with Node's `crypto` but never looks at the timestamp's age: fails exactly the two
  timestamp checks.

Each receiver is started on a port the OS picks on 127.0.0.1 and is stopped afterwards. Needs
`npm ci` in sdk-tests/certify (express), `node`, and the debug build of `hookd` (`HOOKD_BIN`)
and `payments-consumer` (`PAYMENTS_CONSUMER_BIN`, by default beside `hookd`). Without them the
tests are skipped, except under `CI=true`, where they fail.
"""

import base64
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECEIVERS = REPO / "sdk-tests" / "certify"
HOOKD = Path(os.environ.get("HOOKD_BIN") or REPO / "target" / "debug" / "hookd").resolve()
PAYMENTS_CONSUMER = Path(
    os.environ.get("PAYMENTS_CONSUMER_BIN") or HOOKD.parent / "payments-consumer"
).resolve()

# The checks' names, exactly as crates/hookd/src/certify.rs reports them.
ACCEPTED = "a correctly signed event is accepted"
ROTATION = "during a secret rotation, the last of several signatures is enough"
SIGNATURE_CHECKS = {
    "a wrong signature is refused",
    "a signature made with another secret is refused",
    "a request without signature headers is refused",
    "a tampered body with the original signature is refused",
}
TIMESTAMP_CHECKS = {
    "a timestamp 10 minutes old is refused",
    "a timestamp 10 minutes in the future is refused",
}
REPLAY = "a replay of the first request (same webhook-id)"
TRANSPORT = "the endpoint is reached over TLS"
MUST_PASS = {ACCEPTED, ROTATION} | SIGNATURE_CHECKS | TIMESTAMP_CHECKS

LISTEN_TIMEOUT = 30.0
CERTIFY_TIMEOUT = 120.0


# --------------------------------------------------------------------------
# infrastructure
# --------------------------------------------------------------------------


def _require(missing: list[str]) -> None:
    """Skips the test when something it needs is missing; under CI=true, fails it."""
    if not missing:
        return
    what = "; ".join(missing)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"certify receiver tests cannot run under CI: {what}")
    pytest.skip(what)


def _missing_binary(path: Path, build: str) -> list[str]:
    if path.is_file() and os.access(path, os.X_OK):
        return []
    return [f"{path} is missing ({build})"]


def _missing_node() -> list[str]:
    missing = []
    if shutil.which("node") is None:
        missing.append("node is not installed")
    if not (RECEIVERS / "node_modules" / "express" / "package.json").is_file():
        missing.append(f"express is not installed: run `npm ci` in {RECEIVERS}")
    return missing


def _new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Receiver:
    """A receiver process: its output (stdout and stderr) is collected as it comes."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.argv = argv
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_listening(self) -> int:
        """The port from the receiver's `listening … 127.0.0.1:PORT` line, once it connects."""
        pattern = re.compile(r"listening.*\b127\.0\.0\.1:(\d+)")
        deadline = time.monotonic() + LISTEN_TIMEOUT
        port = None
        with self._cond:
            while port is None:
                port = next(
                    (int(m.group(1)) for m in map(pattern.search, self.lines) if m), None
                )
                if port is not None:
                    break
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(
                        f"{self.argv[0]} exited ({self.proc.returncode}) before listening:\n"
                        + "\n".join(self.lines)
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{self.argv[0]} did not listen within {LISTEN_TIMEOUT} s:\n"
                        + "\n".join(self.lines)
                    )
                self._cond.wait(min(left, 0.5))
        # The line is printed once the socket is bound; prove it accepts connections.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        return port

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._reader.join(timeout=10)


@pytest.fixture
def start_receiver():
    """Starts receivers for a test and stops them afterwards, whatever happens."""
    started: list[Receiver] = []

    def start(argv: list[str], cwd: Path, **env: str) -> tuple[Receiver, int]:
        full_env = {k: v for k, v in os.environ.items() if k not in ("PORT", "WEBHOOK_SECRET")}
        full_env.update(env)
        receiver = Receiver(argv, full_env, cwd)
        started.append(receiver)
        return receiver, receiver.wait_listening()

    yield start
    for receiver in started:
        receiver.stop()


def certify(url: str, secret: str) -> tuple[int, dict, str]:
    """Runs `hookd certify URL --secret SECRET --json`, allowed to reach loopback (refused by
    default, as for deliveries): its exit code, report and stderr."""
    env = {k: v for k, v in os.environ.items() if k != "HOOKD_CERTIFY_SECRET"}
    run = subprocess.run(
        [
            str(HOOKD), "certify", url, "--secret", secret, "--json",
            "--allow-destinations", "127.0.0.0/8",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CERTIFY_TIMEOUT,
    )
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError as err:
        raise AssertionError(
            f"hookd certify printed no JSON report ({err}); exit {run.returncode}\n"
            f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
        ) from err
    return run.returncode, report, run.stderr


def verdicts(report: dict) -> dict[str, str]:
    checks = report["checks"]
    names = [c["name"] for c in checks]
    assert len(names) == len(set(names)), f"a check is reported twice: {names}"
    return {c["name"]: c["verdict"] for c in checks}


def failed(report: dict) -> set[str]:
    return {c["name"] for c in report["checks"] if c["verdict"] == "fail"}


def shown(report: dict) -> str:
    return "\n".join(
        f"{c['verdict'].upper():4}  {c['name']} — {c['answered']}" for c in report["checks"]
    )


def assert_names_known(report: dict) -> None:
    """Every check this module names is in the report: a renamed check fails here, not later."""
    reported = set(verdicts(report))
    unknown = (MUST_PASS | {REPLAY, TRANSPORT}) - reported
    assert not unknown, f"checks missing from the report: {unknown}\n{shown(report)}"


def assert_only_failures(report: dict, expected: set[str]) -> None:
    """Exactly `expected` failed; every other must-pass check passed; the rest is information."""
    assert_names_known(report)
    assert failed(report) == expected, (
        f"failed: {sorted(failed(report))}\nexpected: {sorted(expected)}\n{shown(report)}"
    )
    v = verdicts(report)
    for name in MUST_PASS - expected:
        assert v[name] == "pass", f"{name}: {v[name]}\n{shown(report)}"
    # On loopback, plain HTTP is information; a replay is always information.
    assert v[TRANSPORT] == "info", shown(report)
    assert v[REPLAY] == "info", shown(report)
    assert report["passed"] is (not expected), shown(report)


# --------------------------------------------------------------------------
# the three receivers
# --------------------------------------------------------------------------


def test_the_reference_consumer_passes_every_check(start_receiver, tmp_path):
    _require(
        _missing_binary(HOOKD, "cargo build -p hookd-cli")
        + _missing_binary(PAYMENTS_CONSUMER, "cargo build -p payments-consumer")
    )
    secret = _new_secret()
    consumer, port = start_receiver(
        [str(PAYMENTS_CONSUMER)],
        tmp_path,
        LISTEN_ADDR="127.0.0.1:0",
        DATABASE_URL=f"sqlite://{tmp_path / 'payments-consumer.db'}",
        WEBHOOK_SECRET=secret,
        RUST_LOG="info",
    )

    code, report, stderr = certify(f"http://127.0.0.1:{port}/webhooks", secret)

    assert code == 0, f"exit {code}\n{stderr}\n{shown(report)}"
    assert_only_failures(report, set())
    # Every check but the transport's is a request that the consumer answered in time.
    assert all(
        c["answered"].startswith("HTTP ") for c in report["checks"] if c["name"] != TRANSPORT
    ), shown(report)
    # The genuine request and its replay reached the app itself, which verified them and,
    # seeing `hookd-certify: 1`, applied nothing.
    log = consumer.output()
    assert re.search(r"certification request acknowledged, nothing applied webhook_id=cert_\S+_valid", log), log
    assert "payment event handled" not in log, log


def test_the_naive_express_consumer_fails_the_signature_tamper_and_timestamp_checks(
    start_receiver,
):
    _require(_missing_binary(HOOKD, "cargo build -p hookd-cli") + _missing_node())
    secret = _new_secret()
    naive, port = start_receiver(["node", "naive.js", "0"], RECEIVERS)

    code, report, stderr = certify(f"http://127.0.0.1:{port}/webhooks", secret)

    assert code != 0, f"exit {code} for a receiver that accepts anything\n{shown(report)}"
    assert_only_failures(report, SIGNATURE_CHECKS | TIMESTAMP_CHECKS)
    # Every request reached the Node receiver, and it answered each with 200.
    sent = [c for c in report["checks"] if c["name"] != TRANSPORT]
    assert all(c["answered"].startswith("HTTP 200 ") for c in sent), shown(report)
    received = naive.output().count("Received event:")
    assert received == len(sent), f"{received} requests logged, {len(sent)} sent\n{naive.output()}"


def test_an_express_consumer_that_ignores_the_timestamp_fails_exactly_the_timestamp_checks(
    start_receiver,
):
    _require(_missing_binary(HOOKD, "cargo build -p hookd-cli") + _missing_node())
    secret = _new_secret()
    receiver, port = start_receiver(
        ["node", "no-timestamp.js", "0"], RECEIVERS, WEBHOOK_SECRET=secret
    )

    code, report, stderr = certify(f"http://127.0.0.1:{port}/webhooks", secret)

    assert code != 0, f"exit {code} for a receiver that ignores timestamps\n{shown(report)}"
    assert_only_failures(report, TIMESTAMP_CHECKS)
    # What it accepted, it logged by webhook-id: the genuine, rotated, stale and future ones.
    accepted = [
        c for c in report["checks"] if c["name"] != TRANSPORT and c["answered"].startswith("HTTP 2")
    ]
    logged = re.findall(r"Received event: (cert_\S+)", receiver.output())
    assert len(logged) == len(accepted), f"{logged}\n{shown(report)}"
    assert {i.rsplit("_", 1)[1] for i in logged} >= {"valid", "rotation", "stale", "future"}, logged
