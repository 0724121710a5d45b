// Documents: vector stores, uploads with progress, ingestion status, search (vector, keyword, hybrid),
// and questions answered over the store through the Responses API's file_search, with citations.
import { api, upload } from "./api.js";
import { clear, field, fillSelect, h } from "./dom.js";
import { Turn } from "./steps.js";
import { modelPicker } from "./ui.js";

const DONE = new Set(["completed", "failed", "cancelled"]);

export function mountDocuments(view, shared) {
  const stores = h("ul", { class: "stores" });
  const name = h("input", { placeholder: "new store name", "aria-label": "store name" });
  const title = h("h2", { text: "Pick or create a vector store" });
  const files = h("ul", { class: "files" });
  const picker = h("input", { type: "file", multiple: true, "aria-label": "upload files", disabled: true });
  const query = h("input", { type: "search", placeholder: "search the store", "aria-label": "search query" });
  const mode = fillSelect(h("select", { "aria-label": "search mode" }), [["vector"], ["keyword"], ["hybrid"]], "hybrid");
  const results = h("ol", { class: "results" });
  const model = modelPicker(shared);
  const question = h("textarea", { rows: 2, placeholder: "Ask about these documents", "aria-label": "question" });
  const answers = h("div", { class: "log" });
  let current = null;

  async function listStores() {
    try {
      const { data } = await api("vector_stores?limit=100");
      stores.replaceChildren(...data.map((s) => h("li", {}, h("button", { type: "button", class: s.id === current?.id ? "link on" : "link",
        text: `${s.name || s.id} (${s.file_counts?.completed ?? 0} files)`, onclick: () => select(s) }))));
    } catch (error) {
      shared.fail(error);
    }
  }

  async function fileRow(entry, fileName) {
    const status = h("span", { class: `state ${entry.status}`, text: entry.status });
    const row = h("li", {}, h("span", { class: "name", text: fileName ?? entry.id }), status,
      entry.last_error ? h("small", { class: "error", text: entry.last_error.message }) : null);
    if (fileName === undefined) {
      api(`files/${entry.id}`).then((f) => { row.firstChild.textContent = f.filename; }).catch(() => {});
    }
    return row;
  }

  async function select(store) {
    const { data } = await api(`vector_stores/${store.id}/files?limit=100`);
    const rows = await Promise.all(data.map((f) => fileRow(f)));
    current = store;  // only now: an upload started from here on lands in this list, never under another store
    files.replaceChildren(...rows);
    clear(results);
    title.textContent = store.name || store.id;
    picker.disabled = false;
    listStores();
  }

  async function create(e) {
    e.preventDefault();
    try {
      const store = await api("vector_stores", { method: "POST", body: { name: name.value || "documents" } });
      name.value = "";
      await select(store);
    } catch (error) {
      shared.fail(error);
    }
  }

  async function ingest(file) {
    const store = current;
    const bar = h("progress", { max: 1, value: 0 });
    const status = h("span", { class: "state", text: "uploading" });
    const row = h("li", {}, h("span", { class: "name", text: file.name }), bar, status);
    files.prepend(row);
    try {
      const uploaded = await upload(file, "assistants", (p) => { bar.value = p; });
      bar.value = 1;
      status.textContent = "processing";
      let entry = await api(`vector_stores/${store.id}/files`, { method: "POST", body: { file_id: uploaded.id } });
      for (let wait = 100; !DONE.has(entry.status); wait = Math.min(wait * 2, 2000)) {
        await new Promise((r) => setTimeout(r, wait));
        entry = await api(`vector_stores/${store.id}/files/${uploaded.id}`);
      }
      row.replaceWith(await fileRow(entry, file.name));
    } catch (error) {
      status.textContent = "failed";
      row.append(h("small", { class: "error", text: error.message }));
    }
  }

  picker.addEventListener("change", async () => {
    if (!current) return;  // (the picker is enabled only once a store is selected)
    const chosen = [...picker.files];
    picker.value = "";
    await Promise.all(chosen.map(ingest));
    listStores();
  });

  async function search(e) {
    e.preventDefault();
    if (!current || !query.value.trim()) return;
    try {
      const { data } = await api(`vector_stores/${current.id}/search`, { method: "POST",
        body: { query: query.value, search_mode: mode.value, max_num_results: 8 } });
      results.replaceChildren(...(data.length ? data.map((r) => h("li", {},
        h("div", { class: "hit" }, h("strong", { text: r.filename ?? r.file_id }), ` score ${r.score.toFixed(3)}`),
        h("p", { text: r.content.map((c) => c.text).join("\n") }))) : [h("li", { text: "nothing found" })]));
    } catch (error) {
      results.replaceChildren(h("li", { class: "error", text: error.message }));
    }
  }

  async function ask(e) {
    e.preventDefault();
    if (!current || !question.value.trim()) return;
    const text = question.value;
    question.value = "";
    answers.append(h("article", { class: "msg user", text }));
    const turn = new Turn(answers, model.value);
    await turn.run({ model: model.value, input: text, store: false, include: ["file_search_call.results"],
      tools: [{ type: "file_search", vector_store_ids: [current.id] }], tool_choice: { type: "file_search" } });
  }

  view.append(
    h("aside", { class: "settings" }, h("h3", { text: "Vector stores" }), stores,
      h("form", { onsubmit: create }, name, h("button", { type: "submit", text: "Create" }))),
    h("div", { class: "conversation" }, title, field("Upload", picker, "PDF, text, Markdown, HTML, JSON"), files,
      h("form", { class: "row", onsubmit: search }, query, mode, h("button", { type: "submit", text: "Search" })), results,
      h("h3", { text: "Ask" }),
      h("form", { class: "row", onsubmit: ask }, model, question, h("button", { class: "primary", type: "submit", text: "Ask" })),
      answers),
  );
  shared.onChange(() => {
    const missing = ["vector_io", "files"].filter((a) => !shared.apis.has(a));
    view.classList.toggle("unavailable", missing.length > 0);
    title.textContent = missing.length ? `This stack serves no ${missing.join(" or ")} API: add a provider for it to `
      + "run.yaml to use documents." : current ? title.textContent : "Pick or create a vector store";
    if (!missing.length) listStores();
  });
}
