// Configuration: site settings, zones, meters (with "read now"), tariffs, and save &
// restore. Every change is checked like the configuration file and in force at once.

import { api, can } from "../api.js";
import {
  h, mount, amps, perPhase, heading, section, table, field, form, notify, dialog, confirmDialog, act, badge,
} from "../ui.js";

/** Turns {"site.name": "x"} into {site: {name: "x"}}. */
function nested(flat) {
  const out = {};
  for (const [key, value] of Object.entries(flat)) {
    const parts = key.split(".");
    let at = out;
    for (const p of parts.slice(0, -1)) at = at[p] = at[p] || {};
    at[parts[parts.length - 1]] = value;
  }
  return out;
}

function emptyToNull(v) {
  return v === "" || v === undefined ? null : v;
}

// --- site settings -------------------------------------------------------------------------

export function settingsForm(s, after) {
  const site = s.site;
  const c = s.control;
  return form(
    {},
    [
      h("h3", {}, "Site"),
      field("site.name", "Site name", { value: site.name, required: true }),
      field("site.mode", "Mode", { choices: [["dynamic", "Dynamic (meters)"], ["static", "Static (fixed)"]], value: site.mode }),
      field("site.voltage_v", "Phase-to-neutral voltage (V)", { type: "number", step: "1", value: site.voltage_v }),
      field("site.timezone", "Time zone (IANA, for tariffs)", { value: site.timezone }),
      h("h3", {}, "Control"),
      field("control.min_current_a", "Minimum current of a vehicle (A)", { type: "number", step: "0.1", value: c.min_current_a }),
      field("control.safety_margin_a", "Safety margin under dynamic limits (A)", { type: "number", step: "0.1", value: c.safety_margin_a }),
      field("control.shedding_strategy", "Who is suspended first", {
        choices: [["energy", "Most energy since start"], ["connection_time", "Connected longest"]],
        value: c.shedding_strategy,
      }),
      field("control.rotation_minutes", "Rotation of suspended vehicles (min)", { type: "number", value: c.rotation_minutes }),
      field("control.interval_s", "Re-allocation interval (s)", { type: "number", value: c.interval_s }),
      field("control.meter_stale_after_s", "Meter stale after (s)", { type: "number", value: c.meter_stale_after_s }),
      field("control.increase_hold_s", "Hold increases for (s)", { type: "number", value: c.increase_hold_s }),
      h("h3", {}, "Badges"),
      field("auth.mode", "Who may charge", {
        choices: [["local", "Known badges only"], ["accept_all", "Every badge"], ["uplink", "Ask the CPO backend"]],
        value: s.auth.mode,
      }),
    ],
    "Save settings",
    async (v) => {
      await api.put("/api/v1/settings", nested(v));
      notify("Settings saved and in force");
      if (after) await after();
    },
  );
}

function settingsText(s) {
  const row = (k, v) => h("div", { class: "kv" }, h("dt", {}, k), h("dd", {}, String(v)));
  return h(
    "dl",
    {},
    row("Site", s.site.name),
    row("Mode", s.site.mode),
    row("Time zone", s.site.timezone),
    row("Minimum current", amps(s.control.min_current_a)),
    row("Safety margin", amps(s.control.safety_margin_a)),
    row("Shedding", s.control.shedding_strategy),
    row("Badges", s.auth.mode),
  );
}

// --- zones ---------------------------------------------------------------------------------

export function zoneFields(z, zones, meters) {
  const none = [["", "—"]];
  return [
    z ? null : field("id", "Zone id", { required: true }),
    field("parent", "Parent zone", { choices: none.concat(zones.filter((x) => !z || x.id !== z.id).map((x) => [x.id, x.id])), value: z ? z.parent || "" : "" }),
    field("limit_a", "Limit (A per phase: breaker or subscription)", { type: "number", step: "0.1", value: z ? z.limit_a : "", required: true }),
    field("static_ev_limit_a", "Static EV budget (A; empty: the limit)", { type: "number", step: "0.1", value: z ? z.static_ev_limit_a : "" }),
    field("meter", "Meter", { choices: none.concat(meters.map((m) => [m.config.id, m.config.id])), value: z ? z.meter || "" : "" }),
    field("production_meter", "Production meter (solar)", { choices: none.concat(meters.map((m) => [m.config.id, m.config.id])), value: z ? z.production_meter || "" : "" }),
  ];
}

function zoneBody(v) {
  const body = {
    parent: emptyToNull(v.parent),
    limit_a: v.limit_a,
    static_ev_limit_a: emptyToNull(v.static_ev_limit_a),
    meter: emptyToNull(v.meter),
    production_meter: emptyToNull(v.production_meter),
  };
  for (const k of Object.keys(body)) if (body[k] === null) delete body[k];
  return body;
}

export async function zonesCard(reload) {
  const zones = await api.get("/api/v1/zones");
  const meters = await api.get("/api/v1/meters");
  const admin = can("admin");
  const rows = zones.map((z) => {
    const buttons = [];
    if (admin) {
      const edit = h("button", { type: "button" }, "Edit");
      edit.addEventListener("click", () => {
        const box = dialog(
          `Zone ${z.id}`,
          form({}, zoneFields(z, zones, meters), "Save", async (v) => {
            await api.put(`/api/v1/zones/${encodeURIComponent(z.id)}`, zoneBody(v));
            box.close();
            notify(`Zone ${z.id} saved`);
            await reload();
          }),
        );
      });
      const del = h("button", { type: "button", class: "danger" }, "Remove");
      del.addEventListener("click", async () => {
        if (!(await confirmDialog(`Remove zone ${z.id}?`, "Remove"))) return;
        await act(`Zone ${z.id} removed`, () => api.del(`/api/v1/zones/${encodeURIComponent(z.id)}`));
        await reload();
      });
      buttons.push(edit, del);
    }
    return [z.id, z.parent || "—", amps(z.limit_a), z.static_ev_limit_a ? amps(z.static_ev_limit_a) : "—", z.meter || "—", h("span", { class: "buttons inline" }, buttons)];
  });
  const add = admin ? h("button", { type: "button" }, "Add zone") : null;
  if (add) {
    add.addEventListener("click", () => {
      const box = dialog(
        "Add a zone",
        form({}, zoneFields(null, zones, meters), "Add", async (v) => {
          await api.post("/api/v1/zones", Object.assign({ id: v.id }, zoneBody(v)));
          box.close();
          notify(`Zone ${v.id} added`);
          await reload();
        }),
      );
    });
  }
  return section("Zones", table("Zones", ["Zone", "Parent", "Limit", "Static EV budget", "Meter", ""], rows), h("div", { class: "buttons" }, add));
}

// --- meters ---------------------------------------------------------------------------------

const PROFILES = [["iem3155", "Schneider iEM3155"], ["pm5320", "Schneider PM5320"], ["powertag", "PowerTag (Smartlink)"], ["mtz", "MasterPact MTZ"], ["nsx", "ComPact NSX"]];
const MEASURES = [["total", "Total (includes the chargers)"], ["other_loads", "Other loads only"], ["production", "Production (solar)"]];

export function meterFields(m) {
  return [
    m ? null : field("id", "Meter id", { required: true }),
    field("protocol", "Protocol", { choices: [["modbus-tcp", "Modbus TCP"], ["modbus-rtu", "Modbus RTU (serial)"]], value: m ? m.protocol : "modbus-tcp" }),
    field("address", "Address (host:port or serial device)", { value: m ? m.address : "", required: true, placeholder: "192.168.1.50:502" }),
    field("unit_id", "Unit id", { type: "number", min: "0", max: "255", value: m ? m.unit_id : 1 }),
    field("profile", "Profile", { choices: m && m.profile === "generic" ? [["generic", "Generic (from the file)"]] : PROFILES, value: m ? m.profile : "iem3155" }),
    field("measures", "Measures", { choices: MEASURES, value: m ? m.measures : "total" }),
    field("poll_ms", "Poll every (ms)", { type: "number", min: "100", value: m ? m.poll_ms : 1000 }),
  ];
}

function meterBody(v, m) {
  const body = Object.assign({}, m || {}, {
    protocol: v.protocol,
    address: v.address,
    unit_id: v.unit_id,
    profile: v.profile,
    measures: v.measures,
    poll_ms: v.poll_ms,
  });
  delete body.id;
  return body;
}

function readingText(status) {
  if (!status) return "not polled";
  if (status.reading) {
    const age = status.age_s !== null && status.age_s !== undefined ? ` · ${status.age_s.toFixed(1)} s ago` : "";
    return `${perPhase(status.reading.currents)}${age}${status.stale ? " · stale" : ""}`;
  }
  return status.last_error ? `no reading: ${status.last_error}` : "no reading yet";
}

export async function metersCard(reload) {
  const meters = await api.get("/api/v1/meters");
  const admin = can("admin");
  const rows = meters.map(({ config: m, status }) => {
    const read = h("button", { type: "button" }, "Read now");
    const shown = h("span", {}, readingText(status));
    read.addEventListener("click", () =>
      act(null, async () => {
        const fresh = await api.get(`/api/v1/meters/${encodeURIComponent(m.id)}/reading`);
        shown.textContent = readingText(fresh);
      }),
    );
    const buttons = [read];
    if (admin) {
      const edit = h("button", { type: "button" }, "Edit");
      edit.addEventListener("click", () => {
        const box = dialog(
          `Meter ${m.id}`,
          form({}, meterFields(m), "Save", async (v) => {
            await api.put(`/api/v1/meters/${encodeURIComponent(m.id)}`, meterBody(v, m));
            box.close();
            notify(`Meter ${m.id} saved`);
            await reload();
          }),
        );
      });
      const del = h("button", { type: "button", class: "danger" }, "Remove");
      del.addEventListener("click", async () => {
        if (!(await confirmDialog(`Remove meter ${m.id}?`, "Remove"))) return;
        await act(`Meter ${m.id} removed`, () => api.del(`/api/v1/meters/${encodeURIComponent(m.id)}`));
        await reload();
      });
      buttons.push(edit, del);
    }
    const health = !status ? badge("off", "bad") : status.stale ? badge("stale", "warn") : badge("reading", "good");
    return [m.id, m.profile, m.address, m.measures, health, shown, h("span", { class: "buttons inline" }, buttons)];
  });
  const add = admin ? h("button", { type: "button" }, "Add meter") : null;
  if (add) {
    add.addEventListener("click", () => {
      const box = dialog(
        "Add a meter",
        form({}, meterFields(null), "Add", async (v) => {
          await api.post("/api/v1/meters", Object.assign({ id: v.id }, meterBody(v, null)));
          box.close();
          notify(`Meter ${v.id} added`);
          await reload();
        }),
      );
    });
  }
  return section(
    "Meters",
    table("Meters", ["Meter", "Profile", "Address", "Measures", "State", "Latest reading", ""], rows, "No meters: zones use their static limits."),
    h("div", { class: "buttons" }, add),
  );
}

// --- tariffs ---------------------------------------------------------------------------------

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

async function tariffsCard(reload) {
  const tariffs = await api.get("/api/v1/tariffs");
  const admin = can("admin");
  const save = async (list) => {
    await api.put("/api/v1/tariffs", list);
    notify("Tariff periods saved");
    await reload();
  };
  const rows = tariffs.map((t, i) => {
    const del = admin ? h("button", { type: "button", class: "danger" }, "Remove") : null;
    if (del) del.addEventListener("click", () => act(null, () => save(tariffs.filter((_, j) => j !== i))));
    return [t.name, t.days.join(", "), `${t.from}–${t.to}`, `${t.ev_cap_pct} %`, String(t.price_per_kwh), del];
  });
  const parts = [table("Tariff periods", ["Name", "Days", "Hours", "EV cap", "Price/kWh", ""], rows, "No tariff periods: the EV budget is never capped by time.")];
  if (admin) {
    parts.push(
      h("h3", {}, "Add a period"),
      form(
        { class: "inline-form" },
        [
          field("name", "Name", { required: true }),
          field("days", "Days (comma separated)", { value: "mon,tue,wed,thu,fri" }),
          field("from", "From", { type: "time", value: "17:00" }),
          field("to", "To", { type: "time", value: "21:00" }),
          field("ev_cap_pct", "EV cap (%)", { type: "number", value: 100 }),
          field("price_per_kwh", "Price per kWh", { type: "number", step: "0.01", value: 0 }),
        ],
        "Add period",
        async (v) => {
          const days = v.days.split(",").map((d) => d.trim().toLowerCase()).filter((d) => d);
          const period = { name: v.name, days, from: v.from, to: v.to, ev_cap_pct: v.ev_cap_pct, price_per_kwh: v.price_per_kwh };
          try {
            await save(tariffs.concat([period]));
          } catch (error) {
            // "[3].days[0]" → the field of the new row.
            if (error.field) error.field = String(error.field).replace(/^\[\d+\]\./, "").replace(/\[\d+\]$/, "");
            throw error;
          }
        },
      ),
      h("p", { class: "muted" }, `Days: ${DAYS.join(", ")}. A period ending before it starts runs past midnight.`),
    );
  }
  return section("Tariffs", parts);
}

// --- save & restore ----------------------------------------------------------------------------

function backupCard() {
  const file = h("input", { type: "file", accept: ".json,application/json", id: "restore-file", name: "file" });
  return section(
    "Save and restore",
    h("p", {}, "One file holds the zones, meters, stations, tariffs, settings, badges, users and API tokens. Sessions and the log are not part of it."),
    h(
      "div",
      { class: "buttons" },
      h("a", { class: "button", href: "/api/v1/config", download: "ampwarden-backup.json" }, "Download backup"),
      h("a", { class: "button", href: "/api/v1/config.toml", download: "ampwarden.toml" }, "Download as TOML"),
    ),
    form({}, [h("div", { class: "field" }, h("label", { for: "restore-file" }, "Backup file"), file)], "Restore", async () => {
      if (!file.files.length) throw Object.assign(new Error("choose a backup file"), { field: "file" });
      let backup;
      try {
        backup = JSON.parse(await file.files[0].text());
      } catch (error) {
        throw Object.assign(new Error(`not a backup file: ${error.message}`), { field: "file" });
      }
      if (!(await confirmDialog("Replace the whole configuration, the badges and the users with this backup?", "Restore"))) return;
      await api.put("/api/v1/config", backup);
      notify("Backup restored and in force");
    }),
  );
}

export async function configuration(main) {
  const body = h("div");
  mount(main, heading("Configuration"), body);
  const reload = async () => {
    const settings = await api.get("/api/v1/settings");
    const admin = can("admin");
    mount(
      body,
      section("Site settings", admin ? settingsForm(settings, reload) : settingsText(settings)),
      await zonesCard(reload),
      await metersCard(reload),
      await tariffsCard(reload),
      admin ? backupCard() : null,
      h("p", { class: "muted" }, `Listeners: UI on ${settings.server.http_listen}, stations on ${settings.server.ocpp_listen} (set in the configuration file).`),
    );
  };
  await reload();
}
