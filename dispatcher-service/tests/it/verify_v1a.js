// Verifies Standard Webhooks `v1a` (Ed25519) signatures with Node's own
// crypto (OpenSSL), an implementation independent of the Rust code under
// test. Reads one JSON object on stdin: { publicKey: "whpk_…", id,
// timestamp, signature (the webhook-signature header), body (base64) }.
// Prints "verified" and exits 0 when a v1a signature in the header verifies
// under the key, prints "not verified" and exits 1 otherwise.
"use strict";
const crypto = require("node:crypto");

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const m = JSON.parse(input);
  const raw = Buffer.from(m.publicKey.replace(/^whpk_/, ""), "base64");
  const key = crypto.createPublicKey({
    key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") },
    format: "jwk",
  });
  const signed = Buffer.concat([
    Buffer.from(`${m.id}.${m.timestamp}.`),
    Buffer.from(m.body, "base64"),
  ]);
  const verified = m.signature
    .split(" ")
    .filter((s) => s.startsWith("v1a,"))
    .some((s) => crypto.verify(null, signed, key, Buffer.from(s.slice(4), "base64")));
  console.log(verified ? "verified" : "not verified");
  process.exit(verified ? 0 : 1);
});
