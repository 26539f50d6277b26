// The federation: on a primary, its secondaries (link, grant, demand), all their
// stations, and one secondary's sessions or log read over its link; on a secondary, its
// link to the primary. Polled every 5 s (the events feed does not carry it); redrawn only
// when something changed.

import { api, can, withQuery } from "../api.js";
import { h, mount, amps, perPhase, when, heading, section, table, badge, confirmDialog, act, field, form } from "../ui.js";
import { STATUS_KIND } from "./dashboard.js";
import { sessionsTable } from "./transactions.js";
import { logTable } from "./logs.js";

const LINK_KIND = { linked: "good", unreachable: "bad", never_seen: "warn" };
const MODE_KIND = { granted: "good", expiring: "info", fallback: "warn" };

const secondaryPath = (name) => `/api/v1/federation/secondaries/${encodeURIComponent(name)}`;

// The token buttons of a secondary (admins): revoking refuses its token at once; the API
// says nothing about whether a token is revoked, so both are offered.
function tokenButtons(name, refresh) {
  const revoke = h("button", { type: "button", class: "danger", "aria-label": `Revoke token of ${name}` }, "Revoke token");
  const reinstate = h("button", { type: "button", "aria-label": `Reinstate token of ${name}` }, "Reinstate");
  revoke.addEventListener("click", async () => {
    if (!(await confirmDialog(`Revoke the token of ${name}? The secondary is refused at once and falls back to its own budget.`, "Revoke"))) return;
    await act(`Token of ${name} revoked`, () => api.post(`${secondaryPath(name)}/revoke`));
    await refresh();
  });
  reinstate.addEventListener("click", async () => {
    await act(`Token of ${name} reinstated`, () => api.del(`${secondaryPath(name)}/revoke`));
    await refresh();
  });
  return h("span", { class: "buttons inline" }, revoke, reinstate);
}

/** A remote action on a secondary's station; the secondary's answer is shown as a notice. */
export function stationAction(secondary, id, action, body, what, refresh) {
  return act(what, async () => {
    const answer = await api.post(`${secondaryPath(secondary)}/stations/${encodeURIComponent(id)}/actions/${action}`, body);
    if (answer && answer.status && !["Accepted", "Unlocked"].includes(answer.status)) {
      throw new Error(`The station answered ${answer.status}`);
    }
  }).then(refresh);
}

/** Soft reset of a secondary's station `s` ({secondary, id}), relayed (operators). */
export function resetButton(s, refresh) {
  const reset = h("button", { type: "button", "aria-label": `Reset station ${s.id} of ${s.secondary}` }, "Reset");
  reset.addEventListener("click", () => stationAction(s.secondary, s.id, "reset", { type: "Soft" }, `Soft reset of ${s.id} sent`, refresh));
  return reset;
}

/** Stop of the session on connector `c` of a secondary's station `s`, relayed (operators). */
export function stopButton(s, c, refresh) {
  const stop = h("button", { type: "button", class: "danger", "aria-label": `Stop the session on connector ${c.connector} of ${s.id}` }, "Stop");
  stop.addEventListener("click", () => stationAction(s.secondary, s.id, "stop", { connector: c.connector }, `Stop of session ${c.transaction} sent`, refresh));
  return stop;
}

/** Whether a connector of a secondary's station has a session. */
export const hasSession = (c) => c.transaction !== null && c.transaction !== undefined;

// What a secondary's records are read as: its sessions or its operator log.
const RECORDS = {
  transactions: { title: "Sessions", noun: "sessions", render: (list, name) => sessionsTable(list, `Sessions of ${name}`) },
  logs: { title: "Log", noun: "log", render: (list, name) => logTable(list, `Log entries of ${name}`) },
};

// Why a secondary's records cannot be shown, in words.
function readFailure(name, what, error) {
  if (error.status === 503) return `${name} is not linked now: its ${RECORDS[what].noun} cannot be read until it links again.`;
  if (error.status === 504) return `${name} did not answer in time; its ${RECORDS[what].noun} are asked for again in 5 seconds.`;
  return `The ${RECORDS[what].noun} of ${name} cannot be read: ${error.message}`;
}

// The Sessions and Log buttons of a secondary: they open its records below the tables
// (pressed: open now; pressed again: closed).
function recordButtons(name, open, choose) {
  return h(
    "span",
    { class: "buttons inline" },
    Object.entries(RECORDS).map(([what, r]) => {
      const pressed = !!open && open.name === name && open.what === what;
      const button = h(
        "button",
        { type: "button", "aria-label": `${r.title} of ${name}`, "aria-pressed": String(pressed), "aria-controls": "secondary-records" },
        r.title,
      );
      button.addEventListener("click", () => choose(pressed ? null : { name, what }));
      return button;
    }),
  );
}

function secondariesTable(secondaries, refresh, open, choose) {
  const admin = can("admin");
  const rows = secondaries.map((s) => {
    const r = s.report;
    const cells = [
      s.name,
      s.zone,
      h("span", {}, badge(s.link, LINK_KIND[s.link] || ""), s.link === "linked" && r && r.mode !== "granted" ? badge(r.mode, MODE_KIND[r.mode] || "") : null),
      s.on_grant ? badge("yes", "good") : badge("no", "warn"),
      perPhase(s.granted_a),
      perPhase(s.reserved_a),
      amps(s.fallback_budget_a),
      r ? perPhase(r.ev_draw_a) : "–",
      r ? `${r.active} / ${r.waiting} / ${r.suspended}` : "–",
      when(s.last_report_at),
      recordButtons(s.name, open, choose),
    ];
    if (admin) cells.push(tokenButtons(s.name, refresh));
    return cells;
  });
  const headers = ["Secondary", "Zone", "Link", "On grant", "Granted", "Reserved", "Fallback", "EV draw", "Active / waiting / suspended", "Last report", "Records"];
  if (admin) headers.push("");
  return table(
    "Secondaries",
    headers,
    rows,
    "No secondary is configured or has linked since the start.",
  );
}

function stationsTable(stations, refresh) {
  const operator = can("operator");
  const rows = stations.flatMap((s) => {
    const online = s.connected ? badge("online", "good") : badge("offline", "bad");
    const actions = (c, first) =>
      operator ? [h("span", { class: "buttons inline" }, first ? resetButton(s, refresh) : null, c && hasSession(c) ? stopButton(s, c, refresh) : null)] : [];
    if (s.connectors.length === 0) return [[s.secondary, s.id, s.zone, online, "–", "–", "–", "–", "–", ...actions(null, true)]];
    return s.connectors.map((c, i) => [
      s.secondary,
      s.id,
      s.zone,
      online,
      String(c.connector),
      s.connected ? badge(c.status, STATUS_KIND[c.status] || "") : "–",
      hasSession(c) ? String(c.transaction) : "–",
      amps(c.limit_a),
      perPhase(c.draw_a),
      ...actions(c, i === 0),
    ]);
  });
  const headers = ["Secondary", "Station", "Zone", "Connection", "Connector", "Status", "Session", "Limit", "Draw"];
  if (operator) headers.push("");
  return table(
    "Stations of the secondaries",
    headers,
    rows,
    "No secondary has reported stations yet.",
  );
}

function linkPanel(link) {
  const row = (label, value) => h("div", { class: "kv" }, h("dt", {}, label), h("dd", {}, value));
  return [
    link.mode === "fallback"
      ? h(
          "p",
          { class: "callout warn" },
          h("strong", {}, "Fallback: "),
          `no valid grant from the primary; this controller's own fallback budget (${perPhase(link.imposed_a)}) is in force.`,
        )
      : null,
    section(
      "Link to the primary",
      h(
        "dl",
        {},
        row("Primary", h("code", {}, link.primary_url)),
        row("Connection", link.connected ? badge("connected", "good") : badge("not connected", "bad")),
        row("Mode", badge(link.mode, MODE_KIND[link.mode] || "")),
        row("Budget imposed", link.imposed_a ? perPhase(link.imposed_a) : "none yet"),
        row("Grant", link.grant_seq ? `#${link.grant_seq}` : "none yet"),
        row("Last error", link.last_error || "–"),
      ),
    ),
  ];
}

export async function federation(main) {
  const content = h("div");
  const updated = h("p", { class: "muted" });
  // One secondary's sessions or log, below the tables: kept across their redraws.
  const records = h("div", { id: "secondary-records" });
  mount(main, heading("Federation"), updated, content, records);
  let shown = null;
  let last = null;
  // The records shown: {name, what, station, limit, results, text, seq}, or null.
  let open = null;
  let reading = 0;

  const draw = (fed, stations) => {
    if (fed.role === "primary") {
      mount(
        content,
        h("p", {}, "This controller is the primary: it shares its zones' budgets with these secondaries."),
        section("Secondaries", secondariesTable(fed.secondaries, refresh, open, choose)),
        section("Their stations", stationsTable(stations, refresh)),
      );
    } else if (fed.role === "secondary") {
      mount(
        content,
        h("p", {}, "This controller is a secondary: its primary sets its budget."),
        fed.link ? linkPanel(fed.link) : h("p", { class: "empty" }, "The link to the primary is starting."),
      );
    } else {
      mount(content, h("p", { class: "empty" }, "This controller is not part of a federation (see [federation] in the configuration file)."));
    }
  };

  const load = async () => {
    const fed = await api.get("/api/v1/federation");
    const stations = fed.role === "primary" ? await api.get("/api/v1/federation/stations") : [];
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
    last = [fed, stations];
    const text = JSON.stringify(last);
    if (text === shown) return;
    shown = text;
    draw(fed, stations);
  };

  // Reads the open records over the link; redrawn only when they changed. A poll is
  // skipped while a read is under way (a secondary that does not answer takes seconds);
  // a read the operator asked for is not, and only the newest answer is shown.
  const loadRecords = async (asked = false) => {
    const mine = open;
    if (!mine || (reading > 0 && !asked)) return;
    const seq = ++mine.seq;
    reading += 1;
    let view;
    try {
      const path = withQuery(`${secondaryPath(mine.name)}/${mine.what}`, { station: mine.station, limit: mine.limit });
      view = { list: await api.get(path) };
    } catch (error) {
      view = { error: readFailure(mine.name, mine.what, error) };
    } finally {
      reading -= 1;
    }
    if (open !== mine || seq !== mine.seq) return;
    const text = JSON.stringify(view);
    if (text === mine.text) return;
    mine.text = text;
    mount(
      mine.results,
      view.error ? h("p", { class: "callout warn", role: "status" }, view.error) : RECORDS[mine.what].render(view.list, mine.name),
    );
  };

  // Opens `choice` ({name, what}) below the tables, or closes them (null); the focus goes
  // to what opened, or back to the button that closed them.
  function choose(choice) {
    const closed = open;
    open = null;
    mount(records);
    if (choice) {
      const r = RECORDS[choice.what];
      const mine = { name: choice.name, what: choice.what, station: "", limit: 200, results: h("div", { "aria-live": "polite" }), text: null, seq: 0 };
      const own = last ? last[1].filter((s) => s.secondary === choice.name) : [];
      const title = h("h2", { tabindex: "-1" }, `${r.title} of ${choice.name}`);
      const close = h("button", { type: "button" }, "Close");
      close.addEventListener("click", () => choose(null));
      const filters = form(
        { class: "inline-form", "aria-label": `Filters of the ${r.noun} of ${choice.name}` },
        [
          field("station", "Station", { choices: [["", "All stations"], ...own.map((s) => [s.id, s.id])] }),
          field("limit", "Entries", { type: "number", min: "1", max: "1000", value: mine.limit }),
        ],
        "Show",
        async (v) => {
          mine.station = v.station;
          mine.limit = v.limit;
          mine.text = null;
          await loadRecords(true);
        },
        [close],
      );
      mount(
        records,
        h(
          "section",
          { class: "card" },
          title,
          h("p", { class: "muted" }, `Read from ${choice.name} over its link, newest first.`),
          filters,
          mine.results,
        ),
      );
      open = mine;
      title.focus();
      loadRecords(true).catch(() => {});
    }
    if (last) draw(...last);
    if (!choice && closed) {
      const button = content.querySelector(`button[aria-label="${CSS.escape(`${RECORDS[closed.what].title} of ${closed.name}`)}"]`);
      if (button) button.focus();
    }
  }

  // After an action: poll at once rather than waiting for the next tick.
  const refresh = () => load().catch(() => {});
  await load();
  const timer = setInterval(() => {
    load().catch(() => {});
    loadRecords().catch(() => {});
  }, 5000);
  return () => clearInterval(timer);
}
