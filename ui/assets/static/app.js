// Redoubt's pages work without this script, except the leak self-test (which
// runs in the browser); it keeps them live: the passphrase meter, the
// dashboard's feed, numbers and chart, the wait after a restart, the check that
// this browser trusts the box, and the self-test's probes.
"use strict";

function csrfOf(form) {
  const f = form.querySelector('input[name="csrf"]');
  return f ? f.value : "";
}

// The passphrase meter asks the box, which applies the same rules it will apply
// when the form is sent.
function strengthMeter(form) {
  const input = form.querySelector('input[name="passphrase"]');
  const bar = form.querySelector("[data-meter]");
  const text = form.querySelector("[data-meter-text]");
  if (!input || !bar || !text) return;
  let timer = null;
  const labels = ["Weak", "Fair", "Good", "Strong"];
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const body = new URLSearchParams({ csrf: csrfOf(form), passphrase: input.value });
      try {
        const r = await fetch(form.dataset.strength, { method: "POST", body, credentials: "same-origin" });
        if (!r.ok) return;
        const s = await r.json();
        const score = s.ok ? s.score : 0;
        bar.style.width = input.value === "" ? "0" : (25 * (score + 1)) + "%";
        bar.className = "s" + score + (s.ok ? "" : " weak");
        text.textContent = input.value === "" ? "" : (s.ok ? labels[score] + ". " + (s.hint || "") : s.reason + " " + (s.hint || ""));
      } catch (e) { /* the box went away: the form still works */ }
    }, 250);
  });
}

// The feed of stopped attempts and the dashboard's numbers, live over
// server-sent events. The box renders each row itself, exactly as the page's
// own rows, so times and words match.
function liveFeed(tbody, onChange) {
  const es = new EventSource("/events");
  es.addEventListener("stopped", (m) => {
    const e = JSON.parse(m.data);
    const empty = tbody.querySelector("tr.empty");
    if (empty) empty.remove();
    tbody.querySelectorAll("tr[data-key]").forEach((tr) => { if (tr.dataset.key === e.key) tr.remove(); });
    const t = document.createElement("template");
    t.innerHTML = e.html.trim();
    const tr = t.content.firstElementChild;
    if (!tr) return;
    tr.classList.add("fresh");
    tbody.prepend(tr);
    while (tbody.rows.length > 50) tbody.deleteRow(tbody.rows.length - 1);
  });
  es.addEventListener("summary", (m) => {
    const s = JSON.parse(m.data);
    const set = (sel, text) => document.querySelectorAll(sel).forEach((el) => { if (el.textContent !== text) el.textContent = text; });
    Object.entries(s.values || {}).forEach(([k, v]) => set('[data-live="' + k + '"]', v));
    Object.entries(s.trends || {}).forEach(([k, v]) => set('[data-trend="' + k + '"]', v));
    Object.entries(s.devices || {}).forEach(([k, v]) => set('[data-device="' + k + '"]', v));
    if (s.sentence) set("[data-live-sentence]", s.sentence);
    if (onChange) onChange();
  });
  es.addEventListener("signedout", () => { es.close(); location.reload(); });
}

// The chart redraws every half minute, and on a change of time span; phones get
// the narrow drawing.
function liveChart(img) {
  let win = "1h";
  let loaded = Date.now();
  const narrow = document.querySelector("[data-chart-narrow]");
  const load = () => {
    loaded = Date.now();
    const q = "window=" + win + "&t=" + Date.now();
    img.src = "/chart.svg?" + q;
    if (narrow) narrow.srcset = "/chart.svg?layout=narrow&" + q;
  };
  document.querySelectorAll("[data-window]").forEach((a) => {
    a.addEventListener("click", (ev) => {
      ev.preventDefault();
      win = a.dataset.window;
      document.querySelectorAll("[data-window]").forEach((b) => b.setAttribute("aria-pressed", String(b === a)));
      img.alt = "What the box stopped in the last " + (win === "24h" ? "24 hours" : "hour") + ", by kind";
      load();
    });
  });
  setInterval(load, 30000);
  // Something was stopped: redraw, at most every five seconds.
  return () => { if (Date.now() - loaded > 5000) load(); };
}

// After a restart, wait for the box to answer again, then go to it.
function waitForBox(el) {
  let down = false;
  const started = Date.now();
  const poll = async () => {
    try {
      const r = await fetch("/captive-portal/api", { cache: "no-store" });
      if (r.ok && (down || Date.now() - started > 8000)) { location.href = "/"; return; }
    } catch (e) { down = true; }
    el.textContent += ".";
    setTimeout(poll, 1000);
  };
  setTimeout(poll, 1500);
}

// The certificate page: open this system's steps, and say whether this browser
// already trusts the box (it does if an HTTPS request to the box succeeds). On a
// plain visit, a browser that trusts the box goes straight on to HTTPS.
function trustCheck(el) {
  const ua = navigator.userAgent;
  const os = /iPhone|iPad/.test(ua) ? "ios" : /Android/.test(ua) ? "android" : /Mac/.test(ua) ? "mac" : /Windows/.test(ua) ? "windows" : "linux";
  document.querySelectorAll("details[data-os]").forEach((d) => { d.open = d.dataset.os === os; });
  if (location.protocol === "https:") {
    el.hidden = false;
    el.className = "trust-status ok";
    el.textContent = "This browser trusts the box: you are reading this over HTTPS.";
    return;
  }
  el.hidden = false;
  el.textContent = "Checking whether this browser already trusts the box…";
  const auto = el.dataset.auto === "true";
  fetch(el.dataset.trustCheck, { mode: "cors", cache: "no-store", credentials: "omit" }).then((r) => {
    if (!r.ok) throw new Error(String(r.status));
    el.className = "trust-status ok";
    el.textContent = auto ? "This browser trusts the box. Opening it over HTTPS…" : "This browser trusts the box: open the dashboard.";
    const link = document.querySelector("[data-continue-link]");
    if (link) link.classList.remove("secondary");
    if (auto) location.replace(el.dataset.continue);
  }).catch(() => {
    el.className = "trust-status warn";
    el.textContent = "This browser does not trust the box yet. Install its certificate with the steps below, then open the dashboard.";
  });
}

// The leak self-test: each way out tried from this browser, then the box asked
// what it saw.
function selfTest(table) {
  const button = document.querySelector("[data-selftest-start]");
  const summary = document.querySelector("[data-selftest-summary]");
  const rows = {};
  table.querySelectorAll("tr[data-probe]").forEach((tr) => { rows[tr.dataset.probe] = tr; });
  const show = (id, verdict, safe, says, evidence, saw) => {
    const tr = rows[id];
    if (!tr) return;
    const v = tr.querySelector("[data-verdict]");
    v.textContent = verdict.charAt(0).toUpperCase() + verdict.slice(1);
    v.className = "chip " + (safe ? "up" : verdict === "running" || verdict === "waiting" ? "connecting" : verdict === "not tried" ? "off" : "down");
    tr.querySelector("[data-says]").textContent = [says, saw].filter(Boolean).join(" ");
    const ul = tr.querySelector("[data-evidence]");
    ul.replaceChildren(...(evidence || []).map((line) => { const li = document.createElement("li"); li.textContent = line; return li; }));
    if (!evidence || evidence.length === 0) {
      const li = document.createElement("li");
      li.className = "help";
      li.textContent = safe ? "Nothing: nothing was sent." : "Nothing yet.";
      ul.replaceChildren(li);
    }
  };
  const timeout = 4000;
  const fetchProbe = async (url) => {
    const ctl = new AbortController();
    const t = setTimeout(() => ctl.abort(), timeout);
    const t0 = performance.now();
    try {
      await fetch(url, { mode: "no-cors", cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer", signal: ctl.signal });
      return { answered: true, sent: true, detail: "an answer came back" };
    } catch (e) {
      if (ctl.signal.aborted) return { sent: true, detail: "no answer in " + timeout / 1000 + " s" };
      return { sent: true, detail: "the connection failed after " + Math.round(performance.now() - t0) + " ms" };
    } finally { clearTimeout(t); }
  };
  const stunProbe = async (addr) => {
    if (typeof RTCPeerConnection === "undefined") return { skipped: true, detail: "this browser has no WebRTC" };
    const pc = new RTCPeerConnection({ iceServers: [{ urls: "stun:" + addr }] });
    let srflx = false;
    pc.onicecandidate = (e) => { if (e.candidate && / typ srflx /.test(e.candidate.candidate)) srflx = true; };
    pc.createDataChannel("redoubt-selftest");
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((res) => {
      const t = setTimeout(res, timeout);
      pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === "complete") { clearTimeout(t); res(); } };
    });
    pc.close();
    return srflx ? { answered: true, sent: true, detail: "the STUN server answered with this computer's public address" }
      : { sent: true, detail: "no answer from the STUN server" };
  };
  const run = async () => {
    button.disabled = true;
    summary.textContent = "Testing…";
    try {
      const r = await fetch("/selftest/runs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ by: "browser" }) });
      const plan = await r.json();
      if (!r.ok) throw new Error(plan.error || r.status);
      plan.probes.forEach((p) => {
        show(p.id, "running", false, "", []);
        const how = rows[p.id] && rows[p.id].querySelector("[data-how]");
        if (how) how.textContent = p.how + ". " + p.why;
      });
      const outcomes = await Promise.all(plan.probes.map(async (p) => {
        const o = p.id === "stun" ? await stunProbe(p.addr) : await fetchProbe(p.url);
        return Object.assign({ probe: p.id, answered: false, sent: false, detail: "" }, o);
      }));
      const r2 = await fetch("/selftest/runs/" + plan.id + "/outcomes", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(outcomes) });
      if (!r2.ok) throw new Error((await r2.json()).error || r2.status);
      let rep = null;
      for (let i = 0; i < 10; i++) {
        const r3 = await fetch("/selftest/runs/" + plan.id, { cache: "no-store" });
        rep = await r3.json();
        if (!r3.ok) throw new Error(rep.error || r3.status);
        if (rep.safe || !rep.rows.some((x) => x.verdict === "unclear" || x.verdict === "waiting")) break;
        await new Promise((res) => setTimeout(res, 500));
      }
      rep.rows.forEach((x) => show(x.probe, x.verdict, x.safe, x.says, x.evidence, x.saw));
      summary.textContent = rep.summary;
      summary.className = "selftest-summary " + (rep.safe ? "ok" : "warn");
      document.body.dataset.selftest = rep.safe ? "safe" : "unsafe";
    } catch (e) {
      summary.textContent = "The test could not run: " + e.message + ". Reload the page and try again.";
      summary.className = "selftest-summary warn";
      document.body.dataset.selftest = "error";
    } finally {
      button.disabled = false;
    }
  };
  button.addEventListener("click", run);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form[data-strength]").forEach(strengthMeter);
  const chart = document.querySelector("[data-chart]");
  const redraw = chart ? liveChart(chart) : null;
  const feed = document.querySelector("[data-feed]");
  if (feed) liveFeed(feed, redraw);
  const wait = document.querySelector("[data-wait-for-box]");
  if (wait) waitForBox(wait);
  const trust = document.querySelector("[data-trust-check]");
  if (trust) trustCheck(trust);
  const st = document.querySelector("[data-selftest]");
  if (st) selfTest(st);
});
