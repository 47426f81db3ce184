// The webhook consumer as payment platforms' "receive your first webhook" tutorials show it:
// parse the JSON, log the event, answer 200. It checks nothing (no signature, no timestamp),
// which is exactly what `hookd certify` must catch (sdk-tests/python/test_certify_receivers.py).
//
// Usage: node naive.js [PORT]   (or PORT=...; 0, the default, picks a free port)
// Listens on 127.0.0.1 only and prints `listening on 127.0.0.1:PORT` once it accepts connections.
// DO NOT COPY: this is the counter-example.

const express = require('express');

const app = express();
app.use(express.json());

app.post('/webhooks', (req, res) => {
  const event = req.body;
  console.log('Received event:', JSON.stringify(event));
  // "In a real application you must secure the endpoint and validate incoming requests."
  res.sendStatus(200);
});

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
const server = app.listen(port, '127.0.0.1', () => {
  const { address, port: bound } = server.address();
  console.log(`listening on ${address}:${bound}`);
});
process.on('SIGTERM', () => process.exit(0));
