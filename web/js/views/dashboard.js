// The dashboard: every zone's limit, EV budget, EV draw, other loads and production;
// the 24 h chart; every connector with its status, limit in force, draw, energy,
// badge and why it has that limit. Live over the events WebSocket.

import { h, mount, amps, perPhase, maxOf, kwh, heading, badge, table } from "../ui.js";
import { subscribe, sessionOf } from "../live.js";

const SOURCE = {
  static: "static limit",
  dynamic: "from the meter",
  stale_fallback: "meter stale: static fallback",
  imposed: "set by the primary",
};

/** The tag colour of an OCPP connector status. */
export const STATUS_KIND = {
  Charging: "good",
  Available: "",
  Preparing: "info",
  SuspendedEV: "info",
  SuspendedEVSE: "warn",
  Finishing: "info",
  Faulted: "bad",
  Unavailable: "bad",
};

function bar(draw, allocated, budget, limit) {
  const scale = Math.max(limit, budget, allocated, draw, 1);
  const share = (a) => `${Math.min(100, (100 * a) / scale)}%`;
  const given = h("span", { class: "bar-allocated" });
  given.style.width = share(allocated);
  const fill = h("span", { class: "bar-fill" });
  fill.style.width = share(draw);
  const mark = h("span", { class: "bar-budget" });
  mark.style.left = `calc(${share(budget)} - 3px)`;
  return h(
    "div",
    {
      class: "bar",
      role: "img",
      "aria-label": `EV draw ${draw.toFixed(1)} A, limits given ${allocated.toFixed(1)} A, budget ${budget.toFixed(1)} A`,
    },
    given,
    fill,
    mark,
  );
}

function zoneCard(z) {
  const row = (label, value) => h("div", { class: "kv" }, h("dt", {}, label), h("dd", {}, value));
  return h(
    "article",
    { class: "card zone" },
    h("h3", {}, `Zone ${z.id}`, z.parent ? h("span", { class: "muted" }, ` in ${z.parent}`) : null),
    bar(maxOf(z.ev_draw), maxOf(z.allocated), maxOf(z.budget), Number(z.limit_a)),
    h(
      "dl",
      {},
      row("Limit", amps(z.limit_a)),
      row("EV budget", h("span", {}, perPhase(z.budget), " ", h("span", { class: "muted" }, `(${SOURCE[z.source] || z.source})`))),
      row("EV draw", perPhase(z.ev_draw)),
      row("Allocated", perPhase(z.allocated)),
      row("Other loads", z.other_loads ? perPhase(z.other_loads) : "not metered"),
      row("Production", z.production ? perPhase(z.production) : "none"),
      z.suspended ? row("Suspended", `${z.suspended} vehicle(s)`) : null,
    ),
  );
}

function connectorRows(station, site) {
  const live = station.live;
  const link = h("a", { href: `#/station/${encodeURIComponent(station.id)}` }, station.id);
  if (!live || live.connectors.length === 0) {
    const state = live && live.connected ? badge("connected", "info") : badge("offline", "bad");
    return [[link, "–", state, "–", "–", "–", "–", live && live.connected ? "No connector reported yet." : "Not connected."]];
  }
  return live.connectors.map((c) => {
    const s = sessionOf(site, station.id, c.connector);
    const status = live.connected ? badge(c.status, STATUS_KIND[c.status] || "") : badge("offline", "bad");
    const tx = c.transaction;
    return [
      link,
      String(c.connector),
      status,
      amps(c.limit_in_force),
      perPhase(c.draw),
      tx ? kwh(tx.energy_wh) : "–",
      tx ? h("span", {}, tx.id_tag, tx.vip ? badge("VIP", "info") : null) : "–",
      s ? h("span", {}, s.control_loop === "safety_cut" ? badge("safety cut", "bad") : null, s.why) : tx ? "Waiting for the next allocation round." : "No vehicle charging.",
    ];
  });
}

export async function dashboard(main) {
  const zones = h("div", { class: "zones" });
  const rows = h("div", {});
  const state = h("p", { class: "muted", role: "status" }, "Connecting to the live feed…");
  const info = h("p", { class: "muted" });
  const rootZone = h("span");
  const chart = h("img", { class: "chart", alt: "Site load, EV load and EV budget over the last 24 hours", width: "720", height: "260" });
  let chartZone = null;
  const refreshChart = () => {
    if (chartZone) chart.src = `/api/v1/site/chart.svg?zone=${encodeURIComponent(chartZone)}&t=${Date.now()}`;
  };

  mount(
    main,
    heading("Dashboard"),
    info,
    state,
    h("section", { "aria-label": "Zones" }, zones),
    h("section", { class: "card" }, h("h2", {}, "Stations and vehicles"), rows),
    h("section", { class: "card" }, h("h2", {}, "Last 24 hours", rootZone), chart),
  );

  const update = (live) => {
    const site = live.site;
    state.textContent = live.connected ? "" : "Live feed interrupted; reconnecting…";
    if (!site) return;
    const period = site.tariff_period ? `Tariff period: ${site.tariff_period}. ` : "";
    const round = site.last_round ? `Last allocation ${new Date(site.last_round.at).toLocaleTimeString()}.` : "";
    info.textContent = `${site.name} · ${site.mode} mode. ${period}${round}`;
    mount(zones, (site.zones || []).map(zoneCard));
    const root = (site.zones || []).find((z) => !z.parent);
    if (root && root.id !== chartZone) {
      chartZone = root.id;
      rootZone.textContent = ` · zone ${root.id}`;
      refreshChart();
    }
    const stations = [...live.stations.values()];
    mount(
      rows,
      table(
        "Stations and vehicles",
        ["Station", "Connector", "Status", "Limit in force", "Draw", "Energy", "Badge", "Why this limit"],
        stations.flatMap((s) => connectorRows(s, site)),
        "No stations yet. Add them in Stations or let them connect with the scan on.",
      ),
    );
  };
  const unsubscribe = subscribe(update);
  const timer = setInterval(refreshChart, 60000);
  return () => {
    unsubscribe();
    clearInterval(timer);
  };
}
