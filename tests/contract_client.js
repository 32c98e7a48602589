// A Docora client app in Node, written from Docora's published webhook reference
// (../shared/DOCORA_CONTRACT.md §1), not from our code: what a real client does with our requests.
//
// - a body over 1 MiB is refused with 413 (Fastify's default bodyLimit);
// - the signature is checked the published way: JSON.parse the body, JSON.stringify it again,
//   HMAC-SHA256 of "<X-Docora-Timestamp>." + that, compared in constant time; a timestamp more
//   than 300 s away is refused;
// - chunks are reassembled by concatenating the `content` strings in index order and decoding
//   once (Buffer.from(..., "base64"), which silently stops at a padding "=" in the middle: so
//   a strict check follows), then the file's sha256 and size are checked;
// - key order and field types are checked against the contract's table.
//
// Usage: node tests/contract_client.js <client_auth_key>. It prints its port on the first line,
// then serves POST /hooks/{create,update,delete,sync_failed} and GET /state (what it holds:
// files by app and path with their sha, every event, every violation).
"use strict";
const crypto = require("node:crypto");
const http = require("node:http");

const KEY = process.argv[2];
const BODY_LIMIT = 1048576;
const KEYS = {
  create: ["repository", "file", "commit_sha", "timestamp"],
  update: ["repository", "file", "previous_sha", "commit_sha", "timestamp"],
  delete: ["repository", "file", "commit_sha", "timestamp"],
  sync_failed: ["event", "repository", "error", "circuit_breaker", "retry_count", "timestamp"],
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const files = {}; // "app_id repository_id path" → {sha, size}
const events = []; // {event, app_id, path, chunk, delivery_id}
const violations = [];
const pending = new Map(); // chunk id → [content strings]

function sameKeys(found, expected, what) {
  if (JSON.stringify(Object.keys(found)) !== JSON.stringify(expected)) {
    throw new Error(`${what} keys ${Object.keys(found)} != ${expected}`);
  }
}

function isoString(value, what) {
  if (typeof value !== "string" || new Date(value).toISOString() !== value) {
    throw new Error(`${what} ${JSON.stringify(value)} is not an ISO 8601 string`);
  }
}

function strictBase64(text) {
  const bytes = Buffer.from(text, "base64");
  if (bytes.toString("base64") !== text) throw new Error("base64 does not decode whole");
  return bytes;
}

function checked(file, bytes) {
  const sha = crypto.createHash("sha256").update(bytes).digest("hex");
  if (sha !== file.sha || bytes.length !== file.size) {
    throw new Error(`${file.path}: rebuilt ${bytes.length} bytes, sha ${sha} != ${file.sha}`);
  }
  return bytes;
}

function handle(event, headers, payload) {
  sameKeys(payload, KEYS[event], event);
  sameKeys(payload.repository, ["repository_id", "github_url", "owner", "name"], "repository");
  isoString(payload.timestamp, "timestamp");
  const appId = headers["x-docora-app-id"];
  if (event === "sync_failed") {
    sameKeys(payload.circuit_breaker,
      ["status", "consecutive_failures", "threshold", "cooldown_until"], "circuit_breaker");
    isoString(payload.circuit_breaker.cooldown_until, "cooldown_until");
    events.push({ event, app_id: appId, repository_id: payload.repository.repository_id,
      consecutive_failures: payload.circuit_breaker.consecutive_failures });
    return;
  }
  const file = payload.file;
  const where = `${appId} ${payload.repository.repository_id} ${file.path}`;
  events.push({ event, app_id: appId, path: file.path, chunk: file.chunk || null,
    delivery_id: headers["x-docora-delivery-id"] || null });
  if (event === "delete") {
    sameKeys(file, ["path", "sha"], "delete file");
    delete files[where];
    return;
  }
  const expected = ["path", "sha", "size", "content"];
  if ("content_encoding" in file) expected.push("content_encoding");
  if ("chunk" in file) expected.push("chunk");
  sameKeys(file, expected, "file");
  let bytes;
  if (file.chunk) {
    sameKeys(file.chunk, ["id", "index", "total"], "chunk");
    if (!UUID.test(file.chunk.id)) throw new Error(`chunk id ${file.chunk.id} is not a UUID`);
    if (file.content_encoding !== "base64") throw new Error("chunk not base64");
    const parts = pending.get(file.chunk.id) || [];
    parts[file.chunk.index] = file.content;
    pending.set(file.chunk.id, parts);
    if (parts.filter((p) => p !== undefined).length < file.chunk.total) return;
    pending.delete(file.chunk.id);
    bytes = strictBase64(parts.join(""));
  } else if (file.content_encoding === "base64") {
    bytes = strictBase64(file.content);
  } else {
    if ("content_encoding" in file) throw new Error("content_encoding other than base64");
    bytes = Buffer.from(file.content, "utf8");
  }
  checked(file, bytes);
  files[where] = { sha: file.sha, size: file.size };
}

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/state") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ files, events, violations }));
    return;
  }
  const chunks = [];
  let length = 0;
  req.on("data", (chunk) => {
    length += chunk.length;
    if (length <= BODY_LIMIT) chunks.push(chunk);
  });
  req.on("end", () => {
    const event = req.url.split("/").pop();
    const answer = (status) => { res.writeHead(status); res.end(status === 200 ? "{}" : ""); };
    if (length > BODY_LIMIT) {
      violations.push(`${event}: body of ${length} bytes over the 1 MiB limit`);
      return answer(413);
    }
    const raw = Buffer.concat(chunks).toString("utf8");
    const timestamp = req.headers["x-docora-timestamp"];
    const signature = req.headers["x-docora-signature"] || "";
    try {
      const payload = JSON.parse(raw);
      const expected = "sha256=" + crypto.createHmac("sha256", KEY)
        .update(`${timestamp}.${JSON.stringify(payload)}`).digest("hex");
      const a = Buffer.from(expected);
      const b = Buffer.from(signature);
      if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) {
        throw new Error("signature does not match");
      }
      if (Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) {
        throw new Error("timestamp too far away");
      }
      if (!(event in KEYS)) throw new Error(`unknown event ${event}`);
      handle(event, req.headers, payload);
      answer(200);
    } catch (err) {
      violations.push(`${event}: ${err.message}`);
      answer(400);
    }
  });
});

server.keepAliveTimeout = 30000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${server.address().port}\n`);
});
