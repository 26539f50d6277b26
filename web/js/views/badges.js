// Badges: add, edit, delete, VIP and expiry, CSV export and import, and pushing the
// local authorisation list to the stations.

import { api, can } from "../api.js";
import { h, mount, when, heading, table, badge, field, form, act, notify, dialog, confirmDialog, section } from "../ui.js";

/** `2027-12-31` from an RFC 3339 date-time, for a date input. */
function dateOnly(text) {
  return text ? text.slice(0, 10) : "";
}

/** The end of a chosen day (UTC), or null. */
function endOfDay(date) {
  return date ? `${date}T23:59:59Z` : null;
}

function badgeFields(b = {}) {
  return [
    field("vip", "VIP (charged first, shed last)", { type: "checkbox", value: b.vip }),
    field("expires", "Expires (end of day, empty: never)", { type: "date", value: dateOnly(b.expires) }),
    field("blocked", "Blocked", { type: "checkbox", value: b.blocked }),
    field("note", "Note (who, which vehicle)", { value: b.note || "" }),
  ];
}

function badgeBody(v) {
  return { vip: v.vip, expires: endOfDay(v.expires), blocked: v.blocked, note: v.note || null };
}

export async function badges(main) {
  const list = h("div");
  const operator = can("operator");
  const add = operator ? h("button", { type: "button", class: "primary" }, "Add badge") : null;
  const push = operator ? h("button", { type: "button" }, "Push list to stations") : null;
  const exportLink = h("a", { class: "button", href: "/api/v1/badges.csv", download: "badges.csv" }, "Export CSV");
  mount(main, heading("Badges", add, push, exportLink), list);

  const load = async () => {
    const all = await api.get("/api/v1/badges");
    const now = new Date();
    const rows = all.map((b) => {
      const state = b.blocked
        ? badge("blocked", "bad")
        : b.expires && new Date(b.expires) <= now
          ? badge("expired", "warn")
          : badge("valid", "good");
      const buttons = [];
      if (operator) {
        const edit = h("button", { type: "button" }, "Edit");
        edit.addEventListener("click", () => {
          const box = dialog(
            `Badge ${b.id_tag}`,
            form({}, badgeFields(b), "Save", async (v) => {
              await api.put(`/api/v1/badges/${encodeURIComponent(b.id_tag)}`, badgeBody(v));
              box.close();
              notify(`Badge ${b.id_tag} saved`);
              await load();
            }),
          );
        });
        buttons.push(edit);
        if (b.source === "store") {
          const del = h("button", { type: "button", class: "danger" }, "Delete");
          del.addEventListener("click", async () => {
            if (!(await confirmDialog(`Delete badge ${b.id_tag}?`, "Delete"))) return;
            await act(`Badge ${b.id_tag} deleted`, () => api.del(`/api/v1/badges/${encodeURIComponent(b.id_tag)}`));
            await load();
          });
          buttons.push(del);
        }
      }
      return [
        h("code", {}, b.id_tag),
        state,
        b.vip ? badge("VIP", "info") : "",
        b.expires ? when(b.expires) : "never",
        b.note || "",
        b.source === "file" ? "configuration file" : "",
        h("span", { class: "buttons inline" }, buttons),
      ];
    });
    const parts = [table("Badges", ["Id tag", "State", "", "Expires", "Note", "From", ""], rows, "No badges yet.")];
    if (operator) {
      const file = h("input", { type: "file", accept: ".csv,text/csv", id: "badge-csv", name: "file" });
      const replace = field("replace", "Replace the whole stored list (otherwise add and update)", { type: "checkbox" });
      parts.push(
        section(
          "Import from CSV",
          h("p", { class: "muted" }, "Columns: id_tag, vip, expires, blocked, note (as in the export). Every line is checked before anything is saved."),
          form({}, [h("div", { class: "field" }, h("label", { for: "badge-csv" }, "CSV file"), file), replace], "Import", async (v) => {
            if (!file.files.length) throw Object.assign(new Error("choose a CSV file"), { field: "file" });
            const text = await file.files[0].text();
            const answer = await api.csv(`/api/v1/badges.csv${v.replace ? "?replace=true" : ""}`, text);
            notify(`${answer.imported} badges imported`);
            await load();
          }),
        ),
      );
    }
    mount(list, parts);
  };

  if (add) {
    add.addEventListener("click", () => {
      const box = dialog(
        "Add a badge",
        form({}, [field("id_tag", "Id tag (as the reader shows it)", { required: true }), ...badgeFields()], "Add", async (v) => {
          await api.post("/api/v1/badges", Object.assign({ id_tag: v.id_tag }, badgeBody(v)));
          box.close();
          notify(`Badge ${v.id_tag} added`);
          await load();
        }),
      );
    });
  }
  if (push) {
    push.addEventListener("click", () =>
      act(null, async () => {
        const answer = await api.post("/api/v1/badges/push");
        const ok = answer.stations.filter((s) => s.status === "Accepted").length;
        notify(`List of ${answer.badges} badges (version ${answer.list_version}) accepted by ${ok} of ${answer.stations.length} stations`);
      }),
    );
  }
  await load();
}
