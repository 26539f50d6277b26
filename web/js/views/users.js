// Users and API tokens (admins only).

import { api, session } from "../api.js";
import { h, mount, when, heading, section, table, field, form, notify, dialog, confirmDialog, act } from "../ui.js";

const ROLES = [
  ["viewer", "Viewer (reads)"],
  ["bms", "BMS (reads, writes the BMS caps)"],
  ["operator", "Operator (actions, badges)"],
  ["admin", "Admin (everything)"],
];

export async function users(main) {
  const body = h("div");
  mount(main, heading("Users and API tokens"), body);

  const reload = async () => {
    const list = await api.get("/api/v1/users");
    const tokens = await api.get("/api/v1/tokens");
    const userRows = list.map((u) => {
      const edit = h("button", { type: "button" }, "Change");
      edit.addEventListener("click", () => {
        const box = dialog(
          `User ${u.name}`,
          form(
            {},
            [
              field("role", "Role", { choices: ROLES, value: u.role }),
              field("password", "New password (empty: keep)", { type: "password", autocomplete: "new-password" }),
            ],
            "Save",
            async (v) => {
              const change = { role: v.role };
              if (v.password) change.password = v.password;
              await api.put(`/api/v1/users/${encodeURIComponent(u.name)}`, change);
              box.close();
              notify(`User ${u.name} saved`);
              await reload();
            },
          ),
        );
      });
      const del = u.name === session.user.name ? null : h("button", { type: "button", class: "danger" }, "Remove");
      if (del) {
        del.addEventListener("click", async () => {
          if (!(await confirmDialog(`Remove user ${u.name}?`, "Remove"))) return;
          await act(`User ${u.name} removed`, () => api.del(`/api/v1/users/${encodeURIComponent(u.name)}`));
          await reload();
        });
      }
      return [u.name, u.role, when(u.created_at), h("span", { class: "buttons inline" }, edit, del)];
    });
    const tokenRows = tokens.map((t) => {
      const del = h("button", { type: "button", class: "danger" }, "Revoke");
      del.addEventListener("click", async () => {
        if (!(await confirmDialog(`Revoke token ${t.name}? Machines using it are refused at once.`, "Revoke"))) return;
        await act(`Token ${t.name} revoked`, () => api.del(`/api/v1/tokens/${encodeURIComponent(t.id)}`));
        await reload();
      });
      return [t.name, h("code", {}, t.id), t.role, `${when(t.created_at)} by ${t.created_by}`, del];
    });
    mount(
      body,
      section(
        "Users",
        table("Users", ["Name", "Role", "Created", ""], userRows),
        h("h3", {}, "Add a user"),
        form(
          { class: "inline-form" },
          [
            field("name", "Name", { required: true, autocomplete: "off" }),
            field("password", "Password (10 characters or more)", { type: "password", autocomplete: "new-password" }),
            field("role", "Role", { choices: ROLES, value: "viewer" }),
          ],
          "Add user",
          async (v, el) => {
            await api.post("/api/v1/users", v);
            notify(`User ${v.name} added`);
            el.reset();
            await reload();
          },
        ),
      ),
      section(
        "API tokens",
        h("p", { class: "muted" }, "For machines (BMS, scripts): send Authorization: Bearer TOKEN."),
        table("API tokens", ["Name", "Id", "Role", "Created", ""], tokenRows, "No API tokens."),
        h("h3", {}, "Create a token"),
        form(
          { class: "inline-form" },
          [field("name", "What it is for", { required: true }), field("role", "Role", { choices: ROLES, value: "viewer" })],
          "Create token",
          async (v) => {
            const created = await api.post("/api/v1/tokens", v);
            const secret = h("input", { type: "text", readonly: true, value: created.token, "aria-label": "The token", class: "secret" });
            dialog("Your new API token", h("div", {}, h("p", {}, "Copy it now: it is not shown again."), secret));
            secret.select();
            await reload();
          },
        ),
      ),
    );
  };
  await reload();
}
