// Logging in, the first start (setup code and admin password), the setup assistant
// (site, zones, meters, stations, badges) and one's own account.

import { api, session, login } from "../api.js";
import { h, mount, heading, section, field, form, notify } from "../ui.js";
import { settingsForm, zonesCard, metersCard } from "./config.js";
import { commissioning } from "./stations.js";
import { badges } from "./badges.js";

export async function loginView(main, render) {
  mount(
    main,
    h(
      "div",
      { class: "narrow" },
      h("h1", { tabindex: "-1" }, "Log in"),
      form(
        { "aria-label": "Log in" },
        [
          field("name", "Name", { required: true, autocomplete: "username" }),
          field("password", "Password", { type: "password", required: true, autocomplete: "current-password" }),
        ],
        "Log in",
        async (v) => {
          await login(v.name, v.password);
          location.hash = "#/";
          await render();
        },
      ),
    ),
  );
  main.querySelector("input").focus();
}

export async function setupView(main, render) {
  const state = await api.get("/api/v1/setup");
  if (!state.needed) {
    location.hash = session.user ? "#/" : "#/login";
    return;
  }
  mount(
    main,
    h(
      "div",
      { class: "narrow" },
      h("h1", { tabindex: "-1" }, "Welcome to ampwarden"),
      h(
        "p",
        {},
        "This controller has no user yet. The one-time setup code was printed in its console and log when it started (a line with “One-time setup code”). Enter it with the administrator's password.",
      ),
      form(
        { "aria-label": "First start" },
        [
          field("code", "Setup code", { required: true, placeholder: "XXXX-XXXX-XXXX", autocomplete: "one-time-code" }),
          field("name", "Administrator name", { value: "admin", required: true, autocomplete: "username" }),
          field("password", "Password (10 characters or more)", { type: "password", required: true, autocomplete: "new-password" }),
          field("confirm", "Password again", { type: "password", required: true, autocomplete: "new-password" }),
        ],
        "Create the administrator",
        async (v) => {
          if (v.password !== v.confirm) {
            throw Object.assign(new Error("the two passwords differ"), { field: "confirm" });
          }
          session.user = await api.post("/api/v1/setup", { code: v.code, name: v.name, password: v.password });
          notify("Administrator created; let us set up the site");
          location.hash = "#/wizard/site";
          await render();
        },
      ),
    ),
  );
  main.querySelector("input").focus();
}

const STEPS = [
  ["site", "Site"],
  ["zones", "Zones"],
  ["meters", "Meters"],
  ["stations", "Stations"],
  ["badges", "Badges"],
];

/** Shows a page's own title as a section title inside the assistant. */
function demoteTitles(el) {
  for (const title of el.querySelectorAll("h1")) {
    title.replaceWith(h("h2", {}, ...title.childNodes));
  }
}

/** The setup assistant: one step per page, each using the same forms as Configuration. */
export async function wizard(main, step = "site") {
  const index = Math.max(0, STEPS.findIndex(([s]) => s === step));
  const [current, title] = STEPS[index];
  const body = h("div");
  const steps = h(
    "ol",
    { class: "steps" },
    STEPS.map(([s, label], i) => h("li", { "aria-current": i === index ? "step" : undefined }, h("a", { href: `#/wizard/${s}` }, label))),
  );
  const back = index > 0 ? h("a", { class: "button", href: `#/wizard/${STEPS[index - 1][0]}` }, "Back") : null;
  const next =
    index < STEPS.length - 1
      ? h("a", { class: "button primary", href: `#/wizard/${STEPS[index + 1][0]}` }, `Next: ${STEPS[index + 1][1]}`)
      : h("a", { class: "button primary", href: "#/" }, "Finish: to the dashboard");
  mount(main, heading(`Setup · ${title}`), steps, body, h("div", { class: "buttons wizard-nav" }, back, next));

  const reload = () => wizard(main, current);
  if (current === "site") {
    const settings = await api.get("/api/v1/settings");
    mount(body, h("p", {}, "Name the site and choose how budgets are set: static (fixed amperes per zone) or dynamic (following a meter)."), section("Site settings", settingsForm(settings)));
  } else if (current === "zones") {
    mount(body, h("p", {}, "Describe the electrical tree: the main supply and, below it, the panels the stations hang on, each with its breaker limit."), await zonesCard(reload));
  } else if (current === "meters") {
    mount(body, h("p", {}, "Add the Modbus meters that measure the zones (optional in static mode), then attach them to their zones in the previous step. “Read now” shows the meter's latest reading."), await metersCard(reload));
  } else if (current === "stations") {
    const inner = h("div");
    mount(body, h("p", {}, "Point the stations at this controller (ws://THIS-HOST:PORT/ocpp/ID). Those that try to connect appear below; accept them into their zone. You can also add them by hand in Stations."), inner);
    const stop = await commissioning(inner);
    demoteTitles(inner);
    return stop;
  } else {
    const inner = h("div");
    mount(body, h("p", {}, "Add the badges allowed to charge, or import them from a CSV file."), inner);
    await badges(inner);
    demoteTitles(inner);
  }
  return undefined;
}

export async function account(main) {
  mount(
    main,
    heading("Your account"),
    h("p", {}, `${session.user.name}, ${session.user.role}.`),
    section(
      "Change your password",
      form(
        {},
        [
          field("current", "Current password", { type: "password", autocomplete: "current-password" }),
          field("password", "New password (10 characters or more)", { type: "password", autocomplete: "new-password" }),
        ],
        "Change password",
        async (v, el) => {
          await api.put("/api/v1/auth/password", v);
          el.reset();
          notify("Password changed; your other sessions were ended");
        },
      ),
    ),
  );
}
