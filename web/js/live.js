// The live feed: one WebSocket to /api/v1/events while some view listens, holding the
// latest site status and station states; reconnects after a drop.

const state = { site: null, stations: new Map(), connected: false };
const listeners = new Set();
let socket = null;
let retry = null;

function notifyAll() {
  for (const fn of listeners) fn(state);
}

// Every handler checks that its socket is still the current one: a socket closed on a
// page switch reports its close after the next page opened a new one, and must not
// take that one's place (which orphaned a socket per switch).
function open() {
  retry = null;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const mine = new WebSocket(`${scheme}//${location.host}/api/v1/events`);
  socket = mine;
  mine.addEventListener("open", () => {
    if (socket === mine) state.connected = true;
  });
  mine.addEventListener("message", (event) => {
    if (socket !== mine) return;
    const message = JSON.parse(event.data);
    if (message.type === "hello") {
      state.site = message.site;
      state.stations = new Map(message.stations.map((s) => [s.id, s]));
    } else if (message.type === "station") {
      state.stations.set(message.station.id, message.station);
    } else if (message.type === "station_removed") {
      state.stations.delete(message.id);
    } else if (message.type === "site") {
      state.site = message.site;
    }
    notifyAll();
  });
  mine.addEventListener("close", () => {
    if (socket !== mine) return;
    state.connected = false;
    socket = null;
    notifyAll();
    if (listeners.size > 0) retry = setTimeout(open, 3000);
  });
}

/** Calls `fn(state)` on every update until the returned function is called. */
export function subscribe(fn) {
  listeners.add(fn);
  if (!socket && !retry) open();
  if (state.site) fn(state);
  return () => {
    listeners.delete(fn);
    if (listeners.size === 0) {
      clearTimeout(retry);
      retry = null;
      if (socket) {
        const s = socket;
        socket = null;
        s.close();
      }
      state.site = null;
      state.stations = new Map();
    }
  };
}

/** The allocation's view of a connector (limit and why), if it is in a session. */
export function sessionOf(site, station, connector) {
  if (!site || !site.sessions) return undefined;
  return site.sessions.find((s) => s.station === station && s.connector === connector);
}
