// Stations: the list (on a federation primary, with its secondaries' stations), one
// station with its remote actions, configuration keys, firmware and diagnostics, and the
// commissioning scan (stations that knocked).

import { api, can } from "../api.js";
import {
  h, mount, amps, perPhase, kwh, when, heading, section, table, badge, field, form, act,
  notify, dialog, confirmDialog,
} from "../ui.js";
import { subscribe, sessionOf } from "../live.js";
import { resetButton, stopButton, hasSession } from "./federation.js";

const PHASES = [["3", "3 phases"], ["1", "1 phase"]];
const PHASE = [["L1", "L1"], ["L2", "L2"], ["L3", "L3"]];

async function zoneChoices() {
  const zones = await api.get("/api/v1/zones");
  return zones.map((z) => [z.id, z.id]);
}

/** The station fields of the configuration file, for adding and editing. */
function stationFields(zones, s = {}) {
  return [
    field("zone", "Zone", { choices: zones, value: s.zone }),
    field("max_current_a", "Maximum current (A per phase)", { type: "number", step: "0.1", min: "0", value: s.max_current_a ?? 32, required: true }),
    field("phases", "Phases", { choices: PHASES, value: s.phases ?? 3 }),
    field("phase", "Phase (1-phase stations)", { choices: PHASE, value: s.phase ?? "L1" }),
    field("connectors", "Connectors", { type: "number", min: "1", max: "10", value: s.connectors ?? 1 }),
    field("vip", "VIP station (shed last)", { type: "checkbox", value: s.vip }),
    field("password", s.has_password ? "New OCPP password (empty: keep; a single space: remove)" : "OCPP password (optional)", {
      type: "password",
      autocomplete: "new-password",
    }),
  ];
}

function stationBody(v, editing) {
  const body = {
    zone: v.zone,
    max_current_a: v.max_current_a,
    phases: Number(v.phases),
    phase: v.phase,
    connectors: v.connectors,
    vip: v.vip,
  };
  if (v.password === " ") body.password = "";
  else if (v.password) body.password = v.password;
  else if (!editing) body.password = "";
  return body;
}

/** Which control loop decided a session's limit (see docs/allocation.md). */
const LOOP = { allocation: "allocation", hold: "hold", safety_cut: "safety cut" };

// A station of a secondary, as the primary last heard of it: what its report says; its
// page is the Federation view, and its actions are relayed there.
function secondaryStationRow(s, operator, refresh) {
  const charging = s.connectors.filter(hasSession).length;
  const cells = [
    h("a", { href: "#/federation", title: `A station of secondary ${s.secondary}: see the Federation view` }, s.id),
    s.secondary,
    s.zone,
    s.connected ? badge("online", "good") : badge("offline", "bad"),
    charging ? `${charging} charging` : "–",
    "–",
    "–",
    "",
    "–",
    "–",
    "",
  ];
  if (operator) {
    cells.push(h("span", { class: "buttons inline" }, resetButton(s, refresh), s.connectors.filter(hasSession).map((c) => stopButton(s, c, refresh))));
  }
  return cells;
}

export async function stations(main) {
  const list = h("div");
  const zones = await zoneChoices();
  // On a federation primary the secondaries' stations are listed too, with a Secondary
  // column; they are polled every 5 s as in the Federation view (the events feed carries
  // this controller's stations only).
  const primary = await api.get("/api/v1/federation").then((f) => f.role === "primary", () => false);
  const operator = can("operator");
  const addButton = can("admin") ? h("button", { type: "button", class: "primary" }, "Add station") : null;
  mount(main, heading("Stations", addButton), list);

  if (addButton) {
    addButton.addEventListener("click", () => {
      const box = dialog(
        "Add a station",
        form({}, [field("id", "Charge point id (OCPP)", { required: true }), ...stationFields(zones)], "Add", async (v) => {
          const body = Object.assign({ id: v.id }, stationBody(v, false));
          await api.post("/api/v1/stations", body);
          box.close();
          notify(`Station ${v.id} added`);
          location.hash = `#/station/${encodeURIComponent(v.id)}`;
        }),
      );
    });
  }

  let live = null;
  let remote = [];
  let remoteShown = null;
  const draw = () => {
    if (!live) return;
    const rows = [...live.stations.values()].map((s) => {
      const l = s.live;
      const connected = l && l.connected;
      const charging = l ? l.connectors.filter((c) => c.transaction).length : 0;
      const cells = [
        h("a", { href: `#/station/${encodeURIComponent(s.id)}` }, s.id),
        s.config.zone,
        connected ? badge("online", "good") : badge("offline", "bad"),
        charging ? `${charging} charging` : "–",
        amps(s.config.max_current_a),
        s.config.phases === 1 ? `1 (${s.config.phase})` : "3",
        s.config.vip ? badge("VIP", "info") : "",
        l && l.vendor ? `${l.vendor} ${l.model || ""}` : "–",
        l && l.last_seen ? when(l.last_seen) : "–",
        securityBadge(l),
      ];
      if (primary) {
        cells.splice(1, 0, "–");
        if (operator) cells.push("");
      }
      return cells;
    });
    const headers = ["Station", "Zone", "Connection", "Sessions", "Max", "Phases", "", "Model", "Last seen", "Security"];
    if (primary) {
      headers.splice(1, 0, "Secondary");
      if (operator) headers.push("");
      rows.push(...remote.map((s) => secondaryStationRow(s, operator, refresh)));
    }
    mount(list, table("Stations", headers, rows, "No stations configured."));
  };
  const loadRemote = async () => {
    const answer = await api.get("/api/v1/federation/stations");
    const text = JSON.stringify(answer);
    if (text === remoteShown) return;
    remoteShown = text;
    remote = answer;
    draw();
  };
  // After a relayed action: poll at once rather than waiting for the next tick.
  const refresh = () => loadRemote().catch(() => {});
  if (primary) await refresh();
  const unsubscribe = subscribe((state) => {
    live = state;
    draw();
  });
  if (!primary) return unsubscribe;
  const timer = setInterval(refresh, 5000);
  return () => {
    clearInterval(timer);
    unsubscribe();
  };
}

// --- one station --------------------------------------------------------------------------

/** A badge for a station that reported a critical security event (OCPP security extension). */
function securityBadge(l) {
  const sec = l && l.security;
  if (!sec || !sec.critical) return "";
  const [kind, at] = sec.last_critical || ["", null];
  const b = badge(`${sec.critical} critical`, "bad");
  b.title = `Last: ${kind}${at ? ` at ${when(at)}` : ""}`;
  return b;
}

/** What the station reported of the security extension: events, signed firmware, logs. */
function securityCard(station) {
  const sec = station.live && station.live.security;
  if (!sec || (!sec.events && !sec.signed_firmware && !sec.log_upload)) return null;
  const lines = [];
  if (sec.last_critical) {
    const [kind, at, info] = sec.last_critical;
    lines.push(h("p", { class: "callout warn", role: "status" }, `Critical security event: ${kind} at ${when(at)}${info ? ` (${info})` : ""}.`));
  }
  lines.push(h("p", {}, `${sec.events} security event(s) since the controller started, ${sec.critical} critical; every one is in the log.`));
  if (sec.signed_firmware) lines.push(h("p", {}, `Signed firmware update: ${sec.signed_firmware[0]}${sec.signed_firmware[1] !== null ? ` (request ${sec.signed_firmware[1]})` : ""}.`));
  if (sec.log_upload) lines.push(h("p", {}, `Log upload: ${sec.log_upload[0]}${sec.log_upload[1] !== null ? ` (request ${sec.log_upload[1]})` : ""}.`));
  return section("Security", ...lines);
}

function actionsCard(id, station, site) {
  const post = (action, body, what) =>
    act(what, async () => {
      const answer = await api.post(`/api/v1/stations/${encodeURIComponent(id)}/actions/${action}`, body);
      if (answer.status && !["Accepted", "Unlocked"].includes(answer.status)) {
        throw new Error(`The station answered ${answer.status}`);
      }
    });
  const connectors = station.live ? station.live.connectors : [];
  const rows = connectors.map((c) => {
    const tx = c.transaction;
    const s = sessionOf(site, id, c.connector);
    const stop = tx && can("operator") ? h("button", { type: "button", class: "danger" }, "Stop") : null;
    if (stop) stop.addEventListener("click", () => post("stop", { transaction_id: tx.id }, `Stop of session ${tx.id} sent`));
    const unlock = can("operator") ? h("button", { type: "button" }, "Unlock") : null;
    if (unlock) unlock.addEventListener("click", () => post("unlock", { connector: c.connector }, `Connector ${c.connector} unlocked`));
    return [
      String(c.connector),
      badge(c.status),
      amps(c.limit_in_force),
      perPhase(c.draw),
      c.phases_in_use ? c.phases_in_use.join(" ") : tx ? "all (not yet detected)" : "–",
      tx ? `${tx.id_tag} · ${kwh(tx.energy_wh)} · since ${when(tx.started_at)}` : "–",
      s ? h("span", {}, badge(LOOP[s.control_loop] || s.control_loop, s.control_loop === "safety_cut" ? "bad" : "info"), " ", s.why) : "–",
      h("span", { class: "buttons inline" }, stop, unlock),
    ];
  });
  const children = [
    table("Connectors", ["Connector", "Status", "Limit in force", "Draw", "Phases in use", "Session", "Why this limit", ""], rows, "The station has not reported its connectors yet."),
  ];
  if (can("operator")) {
    children.push(
      h("h3", {}, "Remote actions"),
      form(
        { class: "inline-form" },
        [
          field("connector", "Connector", { type: "number", min: "1", value: 1 }),
          field("id_tag", "Badge (id tag)", { required: true }),
        ],
        "Start charging",
        (v) => post("start", { connector: v.connector, id_tag: v.id_tag }, "Remote start sent"),
      ),
    );
    const soft = h("button", { type: "button" }, "Soft reset");
    const hard = h("button", { type: "button", class: "danger" }, "Hard reset");
    const off = h("button", { type: "button" }, "Take out of service");
    const on = h("button", { type: "button" }, "Put in service");
    soft.addEventListener("click", () => post("reset", { type: "Soft" }, "Soft reset sent"));
    hard.addEventListener("click", async () => {
      if (await confirmDialog(`Hard reset ${id}? Running sessions are cut.`, "Hard reset")) post("reset", { type: "Hard" }, "Hard reset sent");
    });
    off.addEventListener("click", () => post("availability", { available: false }, "The station is out of service"));
    on.addEventListener("click", () => post("availability", { available: true }, "The station is in service"));
    children.push(h("div", { class: "buttons" }, soft, hard, off, on));
  }
  return section("Connectors and actions", children);
}

function keysCard(id) {
  const out = h("div");
  const read = h("button", { type: "button" }, "Read all keys from the station");
  read.addEventListener("click", () =>
    act(null, async () => {
      read.disabled = true;
      try {
        const answer = await api.get(`/api/v1/stations/${encodeURIComponent(id)}/configuration`);
        mount(out, table("Configuration keys", ["Key", "Value", ""], answer.keys.map((k) => [k.key, k.value ?? "", k.readonly ? "read-only" : ""]), "The station reported no keys."));
      } finally {
        read.disabled = false;
      }
    }),
  );
  const children = [h("div", { class: "buttons" }, read), out];
  if (can("admin")) {
    children.push(
      h("h3", {}, "Change a key"),
      form({ class: "inline-form" }, [field("key", "Key", { required: true }), field("value", "Value")], "Change", async (v) => {
        const answer = await api.put(`/api/v1/stations/${encodeURIComponent(id)}/configuration`, v);
        notify(`${v.key}: ${answer.status}`, answer.status === "Accepted" ? "ok" : "error");
      }),
      h("h3", {}, "Firmware and diagnostics"),
      form({ class: "inline-form" }, [field("location", "Firmware URL", { required: true, placeholder: "https://…/firmware.bin" })], "Update firmware", async (v) => {
        await api.post(`/api/v1/stations/${encodeURIComponent(id)}/firmware`, { location: v.location });
        notify("Firmware update requested");
      }),
      form({ class: "inline-form" }, [field("location", "Upload diagnostics to", { required: true, placeholder: "ftp://…/" })], "Request diagnostics", async (v) => {
        const answer = await api.post(`/api/v1/stations/${encodeURIComponent(id)}/diagnostics`, { location: v.location });
        notify(answer.file_name ? `Diagnostics: ${answer.file_name}` : "Diagnostics requested");
      }),
    );
  }
  return section("Station configuration keys", children);
}

export async function stationDetail(main, id) {
  const detail = await api.get(`/api/v1/stations/${encodeURIComponent(id)}`);
  const zones = await zoneChoices();
  const top = h("div");
  const live = h("div");
  const settings = h("div");
  const remove = can("admin") ? h("button", { type: "button", class: "danger" }, "Remove station") : null;
  if (remove) {
    remove.addEventListener("click", async () => {
      if (!(await confirmDialog(`Remove station ${id}? It is disconnected and refused until added again.`, "Remove"))) return;
      await act(`Station ${id} removed`, () => api.del(`/api/v1/stations/${encodeURIComponent(id)}`));
      location.hash = "#/stations";
    });
  }
  mount(main, heading(`Station ${id}`, remove), top, live, settings, can("operator") ? keysCard(id) : null);

  const r = detail.record || {};
  mount(
    top,
    h(
      "p",
      { class: "muted" },
      [r.vendor, r.model].filter(Boolean).join(" ") || "Model not reported yet",
      r.firmware ? ` · firmware ${r.firmware}` : "",
      r.first_seen ? ` · first seen ${when(r.first_seen)}` : "",
    ),
  );
  if (can("admin")) {
    mount(
      settings,
      section(
        "Settings",
        form({}, stationFields(zones, detail.config), "Save settings", async (v) => {
          await api.put(`/api/v1/stations/${encodeURIComponent(id)}`, stationBody(v, true));
          notify("Settings saved and in force");
        }),
      ),
    );
  } else {
    const c = detail.config;
    mount(settings, section("Settings", h("p", {}, `Zone ${c.zone}, at most ${amps(c.max_current_a)}, ${c.phases === 1 ? `1 phase (${c.phase})` : "3 phases"}${c.vip ? ", VIP" : ""}.`)));
  }
  return subscribe((state) => {
    const station = state.stations.get(id) || detail;
    const connected = station.live && station.live.connected;
    mount(live, h("p", {}, connected ? badge("online", "good") : badge("offline", "bad")), actionsCard(id, station, state.site), securityCard(station));
  });
}

// --- commissioning --------------------------------------------------------------------------

export async function commissioning(main) {
  const list = h("div");
  const zones = await zoneChoices();
  const settings = await api.get("/api/v1/settings");
  const scanning = settings.server.accept_unknown_stations;
  const refresh = h("button", { type: "button" }, "Refresh");
  mount(
    main,
    heading("Commissioning scan", refresh),
    h(
      "p",
      {},
      scanning
        ? `The scan is on: unknown stations that connect are added to zone ${settings.server.default_zone} at once.`
        : "Unknown stations that try to connect are refused and listed here; accept them into a zone. (To add them at once, set server.accept_unknown_stations in the configuration file.)",
    ),
    list,
  );
  const load = async () => {
    const waiting = await api.get("/api/v1/commissioning");
    const rows = waiting.map((r) => {
      const accept = can("admin")
        ? form({ class: "inline-form" }, [field("zone", "Zone", { choices: zones })], "Accept", async (v) => {
            await api.post(`/api/v1/commissioning/${encodeURIComponent(r.id)}/accept`, { zone: v.zone });
            notify(`Station ${r.id} accepted into zone ${v.zone}; it may connect now`);
            await load();
          })
        : "";
      return [r.id, when(r.first_seen), when(r.last_seen), accept];
    });
    const parts = [table("Stations waiting", ["Station", "First seen", "Last seen", ""], rows, "No unknown station has tried to connect.")];
    if (can("admin") && waiting.length > 1) {
      parts.push(
        section(
          "Accept all",
          form({ class: "inline-form" }, [field("zone", "Zone", { choices: zones })], `Accept all ${waiting.length}`, async (v) => {
            const answer = await api.post("/api/v1/commissioning/accept-all", { zone: v.zone });
            notify(`${answer.accepted.length} stations accepted`);
            await load();
          }),
        ),
      );
    }
    mount(list, parts);
  };
  refresh.addEventListener("click", () => act(null, load));
  await load();
  const timer = setInterval(() => load().catch(() => {}), 5000);
  return () => clearInterval(timer);
}
