// A Responses turn as it streams: each output item in order — tool listings, MCP and function calls with
// their arguments and results, file searches with what they found, approval requests — and the answer,
// with the files it cites.
import { stream } from "./api.js";
import { h, ms } from "./dom.js";
import { Answer, errorBox } from "./ui.js";

function pretty(json) {
  try { return JSON.stringify(JSON.parse(json), null, 2); } catch { return json ?? ""; }
}

const TITLES = {
  mcp_list_tools: (i) => `listed tools of ${i.server_label}`,
  mcp_call: (i) => `called ${i.server_label}.${i.name}`,
  function_call: (i) => `called ${i.name} (your function)`,
  file_search_call: () => "searched the documents",
  mcp_approval_request: (i) => `asks to call ${i.server_label}.${i.name}`,
  web_search_call: () => "searched the web",
};

// The card of one tool step; `update(item)` fills it in as the item completes.
export class Step {
  constructor(item) {
    this.title = h("summary");
    this.args = h("pre", { class: "args" });
    this.result = h("pre", { class: "result" });
    this.el = h("details", { class: `step ${item.type}`, open: true }, this.title, this.args, this.result);
    this.update(item);
  }

  update(item) {
    const status = item.error ? "failed" : item.status && item.status !== "completed" ? item.status : "";
    this.title.textContent = (TITLES[item.type] ?? ((i) => i.type))(item) + (status ? ` — ${status}` : "");
    this.el.classList.toggle("failed", Boolean(item.error));
    if (item.arguments !== undefined) this.args.textContent = pretty(item.arguments);
    if (item.queries) this.args.textContent = item.queries.join("\n");
    if (item.type === "mcp_list_tools") this.result.textContent = (item.tools ?? []).map((t) => t.name).join(", ");
    else if (item.error) this.result.textContent = item.error;
    else if (item.output !== undefined && item.output !== null) this.result.textContent = item.output;
    else if (item.results) {
      this.result.textContent = item.results.map((r) => `${r.filename ?? r.file_id} (${r.score.toFixed(3)}): ${r.text}`).join("\n\n");
    }
  }

  addArgs(delta) {
    this.args.textContent += delta;
  }
}

function sources(annotations) {
  const files = annotations.filter((a) => a.type === "file_citation");
  if (!files.length) return null;
  return h("div", { class: "sources" }, h("span", { text: "Sources: " }),
    ...files.map((a) => h("span", { class: "cite", title: a.file_id, text: a.filename || a.file_id })));
}

// Renders items (streamed or stored) into `container`; `onApproval(item)` draws approval buttons.
export class Turn {
  constructor(container, label, onApproval) {
    this.container = container;
    this.label = label;
    this.onApproval = onApproval;
    this.byIndex = new Map();
    this.response = null;
  }

  item(item, index = this.byIndex.size) {
    let view;
    if (item.type === "message") {
      view = new Answer(item.role === "user" ? null : this.label);
      if (item.role === "user") view.el.className = "msg user";
      const parts = item.content ?? [];
      view.set(parts.map((p) => p.text ?? p.refusal ?? "").join(""));
      const cited = sources(parts.flatMap((p) => p.annotations ?? []));
      if (cited) view.el.append(cited);
    } else {
      view = new Step(item);
      if (item.type === "mcp_approval_request" && this.onApproval) view.el.append(this.onApproval(item));
    }
    this.byIndex.set(index, view);
    this.container.append(view.el);
    return view;
  }

  event(ev) {
    const view = this.byIndex.get(ev.output_index);
    switch (ev.type) {
      case "response.output_item.added":
        this.item(ev.item.type === "message" ? { ...ev.item, content: [] } : ev.item, ev.output_index);
        break;
      case "response.output_text.delta":
      case "response.refusal.delta":
        view?.add(ev.delta);
        break;
      case "response.mcp_call_arguments.delta":
      case "response.function_call_arguments.delta":
        view?.addArgs(ev.delta);
        break;
      case "response.output_item.done":
        if (view instanceof Step) view.update(ev.item);
        else if (view) {
          view.set((ev.item.content ?? []).map((p) => p.text ?? p.refusal ?? "").join(""));
          const cited = sources((ev.item.content ?? []).flatMap((p) => p.annotations ?? []));
          if (cited) view.el.append(cited);
          this.answer = view;
        }
        break;
      case "response.completed":
      case "response.incomplete":
      case "response.failed":
        this.response = ev.response;
        if (ev.response.error) this.container.append(errorBox(ev.response.error));
        break;
      case "error":
        this.container.append(errorBox(ev));
        break;
      default:
    }
  }

  // Streams POST /v1/responses with `body` into the container; resolves to the final response.
  async run(body, signal) {
    const started = performance.now();
    try {
      for await (const ev of stream("responses", body, signal)) this.event(ev);
    } catch (error) {
      if (error.name !== "AbortError") this.container.append(errorBox(error));
    }
    const usage = this.response?.usage;
    if (this.answer) this.answer.stats({ usage, total: (performance.now() - started) / 1000 });
    else if (usage) this.container.append(h("div", { class: "meta", text: `${usage.input_tokens} in · ${usage.output_tokens} out tokens · ${ms((performance.now() - started) / 1000)}` }));
    return this.response;
  }
}
