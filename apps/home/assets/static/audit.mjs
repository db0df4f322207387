// The members' check of the box's audit log, on their own device.
//
// Every visit: fetch the log's latest checkpoint, check the box's Ed25519
// signature (C2SP signed note) with the key pinned at the first visit, check
// that it extends the checkpoint this browser saw last (an RFC 6962/9162
// consistency proof), check every witness's cosigned checkpoint against it
// (a split view shows), check the records shown against the checkpoint
// (inclusion proofs), then keep the new checkpoint and countersign it with
// this device's own key (C2SP tlog-cosignature, cosignature/v1).
//
// The same file runs in the browser (the members' page loads it as a module)
// and under Node's test runner (apps/home/audit_test.mjs): everything below
// takes its fetch, storage and clock as arguments; only the last part touches
// the page.

const enc = new TextEncoder();
const dec = new TextDecoder();
const subtle = globalThis.crypto.subtle;

export function b64decode(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function b64encode(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0;
  for (const p of parts) { out.set(p, i); i += p.length; }
  return out;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export async function sha256(bytes) {
  return new Uint8Array(await subtle.digest('SHA-256', bytes));
}

// RFC 6962 hashing.
export const leafHash = (data) => sha256(concat(Uint8Array.of(0), data));
export const nodeHash = (l, r) => sha256(concat(Uint8Array.of(1), l, r));

// The log's errors: each means the box is not what it claims.
export class LogError extends Error {
  constructor(kind, message) { super(message); this.kind = kind; }
}

// parseKey reads a signed-note verifier key "name+hash+base64(type || key)".
export async function parseKey(vkey) {
  const i = vkey.indexOf('+');
  const j = vkey.indexOf('+', i + 1);
  if (i < 1 || j < 0) throw new LogError('bad-key', `not a verifier key: ${vkey.slice(0, 60)}`);
  const name = vkey.slice(0, i);
  const hash = vkey.slice(i + 1, j);
  const raw = b64decode(vkey.slice(j + 1));
  if (raw.length !== 33) throw new LogError('bad-key', 'not an Ed25519 key');
  const id = (await sha256(concat(enc.encode(name + '\n'), raw))).slice(0, 4);
  if (hex(id) !== hash) throw new LogError('bad-key', 'the key hash does not match the key');
  return { name, type: raw[0], id, key: raw.slice(1) };
}

function hex(b) { return [...b].map((x) => x.toString(16).padStart(2, '0')).join(''); }

// splitNote separates a signed note's text from its signatures.
export function splitNote(signed) {
  const i = signed.lastIndexOf('\n\n');
  if (i < 0) throw new LogError('bad-note', 'a signed note without signatures');
  const text = signed.slice(0, i + 1);
  const sigs = [];
  for (const line of signed.slice(i + 2).split('\n')) {
    if (line === '') continue;
    const m = /^— (\S+) (\S+)$/.exec(line);
    if (!m) throw new LogError('bad-note', `a malformed signature line: ${line.slice(0, 60)}`);
    const raw = b64decode(m[2]);
    sigs.push({ name: m[1], id: raw.slice(0, 4), sig: raw.slice(4) });
  }
  return { text, sigs };
}

// parseCheckpoint reads origin, size and root hash.
export function parseCheckpoint(text) {
  const lines = text.split('\n');
  if (lines.length !== 4 || lines[3] !== '') throw new LogError('bad-note', 'a checkpoint is three lines');
  if (!/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new LogError('bad-note', `size ${lines[1].slice(0, 24)}`);
  const hash = b64decode(lines[2]);
  if (hash.length !== 32) throw new LogError('bad-note', 'the root hash is not 32 bytes');
  return { origin: lines[0], size: Number(lines[1]), hash, text };
}

async function ed25519Verify(key, sig, msg) {
  const k = await subtle.importKey('raw', key, { name: 'Ed25519' }, false, ['verify']);
  return subtle.verify('Ed25519', k, sig, msg);
}

// openCheckpoint verifies the log's signature and returns the checkpoint.
export async function openCheckpoint(signed, vkey) {
  const k = await parseKey(vkey);
  const { text, sigs } = splitNote(signed);
  let ok = false;
  for (const s of sigs) {
    if (s.name === k.name && equal(s.id, k.id) && s.sig.length === 64) {
      ok = ok || await ed25519Verify(k.key, s.sig, enc.encode(text));
    }
  }
  if (!ok) throw new LogError('bad-signature', `the checkpoint is not signed by the log's key ${k.name}`);
  const c = parseCheckpoint(text);
  if (c.origin !== k.name) throw new LogError('bad-signature', 'the checkpoint names another log');
  return { ...c, sigs };
}

// verifyConsistency checks an RFC 9162 consistency proof from (size1, root1)
// to (size2, root2).
export async function verifyConsistency(size1, size2, root1, root2, proof) {
  if (size2 < size1) throw new LogError('truncated', `the log shrank from ${size1} to ${size2} records: history was removed`);
  if (size1 === size2) {
    if (!equal(root1, root2) || proof.length) throw new LogError('rewritten', `two different histories of ${size1} records`);
    return;
  }
  if (size1 === 0) return;
  if (proof.length === 0) throw new LogError('rewritten', 'no consistency proof');
  let path = proof;
  if ((size1 & (size1 - 1)) === 0 && size1 > 0) path = [root1, ...proof];
  let fn = size1 - 1, sn = size2 - 1;
  while (fn & 1) { fn >>= 1; sn >>= 1; }
  let fr = path[0], sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) throw new LogError('rewritten', 'a consistency proof too long');
    if ((fn & 1) || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if (!(fn & 1)) { while (!(fn & 1) && fn !== 0) { fn >>= 1; sn >>= 1; } }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1; sn >>= 1;
  }
  if (sn !== 0 || !equal(fr, root1) || !equal(sr, root2)) {
    throw new LogError('rewritten', `the log's history was rewritten: its ${size2} records do not extend the ${size1} seen before`);
  }
}

// verifyInclusion checks an RFC 9162 inclusion proof of a leaf.
export async function verifyInclusion(index, size, leaf, proof, root) {
  if (index >= size) throw new LogError('not-included', `record ${index} is beyond size ${size}`);
  let fn = index, sn = size - 1, r = leaf;
  for (const p of proof) {
    if (sn === 0) throw new LogError('not-included', 'an inclusion proof too long');
    if ((fn & 1) || fn === sn) {
      r = await nodeHash(p, r);
      if (!(fn & 1)) { while (!(fn & 1) && fn !== 0) { fn >>= 1; sn >>= 1; } }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1; sn >>= 1;
  }
  if (sn !== 0 || !equal(r, root)) throw new LogError('not-included', `record ${index} is not in the signed log as shown`);
}

// Witnesses: this device's key, and cosignatures.

export async function witnessKey(name, publicKey) {
  const raw = concat(Uint8Array.of(4), publicKey);
  const id = (await sha256(concat(enc.encode(name + '\n'), raw))).slice(0, 4);
  return `${name}+${hex(id)}+${b64encode(raw)}`;
}

// cosign returns the signature line of a cosignature/v1 on checkpoint c.
export async function cosign(c, name, publicKey, privateKey, unixSeconds) {
  const id = (await sha256(concat(enc.encode(name + '\n'), Uint8Array.of(4), publicKey))).slice(0, 4);
  const msg = enc.encode(`cosignature/v1\ntime ${unixSeconds}\n${c.text}`);
  const sig = new Uint8Array(await subtle.sign('Ed25519', privateKey, msg));
  const ts = new Uint8Array(8);
  new DataView(ts.buffer).setBigUint64(0, BigInt(unixSeconds));
  return `— ${name} ${b64encode(concat(id, ts, sig))}\n`;
}

// verifyCosignature finds witness w's cosignature on signed checkpoint c.
export async function verifyCosignature(c, w) {
  const k = await parseKey(w);
  if (k.type !== 4) return false;
  for (const s of c.sigs) {
    if (s.name !== k.name || !equal(s.id, k.id) || s.sig.length !== 72) continue;
    const ts = new DataView(s.sig.buffer, s.sig.byteOffset, 8).getBigUint64(0);
    const msg = enc.encode(`cosignature/v1\ntime ${ts}\n${c.text}`);
    if (await ed25519Verify(k.key, s.sig.slice(8), msg)) return true;
  }
  return false;
}

// The visit: api(path) fetches from the log's API; store keeps what this
// device saw (get/set of strings); witness is this device's key ({name,
// publicKey, privateKey}) or null. It returns what it checked; a LogError
// says what the box did wrong.

async function getText(api, path) {
  const r = await api(path);
  if (!r.ok) {
    let msg = `${r.status}`;
    try { msg = (await r.json()).error || msg; } catch { /* not JSON */ }
    throw new Error(`${path}: ${msg}`);
  }
  return r.text();
}

async function getJSON(api, path) { return JSON.parse(await getText(api, path)); }

async function proofBetween(api, a, b) {
  if (a.size === 0 || a.size >= b.size) return [];
  try {
    const r = await getJSON(api, `consistency?old=${a.size}&new=${b.size}`);
    return r.proof.map(b64decode);
  } catch (e) {
    throw new LogError('rewritten', `the box gave no proof that its ${b.size} records extend the ${a.size} seen before (${e.message})`);
  }
}

export async function visit({ api, store, witness, now = () => Date.now(), records = 50 }) {
  const result = { first: false, records: [], witnesses: [], warnings: [] };
  const key = (await getText(api, 'key')).trim();
  const pinned = store.get('key');
  if (pinned && pinned !== key) {
    throw new LogError('key-changed', "the log's key changed since your last visit: the box was reset or replaced, or something impersonates it");
  }
  const signed = await getText(api, 'checkpoint');
  const next = await openCheckpoint(signed, key);
  result.checkpoint = next;
  const saved = store.get('checkpoint');
  if (saved) {
    const prev = await openCheckpoint(saved, key);
    if (prev.origin !== next.origin) throw new LogError('rewritten', 'the checkpoint is from another log');
    if (next.size < prev.size) {
      throw new LogError('truncated', `the log shrank from ${prev.size} to ${next.size} records since your last visit: history was removed`);
    }
    await verifyConsistency(prev.size, next.size, prev.hash, next.hash, await proofBetween(api, prev, next));
    result.previous = prev;
  } else {
    result.first = true;
  }
  // Other members' devices: what they cosigned must be the same history.
  for (const w of await getJSON(api, 'witnesses')) {
    if (!w.checkpoint) continue;
    let wc;
    try {
      wc = await openCheckpoint(w.checkpoint, key);
      if (!await verifyCosignature(wc, w.key)) continue;
    } catch { continue; }
    const [a, b] = wc.size <= next.size ? [wc, next] : [next, wc];
    try {
      await verifyConsistency(a.size, b.size, a.hash, b.hash, await proofBetween(api, a, b));
      result.witnesses.push(w.member);
    } catch (e) {
      throw new LogError('split-view', `${w.member}'s device saw another history (${wc.size} records): the box shows members different logs. ${e.message}`);
    }
  }
  // The latest records, each proved to be in the signed tree.
  if (next.size > 0 && records > 0) {
    const start = Math.max(0, next.size - records);
    const r = await getJSON(api, `entries?start=${start}&end=${next.size}&size=${next.size}`);
    let want = start;
    for (const e of r.entries) {
      if (e.index !== want) throw new LogError('not-included', `asked for record ${want}, got ${e.index}`);
      const data = b64decode(e.data);
      await verifyInclusion(e.index, next.size, await leafHash(data), e.proof.map(b64decode), next.hash);
      result.records.push({ index: e.index, ...JSON.parse(dec.decode(data)) });
      want++;
    }
  }
  store.set('key', key);
  store.set('checkpoint', signed);
  if (witness) {
    const line = await cosign(next, witness.name, witness.publicKey, witness.privateKey, Math.floor(now() / 1000));
    result.cosigned = signed + line;
    result.witnessKey = await witnessKey(witness.name, witness.publicKey);
  }
  return result;
}

// The page.

function localStore(prefix) {
  return {
    get: (k) => globalThis.localStorage.getItem(prefix + k),
    set: (k, v) => globalThis.localStorage.setItem(prefix + k, v),
  };
}

// deviceWitness keeps this device's key in IndexedDB: the private half cannot
// be read out, even by the page.
async function deviceWitness(member) {
  const db = await new Promise((resolve, reject) => {
    const r = indexedDB.open('redoubt-witness', 1);
    r.onupgradeneeded = () => r.result.createObjectStore('keys');
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
  const tx = (mode) => db.transaction('keys', mode).objectStore('keys');
  const get = (k) => new Promise((res) => { const r = tx('readonly').get(k); r.onsuccess = () => res(r.result); r.onerror = () => res(undefined); });
  let w = await get(member);
  if (!w) {
    const kp = await subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    const pub = new Uint8Array(await subtle.exportKey('raw', kp.publicKey));
    const id = hex(crypto.getRandomValues(new Uint8Array(4)));
    w = { name: `witness.redoubt/${member}/${id}`, publicKey: pub, privateKey: kp.privateKey };
    await new Promise((res, rej) => { const r = tx('readwrite').put(w, member); r.onsuccess = res; r.onerror = () => rej(r.error); });
  }
  return w;
}

function show(el, cls, text) {
  el.className = cls;
  el.textContent = text;
}

async function page() {
  const root = document.getElementById('audit');
  if (!root) return;
  const status = document.getElementById('audit-status');
  const list = document.getElementById('audit-records');
  const member = root.dataset.member || '';
  const base = root.dataset.api || '/audit/api/';
  const api = (p) => fetch(base + p, { cache: 'no-store', credentials: 'same-origin' });
  show(status, 'checking', 'Checking the log on this device…');
  try {
    const store = localStore(`redoubt-audit:${location.host}:`);
    let witness = null;
    if (member && globalThis.indexedDB) {
      try { witness = await deviceWitness(member); } catch { witness = null; }
    }
    const r = await visit({ api, store, witness });
    const c = r.checkpoint;
    let msg = r.first
      ? `First visit: this device now remembers the log (${c.size} records) and its key, and will check every later visit against it.`
      : `Verified on this device: the log grew from ${r.previous.size} to ${c.size} records and nothing seen before was changed.`;
    if (r.witnesses.length) msg += ` It agrees with what ${r.witnesses.length} member device(s) countersigned.`;
    show(status, 'ok', msg);
    document.getElementById('audit-key').textContent = store.get('key');
    const dl = document.getElementById('audit-download');
    dl.href = URL.createObjectURL(new Blob([store.get('checkpoint')], { type: 'text/plain' }));
    list.textContent = '';
    for (const rec of r.records.reverse()) {
      const li = document.createElement('li');
      const when = document.createElement('time');
      when.textContent = rec.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z') + (rec.clock === 'synced' ? '' : ' (clock not synced)');
      li.append(when, ` ${rec.actor} · ${rec.action}${rec.subject ? ' · ' + rec.subject : ''}${rec.detail ? ' — ' + rec.detail : ''}`);
      li.className = 'kind-' + rec.kind;
      list.append(li);
    }
    if (witness && r.cosigned) {
      const resp = await fetch(base + 'witness', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, credentials: 'same-origin',
        body: JSON.stringify({ key: r.witnessKey, checkpoint: r.cosigned }),
      });
      if (!resp.ok) {
        const e = await resp.json().catch(() => ({}));
        show(status, resp.status === 409 ? 'alarm' : 'warn', `${status.textContent} The box did not take this device's countersignature: ${e.error || resp.status}`);
      }
    }
  } catch (e) {
    if (e instanceof LogError) {
      show(status, 'alarm', `Warning: ${e.message}. Tell the other members and the box's owner; do not trust this box until it is explained.`);
    } else {
      show(status, 'warn', `The log could not be checked: ${e.message}`);
    }
  }
}

if (typeof document !== 'undefined') {
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', page);
  else page();
}
