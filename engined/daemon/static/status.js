// engined status page: keeps the server-rendered page current without reloading it.
//
// Every POLL_MS it fetches /api/v1/health, /breakers, /events and /dependencies (same
// origin, no cache) and rebuilds the three tables. Data only ever reaches the DOM as
// textContent of elements made with createElement, never parsed as HTML, so a message that
// holds markup stays text. The words, prefixes and tones come from the page's
// #page-config block, which the server writes from engined/daemon/_page.py, so the
// server-rendered rows and these agree. A failed poll marks the page stale, visibly,
// and polling goes on.
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("page-config").textContent);
  const POLL_MS = config.poll_ms;
  const TIMEOUT_MS = Math.max(3000, 2 * POLL_MS);
  const TONES = config.tones;
  const PREFIXES = config.prefixes;
  let lastGood = null;
  let failingSince = null;
  let polls = 0;

  function word(name) {
    const text = String(name ?? "");
    for (const prefix of PREFIXES) {
      if (text.startsWith(prefix)) return text.slice(prefix.length);
    }
    return text;
  }

  function tone(text) {
    return Object.prototype.hasOwnProperty.call(TONES, text) ? TONES[text] : "off";
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function badge(text) {
    return el("span", "badge tone-" + tone(text), text);
  }

  function seconds(duration) {
    if (typeof duration !== "string" || !duration.endsWith("s")) return null;
    const value = Number(duration.slice(0, -1));
    return Number.isFinite(value) ? value : null;
  }

  function ageText(value) {
    if (value < 10) return Math.max(value, 0).toFixed(1) + "s";
    for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
      if (value >= size) return Math.floor(value / size) + unit;
    }
    return Math.floor(value) + "s";
  }

  function tookText(value) {
    if (value < 0.001) return "<1 ms";
    if (value < 1) return Math.round(value * 1000) + " ms";
    return value.toFixed(1) + " s";
  }

  function clockText(iso) {
    return typeof iso === "string" && iso.length >= 19 ? iso.slice(11, 19) : "-";
  }

  function plural(count, noun) {
    return count + " " + noun + (count === 1 ? "" : "s");
  }

  // A <td> with the class and the label the phone layout shows; content is a string or nodes.
  function cell(className, label, ...content) {
    const td = el("td", className);
    td.dataset.label = label;
    for (const part of content) {
      td.append(typeof part === "string" ? document.createTextNode(part) : part);
    }
    return td;
  }

  function row(name, className, cells) {
    const tr = el("tr", className);
    if (name !== null) tr.dataset.name = name;
    tr.append(...cells);
    return tr;
  }

  function emptyRow(table, text) {
    const td = el("td", "", text);
    td.colSpan = table.tHead.rows[0].cells.length;
    const tr = el("tr", "empty");
    tr.append(td);
    return tr;
  }

  function fill(tableId, rows, emptyText) {
    const table = document.getElementById(tableId);
    const body = table.tBodies[0];
    body.replaceChildren(...(rows.length ? rows : [emptyRow(table, emptyText)]));
  }

  function componentRow(c, parents) {
    const status = word(c.status);
    const last = c.last_result || null;
    let lastText = "not yet checked";
    if (last) {
      const age = seconds(last.age);
      const took = seconds(last.duration);
      const parts = [age === null ? "-" : ageText(age) + " ago"];
      if (took !== null) parts.push("took " + tookText(took));
      lastText = parts.join(" · ");
    }
    let message = last ? String(last.message ?? "") : "";
    if (last && last.error) message = (message + " (error: " + last.error + ")").trim();
    const healState = word(c.heal_state);
    const heal = [badge(healState), " ", el("span", "attempts", plural(Number(c.heal_attempts), "attempt"))];
    if (c.last_heal_error) heal.push(" ", el("span", "heal-error", "last: " + c.last_heal_error));
    return row(c.name, "row-" + tone(status), [
      cell("c-name", "Component", String(c.name)),
      cell("c-status", "Status", badge(status)),
      cell("c-type", "Type", word(c.component_type).toLowerCase()),
      cell("c-critical", "Critical", c.critical ? "yes" : "no"),
      cell("c-last", "Last check", lastText),
      cell("c-message", "Message", message || "-"),
      cell("c-heal", "Heal", ...heal),
      cell("c-deps", "Depends on", parents && parents.length ? parents.join(", ") : "-"),
    ]);
  }

  function breakerRow(b) {
    const state = word(b.state);
    const retry = seconds(b.retry_after);
    const rate = b.failure_rate;
    return row(b.name, "row-" + tone(state), [
      cell("b-name", "Breaker", String(b.name)),
      cell("b-state", "State", badge(state)),
      cell("b-rate", "Failure rate", rate === undefined || rate === null ? "-" : Math.round(rate * 100) + "%"),
      cell("b-calls", "Calls", String(Number(b.total_calls))),
      cell("b-rejected", "Rejected", String(Number(b.rejected_calls))),
      cell("b-retry", "Retry after", retry === null ? "-" : ageText(retry)),
    ]);
  }

  function eventRow(e) {
    const time = el("time", "", clockText(e.time));
    time.dateTime = String(e.time);
    const what = e.to ? [badge(String(e.to)), " ", String(e.summary)] : [String(e.summary)];
    const tr = row(null, "", [
      cell("e-time", "Time (UTC)", time),
      cell("e-source", "Source", String(e.source)),
      cell("e-name", "Name", String(e.name)),
      cell("e-what", "Event", ...what),
    ]);
    tr.dataset.seq = String(e.seq);
    return tr;
  }

  function summary(components) {
    const counts = new Map();
    for (const c of components) {
      const status = word(c.status).toLowerCase();
      counts.set(status, (counts.get(status) || 0) + 1);
    }
    const detail = [...counts.keys()].sort().map((s) => counts.get(s) + " " + s).join(", ");
    return plural(components.length, "component") + (detail ? ": " + detail : "");
  }

  function render(health, breakers, events, dependencies) {
    const system = health.health || {};
    const overall = word(system.overall_status);
    const components = system.components || [];
    const parents = dependencies.depends_on || {};
    document.getElementById("overall").replaceChildren(badge(overall));
    document.getElementById("summary").textContent = summary(components);
    document.title = overall + " · engined status";
    document.body.className = "page-" + tone(overall);
    fill("components", components.map((c) => componentRow(c, parents[c.name])), "No components configured.");
    fill("breakers", (breakers.circuit_breakers || []).map(breakerRow), "No circuit breakers.");
    fill("events", (events.events || []).map(eventRow), "No events yet.");
    lastGood = clockText(system.observed_at);
  }

  function setConn(state, text) {
    const conn = document.getElementById("conn");
    conn.className = "conn conn-" + state;
    conn.textContent = text;
    document.documentElement.dataset.conn = state;
  }

  async function getJson(path, signal) {
    const response = await fetch(path, { cache: "no-store", signal, headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return response.json();
  }

  async function poll() {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    try {
      const paths = ["/api/v1/health", "/api/v1/breakers", "/api/v1/events", "/api/v1/dependencies"];
      const [health, breakers, events, dependencies] = await Promise.all(
        paths.map((path) => getJson(path, controller.signal)),
      );
      render(health, breakers, events, dependencies);
      failingSince = null;
      setConn("live", "Live: updated at " + lastGood + " UTC, every " + POLL_MS / 1000 + " s.");
    } catch (error) {
      failingSince = failingSince || clockText(new Date().toISOString());
      const shown = lastGood ? "showing data from " + lastGood + " UTC" : "showing the page as loaded";
      setConn("stale", "STALE: cannot reach the daemon since " + failingSince + " UTC; " + shown + ".");
    } finally {
      clearTimeout(timer);
      polls += 1;
      document.documentElement.dataset.polls = String(polls);
      setTimeout(poll, POLL_MS);
    }
  }

  poll();
})();
