// An Express consumer that verifies Standard Webhooks signatures correctly (HMAC-SHA256 over
// the raw body, constant-time comparison, several space-separated signatures accepted during a
// secret rotation) but never checks how old the `webhook-timestamp` is. A captured request can
// be replayed forever; `hookd certify` must name exactly the two timestamp checks
// (sdk-tests/python/test_certify_receivers.py).
//
// Usage: WEBHOOK_SECRET=whsec_... node no-timestamp.js [PORT]   (or PORT=...; 0 picks a free port)
// Listens on 127.0.0.1 only and prints `listening on 127.0.0.1:PORT` once it accepts connections.

const crypto = require('node:crypto');
const express = require('express');

const SECRET = process.env.WEBHOOK_SECRET ?? '';
if (!SECRET.startsWith('whsec_')) {
  console.error('WEBHOOK_SECRET must be a whsec_... secret');
  process.exit(2);
}
const KEY = Buffer.from(SECRET.slice('whsec_'.length), 'base64');

// Standard Webhooks headers, or Svix's names for the same three.
function header(req, name) {
  return req.get(`webhook-${name}`) ?? req.get(`svix-${name}`);
}

// Whether any `v1,<base64>` entry of the header is the HMAC of `id.timestamp.body`.
function signatureValid(id, timestamp, body, signatureHeader) {
  const expected = crypto
    .createHmac('sha256', KEY)
    .update(`${id}.${timestamp}.`)
    .update(body)
    .digest();
  return signatureHeader.split(' ').some((entry) => {
    const [version, encoded] = entry.split(',', 2);
    if (version !== 'v1' || !encoded) return false;
    const given = Buffer.from(encoded, 'base64');
    return given.length === expected.length && crypto.timingSafeEqual(given, expected);
  });
}

const app = express();

// The raw bytes, whatever the content type: the signature is over them, not over parsed JSON.
app.post('/webhooks', express.raw({ type: () => true }), (req, res) => {
  const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  const id = header(req, 'id');
  const timestamp = header(req, 'timestamp');
  const signature = header(req, 'signature');
  if (!id || !timestamp || !signature) {
    return res.status(400).send('missing signature headers');
  }
  // The omission this receiver exists for: `timestamp` is signed, but its age is never compared
  // with the clock.
  if (!signatureValid(id, timestamp, body, signature)) {
    return res.status(401).send('invalid signature');
  }
  let event;
  try {
    event = JSON.parse(body.toString('utf8'));
  } catch {
    return res.status(400).send('the body is not JSON');
  }
  console.log('Received event:', id, JSON.stringify(event));
  res.sendStatus(204);
});

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
const server = app.listen(port, '127.0.0.1', () => {
  const { address, port: bound } = server.address();
  console.log(`listening on ${address}:${bound}`);
});
process.on('SIGTERM', () => process.exit(0));
