#!/usr/bin/env node
// A verifier of consentd's receipts, log proofs and checkpoints written from
// the README's "Verify without consentd" alone, with Node's standard library
// only: the evidence that the README says enough to write one. It reads the
// answers as grpcurl prints them.
//
//   node verify.mjs --keys KEYS.json [--receipt PROOF.json]
//        [--inclusion INCLUSION.json [--checkpoint CHECKPOINT.json]]
//        [--consistency CONSISTENCY.json [--old CHECKPOINT.json] [--new CHECKPOINT.json]]
//
// KEYS.json is ListSigningKeys', PROOF.json GetConsentProof's (or
// RecordConsent's), INCLUSION.json GetInclusionProof's, CONSISTENCY.json
// GetConsistencyProof's, CHECKPOINT.json GetCheckpoint's. Exit 0: every check
// holds; 1: one does not, and stderr says which; 2: bad usage.

import { createHash, createPublicKey, verify as ed25519Verify } from "node:crypto";
import { readFileSync } from "node:fs";

class Invalid extends Error {}

const fail = (message) => {
  throw new Invalid(message);
};

function json(bytes, what) {
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    fail(`${what}: not JSON`);
  }
}

const sha256 = (...parts) => createHash("sha256").update(Buffer.concat(parts)).digest();
const leafHash = (data) => sha256(Buffer.from([0]), data);
const nodeHash = (left, right) => sha256(Buffer.from([1]), left, right);

function base64(text, what) {
  if (typeof text !== "string" || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(text)) {
    fail(`${what} is not base64`);
  }
  return Buffer.from(text.replaceAll("-", "+").replaceAll("_", "/"), "base64");
}

function hash32(text, what) {
  const bytes = base64(text ?? "", what);
  if (bytes.length !== 32) fail(`${what} is not 32 bytes`);
  return bytes;
}

// int64 fields: decimal strings, left out when 0.
function int64(value, what) {
  if (value === undefined) return 0n;
  if (!/^(0|[1-9][0-9]*)$/.test(String(value))) fail(`${what} is not a non-negative integer`);
  return BigInt(value);
}

function publicKey(raw) {
  return createPublicKey({
    key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") },
    format: "jwk",
  });
}

function readKeys(json) {
  if (!Array.isArray(json.keys) || json.keys.length === 0) fail("the key file lists no keys");
  return json.keys.map((k) => {
    if (k.algorithm !== "Ed25519") fail(`key ${k.keyId}: not Ed25519`);
    const raw = base64(k.publicKey, `key ${k.keyId}`);
    if (raw.length !== 32) fail(`key ${k.keyId} is not 32 bytes`);
    return { id: k.keyId, raw, key: publicKey(raw) };
  });
}

// One step up the walks of RFC 9162 (2.1.3.2, 2.1.4.2) at node `fn` of a
// level whose last node is `sn`: whether the next hash is a left sibling.
// Levels where the node is the last one, with no right sibling, are
// skipped.
function climb(at) {
  const left = (at.fn & 1n) === 1n || at.fn === at.sn;
  if (left) {
    while ((at.fn & 1n) === 0n && at.fn !== 0n) {
      at.fn >>= 1n;
      at.sn >>= 1n;
    }
  }
  at.fn >>= 1n;
  at.sn >>= 1n;
  return left;
}

// RFC 9162, 2.1.3.2: the root a leaf and its audit path lead to.
function rootFromInclusion(index, size, leaf, path) {
  if (index >= size) fail("the leaf index is outside the tree");
  const at = { fn: index, sn: size - 1n };
  let r = leaf;
  for (const p of path) {
    if (at.sn === 0n) fail("the audit path is too long");
    r = climb(at) ? nodeHash(p, r) : nodeHash(r, p);
  }
  if (at.sn !== 0n) fail("the audit path is too short");
  return r;
}

// RFC 9162, 2.1.4.2.
function verifyConsistency(first, second, firstRoot, secondRoot, proof) {
  if (first > second) fail("the old tree is larger than the new one");
  if (first === 0n) fail("a proof from an empty tree proves nothing");
  if (first === second) {
    if (proof.length !== 0) fail("a proof between equal sizes has no hashes");
    if (!firstRoot.equals(secondRoot)) fail("two trees of one size with different roots");
    return;
  }
  if (proof.length === 0) fail("the consistency proof is empty");
  const path = (first & (first - 1n)) === 0n ? [firstRoot, ...proof] : proof;
  const at = { fn: first - 1n, sn: second - 1n };
  while ((at.fn & 1n) === 1n) {
    at.fn >>= 1n;
    at.sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (at.sn === 0n) fail("the consistency proof is too long");
    if (climb(at)) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
    } else {
      sr = nodeHash(sr, c);
    }
  }
  if (at.sn !== 0n) fail("the consistency proof is too short");
  if (!fr.equals(firstRoot)) fail("the proof does not lead to the old root");
  if (!sr.equals(secondRoot)) fail("the proof does not lead to the new root");
}

// A receipt token: its signature, and for cr2 its place in the batch tree.
function verifyToken(token, keys) {
  const parts = token.split(".");
  const [format, keyId] = parts;
  const key = keys.find((k) => k.id === keyId) ?? fail(`no key ${keyId} in the key file`);
  let message;
  let signature;
  let payload;
  if (format === "cr2" && parts.length === 5) {
    payload = base64(parts[2], "the payload");
    const proof = base64(parts[3], "the proof");
    if (proof.length < 4 || (proof.length - 4) % 32 !== 0) fail("the proof is malformed");
    const index = BigInt(proof.readUInt16BE(0));
    const size = BigInt(proof.readUInt16BE(2));
    const path = [];
    for (let at = 4; at < proof.length; at += 32) path.push(proof.subarray(at, at + 32));
    const root = rootFromInclusion(index, size, leafHash(payload), path);
    message = `cr2.${keyId}.${size}.${root.toString("base64url")}`;
    signature = base64(parts[4], "the signature");
  } else if (format === "cr1" && parts.length === 4) {
    payload = base64(parts[2], "the payload");
    message = `cr1.${keyId}.${parts[2]}`;
    signature = base64(parts[3], "the signature");
  } else {
    fail(`not a receipt token: ${token.slice(0, 12)}...`);
  }
  if (signature.length !== 64 || !ed25519Verify(null, Buffer.from(message), key.key, signature)) {
    fail(`the receipt's signature by key ${keyId} does not verify`);
  }
  return payload;
}

// RFC 3339 (as protobuf JSON prints a Timestamp) to microseconds.
function micros(text, what) {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z$/.exec(text ?? "");
  if (!m) fail(`${what} is not an RFC 3339 UTC time`);
  const seconds = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) / 1000;
  return seconds * 1e6 + Number((m[7] ?? "").padEnd(6, "0").slice(0, 6));
}

const enumName = (value, prefix) => (value ?? "").replace(prefix, "");
const orNull = (value) => (value === undefined || value === "" ? null : value);
const byteOrder = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));

// The claims, rebuilt from the record as the README describes them.
function claimsOf(record, tenantId) {
  const services = (record.services ?? [])
    .map((s) => ({ category: s.category, service: s.service, granted: s.granted === true }))
    .sort((a, b) => byteOrder(a.category, b.category) || byteOrder(a.service, b.service));
  return JSON.stringify({
    receipt_version: 1,
    receipt_type: "consentd.consent_receipt",
    record_id: record.id,
    tenant_id: tenantId,
    site_id: record.siteId,
    subject_id: record.subjectId,
    action: enumName(record.action, "CONSENT_ACTION_"),
    status: enumName(record.status, "CONSENT_STATUS_"),
    granted_categories: record.grantedCategories ?? [],
    denied_categories: record.deniedCategories ?? [],
    services,
    banner_revision: orNull(record.bannerRevision),
    notice_version: orNull(record.noticeVersion),
    notice_sha256: orNull(record.noticeSha256),
    regime: enumName(record.regime, "REGIME_"),
    gpc_detected: record.gpcDetected === true,
    gpc_honoured: record.gpcHonoured === true,
    ccpa_opt_out: record.ccpaOptOut === true,
    tcf_string: orNull(record.tcfString),
    gpp_string: orNull(record.gppString),
    google_ac_string: orNull(record.googleAcString),
    country_code: orNull(record.countryCode),
    language_code: orNull(record.languageCode),
    anonymized_ip: orNull(record.anonymizedIp),
    client_time_us: record.clientTime === undefined ? null : micros(record.clientTime, "clientTime"),
    record_time_us: micros(record.recordTime, "recordTime"),
    expire_time_us: micros(record.expireTime, "expireTime"),
  });
}

function checkReceipt(proof, keys) {
  const record = proof.record ?? fail("the proof holds no record");
  const receipt = record.receipt ?? fail("the record holds no receipt");
  const signed = verifyToken(receipt.token ?? "", keys);
  if (receipt.claimsJson !== undefined && !Buffer.from(receipt.claimsJson).equals(signed)) {
    fail("claimsJson is not what the token signs");
  }
  const claims = json(signed, "the signed claims");
  if (claims.record_id !== record.id) fail(`the receipt is not record ${record.id}'s`);
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(claims.tenant_id)) {
    fail("the claims name no tenant");
  }
  const rebuilt = claimsOf(record, claims.tenant_id);
  if (rebuilt !== signed.toString("utf8")) {
    fail(`the record is not what its receipt signs:\n  record: ${rebuilt}\n  signed: ${signed}`);
  }
  console.log(`valid receipt of record ${record.id}, signed by key ${receipt.token.split(".")[1]}`);
  return signed;
}

// A C2SP signed note checkpoint: its origin, size and root, once a
// signature by one of the keys under the origin verifies.
function openCheckpoint(note, keys, which) {
  if (typeof note !== "string" || !note.endsWith("\n")) fail(`the ${which}checkpoint is not a note`);
  const split = note.lastIndexOf("\n\n", note.length - 2);
  if (split < 0) fail(`the ${which}checkpoint has no signature`);
  const text = note.slice(0, split + 1);
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) fail(`the ${which}checkpoint has no origin, size and root`);
  const [origin, sizeLine, rootLine] = lines;
  const size = int64(sizeLine, `the ${which}checkpoint's size`);
  const root = hash32(rootLine, `the ${which}checkpoint's root`);
  const verified = note
    .slice(split + 2, -1)
    .split("\n")
    .some((line) => {
      const m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!m || m[1] !== origin) return false;
      const blob = base64(m[2], "a note signature");
      if (blob.length !== 68) return false;
      return keys.some((k) => {
        const id = sha256(Buffer.from(`${origin}\n`), Buffer.from([1]), k.raw).subarray(0, 4);
        return (
          id.equals(blob.subarray(0, 4)) &&
          ed25519Verify(null, Buffer.from(text), k.key, blob.subarray(4))
        );
      });
    });
  if (!verified) fail(`the ${which}checkpoint carries no valid signature of ${origin} by a known key`);
  return { origin, size, root };
}

const noteOf = (checkpointFile, embedded, which) =>
  (checkpointFile?.checkpoint ?? embedded ?? fail(`no ${which}checkpoint to check against`)).note;

function checkInclusion(proof, checkpointFile, keys, receiptClaims) {
  const checkpoint = openCheckpoint(noteOf(checkpointFile, proof.checkpoint, ""), keys, "");
  const index = int64(proof.leafIndex, "leafIndex");
  const size = int64(proof.treeSize, "treeSize");
  if (size !== checkpoint.size) {
    fail(`the proof is for a tree of ${size}, the checkpoint is of ${checkpoint.size}`);
  }
  const leaf = hash32(proof.leafHash, "leafHash");
  const state = proof.state;
  if (state === "LOG_LEAF_STATE_PRESENT") {
    const claims = Buffer.from(proof.claimsJson ?? "", "utf8");
    const salt = base64(proof.salt ?? "", "salt");
    if (salt.length !== 32) fail("the salt is not 32 bytes");
    if (!leafHash(Buffer.concat([salt, claims])).equals(leaf)) {
      fail("SHA-256(0x00 || salt || claims) is not the leaf hash");
    }
    if (json(claims, "claimsJson").record_id !== proof.recordId) fail("the claims are another record's");
    if (receiptClaims && !receiptClaims.equals(claims)) fail("the log's claims are not the receipt's");
  } else if (state === "LOG_LEAF_STATE_MISSING") {
    fail(`record ${proof.recordId} was deleted without an erasure`);
  } else if (state !== "LOG_LEAF_STATE_ERASED") {
    fail(`unknown leaf state ${state}`);
  }
  const path = (proof.hashes ?? []).map((h, i) => hash32(h, `hashes[${i}]`));
  if (!rootFromInclusion(index, size, leaf, path).equals(checkpoint.root)) {
    fail("the leaf is not in the checkpoint's tree");
  }
  console.log(`valid inclusion: leaf ${index} (${state}) in ${checkpoint.origin} of size ${size}`);
}

function checkConsistency(proof, oldFile, newFile, keys) {
  const old = openCheckpoint(noteOf(oldFile, proof.oldCheckpoint, "old "), keys, "old ");
  const neu = openCheckpoint(noteOf(newFile, proof.newCheckpoint, "new "), keys, "new ");
  if (old.origin !== neu.origin) fail(`the checkpoints are of two logs: ${old.origin}, ${neu.origin}`);
  if (int64(proof.oldSize, "oldSize") !== old.size || int64(proof.newSize, "newSize") !== neu.size) {
    fail("the proof's sizes are not the checkpoints'");
  }
  const hashes = (proof.hashes ?? []).map((h, i) => hash32(h, `hashes[${i}]`));
  verifyConsistency(old.size, neu.size, old.root, neu.root, hashes);
  console.log(`valid consistency: ${old.origin} of size ${old.size} is the start of size ${neu.size}`);
}

function main(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, "");
    if (!["keys", "receipt", "inclusion", "checkpoint", "consistency", "old", "new"].includes(name)) {
      console.error(`unknown option ${argv[i]}`);
      return 2;
    }
    if (argv[i + 1] === undefined) {
      console.error(`${argv[i]} needs a file`);
      return 2;
    }
    args[name] = argv[i + 1];
  }
  if (!args.keys || !(args.receipt || args.inclusion || args.consistency)) {
    console.error("usage: verify.mjs --keys KEYS.json [--receipt F] [--inclusion F [--checkpoint F]] [--consistency F [--old F] [--new F]]");
    return 2;
  }
  const read = (name) => {
    if (args[name] === undefined) return undefined;
    return json(readFileSync(args[name]), args[name]);
  };
  try {
    const keys = readKeys(read("keys"));
    const claims = args.receipt ? checkReceipt(read("receipt"), keys) : undefined;
    if (args.inclusion) checkInclusion(read("inclusion"), read("checkpoint"), keys, claims);
    if (args.consistency) checkConsistency(read("consistency"), read("old"), read("new"), keys);
    return 0;
  } catch (e) {
    if (!(e instanceof Invalid)) throw e;
    console.error(`invalid: ${e.message}`);
    return 1;
  }
}

process.exitCode = main(process.argv.slice(2));
