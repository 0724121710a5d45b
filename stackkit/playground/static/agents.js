// Agents: instructions, MCP servers and file search as tools, the loop's steps as they stream, approvals,
// and conversations (OpenAI's Conversations API) kept on the server and reopened from a list. The list of
// conversation ids is kept in this browser's localStorage (ids and titles only; never a key).
import { api } from "./api.js";
import { field, fillSelect, h } from "./dom.js";
import { Turn } from "./steps.js";
import { modelPicker } from "./ui.js";

const SAVED = "stackkit.playground.conversations";

function saved() {
  try { return JSON.parse(localStorage.getItem(SAVED) ?? "[]"); } catch { return []; }
}

export function mountAgents(view, shared) {
  const model = modelPicker(shared);
  const instructions = h("textarea", { rows: 3, placeholder: "You are a helpful agent.", "aria-label": "instructions" });
  const choice = fillSelect(h("select", { "aria-label": "tool choice" }), [["auto"], ["required"], ["none"]], "auto");
  const servers = h("div", { class: "servers" });
  const useFiles = h("input", { type: "checkbox", "aria-label": "file search" });
  const store = h("select", { "aria-label": "vector store for file search" });
  const list = h("ul", { class: "conversations" });
  const log = h("div", { class: "log" });
  const input = h("textarea", { rows: 3, placeholder: "Ask the agent (Enter sends)", "aria-label": "agent message" });
  const send = h("button", { class: "primary", type: "submit", text: "Send" });
  const stop = h("button", { type: "button", text: "Stop", disabled: true });
  let conversation = null;
  let running = null;

  function addServer(label = "", url = "") {
    const row = h("div", { class: "server" },
      h("input", { placeholder: "label", value: label, "aria-label": "MCP server label", class: "label" }),
      h("input", { placeholder: "http://127.0.0.1:8000/mcp", value: url, "aria-label": "MCP server URL", class: "url" }),
      fillSelect(h("select", { "aria-label": "approval", class: "approval" }), [["never", "run freely"], ["always", "ask me"]], "never"),
      h("button", { type: "button", class: "link", text: "remove", onclick: () => row.remove() }));
    servers.append(row);
  }

  function tools() {
    const chosen = [...servers.querySelectorAll(".server")].map((row) => ({
      type: "mcp", server_label: row.querySelector(".label").value.trim(), server_url: row.querySelector(".url").value.trim(),
      require_approval: row.querySelector(".approval").value,
    })).filter((t) => t.server_label && t.server_url);
    if (useFiles.checked && store.value) chosen.push({ type: "file_search", vector_store_ids: [store.value] });
    return chosen;
  }

  function showList() {
    list.replaceChildren(...saved().map((c) => h("li", {}, h("button", { type: "button", class: c.id === conversation ? "link on" : "link",
      text: c.title, title: c.id, onclick: () => reopen(c.id) }))));
  }

  function newConversation() {
    running?.abort();
    running = null;
    send.disabled = false;
    stop.disabled = true;
    conversation = null;
    log.replaceChildren();
    showList();
  }

  async function reopen(id) {
    newConversation();
    conversation = id;
    log.replaceChildren();
    showList();
    try {
      const { data } = await api(`conversations/${id}/items?order=asc&limit=100`);
      const turn = new Turn(log, model.value, approval);
      for (const item of data) turn.item(item);
    } catch (error) {
      shared.fail(error);
    }
  }

  function approval(item) {
    const answer = (approve) => () => {
      box.replaceChildren(approve ? "approved" : "declined");
      turn([{ type: "mcp_approval_response", approval_request_id: item.id, approve }]);
    };
    const box = h("div", { class: "approve" },
      h("button", { type: "button", class: "primary", text: "Approve", onclick: answer(true) }),
      h("button", { type: "button", text: "Decline", onclick: answer(false) }));
    return box;
  }

  async function turn(input_) {
    if (!conversation) {
      const title = typeof input_ === "string" ? input_.slice(0, 60) : "conversation";
      const created = await api("conversations", { method: "POST", body: { metadata: { title } } });
      conversation = created.id;
      localStorage.setItem(SAVED, JSON.stringify([{ id: conversation, title }, ...saved()].slice(0, 50)));
      showList();
    }
    if (typeof input_ === "string") log.append(h("article", { class: "msg user", text: input_ }));
    const controller = new AbortController();
    running = controller;
    send.disabled = true;
    stop.disabled = false;
    const body = { model: model.value, input: input_, conversation, tools: tools(), tool_choice: choice.value };
    if (instructions.value.trim()) body.instructions = instructions.value;
    await new Turn(log, model.value, approval).run(body, controller.signal);
    if (running !== controller) return;  // a new conversation was started meanwhile
    running = null;
    send.disabled = false;
    stop.disabled = true;
  }

  async function submit(e) {
    e.preventDefault();
    if (running || !input.value.trim() || !model.value) return;
    const text = input.value;
    input.value = "";
    try {
      await turn(text);
    } catch (error) {
      shared.fail(error);
    }
  }

  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey && !e.isComposing) submit(e); });
  stop.addEventListener("click", () => running?.abort());
  shared.onChange(async () => {
    if (!shared.apis.has("vector_io")) return;
    try {
      const { data } = await api("vector_stores?limit=100");
      fillSelect(store, data.map((s) => [s.id, s.name || s.id]), store.value);
    } catch { /* no vector stores on this stack */ }
  });
  addServer();
  showList();

  view.append(
    h("aside", { class: "settings" }, field("Model", model), field("Instructions", instructions), field("Tool choice", choice),
      h("fieldset", {}, h("legend", { text: "MCP servers" }), servers,
        h("button", { type: "button", class: "link", text: "+ add server", onclick: () => addServer() })),
      h("fieldset", {}, h("legend", { text: "File search" }), h("label", {}, useFiles, "search"), store),
      h("h3", { text: "Conversations" }),
      h("button", { type: "button", text: "New conversation", onclick: newConversation }),
      list),
    h("div", { class: "conversation" }, log,
      h("form", { class: "composer", onsubmit: submit }, input, h("div", { class: "actions" }, send, stop))),
  );
}
