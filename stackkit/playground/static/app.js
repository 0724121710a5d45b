// The playground: tabs, the API key field, and what every view shares (models, shields, status line).
import { api, ApiError, setKey } from "./api.js";
import { mountAgents } from "./agents.js";
import { mountChat } from "./chat.js";
import { mountCompare } from "./compare.js";
import { mountDocuments } from "./documents.js";

const statusLine = document.getElementById("status");
const listeners = [];
const shared = {
  models: [],     // chat models, as /v1/models lists them
  shields: [],    // shield ids
  apis: new Set(), // the APIs this stack serves (a view whose API is missing says so)
  onChange(fn) { listeners.push(fn); if (this.models.length) fn(this); },
  status(text, kind = "") { statusLine.textContent = text; statusLine.className = kind; },
  fail(error) {
    const text = error instanceof ApiError && error.status === 401
      ? "This server needs an API key: type it in the key field." : `Error: ${error.message}`;
    this.status(text, "error");
  },
};

async function refresh() {
  try {
    const [models, routes] = await Promise.all([api("models"), api("inspect/routes")]);
    shared.models = models.data.filter((m) => (m.model_type ?? "llm") === "llm");
    shared.apis = new Set(routes.data.map((r) => r.api));
    shared.shields = shared.apis.has("shields") ? (await api("shields")).data.map((s) => s.identifier) : [];
    const n = shared.models.length;
    shared.status(n ? `${n} chat model${n === 1 ? "" : "s"}` : "no chat model is configured");
    for (const fn of listeners) fn(shared);
  } catch (error) {
    shared.fail(error);
  }
}

function showTab(name) {
  for (const tab of document.querySelectorAll("#tabs [role=tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.view === name));
  }
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
}

document.getElementById("tabs").addEventListener("click", (e) => {
  const view = e.target.closest("[data-view]")?.dataset.view;
  if (view) showTab(view);
});

const keyField = document.getElementById("api-key");
keyField.addEventListener("change", () => { setKey(keyField.value); refresh(); });
document.getElementById("key-form").addEventListener("submit", (e) => { e.preventDefault(); keyField.blur(); });

mountChat(document.getElementById("view-chat"), shared);
mountCompare(document.getElementById("view-compare"), shared);
mountDocuments(document.getElementById("view-documents"), shared);
mountAgents(document.getElementById("view-agents"), shared);
refresh().then(() => { document.body.dataset.ready = "yes"; });
