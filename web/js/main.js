// The operator UI: the page shell, the navigation and the router (#/path). Each view
// renders into <main> and may return a function that stops what it started.

import { api, session, loadSession, logout, can } from "./api.js";
import { h, mount, notify } from "./ui.js";
import { dashboard } from "./views/dashboard.js";
import { stations, stationDetail, commissioning } from "./views/stations.js";
import { badges } from "./views/badges.js";
import { transactions } from "./views/transactions.js";
import { logs } from "./views/logs.js";
import { configuration } from "./views/config.js";
import { users } from "./views/users.js";
import { federation } from "./views/federation.js";
import { bms } from "./views/bms.js";
import { uplink } from "./views/uplink.js";
import { loginView, setupView, wizard, account } from "./views/setup.js";

const NAV = [
  ["", "Dashboard", "viewer"],
  ["stations", "Stations", "viewer"],
  ["commissioning", "Scan", "viewer"],
  ["federation", "Federation", "viewer"],
  ["bms", "BMS", "viewer"],
  ["uplink", "CPO uplink", "viewer"],
  ["badges", "Badges", "viewer"],
  ["transactions", "Sessions", "viewer"],
  ["logs", "Log", "viewer"],
  ["config", "Configuration", "viewer"],
  ["users", "Users", "admin"],
];

const ROUTES = {
  "": dashboard,
  stations,
  station: stationDetail,
  commissioning,
  federation,
  bms,
  uplink,
  badges,
  transactions,
  logs,
  config: configuration,
  users,
  account,
  wizard,
};

let stop = null;

// Whether this controller is a primary or a secondary, whether it has a BMS interface and
// whether it has a CPO uplink (all come from its file and do not change while it runs):
// the Federation, BMS and CPO uplink entries are shown only then.
let federated = null;
let bmsConfigured = null;
let uplinkConfigured = null;

async function loadFeatures() {
  if (!session.user) {
    federated = null;
    bmsConfigured = null;
    uplinkConfigured = null;
    return;
  }
  // Each asked again on the next page if it failed.
  const asks = [];
  if (federated === null) {
    asks.push(api.get("/api/v1/federation").then((f) => (federated = f.role !== "none"), () => {}));
  }
  if (bmsConfigured === null) {
    asks.push(api.get("/api/v1/bms").then((b) => (bmsConfigured = !!b.configured), () => {}));
  }
  if (uplinkConfigured === null) {
    asks.push(api.get("/api/v1/uplink").then((u) => (uplinkConfigured = !!u.configured), () => {}));
  }
  await Promise.all(asks);
}

// Entries shown only on a controller that has the feature.
const shown = (path) =>
  (path !== "federation" || federated) && (path !== "bms" || bmsConfigured) && (path !== "uplink" || uplinkConfigured);

function currentPath() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [name, ...rest] = hash.split("/");
  return { name, params: rest.map(decodeURIComponent) };
}

function renderNav() {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  if (!session.user) {
    mount(nav);
    mount(who);
    return;
  }
  const { name } = currentPath();
  const active = name === "station" ? "stations" : name;
  mount(
    nav,
    h(
      "ul",
      {},
      NAV.filter(([path, , role]) => can(role) && shown(path)).map(([path, label]) =>
        h("li", {}, h("a", { href: `#/${path}`, "aria-current": path === active ? "page" : undefined }, label)),
      ),
    ),
  );
  const out = h("button", { type: "button", class: "link" }, "Log out");
  out.addEventListener("click", async () => {
    await logout();
    location.hash = "#/login";
    render();
  });
  mount(
    who,
    h("a", { href: "#/account", title: "Your account" }, `${session.user.name} (${session.user.role})`),
    out,
  );
}

export async function render() {
  if (stop) {
    stop();
    stop = null;
  }
  const main = document.getElementById("main");
  const { name, params } = currentPath();
  await loadFeatures();
  renderNav();
  if (name === "setup") {
    stop = await setupView(main, render);
    return;
  }
  if (!session.user) {
    if (name !== "login") {
      location.hash = "#/login";
      return;
    }
    stop = await loginView(main, render);
    return;
  }
  if (name === "login") {
    location.hash = "#/";
    return;
  }
  const view = ROUTES[name];
  if (!view) {
    mount(main, h("h1", { tabindex: "-1" }, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the dashboard")));
    return;
  }
  try {
    stop = (await view(main, ...params)) || null;
  } catch (error) {
    mount(main, h("h1", { tabindex: "-1" }, "Cannot show this page"), h("p", { class: "form-error" }, error.message));
  }
  const title = main.querySelector("h1");
  document.title = title ? `${title.textContent} · ampwarden` : "ampwarden";
  if (title && document.activeElement === document.body) title.focus({ preventScroll: true });
}

async function start() {
  window.addEventListener("hashchange", render);
  window.addEventListener("session-lost", () => {
    notify("Your session ended; please log in again.", "error");
    location.hash = "#/login";
  });
  const setup = await api.get("/api/v1/setup");
  if (setup.needed) {
    location.hash = "#/setup";
  } else {
    await loadSession();
  }
  await render();
}

start().catch((error) => notify(`The UI could not start: ${error.message}`, "error"));
