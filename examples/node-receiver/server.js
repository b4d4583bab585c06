// A minimal Partner Callbacks webhook receiver: node:http and the Standard
// Webhooks library (see ../README.md).
//
//   WEBHOOK_SECRET=whsec_... PORT=8000 node server.js
//
// Register http(s)://<your host>/webhooks/<type> as your callback URL for
// each notification type: the body is the event's JSON as published, so the
// path is what tells the types apart.
"use strict";

const http = require("node:http");
const { Webhook } = require("standardwebhooks");

const webhook = new Webhook(process.env.WEBHOOK_SECRET);
// Our deliveries are at most 256 KiB (by default); refuse anything far larger.
const MAX_BODY = 1 << 20;

// Deliveries are at least once: a retry, or a redelivery, carries the same
// webhook-id. This set is in memory, so it forgets on restart and is not
// shared between replicas: a real receiver stores the id (unique key) with
// the event in one database transaction before answering, and keeps it for
// longer than our retries last (about two days).
const seen = new Set();

function work(webhookId, type, event) {
  // Your business logic goes here.
  console.log(`processed webhook-id=${webhookId} type=${type} event=${JSON.stringify(event)}`);
}

const server = http.createServer(async (req, res) => {
  const match = /^\/webhooks\/([^/?]+)$/.exec(req.url);
  if (req.method !== "POST" || !match) return res.writeHead(404).end();
  const type = match[1];
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY) return res.writeHead(413).end();
    chunks.push(chunk);
  }
  let event;
  try {
    // The raw bytes, as received: a re-serialised body would not verify.
    event = webhook.verify(Buffer.concat(chunks), req.headers);
  } catch (error) {
    console.log(`refused: ${error.message}`);
    return res.writeHead(401).end();
  }
  const webhookId = req.headers["webhook-id"];
  // Test (echo) notifications say so; real events never do.
  const test = req.headers["partner-callbacks-test"] === "true";
  const duplicate = seen.has(webhookId);
  if (!duplicate) {
    seen.add(webhookId);
    // Answer at once, work after: this runs once the 204 below is on its
    // way. In memory, a crash loses the event: a real receiver stores it
    // before answering and works from that database.
    setImmediate(() => work(webhookId, type, event));
  }
  console.log(`${duplicate ? "duplicate" : "verified"} webhook-id=${webhookId} type=${type} test=${test}`);
  // A duplicate gets a 2xx too: it was delivered, so we stop retrying.
  res.writeHead(204).end();
});

const host = process.env.HOST ?? "127.0.0.1";
const port = Number(process.env.PORT ?? 8000);
server.listen(port, host, () => console.log(`listening on http://${host}:${port}/webhooks/<type>`));
