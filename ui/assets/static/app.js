// Redoubt's pages work without this script; it only keeps them live: the
// passphrase meter, the dashboard's feed and chart, and the wait after a restart.
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

// The feed of stopped attempts, live over server-sent events.
function liveFeed(tbody) {
  const rows = new Map();
  const key = (e) => [e.device, e.category, e.what, e.destination, e.name].join("|");
  const cell = (text, cls) => {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    return td;
  };
  const es = new EventSource("/events");
  es.addEventListener("stopped", (m) => {
    const e = JSON.parse(m.data);
    if (e.category === "ipv6-link" || e.category === "arp") return; // link chatter: on the full list only
    const empty = tbody.querySelector("tr.empty");
    if (empty) empty.remove();
    let tr = rows.get(key(e));
    if (tr) tr.remove();
    tr = document.createElement("tr");
    const t = document.createElement("time");
    t.dateTime = e.last;
    t.textContent = new Date(e.last).toLocaleTimeString();
    const tdTime = document.createElement("td");
    tdTime.appendChild(t);
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = e.category;
    const tdKind = document.createElement("td");
    tdKind.appendChild(tag);
    tr.append(tdTime, cell(e.device), tdKind, cell((e.what + " " + e.destination).trim()), cell(e.name, "name"), cell(String(e.count), "num"));
    tr.classList.add("fresh");
    tbody.prepend(tr);
    rows.set(key(e), tr);
    while (tbody.rows.length > 50) tbody.deleteRow(tbody.rows.length - 1);
  });
  es.addEventListener("signedout", () => { es.close(); location.reload(); });
}

// The chart redraws every half minute, and on a change of time span.
function liveChart(img) {
  let win = "1h";
  const load = () => { img.src = "/chart.svg?window=" + win + "&t=" + Date.now(); };
  document.querySelectorAll("[data-window]").forEach((a) => {
    a.addEventListener("click", (ev) => {
      ev.preventDefault();
      win = a.dataset.window;
      document.querySelectorAll("[data-window]").forEach((b) => b.setAttribute("aria-pressed", String(b === a)));
      img.alt = "What the box stopped in the last " + (win === "24h" ? "24 hours" : "hour") + ", by category";
      load();
    });
  });
  setInterval(load, 30000);
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

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form[data-strength]").forEach(strengthMeter);
  const feed = document.querySelector("[data-feed]");
  if (feed) liveFeed(feed);
  const chart = document.querySelector("[data-chart]");
  if (chart) liveChart(chart);
  const wait = document.querySelector("[data-wait-for-box]");
  if (wait) waitForBox(wait);
});
