// The admin console page: plain HTML, CSS and JavaScript, no framework and nothing loaded from elsewhere.
// Every value from the server is put in with textContent (JIDs and client names are chosen by users).
export const CONSOLE_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hearth admin</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2430; background: #f4f6f9; }
  header { background: #22314a; color: #fff; padding: 10px 20px; display: flex; gap: 16px; align-items: center; }
  header h1 { font-size: 18px; margin: 0; flex: 1; }
  main { padding: 16px 20px; display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
  section { background: #fff; border: 1px solid #d8dde6; border-radius: 6px; padding: 12px 14px; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid #eef0f4; font-size: 13px; }
  th { color: #5a6577; font-weight: 600; }
  button { font: inherit; padding: 3px 10px; border: 1px solid #9aa6b8; border-radius: 4px; background: #fff; cursor: pointer; }
  button.danger { border-color: #c0392b; color: #c0392b; }
  input, select, textarea { font: inherit; padding: 3px 6px; border: 1px solid #b8c1cf; border-radius: 4px; }
  form.row { display: flex; gap: 6px; flex-wrap: wrap; align-items: center; margin: 6px 0; }
  #login { max-width: 340px; margin: 80px auto; background: #fff; padding: 20px; border: 1px solid #d8dde6; border-radius: 6px; }
  #login input { width: 100%; box-sizing: border-box; margin: 4px 0 10px; }
  .muted { color: #6b7688; }
  .error { color: #c0392b; }
  #status { padding: 0 20px; margin: 10px 0 0; }
  #status:empty { display: none; }
  .legend span { margin-right: 12px; }
  .legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
  ul.errors { margin: 0; padding-left: 18px; max-height: 220px; overflow: auto; font-size: 13px; }
</style>
</head>
<body>
<div id="login" hidden>
  <h2>hearth admin console</h2>
  <p class="muted">Log in with an administrator's XMPP address and password.</p>
  <form id="login-form">
    <label>Address <input id="jid" name="jid" autocomplete="username" placeholder="admin@example.com"></label>
    <label>Password <input id="password" name="password" type="password" autocomplete="current-password"></label>
    <button type="submit" id="login-button">Log in</button>
    <p id="login-error" class="error"></p>
  </form>
</div>
<div id="app" hidden>
  <header><h1>hearth admin</h1><span id="who"></span><button id="logout" type="button">Log out</button></header>
  <p id="status"></p>
  <main>
    <section><h2>Nodes</h2><table id="nodes"><thead><tr><th>Node</th><th>Sessions</th><th></th></tr></thead><tbody></tbody></table>
      <p class="muted" id="node-count"></p></section>
    <section><h2>Users by host</h2><table id="hosts"><thead><tr><th>Host</th><th>Accounts</th><th>Online users</th><th>Sessions</th><th>Disabled</th></tr></thead><tbody></tbody></table></section>
    <section class="wide"><h2>Messages and logins</h2>
      <div class="legend"><span><i style="background:#2f6fdb"></i>messages</span><span><i style="background:#1e9e5a"></i>logins</span><span><i style="background:#c0392b"></i>failed logins</span><span class="muted" id="rate-note"></span></div>
      <svg id="chart" width="100%" height="160" viewBox="0 0 600 160" preserveAspectRatio="none" role="img" aria-label="rates of the last minutes"></svg></section>
    <section class="wide"><h2>Online sessions</h2>
      <table id="sessions"><thead><tr><th>JID</th><th>Transport</th><th>Client</th><th>Address</th><th>Since</th><th>Node</th><th></th></tr></thead><tbody></tbody></table></section>
    <section><h2>Accounts</h2>
      <form class="row" id="account-form"><input id="account-jid" placeholder="user@host" required>
        <button type="button" data-act="disable" class="danger">Disable</button><button type="button" data-act="enable">Enable</button></form>
      <form class="row" id="password-form"><input id="password-jid" placeholder="user@host" required><input id="new-password" type="password" placeholder="new password" autocomplete="new-password" required>
        <button type="submit">Reset password</button></form></section>
    <section><h2>Announcement</h2>
      <form id="announce-form"><div class="row"><select id="announce-host"></select><input id="announce-subject" placeholder="subject (optional)"></div>
        <textarea id="announce-body" rows="3" style="width:100%;box-sizing:border-box" placeholder="message to every online user of the host" required></textarea>
        <button type="submit">Send to online users</button></form></section>
    <section><h2>Group chat rooms</h2><table id="rooms"><thead><tr><th>Room</th><th>Occupants</th></tr></thead><tbody></tbody></table></section>
    <section><h2>Recent errors</h2><ul class="errors" id="errors"></ul></section>
  </main>
</div>
<script>
"use strict";
var csrf = null;
var hostsShown = "";
function $(id) { return document.getElementById(id); }
function cell(row, text) { var td = document.createElement("td"); td.textContent = text == null ? "" : String(text); row.appendChild(td); return td; }
function time(ms) { return ms ? new Date(ms).toLocaleTimeString() : ""; }
function setStatus(text, bad) { var s = $("status"); s.textContent = text; s.className = bad ? "error" : "muted"; }
async function call(path, body) {
  var opts = body ? { method: "POST", headers: { "content-type": "application/json", "x-csrf-token": csrf || "" }, body: JSON.stringify(body) } : {};
  var r = await fetch(path, opts);
  var j = {};
  try { j = await r.json(); } catch (e) { j = {}; }
  if (!r.ok) { var err = new Error(j.error || r.statusText); err.status = r.status; throw err; }
  return j;
}
function show(loggedIn) { $("login").hidden = loggedIn; $("app").hidden = !loggedIn; }
function fill(id, rows, build) {
  var body = $(id).querySelector("tbody");
  body.replaceChildren();
  rows.forEach(function (r) { var tr = document.createElement("tr"); build(tr, r); body.appendChild(tr); });
}
function chart(rates) {
  var svg = $("chart"), ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  [10, 82.5, 155].forEach(function (y) {
    var g = document.createElementNS(ns, "line");
    g.setAttribute("x1", "0"); g.setAttribute("x2", "600"); g.setAttribute("y1", String(y)); g.setAttribute("y2", String(y));
    g.setAttribute("stroke", "#e3e7ee"); g.setAttribute("stroke-width", "1");
    svg.appendChild(g);
  });
  var s = rates.samples, max = 1;
  s.forEach(function (p) { max = Math.max(max, p.messages, p.logins, p.loginFailures); });
  $("rate-note").textContent = "per " + rates.intervalSeconds + " s, last " + s.length + " samples, peak " + max;
  [["messages", "#2f6fdb"], ["logins", "#1e9e5a"], ["loginFailures", "#c0392b"]].forEach(function (k) {
    var pts = s.map(function (p, i) { return (s.length < 2 ? 0 : i * 600 / (s.length - 1)).toFixed(1) + "," + (155 - p[k[0]] * 145 / max).toFixed(1); });
    var line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.join(" "));
    line.setAttribute("fill", "none"); line.setAttribute("stroke", k[1]); line.setAttribute("stroke-width", "2");
    svg.appendChild(line);
  });
}
async function act(name, body, done) {
  try { var r = await call("/admin/api/" + name, body); setStatus(done(r), false); await refresh(); }
  catch (e) { setStatus(name + ": " + e.message, true); }
}
function render(s) {
  $("who").textContent = s.me + " on node " + s.node;
  fill("nodes", s.nodes.nodes, function (tr, n) { cell(tr, n.id); cell(tr, n.sessions); cell(tr, n.self ? "this node" : ""); });
  $("node-count").textContent = s.nodes.count === null ? "the cluster does not answer" : s.nodes.count + " node(s) in the cluster";
  fill("hosts", s.hosts, function (tr, h) { cell(tr, h.host); cell(tr, h.accounts); cell(tr, h.online); cell(tr, h.sessions); cell(tr, h.disabled); });
  var names = s.hosts.map(function (h) { return h.host; }).join(",");
  if (names !== hostsShown) {
    hostsShown = names;
    $("announce-host").replaceChildren.apply($("announce-host"), s.hosts.map(function (h) { var o = document.createElement("option"); o.textContent = h.host; return o; }));
  }
  chart(s.rates);
  fill("sessions", s.sessions, function (tr, x) {
    tr.dataset.jid = x.jid;
    cell(tr, x.jid); cell(tr, x.transport + (x.secure ? " (TLS)" : "")); cell(tr, x.client || "unknown"); cell(tr, x.address); cell(tr, time(x.since)); cell(tr, x.node);
    var td = cell(tr, "");
    var kick = document.createElement("button"); kick.textContent = "Kick"; kick.className = "kick danger";
    kick.onclick = function () { act("kick", { jid: x.jid }, function (r) { return "kicked " + x.jid + " (" + r.kicked + " session)"; }); };
    var dis = document.createElement("button"); dis.textContent = "Disable account"; dis.className = "disable";
    dis.onclick = function () { var bare = x.jid.split("/")[0]; act("disable", { jid: bare }, function () { return "disabled " + bare; }); };
    td.append(kick, " ", dis);
  });
  fill("rooms", s.rooms, function (tr, r) { cell(tr, r.room); cell(tr, r.occupants); });
  var ul = $("errors");
  ul.replaceChildren.apply(ul, s.errors.map(function (e) { var li = document.createElement("li"); li.textContent = time(e.time) + " " + e.level + ": " + e.message; return li; }));
  if (s.errors.length === 0) { var li = document.createElement("li"); li.className = "muted"; li.textContent = "none"; ul.appendChild(li); }
}
async function refresh() {
  try { var s = await call("/admin/api/state"); csrf = s.csrf; show(true); render(s); }
  catch (e) { if (e.status === 401) show(false); else setStatus(e.message, true); }
}
$("login-form").onsubmit = async function (ev) {
  ev.preventDefault();
  $("login-error").textContent = "";
  try { var r = await call("/admin/login", { jid: $("jid").value, password: $("password").value }); csrf = r.csrf; $("password").value = ""; await refresh(); }
  catch (e) { $("login-error").textContent = e.message; }
};
$("logout").onclick = async function () { try { await call("/admin/logout", {}); } catch (e) {} csrf = null; show(false); };
$("account-form").querySelectorAll("button").forEach(function (b) {
  b.onclick = function () { var jid = $("account-jid").value; act(b.dataset.act, { jid: jid }, function (r) { return b.dataset.act + "d " + jid + (r.changed ? "" : " (no change)"); }); };
});
$("password-form").onsubmit = function (ev) {
  ev.preventDefault();
  var jid = $("password-jid").value;
  act("password", { jid: jid, password: $("new-password").value }, function () { $("new-password").value = ""; return "password of " + jid + " reset; its tokens are revoked"; });
};
$("announce-form").onsubmit = function (ev) {
  ev.preventDefault();
  act("announce", { host: $("announce-host").value, subject: $("announce-subject").value, body: $("announce-body").value }, function (r) { return "announcement sent to " + r.sent + " session(s)"; });
};
refresh();
setInterval(function () { if (!$("app").hidden) refresh(); }, 3000);
</script>
</body>
</html>
`;
