// Charging sessions: filters by station and dates, totals per station and for the
// site, CSV export of what is shown.

import { api, withQuery } from "../api.js";
import { h, mount, when, kwh, heading, table, field, form, section, badge } from "../ui.js";

// A site's history grows by thousands of sessions a month: the page opens on the last 30
// days, not on all of it.
const OPEN_ON_DAYS = 30;

/** The table of charging sessions (this controller's, or a secondary's in the Federation view). */
export function sessionsTable(list, caption = "Sessions") {
  const rows = list.map((x) => [
    String(x.id),
    x.station,
    String(x.connector),
    h("span", {}, x.id_tag, x.vip ? badge("VIP", "info") : null),
    when(x.started_at),
    x.stop ? when(x.stop.at) : badge("charging", "good"),
    kwh(x.energy_wh),
    x.cost ? x.cost.toFixed(2) : "–",
    x.stop && x.stop.reason ? x.stop.reason : "",
  ]);
  return table(caption, ["Id", "Station", "Conn.", "Badge", "Started", "Ended", "Energy", "Cost", "Stop reason"], rows, "No sessions match.");
}

export async function transactions(main) {
  const stations = await api.get("/api/v1/stations");
  const since = new Date(Date.now() - OPEN_ON_DAYS * 86400e3).toISOString().slice(0, 10);
  const results = h("div");
  const exportLink = h("a", { class: "button", href: "/api/v1/transactions.csv", download: "transactions.csv" }, "Export CSV");
  const filters = form(
    { class: "inline-form", "aria-label": "Filters" },
    [
      field("station", "Station", { choices: [["", "All stations"], ...stations.map((s) => [s.id, s.id])] }),
      field("from", "From", { type: "date", value: since }),
      field("to", "To (exclusive)", { type: "date" }),
    ],
    "Show",
    (v) => load(v),
  );
  mount(main, heading("Charging sessions", exportLink), filters, results);

  async function load(filter) {
    const path = withQuery("/api/v1/transactions", filter);
    exportLink.href = withQuery("/api/v1/transactions.csv", filter);
    const answer = await api.get(path);
    const t = answer.totals;
    mount(
      results,
      h("p", { class: "totals", role: "status" }, `${t.count} ${t.count === 1 ? "session" : "sessions"} · ${kwh(t.energy_wh)} · cost ${t.cost.toFixed(2)}`),
      answer.stations.length > 1
        ? section("Per station", table("Totals per station", ["Station", "Sessions", "Energy", "Cost"], answer.stations.map((s) => [s.station, String(s.count), kwh(s.energy_wh), s.cost.toFixed(2)])))
        : null,
      sessionsTable(answer.transactions),
    );
  }
  await load({ from: since });
}
