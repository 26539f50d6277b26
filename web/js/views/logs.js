// The operator log, newest first, filtered by station; CSV export.

import { api, withQuery } from "../api.js";
import { h, mount, when, heading, table, field, form, badge } from "../ui.js";

const LEVEL = { info: "", warn: "warn", error: "bad" };

/** The table of log entries (this controller's, or a secondary's in the Federation view). */
export function logTable(entries, caption = "Log entries") {
  return table(
    caption,
    ["When", "Level", "Station", "What happened"],
    entries.map((e) => [when(e.at), badge(e.level, LEVEL[e.level]), e.station || "", e.message]),
    "The log is empty.",
  );
}

export async function logs(main) {
  const stations = await api.get("/api/v1/stations");
  const results = h("div");
  const exportLink = h("a", { class: "button", href: "/api/v1/logs.csv", download: "log.csv" }, "Export CSV");
  const filters = form(
    { class: "inline-form", "aria-label": "Filters" },
    [
      field("station", "Station", { choices: [["", "All"], ...stations.map((s) => [s.id, s.id])] }),
      field("limit", "Entries", { type: "number", min: "1", value: 200 }),
    ],
    "Show",
    (v) => load(v),
  );
  mount(main, heading("Log", exportLink), filters, results);

  async function load(filter) {
    exportLink.href = withQuery("/api/v1/logs.csv", filter);
    const entries = await api.get(withQuery("/api/v1/logs", filter));
    mount(results, logTable(entries));
  }
  await load({ limit: 200 });
}
