// Conformance test: the official Svix JavaScript SDK (`svix` on npm) against a live hookd.
//
// The SDK is used exactly as a Svix customer would use it (only `serverUrl` points at hookd).
// Every test asserts concrete values returned by hookd, parsed by the SDK's own serializers, so
// a wrong field name, a missing required field, a wrong status code or a wrong route shows up
// as a failure here.
//
// Run: cd sdk-tests/js && npm ci && HOOKD_BIN=../../target/debug/hookd npm test

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import {
  ApiException,
  MessageAttemptTriggerType,
  MessageStatus,
  MessageStatusText,
  Svix,
  Webhook,
  WebhookVerificationError,
} from "svix";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const EVENT_TYPE = "payment.captured";
const OTHER_EVENT_TYPE = "payment.refunded";
const DELIVERY_TIMEOUT_MS = 10_000;
const TEST_TIMEOUT_MS = 60_000;

// --------------------------------------------------------------------------
// infrastructure
// --------------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A free TCP port on 127.0.0.1: listen on port 0, read the port, close. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** The message id of a delivery: Svix's `svix-id` or Standard Webhooks' `webhook-id`.
 *  The SDK's `Webhook.verify` accepts either header family, so both count as compatible. */
function msgIdOf(req) {
  return req.headers["svix-id"] ?? req.headers["webhook-id"];
}

/** A tiny webhook receiver: records every POST and answers 204. */
class Receiver {
  requests = []; // { path, headers (lower-case names), body: Buffer }
  #waiters = new Set();

  async start() {
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        if (req.method === "POST") {
          const headers = {};
          for (const [k, v] of Object.entries(req.headers)) {
            headers[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : v;
          }
          this.requests.push({ path: req.url, headers, body: Buffer.concat(chunks) });
          for (const w of this.#waiters) w();
        }
        res.writeHead(204);
        res.end();
      });
    });
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = this.server.address().port;
  }

  url(p) {
    return `http://127.0.0.1:${this.port}${p}`;
  }

  received(p, msgId) {
    return this.requests.filter((r) => r.path === p && msgIdOf(r) === msgId);
  }

  /** Waits until `count` deliveries of `msgId` reached path `p`. */
  async waitFor(p, msgId, count = 1, timeoutMs = DELIVERY_TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = this.received(p, msgId);
      if (got.length >= count) return got;
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new assert.AssertionError({
          message:
            `receiver got ${got.length} deliveries of ${msgId} at ${p} within ` +
            `${timeoutMs} ms, expected ${count}; all: ` +
            JSON.stringify(this.requests.map((r) => [r.path, msgIdOf(r)])),
        });
      }
      await new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.#waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(remaining, 200));
        this.#waiters.add(done);
      });
    }
  }

  async close() {
    this.server.closeAllConnections?.();
    await new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Calls fn until it returns a truthy value or the timeout expires; returns the last value. */
async function poll(fn, timeoutMs = DELIVERY_TIMEOUT_MS, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(intervalMs);
  }
  return last;
}

/** Runs fn, expects the SDK's ApiException, returns it. */
async function expectApiError(fn, expectedCode) {
  let caught;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught, `expected ApiException ${expectedCode}, but the call succeeded`);
  assert.ok(
    caught instanceof ApiException,
    `expected ApiException ${expectedCode}, got ${caught?.stack ?? caught}`
  );
  if (Array.isArray(expectedCode)) {
    assert.ok(expectedCode.includes(caught.code), `status ${caught.code} not in ${expectedCode}`);
  } else {
    assert.equal(caught.code, expectedCode, `body: ${JSON.stringify(caught.body)}`);
  }
  return caught;
}

/** A required date field: present and parseable (the SDK does `new Date(raw)`). */
function assertDate(d, what) {
  assert.ok(d instanceof Date, `${what} is not a Date`);
  assert.ok(!Number.isNaN(d.getTime()), `${what} is missing or not a valid date`);
}

const lower = (obj) =>
  Object.fromEntries(Object.entries(obj).map(([k, v]) => [k.toLowerCase(), v]));

/** Memoizes an async fixture, like a session-scoped pytest fixture. */
function once(fn) {
  let p;
  return () => (p ??= fn());
}

// --------------------------------------------------------------------------
// hookd process, receiver, client
// --------------------------------------------------------------------------

const hookd = {};
const receiver = new Receiver();
/** @type {Svix} */
let svix;

function client(token) {
  return new Svix(token ?? hookd.token, { serverUrl: hookd.url });
}

before(async () => {
  const bin = process.env.HOOKD_BIN
    ? path.resolve(process.env.HOOKD_BIN)
    : path.resolve(HERE, "../../target/debug/hookd");
  assert.ok(existsSync(bin), `hookd binary not found at ${bin}`);

  hookd.tmpdir = mkdtempSync(path.join(tmpdir(), "hookd-sdk-js-"));
  hookd.logPath = path.join(hookd.tmpdir, "hookd.log");
  const port = await freePort();
  hookd.token = randomBytes(32).toString("base64url"); // 43 chars
  hookd.url = `http://127.0.0.1:${port}`;

  const log = createWriteStream(hookd.logPath);
  await new Promise((resolve) => log.on("open", resolve));
  hookd.proc = spawn(bin, ["serve"], {
    env: {
      ...process.env,
      HOOKD_LISTEN: `127.0.0.1:${port}`,
      HOOKD_DATABASE_URL: `sqlite://${hookd.tmpdir}/hookd.db`,
      HOOKD_ADMIN_TOKEN: hookd.token,
      HOOKD_ALLOW_DESTINATIONS: "127.0.0.0/8",
      HOOKD_RETRY_SCHEDULE: "50ms,100ms",
      HOOKD_LOG: "warn",
    },
    stdio: ["ignore", log, log],
  });
  hookd.exited = new Promise((resolve) =>
    hookd.proc.on("exit", (code, signal) => resolve({ code, signal }))
  );
  let exitInfo = null;
  hookd.exited.then((info) => (exitInfo = info));

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exitInfo) {
      throw new Error(
        `hookd exited with ${JSON.stringify(exitInfo)}:\n${readFileSync(hookd.logPath, "utf8")}`
      );
    }
    try {
      const res = await fetch(`${hookd.url}/api/v1/health`, {
        signal: AbortSignal.timeout(1000),
      });
      if (res.status === 204) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      throw new Error("hookd did not answer 204 on /api/v1/health within 30s");
    }
    await sleep(100);
  }

  await receiver.start();
  svix = client();
});

after(async () => {
  if (hookd.proc && hookd.proc.exitCode === null && hookd.proc.signalCode === null) {
    hookd.proc.kill("SIGTERM");
    const killed = await Promise.race([hookd.exited, sleep(10_000).then(() => null)]);
    if (!killed) {
      hookd.proc.kill("SIGKILL");
      await hookd.exited;
    }
  }
  if (receiver.server) await receiver.close();
  if (hookd.tmpdir) rmSync(hookd.tmpdir, { recursive: true, force: true });
});

// --------------------------------------------------------------------------
// shared fixtures (created once, on first use)
// --------------------------------------------------------------------------

const eventType = once(() =>
  svix.eventType.create({ name: EVENT_TYPE, description: "A payment was captured" })
);

const mainApp = once(() =>
  svix.application.create({ name: "SDK test app", uid: "sdk-js-main", metadata: { suite: "js" } })
);

const mainEndpoint = once(async () => {
  const app = await mainApp();
  const et = await eventType();
  return svix.endpoint.create(app.id, {
    url: receiver.url("/hook/main"),
    description: "main receiver",
    uid: "ep-main",
    eventTypes: [et.name],
    metadata: { role: "main" },
  });
});

const PAYLOAD = { id: "pay_123", amount: 4200, currency: "EUR", nested: { ok: true } };

/** A message created through the SDK and its (first) delivery at the receiver. */
const delivered = once(async () => {
  const app = await mainApp();
  await mainEndpoint();
  const msg = await svix.message.create(app.id, {
    eventType: EVENT_TYPE,
    payload: PAYLOAD,
    eventId: "evt-delivery-1",
  });
  const got = await receiver.waitFor("/hook/main", msg.id);
  return { msg, request: got[0] };
});

/** A throw-away application; the caller deletes it. */
async function scratchApp(name) {
  return svix.application.create({ name: `scratch ${name}` });
}

// --------------------------------------------------------------------------
// tests
// --------------------------------------------------------------------------

const opts = { timeout: TEST_TIMEOUT_MS };

test("health", opts, async () => {
  assert.equal(await svix.health.get(), undefined); // 204, body not read
});

describe("event types", () => {
  test("create, get, list, update, patch", opts, async () => {
    const et = await eventType();
    assert.equal(et.name, EVENT_TYPE);
    assert.equal(et.description, "A payment was captured");
    assert.equal(et.deprecated, false);
    assert.equal(et.archived ?? false, false);
    assertDate(et.createdAt, "createdAt");
    assertDate(et.updatedAt, "updatedAt");

    const got = await svix.eventType.get(EVENT_TYPE);
    assert.equal(got.name, EVENT_TYPE);
    assert.equal(got.description, "A payment was captured");
    assertDate(got.createdAt, "createdAt");

    const listed = await svix.eventType.list();
    assert.ok(Array.isArray(listed.data));
    assert.ok(listed.data.map((e) => e.name).includes(EVENT_TYPE));
    assert.equal(typeof listed.done, "boolean");

    // update (PUT): create-or-replace, on a second event type
    const created = await svix.eventType.upsert(OTHER_EVENT_TYPE, {
      description: "A payment was refunded",
    });
    assert.equal(created.name, OTHER_EVENT_TYPE);
    assert.equal(created.description, "A payment was refunded");
    const updated = await svix.eventType.upsert(OTHER_EVENT_TYPE, {
      description: "A payment was refunded (v2)",
      deprecated: true,
    });
    assert.equal(updated.name, OTHER_EVENT_TYPE);
    assert.equal(updated.description, "A payment was refunded (v2)");
    assert.equal(updated.deprecated, true);
    assert.equal((await svix.eventType.get(OTHER_EVENT_TYPE)).description, "A payment was refunded (v2)");

    const patched = await svix.eventType.patch(EVENT_TYPE, {
      description: "A payment was captured (patched)",
    });
    assert.equal(patched.name, EVENT_TYPE);
    assert.equal(patched.description, "A payment was captured (patched)");
    assert.equal(patched.deprecated, false);
    assert.equal(
      (await svix.eventType.get(EVENT_TYPE)).description,
      "A payment was captured (patched)"
    );
  });

  test("delete archives, expunge removes", opts, async () => {
    const name = "sdk.js.doomed";
    await svix.eventType.create({ name, description: "to be archived" });
    assert.equal(await svix.eventType.delete(name), undefined);
    const archived = await svix.eventType.get(name);
    assert.equal(archived.archived, true);
    assert.ok(!(await svix.eventType.list()).data.some((e) => e.name === name));
    assert.ok(
      (await svix.eventType.list({ includeArchived: true })).data.some((e) => e.name === name)
    );

    await svix.eventType.delete(name, { expunge: true });
    await expectApiError(() => svix.eventType.get(name), 404);
  });
});

test("application lifecycle", opts, async () => {
  const created = await svix.application.create({
    name: "Lifecycle app",
    uid: "sdk-js-lifecycle",
    metadata: { k: "v" },
  });
  assert.match(created.id, /\S+/);
  assert.equal(created.name, "Lifecycle app");
  assert.equal(created.uid, "sdk-js-lifecycle");
  assert.deepEqual(created.metadata, { k: "v" });
  assertDate(created.createdAt, "createdAt");
  assertDate(created.updatedAt, "updatedAt");

  const byId = await svix.application.get(created.id);
  assert.equal(byId.id, created.id);
  assert.equal(byId.name, "Lifecycle app");
  const byUid = await svix.application.get("sdk-js-lifecycle");
  assert.equal(byUid.id, created.id);
  assert.equal(byUid.uid, "sdk-js-lifecycle");

  const listed = await svix.application.list();
  assert.ok(listed.data.map((a) => a.id).includes(created.id));
  assert.equal(typeof listed.done, "boolean");

  const updated = await svix.application.upsert(created.id, {
    name: "Lifecycle app v2",
    uid: "sdk-js-lifecycle",
  });
  assert.equal(updated.id, created.id);
  assert.equal(updated.name, "Lifecycle app v2");
  assert.equal((await svix.application.get(created.id)).name, "Lifecycle app v2");

  const patched = await svix.application.patch(created.id, { metadata: { k: "patched" } });
  assert.equal(patched.id, created.id);
  assert.equal(patched.name, "Lifecycle app v2");
  assert.deepEqual(patched.metadata, { k: "patched" });

  // getOrCreate on an existing uid returns the existing application ...
  const existing = await svix.application.getOrCreate({ name: "ignored", uid: "sdk-js-lifecycle" });
  assert.equal(existing.id, created.id);
  assert.equal(existing.name, "Lifecycle app v2");
  // ... and creates one for a new uid.
  const fresh = await svix.application.getOrCreate({ name: "Fresh app", uid: "sdk-js-fresh" });
  assert.notEqual(fresh.id, created.id);
  assert.equal(fresh.uid, "sdk-js-fresh");
  assert.equal(fresh.name, "Fresh app");

  for (const appId of [created.id, fresh.id]) {
    assert.equal(await svix.application.delete(appId), undefined);
    await expectApiError(() => svix.application.get(appId), 404);
  }
  const after = await svix.application.list();
  assert.ok(!after.data.map((a) => a.id).includes(created.id));
  assert.ok(!after.data.map((a) => a.id).includes(fresh.id));
});

test("application list pagination (limit, iterator, done)", opts, async () => {
  const ids = [];
  for (let i = 0; i < 5; i++) {
    ids.push((await svix.application.create({ name: `page ${i}`, uid: `sdk-js-page-${i}` })).id);
  }
  try {
    const seen = [];
    let iterator;
    for (let pages = 0; ; pages++) {
      assert.ok(pages < 100, "pagination does not terminate");
      const page = await svix.application.list({ limit: 2, iterator });
      assert.ok(page.data.length <= 2, `page of ${page.data.length} items with limit 2`);
      seen.push(...page.data.map((a) => a.id));
      assert.equal(typeof page.done, "boolean");
      if (page.done) break;
      assert.equal(typeof page.iterator, "string", "a page that is not done needs an iterator");
      iterator = page.iterator;
    }
    assert.equal(new Set(seen).size, seen.length, "an application was listed twice");
    for (const id of ids) assert.ok(seen.includes(id), `${id} missing from the pages`);
  } finally {
    for (const id of ids) await svix.application.delete(id);
  }
});

describe("endpoints", () => {
  test("create, get, list, update, patch", opts, async () => {
    const app = await mainApp();
    const endpoint = await mainEndpoint();
    const url = receiver.url("/hook/main");
    assert.match(endpoint.id, /\S+/);
    assert.equal(endpoint.url, url);
    assert.equal(endpoint.uid, "ep-main");
    assert.equal(endpoint.description, "main receiver");
    assert.deepEqual(endpoint.eventTypes, [EVENT_TYPE]);
    assert.deepEqual(endpoint.metadata, { role: "main" });
    assert.equal(endpoint.disabled ?? false, false);
    assertDate(endpoint.createdAt, "createdAt");
    assertDate(endpoint.updatedAt, "updatedAt");

    const got = await svix.endpoint.get(app.id, endpoint.id);
    assert.equal(got.id, endpoint.id);
    assert.equal(got.url, url);
    assert.deepEqual(got.eventTypes, [EVENT_TYPE]);
    assert.equal((await svix.endpoint.get(app.id, "ep-main")).id, endpoint.id); // by uid

    const listed = await svix.endpoint.list(app.id);
    assert.ok(listed.data.map((e) => e.id).includes(endpoint.id));
    assert.equal(typeof listed.done, "boolean");

    const updated = await svix.endpoint.upsert(app.id, endpoint.id, {
      url,
      uid: "ep-main",
      description: "main receiver (updated)",
      eventTypes: [EVENT_TYPE],
      metadata: { role: "main" },
    });
    assert.equal(updated.id, endpoint.id);
    assert.equal(updated.description, "main receiver (updated)");
    assert.equal(updated.url, url);
    assert.deepEqual(updated.eventTypes, [EVENT_TYPE]);

    const patched = await svix.endpoint.patch(app.id, endpoint.id, {
      description: "main receiver (patched)",
    });
    assert.equal(patched.id, endpoint.id);
    assert.equal(patched.description, "main receiver (patched)");
    assert.equal(patched.url, url);
    assert.deepEqual(patched.eventTypes, [EVENT_TYPE]);
    assert.deepEqual(patched.metadata, { role: "main" });
    assert.equal(
      (await svix.endpoint.get(app.id, endpoint.id)).description,
      "main receiver (patched)"
    );
  });

  test("delete", opts, async () => {
    const app = await scratchApp("endpoint delete");
    try {
      const ep = await svix.endpoint.create(app.id, { url: receiver.url("/hook/doomed") });
      assert.equal(ep.description, "");
      assert.deepEqual(ep.metadata, {});
      assert.equal(await svix.endpoint.delete(app.id, ep.id), undefined);
      await expectApiError(() => svix.endpoint.get(app.id, ep.id), 404);
      assert.ok(!(await svix.endpoint.list(app.id)).data.map((e) => e.id).includes(ep.id));
    } finally {
      await svix.application.delete(app.id);
    }
  });

  test("getSecret, rotateSecret", opts, async () => {
    // a dedicated app, so the rotation cannot disturb other tests
    const app = await scratchApp("secret rotation");
    try {
      const ep = await svix.endpoint.create(app.id, { url: receiver.url("/hook/rotate") });
      const old = await svix.endpoint.getSecret(app.id, ep.id);
      assert.ok(old.key.startsWith("whsec_"), old.key);
      assert.ok(old.key.length > "whsec_".length + 20);

      assert.equal(await svix.endpoint.rotateSecret(app.id, ep.id, {}), undefined);
      const fresh = await svix.endpoint.getSecret(app.id, ep.id);
      assert.ok(fresh.key.startsWith("whsec_"));
      assert.notEqual(fresh.key, old.key);

      // rotating to a caller-supplied key
      const chosen = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
      await svix.endpoint.rotateSecret(app.id, ep.id, { key: chosen });
      assert.equal((await svix.endpoint.getSecret(app.id, ep.id)).key, chosen);

      // a message sent after the rotation is signed with the new secret
      const msg = await svix.message.create(app.id, { eventType: EVENT_TYPE, payload: { r: 1 } });
      const [req] = await receiver.waitFor("/hook/rotate", msg.id);
      new Webhook(chosen).verify(req.body, req.headers);
      // "The previous secret will remain valid for the specified grace period (default 24
      // hours)": the delivery also carries signatures by the rotated-out secrets.
      new Webhook(old.key).verify(req.body, req.headers);
      new Webhook(fresh.key).verify(req.body, req.headers);
    } finally {
      await svix.application.delete(app.id);
    }
  });

  test("getHeaders, setHeaders (PUT), patchHeaders", opts, async () => {
    const app = await scratchApp("headers");
    try {
      const ep = await svix.endpoint.create(app.id, { url: receiver.url("/hook/headers") });
      const empty = await svix.endpoint.getHeaders(app.id, ep.id);
      assert.deepEqual(empty.headers, {});
      assert.deepEqual(empty.sensitive, []);

      assert.equal(
        await svix.endpoint.setHeaders(app.id, ep.id, {
          headers: { "X-Tenant": "acme", "X-Extra": "1" },
        }),
        undefined
      );
      let got = await svix.endpoint.getHeaders(app.id, ep.id);
      assert.deepEqual(lower(got.headers), { "x-tenant": "acme", "x-extra": "1" });
      assert.deepEqual(got.sensitive, []);

      assert.equal(
        await svix.endpoint.patchHeaders(app.id, ep.id, {
          headers: { "X-Region": "eu" },
          deleteHeaders: ["X-Extra"],
        }),
        undefined
      );
      got = await svix.endpoint.getHeaders(app.id, ep.id);
      assert.deepEqual(lower(got.headers), { "x-tenant": "acme", "x-region": "eu" });

      // the custom headers are sent with each delivery
      const msg = await svix.message.create(app.id, { eventType: EVENT_TYPE, payload: { h: 1 } });
      const [req] = await receiver.waitFor("/hook/headers", msg.id);
      assert.equal(req.headers["x-tenant"], "acme");
      assert.equal(req.headers["x-region"], "eu");
      assert.equal(req.headers["x-extra"], undefined);
    } finally {
      await svix.application.delete(app.id);
    }
  });

  test("getStats", opts, async () => {
    const app = await mainApp();
    const endpoint = await mainEndpoint();
    await delivered();
    const stats = await poll(async () => {
      const s = await svix.endpoint.getStats(app.id, endpoint.id);
      return s.success >= 1 ? s : null;
    });
    assert.ok(stats, "endpoint stats never showed a successful delivery");
    assert.equal(stats.fail, 0);
    for (const k of ["success", "pending", "sending", "fail", "canceled"]) {
      assert.equal(typeof stats[k], "number", `stats.${k}`);
      assert.ok(stats[k] >= 0, `stats.${k}`);
    }
  });
});

describe("messages", () => {
  test("create, delivery, signature, get, list", opts, async () => {
    const app = await mainApp();
    const endpoint = await mainEndpoint();
    const { msg, request: req } = await delivered();

    assert.match(msg.id, /\S+/);
    assert.equal(msg.eventType, EVENT_TYPE);
    assert.equal(msg.eventId, "evt-delivery-1");
    assertDate(msg.timestamp, "timestamp");
    // message.create sends with_content=false by default: no payload echoed
    assert.deepEqual(msg.payload, {});

    const h = req.headers;
    const prefix = "svix-id" in h ? "svix-" : "webhook-";
    assert.equal(h[`${prefix}id`], msg.id);
    const ts = h[`${prefix}timestamp`] ?? "";
    assert.match(ts, /^\d+$/);
    assert.ok(Math.abs(Number(ts) - Date.now() / 1000) < 300);
    assert.ok((h[`${prefix}signature`] ?? "").startsWith("v1,"));
    assert.ok((h["content-type"] ?? "").startsWith("application/json"));
    assert.deepEqual(JSON.parse(req.body.toString("utf8")), PAYLOAD);

    const secret = (await svix.endpoint.getSecret(app.id, endpoint.id)).key;
    // verify() throws on a bad signature; it takes the raw body (string or Buffer)
    new Webhook(secret).verify(req.body, h);
    new Webhook(secret).verify(req.body.toString("utf8"), h);
    assert.throws(
      () => new Webhook(secret).verify(req.body.toString("utf8") + " ", h),
      WebhookVerificationError
    );
    assert.throws(
      () => new Webhook("whsec_" + "A".repeat(32)).verify(req.body, h),
      WebhookVerificationError
    );

    const got = await svix.message.get(app.id, msg.id, { withContent: true });
    assert.equal(got.id, msg.id);
    assert.equal(got.eventType, EVENT_TYPE);
    assert.equal(got.eventId, "evt-delivery-1");
    assert.deepEqual(got.payload, PAYLOAD);
    assertDate(got.timestamp, "timestamp");
    const byEventId = await svix.message.get(app.id, "evt-delivery-1");
    assert.equal(byEventId.id, msg.id);
    assert.deepEqual(byEventId.payload, {}); // withContent defaults to false

    const withPayloads = await svix.message.list(app.id, { withContent: true });
    const mine = withPayloads.data.filter((m) => m.id === msg.id);
    assert.equal(mine.length, 1);
    assert.deepEqual(mine[0].payload, PAYLOAD);
    assert.equal(mine[0].eventType, EVENT_TYPE);
    assert.equal(typeof withPayloads.done, "boolean");

    const withoutPayloads = await svix.message.list(app.id);
    const bare = withoutPayloads.data.filter((m) => m.id === msg.id);
    assert.equal(bare.length, 1);
    assert.deepEqual(bare[0].payload, {});
    assert.equal(bare[0].eventType, EVENT_TYPE);
    assert.equal(bare[0].eventId, "evt-delivery-1");
  });

  test("create with withContent echoes the payload", opts, async () => {
    const app = await scratchApp("with content");
    try {
      const msg = await svix.message.create(
        app.id,
        { eventType: EVENT_TYPE, payload: { echo: "yes" }, channels: ["ch-1"] },
        { withContent: true }
      );
      assert.deepEqual(msg.payload, { echo: "yes" });
      assert.deepEqual(msg.channels, ["ch-1"]);
      assert.equal(msg.eventType, EVENT_TYPE);
    } finally {
      await svix.application.delete(app.id);
    }
  });

  test("the endpoint's eventTypes filter applies", opts, async () => {
    const app = await mainApp();
    const endpoint = await mainEndpoint();
    await delivered();
    const msg = await svix.message.create(app.id, {
      eventType: OTHER_EVENT_TYPE,
      payload: { filtered: true },
    });
    // a message of the filtered event type, sent after it, arrives ...
    const probe = await svix.message.create(app.id, { eventType: EVENT_TYPE, payload: { p: 1 } });
    await receiver.waitFor("/hook/main", probe.id);
    // ... while the other one never reaches the endpoint
    await sleep(500);
    assert.equal(receiver.received("/hook/main", msg.id).length, 0);
    const dests = await svix.messageAttempt.listAttemptedDestinations(app.id, msg.id);
    assert.ok(!dests.data.some((d) => d.id === endpoint.id));
  });
});

test("attempts", opts, async () => {
  const app = await mainApp();
  const endpoint = await mainEndpoint();
  const { msg } = await delivered();

  const byMsg = await poll(async () => {
    const r = await svix.messageAttempt.listByMsg(app.id, msg.id);
    return r.data.length ? r : null;
  });
  assert.ok(byMsg?.data?.length, "no attempts listed for the message");
  const mine = byMsg.data.filter((a) => a.endpointId === endpoint.id);
  assert.equal(mine.length, 1, JSON.stringify(byMsg.data));
  const att = mine[0];
  assert.match(att.id, /\S+/);
  assert.equal(att.msgId, msg.id);
  assert.equal(att.endpointId, endpoint.id);
  assert.equal(att.status, MessageStatus.Success);
  assert.equal(att.statusText, MessageStatusText.Success);
  assert.equal(att.responseStatusCode, 204);
  assert.equal(att.url, endpoint.url);
  assert.equal(att.triggerType, MessageAttemptTriggerType.Scheduled);
  assert.equal(typeof att.responseDurationMs, "number");
  assert.ok(att.responseDurationMs >= 0);
  assert.equal(typeof att.response, "string");
  assertDate(att.timestamp, "timestamp");
  assert.equal(typeof byMsg.done, "boolean");

  const filtered = await svix.messageAttempt.listByMsg(app.id, msg.id, {
    endpointId: endpoint.id,
  });
  assert.ok(filtered.data.map((a) => a.id).includes(att.id));
  assert.ok(filtered.data.every((a) => a.endpointId === endpoint.id));

  const one = await svix.messageAttempt.get(app.id, msg.id, att.id);
  assert.equal(one.id, att.id);
  assert.equal(one.msgId, msg.id);
  assert.equal(one.responseStatusCode, 204);
  assert.equal(one.status, MessageStatus.Success);

  const byEp = await svix.messageAttempt.listByEndpoint(app.id, endpoint.id);
  const ours = byEp.data.filter((a) => a.id === att.id);
  assert.equal(ours.length, 1);
  assert.equal(ours[0].status, MessageStatus.Success);
  assert.equal(ours[0].responseStatusCode, 204);
  assert.equal(ours[0].msgId, msg.id);

  const dests = await svix.messageAttempt.listAttemptedDestinations(app.id, msg.id);
  const d = dests.data.filter((e) => e.id === endpoint.id);
  assert.equal(d.length, 1);
  assert.equal(d[0].status, MessageStatus.Success);
  assert.equal(d[0].statusText, MessageStatusText.Success);
  assert.equal(d[0].url, endpoint.url);
  assertDate(d[0].createdAt, "createdAt");
  assertDate(d[0].updatedAt, "updatedAt");

  const msgs = await svix.messageAttempt.listAttemptedMessages(app.id, endpoint.id);
  const m = msgs.data.filter((x) => x.id === msg.id);
  assert.equal(m.length, 1);
  assert.equal(m[0].status, MessageStatus.Success);
  assert.equal(m[0].statusText, MessageStatusText.Success);
  assert.equal(m[0].eventType, EVENT_TYPE);
  assertDate(m[0].timestamp, "timestamp");

  // resend: a second delivery reaches the receiver and a manual attempt is recorded
  const countBefore = receiver.received("/hook/main", msg.id).length;
  // Svix answers 202 with `{}`, which the SDK parses as EmptyResponse
  assert.deepEqual(await svix.messageAttempt.resend(app.id, msg.id, endpoint.id), {});
  const all = await receiver.waitFor("/hook/main", msg.id, countBefore + 1);
  const secret = (await svix.endpoint.getSecret(app.id, endpoint.id)).key;
  const resent = all[all.length - 1];
  new Webhook(secret).verify(resent.body, resent.headers);

  const manual = await poll(async () => {
    const r = await svix.messageAttempt.listByMsg(app.id, msg.id);
    const found = r.data.filter(
      (a) => a.triggerType === MessageAttemptTriggerType.Manual && a.endpointId === endpoint.id
    );
    return found.length && found[0].status === MessageStatus.Success ? found : null;
  });
  assert.ok(manual, "no successful manual attempt after resend");
  assert.equal(manual[0].responseStatusCode, 204);
  assert.equal(manual[0].endpointId, endpoint.id);
  assert.equal(manual[0].msgId, msg.id);
});

describe("authentication", () => {
  test("appPortalAccess: a token for that app only", opts, async () => {
    const app = await mainApp();
    const endpoint = await mainEndpoint();
    const access = await svix.authentication.appPortalAccess(app.id, {});
    assert.equal(typeof access.token, "string");
    assert.ok(access.token.length > 0);
    assert.equal(typeof access.url, "string");
    assert.ok(access.url.length > 0);
    assert.notEqual(access.token, hookd.token);

    const portal = client(access.token);
    const eps = await portal.endpoint.list(app.id);
    assert.ok(eps.data.map((e) => e.id).includes(endpoint.id));
    assert.equal((await portal.endpoint.get(app.id, endpoint.id)).url, endpoint.url);
    assert.equal((await portal.application.get(app.id)).id, app.id);

    const other = await svix.application.create({ name: "Other app", uid: "sdk-js-other" });
    try {
      await expectApiError(() => portal.endpoint.list(other.id), [403, 404]);
      await expectApiError(() => portal.application.get(other.id), [403, 404]);
    } finally {
      await svix.application.delete(other.id);
    }
  });

  test("logout: the token stops working", opts, async () => {
    const app = await mainApp();
    const { token } = await svix.authentication.appPortalAccess(app.id);
    const portal = client(token);
    assert.equal((await portal.application.get(app.id)).id, app.id);

    assert.equal(await portal.authentication.logout(), undefined);
    await expectApiError(() => portal.application.get(app.id), 401);
    await expectApiError(() => portal.endpoint.list(app.id), 401);
    // the admin token is unaffected
    assert.equal((await svix.application.get(app.id)).id, app.id);
  });
});

describe("errors", () => {
  test("missing application → ApiException 404", opts, async () => {
    const err = await expectApiError(
      () => svix.application.get("app_doesnotexist0000000000000"),
      404
    );
    assert.equal(typeof err.body.code, "string");
    assert.ok(err.body.code.length > 0, "machine-readable code, e.g. not_found");
    assert.equal(typeof err.body.detail, "string");
  });

  test("bad endpoint URL → ApiException 422 with detail list", opts, async () => {
    const app = await mainApp();
    const err = await expectApiError(
      () => svix.endpoint.create(app.id, { url: "not a url" }),
      422
    );
    assert.ok(Array.isArray(err.body.detail), "422 body must carry a `detail` list");
    assert.ok(err.body.detail.length > 0, "422 body must carry a non-empty `detail` list");
    const item = err.body.detail[0];
    assert.ok(Array.isArray(item.loc) && item.loc.length > 0, JSON.stringify(item));
    assert.equal(typeof item.msg, "string");
    assert.equal(typeof item.type, "string");
  });

  test("duplicate application uid → ApiException 409", opts, async () => {
    const app = await mainApp();
    const err = await expectApiError(
      () => svix.application.create({ name: "dup", uid: app.uid }),
      409
    );
    assert.equal(typeof err.body.code, "string");
    assert.equal(typeof err.body.detail, "string");
  });

  test("wrong token → ApiException 401", opts, async () => {
    await expectApiError(() => client("wrong-token").application.list(), 401);
  });
});
