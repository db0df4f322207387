"use strict";
// The clipboard's page: the list, pasting, and the live feed (WebSocket).
const $ = (id) => document.getElementById(id);

function show(e) {
  const li = document.createElement("li");
  li.id = "e-" + e.id;
  if (e.kind === "text") {
    const pre = document.createElement("pre");
    pre.textContent = e.text;
    li.append(pre);
  } else {
    const a = document.createElement("a");
    a.href = "/api/entries/" + e.id + "/file";
    a.textContent = e.name + " (" + Math.ceil(e.size / 1024) + " KB)";
    li.append(a);
  }
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = e.who + (e.from ? " on " + e.from : "") + ", " + new Date(e.at).toLocaleString();
  li.append(meta);
  return li;
}

function add(e, first) {
  if ($("e-" + e.id)) return;
  const li = show(e);
  if (first) $("entries").prepend(li); else $("entries").append(li);
  $("empty").hidden = true;
}

async function load() {
  const r = await fetch("/api/entries");
  if (!r.ok) { $("status").textContent = "The clipboard did not load: " + r.status; return; }
  $("entries").replaceChildren();
  const list = await r.json();
  list.forEach((e) => add(e, false));
  $("empty").hidden = list.length > 0;
}

function live() {
  const ws = new WebSocket("wss://" + location.host + "/api/live");
  ws.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    if (ev.type === "added") add(ev.entry, true);
    if (ev.type === "removed") { const li = $("e-" + ev.entry.id); if (li) li.remove(); }
  };
  ws.onclose = () => setTimeout(() => { load(); live(); }, 3000);
}

async function paste(ev) {
  ev.preventDefault();
  const f = $("file").files[0];
  let r;
  if (f) {
    r = await fetch("/api/file?name=" + encodeURIComponent(f.name), { method: "PUT", body: f, headers: { "Content-Type": f.type || "application/octet-stream" } });
    $("file").value = "";
  } else {
    r = await fetch("/api/text", { method: "POST", headers: { "Content-Type": "application/json", "Accept": "application/json" }, body: JSON.stringify({ text: $("text").value }) });
  }
  if (r.ok) { $("text").value = ""; $("status").textContent = ""; }
  else { const b = await r.json().catch(() => ({ error: r.statusText })); $("status").textContent = b.error; }
}

async function whoami() {
  const r = await fetch("/api/whoami");
  if (!r.ok) return;
  const c = await r.json();
  $("who").textContent = "You are " + (c.owner ? "the box's owner" : c.member.name) + (c.device ? " (" + c.device + ")" : "") + ".";
}

$("paste").addEventListener("submit", paste);
$("file").addEventListener("change", () => $("paste").requestSubmit());
whoami();
load();
live();
