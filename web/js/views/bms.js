// The building management system's interface ([bms]): the caps it wrote that are in
// force (site and zones) with their remaining time, counted down here every second, the
// fail-safe caps, the Modbus clients and the log of writes. Polled every second; each
// part is redrawn only when what it shows changed (the countdowns and the heartbeat are
// updated in place), keeping the keyboard focus where it was.

import { api, session } from "../api.js";
import { h, mount, amps, heading, section, table, badge, confirmDialog, act } from "../ui.js";

const STATE = {
  written: ["BMS cap in force", "info"],
  failsafe: ["fail-safe cap", "warn"],
  none: ["no cap", ""],
};

const OUTCOME_KIND = { accepted: "good", refused: "bad", released: "info", expired: "warn", disconnected: "warn" };

const capPath = (target) =>
  target.kind === "zone" ? `/api/v1/bms/zones/${encodeURIComponent(target.zone)}/cap` : "/api/v1/bms/cap";
const targetKey = (target) => (target.kind === "zone" ? `zone:${target.zone}` : "site");
const targetText = (target) => (target.kind === "zone" ? `Zone ${target.zone}` : "Site");

function writerText(by) {
  if (!by) return "–";
  if (by.via === "modbus") return `Modbus client #${by.client} (${by.addr})`;
  if (by.via === "rest") return `REST (${by.name})`;
  return JSON.stringify(by);
}

/** A time to the second (writes come seconds apart). */
function stamp(text) {
  if (!text) return "–";
  return new Date(text).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const pad = (n) => String(n).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
}

function requestedText(requested, unit, requestedA) {
  if (requested === null || requested === undefined) return "–";
  if (unit === "W") {
    const total = `${Math.round(Number(requested))} W in all`;
    return requestedA === undefined || requestedA === null ? total : `${total} (${amps(requestedA)} per phase)`;
  }
  return amps(requested);
}

/** Whether this user may end (and write) the BMS caps: exactly bms or admin. */
function mayWrite() {
  return !!session.user && (session.user.role === "admin" || session.user.role === "bms");
}

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

// A cap as shown, without what changes every second.
const still = (cap) => Object.assign({}, cap, { remaining_s: undefined });

function endButton(cap, label, ariaLabel, refresh) {
  const what = cap.target.kind === "zone" ? `the cap of zone ${cap.target.zone}` : "the site cap";
  const button = h("button", { type: "button", class: "danger", "aria-label": ariaLabel }, label);
  button.addEventListener("click", async () => {
    const then = cap.failsafe_a === null || cap.failsafe_a === undefined ? "no cap applies" : `the fail-safe cap (${amps(cap.failsafe_a)} per phase) applies`;
    const question = `End ${what} written by ${writerText(cap.written && cap.written.by)} now? Then ${then} until the BMS writes again.`;
    if (!(await confirmDialog(question, "End the cap"))) return;
    await act(`${what[0].toUpperCase()}${what.slice(1)} ended`, () => api.del(capPath(cap.target)));
    await refresh();
  });
  return button;
}

function countdown(cap) {
  return h("span", { role: "timer", "data-countdown": targetKey(cap.target) }, duration(cap.remaining_s));
}

function interfacePanel(view, heartbeat) {
  const row = (label, value) => h("div", { class: "kv" }, h("dt", {}, label), h("dd", {}, value));
  return section(
    "Interface",
    h(
      "dl",
      {},
      row("Access", view.write ? badge("writable: the BMS may write caps", "good") : badge("read-only", "")),
      row(
        "Modbus TCP",
        view.modbus_listen ? h("span", {}, h("code", {}, view.modbus_listen), ` · unit id ${view.unit_id}`) : "REST only",
      ),
      row("Heartbeat", heartbeat),
      row("Writes accepted / refused", `${view.writes_accepted} / ${view.writes_refused}`),
    ),
    view.write ? null : h("p", { class: "muted" }, "The BMS reads the registers but cannot write caps (bms.write = false)."),
  );
}

function siteDetails(site, refresh) {
  const row = (label, value) => h("div", { class: "kv" }, h("dt", {}, label), h("dd", {}, value));
  const w = site.written;
  const [words, kind] = STATE[site.state] || [site.state, ""];
  return [
    h(
      "dl",
      {},
      row("State", badge(words, kind)),
      row("In force", site.effective_a === null ? "none" : `${amps(site.effective_a)} per phase`),
      site.state === "written" ? row("Remaining", countdown(site)) : null,
      row("Fail-safe", site.failsafe_a === null ? "none" : `${amps(site.failsafe_a)} per phase`),
      w ? row("Requested", requestedText(w.requested, w.unit, w.requested_a)) : null,
      w && w.requested_a > w.effective_a ? row("Limited to", `${amps(w.effective_a)} (the commissioned limit)`) : null,
      w ? row("Written by", writerText(w.by)) : null,
      w ? row("Written at", stamp(w.at)) : null,
      w ? row("Valid until", stamp(w.until)) : null,
    ),
    site.state === "written" && mayWrite() ? h("div", { class: "buttons" }, endButton(site, "End the site cap", undefined, refresh)) : null,
  ];
}

function siteSentence(site) {
  if (site.state === "written") return `BMS cap in force: ${amps(site.effective_a)} per phase for the whole site.`;
  if (site.state === "failsafe") return `No valid write: the fail-safe cap of ${amps(site.failsafe_a)} per phase is in force.`;
  return "No cap: the site's own limits apply.";
}

function zonesTable(zones, refresh) {
  const write = mayWrite();
  const shown = zones.filter((z) => z.state !== "none");
  const rows = shown.map((z) => {
    const w = z.written;
    const [words, kind] = STATE[z.state] || [z.state, ""];
    const cells = [
      z.target.zone,
      badge(words, kind),
      amps(z.effective_a),
      z.state === "written" ? countdown(z) : "–",
      z.failsafe_a === null ? "none" : amps(z.failsafe_a),
      w ? requestedText(w.requested, w.unit, w.requested_a) : "–",
      w ? writerText(w.by) : "–",
      w ? stamp(w.at) : "–",
    ];
    if (write) cells.push(z.state === "written" ? endButton(z, "End", `End the cap of zone ${z.target.zone}`, refresh) : "");
    return cells;
  });
  const headers = ["Zone", "State", "In force", "Remaining", "Fail-safe", "Requested", "Written by", "Written at"];
  if (write) headers.push("");
  return table("Zone caps", headers, rows, "No zone cap in force.");
}

function clientsPanel(view) {
  const rows = view.clients.map((c) => [`#${c.id}`, h("code", {}, c.addr), stamp(c.since), String(c.requests), String(c.exceptions)]);
  return [
    view.modbus_listen
      ? table("Modbus clients", ["Client", "Address", "Connected since", "Requests", "Exceptions"], rows, "No Modbus client is connected.")
      : h("p", { class: "empty" }, "No Modbus server (bms.modbus_listen is not set): the BMS uses the REST API."),
    h("p", { class: "muted" }, `Connections refused (not allowed, or too many clients) since the start: ${view.refused_connections}.`),
  ];
}

function logTable(log) {
  const rows = log.map((r) => [
    stamp(r.at),
    targetText(r.target),
    r.ended_by ? `${writerText(r.by)}; ended by ${writerText(r.ended_by)}` : writerText(r.by),
    badge(r.outcome, OUTCOME_KIND[r.outcome] || ""),
    requestedText(r.requested, r.unit),
    amps(r.effective_a),
    r.validity_s === null || r.validity_s === undefined ? "–" : duration(r.validity_s),
    r.error || "",
  ]);
  return table(
    "Log of writes",
    ["Time", "Target", "By", "Outcome", "Requested", "Effective", "Validity", "Error"],
    rows,
    "No write since the start.",
  );
}

export async function bms(main) {
  const csv = h(
    "a",
    { class: "button", href: "/api/v1/bms/registers.csv", download: "ampwarden-bms-registers.csv" },
    "Register map (CSV)",
  );
  const updated = h("p", { class: "muted" });
  const content = h("div");
  mount(main, heading("BMS", csv), updated, content);

  const heartbeat = h("span", {});
  const sentence = h("p", { class: "callout", "aria-live": "polite" });
  const iface = part();
  const site = part();
  const zones = part();
  const clients = part();
  const log = part();
  let built = false;
  // When each written cap ends, by this browser's clock: target key -> ms.
  const deadlines = new Map();

  const tick = () => {
    const now = Date.now();
    for (const el of content.querySelectorAll("[data-countdown]")) {
      const end = deadlines.get(el.dataset.countdown);
      const text = end === undefined ? "–" : duration(Math.ceil((end - now) / 1000));
      if (el.textContent !== text) el.textContent = text;
    }
  };

  const show = (view) => {
    if (!view.configured) {
      built = false;
      mount(content, h("p", { class: "empty" }, "This controller has no BMS interface (see [bms] in the configuration file)."));
      return;
    }
    if (!built) {
      built = true;
      mount(
        content,
        h("div", { class: "split" }, section("Site cap", sentence, site.el), iface.el),
        section("Zone caps", zones.el),
        section("Modbus clients", clients.el),
        section("Log of writes", h("p", { class: "muted" }, "Newest first."), log.el),
      );
    }
    const now = Date.now();
    for (const cap of [view.site, ...view.zones]) {
      const key = targetKey(cap.target);
      if (cap.state !== "written") {
        deadlines.delete(key);
        continue;
      }
      // Keep the deadline unless it moved by a second or more (a new write), so that the
      // request's own delay does not make the countdown jitter.
      const end = now + cap.remaining_s * 1000;
      const before = deadlines.get(key);
      if (before === undefined || Math.abs(before - end) >= 1000) deadlines.set(key, end);
    }
    heartbeat.textContent = String(view.heartbeat);
    const words = siteSentence(view.site);
    if (sentence.textContent !== words) sentence.textContent = words;
    sentence.className = `callout ${view.site.state === "written" ? "info" : view.site.state === "failsafe" ? "warn" : ""}`;
    const { clients: c, log: l, site: s, zones: z, heartbeat: _, ...rest } = view;
    iface.show(rest, () => interfacePanel(view, heartbeat));
    site.show(still(s), () => siteDetails(s, refresh));
    zones.show(z.map(still), () => zonesTable(z, refresh));
    clients.show([c, view.refused_connections, view.modbus_listen], () => clientsPanel(view));
    log.show(l, () => logTable(l));
    tick();
  };

  let stopped = false;
  let busy = false;
  let last = null;
  const load = async () => {
    if (busy || stopped) return;
    busy = true;
    try {
      const view = await api.get("/api/v1/bms");
      if (stopped) return;
      last = new Date();
      updated.textContent = `Updated ${last.toLocaleTimeString()} (every second).`;
      show(view);
    } catch (error) {
      if (!stopped) updated.textContent = `Not updated since ${last ? last.toLocaleTimeString() : "the page opened"}: ${error.message}`;
      throw error;
    } finally {
      busy = false;
    }
  };
  // After an action: poll at once rather than waiting for the next tick.
  const refresh = () => load().catch(() => {});
  await load();
  const timer = setInterval(refresh, 1000);
  const ticker = setInterval(tick, 250);
  return () => {
    stopped = true;
    clearInterval(timer);
    clearInterval(ticker);
  };
}
