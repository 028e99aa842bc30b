// Keeps the status page current from /v1/status. Tenant text (names, reasons) is written
// with textContent only, never as HTML.
"use strict";
(function () {
  const ORDER = ["synced", "out_of_sync", "failed", "parked", "held", "suspended", "pending"];
  const WORDS = { out_of_sync: "out of sync" };
  const PROBLEMS = ["failed", "parked", "held"];
  const ROWS = 500;

  function text(id, value) {
    const el = document.getElementById(id);
    if (el) el.textContent = value;
  }

  function cell(tr, value, code) {
    const td = document.createElement("td");
    const target = code ? td.appendChild(document.createElement("code")) : td;
    target.textContent = value == null ? "" : String(value);
    tr.appendChild(td);
  }

  function fill(id, rows) {
    const table = document.getElementById(id);
    if (!table) return;
    const body = document.createElement("tbody");
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.className = String(r.status);
      cell(tr, r.name);
      cell(tr, r.id, true);
      cell(tr, WORDS[r.status] || r.status);
      cell(tr, r.reason);
      cell(tr, r.when);
      cell(tr, r.rolledBackFrom ? r.revision + " (rollback from " + r.rolledBackFrom + ")" : r.revision);
      body.appendChild(tr);
    }
    table.replaceChild(body, table.tBodies[0]);
  }

  // The same line as the server renders (output::rollout_line).
  function rolloutLine(r) {
    if (!r || !r.to) return "";
    const phase = { in_progress: "in progress" }[r.phase] || r.phase;
    const waves = (r.waves || []).map((w) => w.label + " " + w.done + "/" + w.restaurants);
    let line = "Rollout of " + shortRevision(r.to) + ": " + phase + "; " + waves.join(", ");
    if (r.halted) line += "; halted: " + r.halted.reason;
    else if (r.phase === "in_progress" && r.paused) line += "; paused: " + r.paused;
    return line;
  }

  function shortRevision(rev) {
    return rev.commit ? rev.commit.slice(0, 7) + (rev.dirty ? "+dirty" : "") : "no-git";
  }

  function render(s) {
    text("revision", s.revision || "unknown");
    text("generated", s.generatedAt);
    text("feed", "Feed: " + (s.feed.connected ? "connected" : "disconnected") +
      ", change-log trigger " + (s.feed.installed ? "installed" : "not installed"));
    text("queue", "Queue: " + s.queue.depth + " waiting, " + s.queue.due + " due, " +
      s.queue.parked + " parked");
    text("rollout", rolloutLine(s.rollout));
    for (const key of ORDER) {
      const td = document.querySelector('#counts td[data-status="' + key + '"]');
      if (td) td.textContent = String(s.counts[key] || 0);
    }
    const all = s.restaurants || [];
    fill("problems", all.filter((r) => PROBLEMS.includes(r.status)));
    fill("restaurants", all.slice(0, ROWS));
    text("more", all.length > ROWS ? "… and " + (all.length - ROWS) + " more: see /v1/status" : "");
    text("live", "live, refreshed " + new Date().toISOString());
  }

  function refresh() {
    fetch("/v1/status", { cache: "no-store" })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status))))
      .then(render)
      .catch((e) => text("live", "refresh failed: " + e.message));
  }

  refresh();
  setInterval(refresh, 5000);
})();
