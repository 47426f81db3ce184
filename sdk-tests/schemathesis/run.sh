#!/usr/bin/env bash
# Fuzzes a live hookd with schemathesis, driven by the OpenAPI document hookd serves:
# no server errors, and every answer must match the document. Bounded in time.
# Usage: HOOKD_BIN=target/debug/hookd SCHEMATHESIS=.venv/bin/schemathesis sdk-tests/schemathesis/run.sh
set -euo pipefail
hookd_bin=${HOOKD_BIN:-target/debug/hookd}
schemathesis=${SCHEMATHESIS:-schemathesis}
max_time=${SCHEMATHESIS_MAX_TIME:-60}

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token="schemathesis-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
HOOKD_LISTEN="127.0.0.1:$port" HOOKD_DATABASE_URL="sqlite://$work/hookd.db" \
  HOOKD_ADMIN_TOKEN="$token" HOOKD_API_RATE_LIMIT=0 HOOKD_LOG=warn \
  "$hookd_bin" serve >"$work/hookd.log" 2>&1 &
hookd_pid=$!
trap 'kill $hookd_pid 2>/dev/null || true; wait $hookd_pid 2>/dev/null || true; rm -rf "$work"' EXIT

base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fs "$base/api/v1/health" >/dev/null && break
  sleep 0.1
done

# Some data to find: an event type, an application with an endpoint, a message.
auth=(-H "Authorization: Bearer $token" -H "content-type: application/json")
curl -fs "${auth[@]}" "$base/api/v1/event-type" -d '{"name":"payment.captured","description":"captured"}' >/dev/null
curl -fs "${auth[@]}" "$base/api/v1/app" -d '{"name":"Fuzzed merchant","uid":"fuzzed"}' >/dev/null
curl -fs "${auth[@]}" "$base/api/v1/app/fuzzed/endpoint" -d '{"url":"https://merchant.example/hook","uid":"main"}' >/dev/null
curl -fs "${auth[@]}" "$base/api/v1/app/fuzzed/msg" -d '{"eventType":"payment.captured","payload":{"a":1}}' >/dev/null

# Requests may take up to 35 s: GET …/feed?wait=30 holds an empty page open for 30 s, as
# documented, and schemathesis gives up on an answer after 10 s by default. One worker: with
# two threads, hypothesis parses lambdas' sources concurrently, and CPython 3.11.7's `ast.parse`
# then sometimes fails ("AST constructor recursion depth mismatch"), a crash of the tool that
# says nothing about hookd.
"$schemathesis" run "$base/api/v1/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --exclude-path /api/v1/auth/logout \
  --phases examples,coverage,fuzzing \
  --max-time "$max_time" \
  --request-timeout 35 \
  --workers 1 \
  --suppress-health-check all \
  --generation-database none 2>&1 | tee "$work/schemathesis.out" || {
    echo "--- hookd log ---"; tail -n 50 "$work/hookd.log"; exit 1; }
