// The CPO uplink ([uplink]): the charge-point operator's central system this controller
// relays its stations to, and per station whether its upstream connection is up, whether
// the CPO accepted its boot, what it still owes the CPO (the journal's backlog), the
// messages sent, the CPO's own limits per connector and the last error. Polled every 2 s
// (the events feed does not carry it); each part is redrawn only when what it shows
// changed, keeping the keyboard focus where it was. Fields the API may not send (route,
// cpo_url, identity, a station's own read_only) are shown only when some station has them.

import { api } from "../api.js";
import { h, mount, amps, heading, section, table, badge } from "../ui.js";

const EVERY_MS = 2000;

const present = (value) => value !== undefined && value !== null && value !== "";
const count = (value) => (present(value) && Number.isFinite(Number(value)) ? String(value) : "–");

/** Replaces `el`'s content, putting the focus back on the same control if it had it. */
function redraw(el, ...children) {
  const keyOf = (e) => `${e.tagName}|${e.getAttribute("aria-label") || e.textContent}`;
  const active = document.activeElement;
  const focused = active && active !== el && el.contains(active) ? keyOf(active) : null;
  mount(el, ...children);
  if (focused) {
    const again = [...el.querySelectorAll("a, button, [tabindex]")].find((e) => keyOf(e) === focused);
    if (again) again.focus({ preventScroll: true });
  }
}

/** A part of the page redrawn only when `key` changes. */
function part() {
  const el = h("div");
  let shown = null;
  return {
    el,
    show(key, build) {
      const text = JSON.stringify(key);
      if (text === shown) return;
      shown = text;
      redraw(el, build());
    },
  };
}

/** The CPO's limits: {"0": 16, "1": 10} as "Station 16.0 A · #1 10.0 A"; none when empty. */
function limitsText(limits) {
  if (!limits || typeof limits !== "object") return "–";
  const entries = Object.entries(limits)
    .filter(([, a]) => present(a))
    .sort(([a], [b]) => Number(a) - Number(b));
  if (entries.length === 0) return "none";
  return entries.map(([c, a]) => `${c === "0" ? "Station" : `#${c}`} ${amps(a)}`).join(" · ");
}

function connection(s) {
  return s.connected ? badge("connected", "good") : badge("not connected", "bad");
}

function accepted(s) {
  if (!s.connected) return "–";
  return s.booted ? badge("accepted", "good") : badge("not yet", "warn");
}

function summary(view) {
  const stations = view.stations || [];
  const connected = stations.filter((s) => s.connected).length;
  const booted = stations.filter((s) => s.connected && s.booted).length;
  const routed = stations.filter((s) => present(s.route)).length;
  const row = (label, value) => h("div", { class: "kv" }, h("dt", {}, label), h("dd", {}, value));
  return section(
    "Site",
    h(
      "dl",
      {},
      row("CPO", present(view.url) ? h("code", {}, view.url) : "–"),
      routed > 0 ? row("On other routes", `${routed} stations (their CPO URL is in the table)`) : null,
      row(
        "Commands",
        view.read_only ? badge("read-only: the CPO's commands are refused", "") : badge("relayed to the stations", "good"),
      ),
      row("Stations connected", `${connected} / ${stations.length}`),
      row("Accepted by the CPO", `${booted} / ${stations.length}`),
      row("Backlog", count(view.backlog)),
    ),
  );
}

function sentence(view) {
  const stations = view.stations || [];
  const down = stations.filter((s) => !s.connected).length;
  const backlog = Number(view.backlog) || 0;
  if (stations.length === 0) return ["No station has an uplink yet.", ""];
  if (down > 0) {
    const which = down === stations.length ? "No station is" : `${down} of ${stations.length} stations are not`;
    const waiting = backlog > 0 ? ` (${backlog} waiting now)` : "";
    return [`${which} connected to the CPO: what they do is journaled and sent, in order, when they reconnect${waiting}.`, "warn"];
  }
  if (backlog > 0) return [`Every station is connected; ${backlog} messages are on their way to the CPO.`, "info"];
  return ["Every station is connected and the CPO has everything.", ""];
}

function stationsTable(stations) {
  // Optional columns, shown when some station has the field.
  const has = (key) => stations.some((s) => present(s[key]));
  // The identity at the CPO is the station's id unless configured otherwise.
  const renamed = stations.some((s) => present(s.identity) && s.identity !== s.station);
  const optional = [
    ["route", "Route", (s) => (present(s.route) ? String(s.route) : "main")],
    ["identity", "Identity at the CPO", (s) => (present(s.identity) ? h("code", {}, String(s.identity)) : "–")],
    ["cpo_url", "CPO URL", (s) => (present(s.cpo_url) ? h("code", {}, String(s.cpo_url)) : "–")],
    ["read_only", "Commands", (s) => (!present(s.read_only) ? "–" : s.read_only ? badge("read-only", "") : "relayed")],
  ].filter(([key]) => (key === "identity" ? renamed : has(key)));
  const headers = [
    "Station",
    ...optional.map(([, label]) => label),
    "Connection",
    "Accepted by CPO",
    "Backlog",
    "Messages sent",
    "CPO limits",
    "Last error",
  ];
  const rows = stations.map((s) => [
    present(s.station) ? String(s.station) : "–",
    ...optional.map(([, , cell]) => cell(s)),
    connection(s),
    accepted(s),
    count(s.backlog),
    count(s.sent),
    limitsText(s.cpo_limits),
    present(s.last_error) ? h("span", { class: "form-error" }, String(s.last_error)) : "–",
  ]);
  return table("Stations at the CPO", headers, rows, "No station has an uplink yet.");
}

export async function uplink(main) {
  const updated = h("p", { class: "muted" });
  const content = h("div");
  mount(main, heading("CPO uplink"), updated, content);

  const callout = h("p", { class: "callout", "aria-live": "polite" });
  const site = part();
  const stations = part();
  let built = false;

  const show = (view) => {
    if (!view.configured) {
      built = false;
      mount(
        content,
        h("p", { class: "empty" }, "This controller has no CPO uplink (see [uplink] in the configuration file)."),
      );
      return;
    }
    if (!built) {
      built = true;
      mount(
        content,
        callout,
        site.el,
        section(
          "Stations",
          h(
            "p",
            { class: "muted" },
            "Each station has its own connection to the CPO. Backlog: messages journaled and not yet answered by the CPO. CPO limits: what the CPO's charging profiles allow now (Station: the whole station); the allocation keeps every vehicle under them.",
          ),
          stations.el,
        ),
      );
    }
    const list = Array.isArray(view.stations) ? view.stations : [];
    const [words, kind] = sentence(view);
    if (callout.textContent !== words) callout.textContent = words;
    callout.className = `callout ${kind}`;
    site.show([view.url, view.read_only, view.backlog, list.map((s) => [s.connected, s.booted, s.route])], () => summary(view));
    stations.show(list, () => stationsTable(list));
  };

  let stopped = false;
  let busy = false;
  let last = null;
  const load = async () => {
    if (busy || stopped) return;
    busy = true;
    try {
      const view = await api.get("/api/v1/uplink");
      if (stopped) return;
      last = new Date();
      updated.textContent = `Updated ${last.toLocaleTimeString()} (every ${EVERY_MS / 1000} seconds).`;
      show(view);
    } catch (error) {
      if (!stopped) updated.textContent = `Not updated since ${last ? last.toLocaleTimeString() : "the page opened"}: ${error.message}`;
      throw error;
    } finally {
      busy = false;
    }
  };
  await load();
  const timer = setInterval(() => load().catch(() => {}), EVERY_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
