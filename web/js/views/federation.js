// The federation: on a primary, its secondaries (link, grant, demand) and all their
// stations; on a secondary, its link to the primary. Polled every 5 s (the events feed
// does not carry it); redrawn only when something changed.

import { api, can } from "../api.js";
import { h, mount, amps, perPhase, when, heading, section, table, badge, confirmDialog, act } from "../ui.js";
import { STATUS_KIND } from "./dashboard.js";

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

// A remote action on a secondary's station; the secondary's answer is shown as a notice.
function stationAction(secondary, id, action, body, what, refresh) {
  return act(what, async () => {
    const answer = await api.post(`${secondaryPath(secondary)}/stations/${encodeURIComponent(id)}/actions/${action}`, body);
    if (answer && answer.status && !["Accepted", "Unlocked"].includes(answer.status)) {
      throw new Error(`The station answered ${answer.status}`);
    }
  }).then(refresh);
}

function secondariesTable(secondaries, refresh) {
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
    ];
    if (admin) cells.push(tokenButtons(s.name, refresh));
    return cells;
  });
  const headers = ["Secondary", "Zone", "Link", "On grant", "Granted", "Reserved", "Fallback", "EV draw", "Active / waiting / suspended", "Last report"];
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
  const resetButton = (s) => {
    const reset = h("button", { type: "button", "aria-label": `Reset station ${s.id} of ${s.secondary}` }, "Reset");
    reset.addEventListener("click", () => stationAction(s.secondary, s.id, "reset", { type: "Soft" }, `Soft reset of ${s.id} sent`, refresh));
    return reset;
  };
  const stopButton = (s, c) => {
    const stop = h("button", { type: "button", class: "danger", "aria-label": `Stop the session on connector ${c.connector} of ${s.id}` }, "Stop");
    stop.addEventListener("click", () => stationAction(s.secondary, s.id, "stop", { connector: c.connector }, `Stop of session ${c.transaction} sent`, refresh));
    return stop;
  };
  const hasTx = (c) => c.transaction !== null && c.transaction !== undefined;
  const rows = stations.flatMap((s) => {
    const online = s.connected ? badge("online", "good") : badge("offline", "bad");
    const actions = (c, first) =>
      operator ? [h("span", { class: "buttons inline" }, first ? resetButton(s) : null, c && hasTx(c) ? stopButton(s, c) : null)] : [];
    if (s.connectors.length === 0) return [[s.secondary, s.id, s.zone, online, "–", "–", "–", "–", "–", ...actions(null, true)]];
    return s.connectors.map((c, i) => [
      s.secondary,
      s.id,
      s.zone,
      online,
      String(c.connector),
      s.connected ? badge(c.status, STATUS_KIND[c.status] || "") : "–",
      hasTx(c) ? String(c.transaction) : "–",
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
  mount(main, heading("Federation"), updated, content);
  let shown = null;

  const load = async () => {
    const fed = await api.get("/api/v1/federation");
    const stations = fed.role === "primary" ? await api.get("/api/v1/federation/stations") : [];
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
    const text = JSON.stringify([fed, stations]);
    if (text === shown) return;
    shown = text;
    if (fed.role === "primary") {
      mount(
        content,
        h("p", {}, "This controller is the primary: it shares its zones' budgets with these secondaries."),
        section("Secondaries", secondariesTable(fed.secondaries, refresh)),
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
  // After an action: poll at once rather than waiting for the next tick.
  const refresh = () => load().catch(() => {});
  await load();
  const timer = setInterval(() => load().catch(() => {}), 5000);
  return () => clearInterval(timer);
}
