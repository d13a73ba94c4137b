/**
 * The one-page dashboard served at `/`: plain HTML and JavaScript in a string,
 * so the single binary carries it and nothing is built or fetched from a CDN.
 * It polls /metrics (connections, message rates, drawn on canvases) and
 * /api/v1/clients (the table). The API token comes from the page's address
 * (`/#token=...`) or the token field, and stays in this tab's sessionStorage.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mqttx</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .5em}h2{font-size:1em;margin:1em 0 .3em}
.row{display:flex;gap:1.5em;flex-wrap:wrap}.card{background:#fff;border:1px solid #ddd;padding:.8em;border-radius:6px}
canvas{display:block}table{border-collapse:collapse;background:#fff}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}th{background:#f0f0f0}
#status{font-weight:bold}.ok{color:#187a2f}.bad{color:#b3261e}.legend span{margin-right:1em}
</style></head><body>
<h1>mqttx <span id="version"></span> <span id="status"></span></h1>
<div>API token: <input id="token" type="password" size="30"> <span id="apierr" class="bad"></span></div>
<div class="row">
<div class="card"><h2>Connected clients: <span id="conn">-</span></h2><canvas id="cConn" width="420" height="140"></canvas></div>
<div class="card"><h2>Messages/s <span class="legend"><span style="color:#1f6feb">in <b id="rin">-</b></span><span style="color:#d9480f">out <b id="rout">-</b></span></span></h2><canvas id="cRate" width="420" height="140"></canvas></div>
</div>
<h2>Clients (<span id="total">0</span>)</h2>
<table><thead><tr><th>Client id</th><th>User</th><th>Address</th><th>Protocol</th><th>Connected</th><th>Subscriptions</th><th>In flight</th><th>Queued</th></tr></thead><tbody id="clients"></tbody></table>
<script>
"use strict";
const N = 120, conns = [], rin = [], rout = [];
let last = null;
const tokenInput = document.getElementById("token");
const m = /token=([^&]*)/.exec(location.hash);
if (m) sessionStorage.setItem("mqttx-token", decodeURIComponent(m[1]));
tokenInput.value = sessionStorage.getItem("mqttx-token") || "";
tokenInput.onchange = () => { sessionStorage.setItem("mqttx-token", tokenInput.value); clients(); };
function metric(text, name) {
  let sum = 0, found = false;
  for (const line of text.split("\\n")) {
    if (line.startsWith(name + " ") || line.startsWith(name + "{")) {
      sum += Number(line.slice(line.lastIndexOf(" ") + 1)); found = true;
    }
  }
  return found ? sum : NaN;
}
function push(a, v) { a.push(v); if (a.length > N) a.shift(); }
function draw(id, series) {
  const c = document.getElementById(id), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  let max = 1;
  for (const s of series) for (const v of s.data) if (v > max) max = v;
  g.fillStyle = "#888"; g.font = "11px sans-serif"; g.fillText(String(Math.round(max)), 2, 11);
  g.strokeStyle = "#eee"; g.beginPath(); g.moveTo(0, c.height - 0.5); g.lineTo(c.width, c.height - 0.5); g.stroke();
  for (const s of series) {
    g.strokeStyle = s.color; g.lineWidth = 2; g.beginPath();
    s.data.forEach((v, i) => {
      const x = c.width - ((s.data.length - 1 - i) / (N - 1)) * c.width, y = c.height - 2 - (v / max) * (c.height - 16);
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
  }
}
async function metrics() {
  try {
    const text = await (await fetch("/metrics")).text();
    const now = Date.now(), cin = metric(text, "mqttx_messages_received_total"),
      cout = metric(text, "mqttx_messages_sent_total"), cc = metric(text, "mqttx_clients_connected");
    const v = /mqttx_build_info\\{version="([^"]*)",runtime="([^"]*)"/.exec(text);
    if (v) document.getElementById("version").textContent = v[1] + " on " + v[2];
    document.getElementById("conn").textContent = String(cc);
    push(conns, cc);
    if (last) {
      const dt = (now - last.t) / 1000, i = (cin - last.cin) / dt, o = (cout - last.cout) / dt;
      push(rin, i); push(rout, o);
      document.getElementById("rin").textContent = i.toFixed(1);
      document.getElementById("rout").textContent = o.toFixed(1);
    }
    last = { t: now, cin, cout };
    draw("cConn", [{ data: conns, color: "#187a2f" }]);
    draw("cRate", [{ data: rin, color: "#1f6feb" }, { data: rout, color: "#d9480f" }]);
    const h = await fetch("/health"), st = document.getElementById("status");
    st.textContent = h.ok ? "healthy" : "unhealthy: " + (await h.json()).failing.join(", ");
    st.className = h.ok ? "ok" : "bad";
  } catch (e) { document.getElementById("status").textContent = "unreachable"; }
}
async function clients() {
  const err = document.getElementById("apierr");
  try {
    const r = await fetch("/api/v1/clients?limit=200", { headers: { authorization: "Bearer " + tokenInput.value } });
    if (!r.ok) { err.textContent = r.status === 401 ? "token needed" : "API error " + r.status; return; }
    err.textContent = "";
    const body = await r.json(), tb = document.getElementById("clients");
    document.getElementById("total").textContent = String(body.total);
    tb.replaceChildren(...body.data.map((c) => {
      const tr = document.createElement("tr");
      for (const v of [c.clientId, c.username, c.address, c.protocolVersion, c.connected ? "yes" : "no",
        c.subscriptions, c.inflight, c.queued]) {
        const td = document.createElement("td"); td.textContent = v === null ? "" : String(v); tr.append(td);
      }
      tr.className = "client"; return tr;
    }));
  } catch (e) { err.textContent = "API unreachable"; }
}
metrics(); clients();
setInterval(metrics, 1000); setInterval(clients, 2000);
</script></body></html>
`;
