#!/usr/bin/env bash
# Tests the Debian package on this machine, as root: builds it (packaging/build-deb.sh, with
# the arguments given here, e.g. --from-debug), installs it with apt-get, checks the unit with
# systemd-analyze, the man page and the bash completions, runs the unit's ExecStart as the
# unit's user with the packaged configuration (systemctl is not usable in a container), posts a
# message through the API to a receiver on 127.0.0.1 and waits for its delivery, stops hookd
# with SIGTERM, removes the package (the data must stay) and purges it (the data must go).
#
# Any failed step fails the script. It cleans up after itself (the package, the hookd user if
# it created it, its processes and temporary files) and refuses to run where hookd is already
# installed or its directories exist, so it never touches a real installation.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

step() { printf -- '--- %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (it installs a package)"
if dpkg-query -W -f '${Status}' hookd 2>/dev/null | grep -q 'installed\|config-files'; then
  fail "the hookd package is already on this machine; not touching it"
fi
for dir in /var/lib/hookd /etc/hookd; do
  [ ! -e "$dir" ] || fail "$dir exists; not touching it"
done
created_user=false
getent passwd hookd >/dev/null || created_user=true

work="$(mktemp -d /tmp/hookd-deb-test.XXXXXX)"
chmod 755 "$work"
hookd_pid=""
receiver_pid=""
cleanup() {
  local status=$?
  set +e
  [ -n "$hookd_pid" ] && kill "$hookd_pid" 2>/dev/null && wait "$hookd_pid" 2>/dev/null
  [ -n "$receiver_pid" ] && kill "$receiver_pid" 2>/dev/null && wait "$receiver_pid" 2>/dev/null
  if dpkg-query -W hookd >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq hookd >/dev/null 2>&1
  fi
  rm -rf /var/lib/hookd
  if $created_user && getent passwd hookd >/dev/null; then
    deluser --system --quiet hookd >/dev/null 2>&1
    getent group hookd >/dev/null && delgroup --system --quiet hookd >/dev/null 2>&1
  fi
  if [ "$status" != 0 ] && [ -f "$work/hookd.log" ]; then
    echo "--- hookd's log:" >&2
    tail -n 40 "$work/hookd.log" >&2
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

step "build the package"
packaging/build-deb.sh "$@"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
deb="$(ls -t "$target_dir"/debian/hookd_*.deb | head -n 1)"
[ -f "$deb" ] || fail "no package built"
cp "$deb" "$work/"
deb="$work/$(basename "$deb")"
echo "$deb ($(du -h "$deb" | cut -f1))"

step "apt-get install ./$(basename "$deb")"
(cd "$work" && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$(basename "$deb")" >/dev/null)
dpkg-query -W -f '${Status}\n' hookd | grep -q 'install ok installed' || fail "not installed"
getent passwd hookd | grep -q ':/var/lib/hookd:' || fail "no hookd system user"
[ "$(stat -c '%U:%G %a' /var/lib/hookd)" = "hookd:hookd 750" ] ||
  fail "/var/lib/hookd is $(stat -c '%U:%G %a' /var/lib/hookd)"
[ "$(stat -c '%U %a' /etc/hookd/hookd.env)" = "root 600" ] || fail "hookd.env is not root-only"
for conffile in /etc/hookd/hookd.toml /etc/hookd/hookd.env; do
  dpkg-query -W -f '${Conffiles}\n' hookd | grep -q " $conffile " || fail "$conffile is no conffile"
done
/usr/bin/hookd --version
/usr/bin/hookd --version |
  grep -Eq '^hookd [0-9.]+ \(commit (unknown|[0-9a-f]{12}), built [0-9]{4}-[0-9]{2}-[0-9]{2}\)$' ||
  fail "hookd --version"
runuser -u hookd -- /usr/bin/hookd check-config --config /etc/hookd/hookd.toml

step "systemd-analyze verify hookd.service"
unit=/usr/lib/systemd/system/hookd.service
# systemd 252 exits 0 on a misspelt key or a bad value ("…, ignoring"): any output fails.
verify="$(systemd-analyze verify "$unit" 2>&1)" || fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify: $verify"
systemd-analyze security --offline=true --no-pager "$unit" | tail -n 1

step "man hookd names every sub-command; the bash completions load"
commands="$(/usr/bin/hookd --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && $1 != "help" && NF { print $1 }')"
[ -n "$commands" ] || fail "no sub-commands in hookd --help"
page="$(MANWIDTH=200 man -P cat hookd 2>/dev/null)"
for command in $commands; do
  grep -q "hookd-$command(1)" <<<"$page" || fail "man hookd does not name $command"
  man -w "hookd-$command" >/dev/null || fail "no man page hookd-$command"
done
# Completing `hookd ch<TAB>` with the packaged script gives check-config.
completion="$(bash -c '
  source /usr/share/bash-completion/completions/hookd
  COMP_WORDS=(hookd ch); COMP_CWORD=1; COMP_LINE="hookd ch"; COMP_POINT=${#COMP_LINE}
  _hookd hookd ch hookd
  echo "${COMPREPLY[*]}"')"
[ "$completion" = check-config ] || fail "bash completion of 'hookd ch' gave '$completion'"

step "run the unit's ExecStart as its user, with the packaged configuration"
exec_start="$(sed -n 's/^ExecStart=//p' "$unit")"
user="$(sed -n 's/^User=//p' "$unit")"
env_file="$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit")"
work_dir="$(sed -n 's/^WorkingDirectory=//p' "$unit")"
[ "$exec_start" = "/usr/bin/hookd serve --config /etc/hookd/hookd.toml" ] || fail "ExecStart=$exec_start"
# Free loopback ports, chosen by the kernel, so parallel runs never collide. The receiver binds
# its own port 0 and reports it; hookd's port is taken from a socket closed just before.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
token="test-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# What an operator puts in hookd.env: the API on a test port, an admin token, and the
# loopback receiver allowed past the SSRF guard.
cat >>"$env_file" <<EOF
HOOKD_LISTEN=127.0.0.1:$port
HOOKD_ADMIN_TOKEN=$token
HOOKD_ALLOW_DESTINATIONS=127.0.0.1/32
HOOKD_SHUTDOWN_TIMEOUT=5s
EOF

cat >"$work/receiver.py" <<'EOF'
import http.server, json, sys
out = sys.argv[1]
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        with open(out, "a") as f:
            f.write(json.dumps({"headers": dict(self.headers), "body": body.decode()}) + "\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
with open(out + ".port", "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
EOF
python3 "$work/receiver.py" "$work/received" &
receiver_pid=$!
for _ in $(seq 1 50); do [ -s "$work/received.port" ] && break; sleep 0.1; done
receiver_port="$(cat "$work/received.port")"

# As systemd would: the variables of the environment file, the working directory, the umask,
# the user and its group, no new privileges.
(
  cd "$work_dir"
  umask 0027
  exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin bash -c \
    'set -a; . "$1"; set +a; shift; exec "$@"' _ "$env_file" \
    setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs -- $exec_start
) >"$work/hookd.log" 2>&1 &
hookd_pid=$!
api="http://127.0.0.1:$port/api/v1"
for _ in $(seq 1 100); do
  kill -0 "$hookd_pid" 2>/dev/null || fail "hookd exited at start"
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$api/health")" = 204 ] && break
  sleep 0.2
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$api/health")" = 204 ] || fail "hookd is not ready"
# Every step above exec'd, so the process started is hookd itself.
[ "$(ps -o user=,comm= -p "$hookd_pid" | tr -s ' ')" = "hookd hookd" ] ||
  fail "not hookd as the hookd user: $(ps -o user=,comm= -p "$hookd_pid")"
[ "$(stat -c '%U' /var/lib/hookd/hookd.db)" = hookd ] || fail "the database is not hookd's"
[ "$(stat -c '%U %a' /var/lib/hookd/hookd.db.key)" = "hookd 600" ] ||
  fail "the key file is $(stat -c '%U %a' /var/lib/hookd/hookd.db.key)"

step "post a message through the API; the receiver on 127.0.0.1:$receiver_port gets it"
call() {
  local method=$1 path=$2 body=${3:-}
  curl -sS --fail-with-body -X "$method" -H "Authorization: Bearer $token" \
    -H 'content-type: application/json' ${body:+-d "$body"} "$api$path"
}
call POST /event-type '{"name":"payment.captured","description":"A payment was captured"}' >/dev/null
call POST /app '{"name":"Package test","uid":"pkgtest"}' >/dev/null
call POST /app/pkgtest/endpoint \
  "{\"url\":\"http://127.0.0.1:$receiver_port/hook\",\"filterTypes\":[\"payment.captured\"]}" >/dev/null
call POST /app/pkgtest/msg \
  '{"eventType":"payment.captured","payload":{"paymentId":"pay_deb","amount":4999}}' >/dev/null
for _ in $(seq 1 100); do [ -s "$work/received" ] && break; sleep 0.1; done
[ -s "$work/received" ] || fail "nothing delivered within 10 s"
python3 - "$work/received" <<'EOF'
import json, sys
delivery = json.loads(open(sys.argv[1]).readline())
headers = {k.lower(): v for k, v in delivery["headers"].items()}
assert json.loads(delivery["body"])["paymentId"] == "pay_deb", delivery
assert headers["webhook-signature"].startswith("v1,"), headers
print("delivered", headers["webhook-id"], "signed", headers["webhook-signature"][:12] + "…")
EOF
# The receiver has its delivery before hookd has its answer and records the attempt.
counted=false
for _ in $(seq 1 50); do
  if curl -s "http://127.0.0.1:$port/metrics" | grep -q '^hookd_attempts_total{outcome="success"} 1$'; then
    counted=true
    break
  fi
  sleep 0.1
done
$counted || fail "/metrics does not count the attempt within 5 s"

step "SIGTERM: hookd drains and exits 0"
kill -TERM "$hookd_pid"
for _ in $(seq 1 300); do kill -0 "$hookd_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$hookd_pid" 2>/dev/null && fail "hookd still runs 30 s (TimeoutStopSec) after SIGTERM"
status=0
wait "$hookd_pid" || status=$?
hookd_pid=""
[ "$status" = 0 ] || fail "hookd exited $status after SIGTERM"

step "apt-get remove keeps the data; purge deletes it"
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq hookd >/dev/null
[ ! -e /usr/bin/hookd ] || fail "/usr/bin/hookd is still there after remove"
[ -s /var/lib/hookd/hookd.db ] && [ -s /var/lib/hookd/hookd.db.key ] ||
  fail "remove deleted the data in /var/lib/hookd"
[ -f /etc/hookd/hookd.toml ] || fail "remove deleted the configuration"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq hookd >/dev/null
[ ! -e /var/lib/hookd ] || fail "purge left /var/lib/hookd"
[ ! -e /etc/hookd ] || fail "purge left /etc/hookd"
echo "package test passed"
