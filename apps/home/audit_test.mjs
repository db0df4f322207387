// The members' browser check (assets/audit.mjs) against a real audit log.
// Run by audit/auditlog's TestBrowserVerifier, which serves the log's API at
// AUDIT_API and, at AUDIT_CONTROL, a harness that tampers with the log the way
// a compromised box would (truncating it, rewriting a record, forking it,
// showing another key).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  visit, LogError, verifyConsistency, verifyInclusion, leafHash, b64decode, openCheckpoint,
} from './assets/static/audit.mjs';

const API = process.env.AUDIT_API;
const CONTROL = process.env.AUDIT_CONTROL;

const api = (p) => fetch(API + p);
const control = async (p) => {
  const r = await fetch(CONTROL + p, { method: 'POST' });
  assert.equal(r.status, 200, `control ${p}: ${await r.text()}`);
};

function memStore() {
  const m = new Map();
  return { get: (k) => m.get(k) ?? null, set: (k, v) => m.set(k, v) };
}

async function device(member) {
  const kp = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
  const publicKey = new Uint8Array(await crypto.subtle.exportKey('raw', kp.publicKey));
  const id = [...crypto.getRandomValues(new Uint8Array(4))].map((b) => b.toString(16).padStart(2, '0')).join('');
  return { name: `witness.redoubt/${member}/${id}`, publicKey, privateKey: kp.privateKey };
}

async function postCosignature(r) {
  const resp = await fetch(API + 'witness', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ key: r.witnessKey, checkpoint: r.cosigned }),
  });
  return { status: resp.status, body: await resp.json() };
}

async function rejects(p, kind) {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof LogError, `want a LogError, got ${e}`);
    assert.equal(e.kind, kind, e.message);
    return true;
  });
}

test('proofs from the Go log verify for every pair of sizes, and altered ones fail', { skip: !API }, async () => {
  await control('reset?n=17');
  const roots = await (await fetch(CONTROL + 'roots')).json(); // transparency-dev's roots, size 1..17
  for (let m = 1; m <= 17; m++) {
    for (let n = m; n <= 17; n++) {
      const r1 = b64decode(roots[m - 1]);
      const r2 = b64decode(roots[n - 1]);
      let proof = [];
      if (m < n) proof = (await (await api(`consistency?old=${m}&new=${n}`)).json()).proof.map(b64decode);
      await verifyConsistency(m, n, r1, r2, proof);
      if (m < n) {
        const bad = proof.map((h) => h.slice());
        bad[bad.length - 1][0] ^= 1;
        await rejects(verifyConsistency(m, n, r1, r2, bad), 'rewritten');
        await rejects(verifyConsistency(m, n, r2, r1, proof), 'rewritten');
      }
    }
  }
  const es = (await (await api('entries?start=0&end=17&size=17')).json()).entries;
  for (const e of es) {
    const leaf = await leafHash(b64decode(e.data));
    await verifyInclusion(e.index, 17, leaf, e.proof.map(b64decode), b64decode(roots[16]));
    await rejects(verifyInclusion((e.index + 1) % 17, 17, leaf, e.proof.map(b64decode), b64decode(roots[16])), 'not-included');
  }
});

test('visits: pin, verify, countersign; the box cannot rewrite, truncate or fork unseen', { skip: !API }, async () => {
  await control('reset?n=12');
  const store = memStore();
  const me = await device('alice');

  // First visit: pins the key, checks the latest records, cosigns; the Go
  // log verifies this device's cosignature.
  let r = await visit({ api, store, witness: me });
  assert.equal(r.first, true);
  assert.equal(r.checkpoint.size, 12);
  assert.equal(r.records.length, 12);
  assert.equal(r.records[0].action, 'add member');
  let posted = await postCosignature(r);
  assert.equal(posted.status, 200, JSON.stringify(posted.body));

  // The log grows: the next visit proves it extends what was seen.
  await control('append?n=5');
  r = await visit({ api, store, witness: me });
  assert.equal(r.first, false);
  assert.equal(r.previous.size, 12);
  assert.equal(r.checkpoint.size, 18); // 5 more, and the record of this device's registration
  posted = await postCosignature(r);
  assert.equal(posted.status, 200, JSON.stringify(posted.body));
  const seen = store.get('checkpoint');

  // Truncated.
  await control('truncate?n=10');
  await rejects(visit({ api, store, witness: me }), 'truncated');
  assert.equal(store.get('checkpoint'), seen, 'a failed visit must keep the old checkpoint');
  // A record rewritten.
  await control('honest');
  await control('rewrite?i=3');
  await rejects(visit({ api, store, witness: me }), 'rewritten');
  // A fork at the same size.
  await control('honest');
  await control('fork');
  await rejects(visit({ api, store, witness: me }), 'rewritten');
  // Honest again: fine.
  await control('honest');
  r = await visit({ api, store, witness: me });
  assert.equal(r.previous.size, 18);

  // Another key.
  await control('otherkey');
  await rejects(visit({ api, store }), 'key-changed');
  await control('honest');
});

test('a split view shows through other members\' countersignatures', { skip: !API }, async () => {
  await control('reset?n=8');
  const alice = await device('alice');
  const r = await visit({ api, store: memStore(), witness: alice });
  assert.equal((await postCosignature(r)).status, 200);
  // The box rewrites its history; a member visiting for the first time
  // cannot know what came before, but alice's countersignature shows it.
  await control('rewrite?i=2');
  await rejects(visit({ api, store: memStore() }), 'split-view');
  // Alice's device, back with its old checkpoint, would be told it was
  // rewritten; her countersignature on the old history is refused as a fork.
  const c = await openCheckpoint(r.cosigned, (await (await api('key')).text()).trim());
  assert.equal(c.size, 8);
  const posted = await postCosignature(r);
  assert.equal(posted.status, 409, JSON.stringify(posted.body));
  assert.match(posted.body.error, /forked/);
});
