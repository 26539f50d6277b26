// The federation: on a primary, its secondaries (link, grant, demand) and all their
// stations; on a secondary, its link to the primary. Polled every 5 s (the events feed
// does not carry it); redrawn only when something changed.

import { api } from "../api.js";
import { h, mount, amps, perPhase, when, heading, section, table, badge } from "../ui.js";
import { STATUS_KIND } from "./dashboard.js";

const LINK_KIND = { linked: "good", unreachable: "bad", never_seen: "warn" };
const MODE_KIND = { granted: "good", expiring: "info", fallback: "warn" };

function secondariesTable(secondaries) {
  const rows = secondaries.map((s) => {
    const r = s.report;
    return [
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
  });
  return table(
    "Secondaries",
    ["Secondary", "Zone", "Link", "On grant", "Granted", "Reserved", "Fallback", "EV draw", "Active / waiting / suspended", "Last report"],
    rows,
    "No secondary is configured or has linked since the start.",
  );
}

function stationsTable(stations) {
  const rows = stations.flatMap((s) => {
    const online = s.connected ? badge("online", "good") : badge("offline", "bad");
    if (s.connectors.length === 0) return [[s.secondary, s.id, s.zone, online, "–", "–", "–", "–", "–"]];
    return s.connectors.map((c) => [
      s.secondary,
      s.id,
      s.zone,
      online,
      String(c.connector),
      s.connected ? badge(c.status, STATUS_KIND[c.status] || "") : "–",
      c.transaction === null || c.transaction === undefined ? "–" : String(c.transaction),
      amps(c.limit_a),
      perPhase(c.draw_a),
    ]);
  });
  return table(
    "Stations of the secondaries",
    ["Secondary", "Station", "Zone", "Connection", "Connector", "Status", "Session", "Limit", "Draw"],
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
        section("Secondaries", secondariesTable(fed.secondaries)),
        section("Their stations", stationsTable(stations)),
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
  await load();
  const timer = setInterval(() => load().catch(() => {}), 5000);
  return () => clearInterval(timer);
}
