// Pieces the views share: a model picker, an answer that renders Markdown as it streams, a chat
// completion streamed into one, and error boxes (a shield's block shown as what it is).
import { stream } from "./api.js";
import { clear, fillSelect, h, ms, throttled } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

export function modelPicker(shared, { multiple = false } = {}) {
  if (!multiple) {
    const select = h("select", { "aria-label": "model" });
    shared.onChange(() => fillSelect(select, shared.models.map((m) => [m.id]), select.value));
    return select;
  }
  const box = h("fieldset", { class: "models" }, h("legend", { text: "Models" }));
  shared.onChange(() => {
    const chosen = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
    if (!chosen.size) shared.models.slice(0, 2).forEach((m) => chosen.add(m.id));
    box.replaceChildren(box.firstChild, ...shared.models.map((m) => h("label", {},
      h("input", { type: "checkbox", value: m.id, checked: chosen.has(m.id) }), m.id)));
  });
  return box;
}

export function checkedValues(box) {
  return [...box.querySelectorAll("input[type=checkbox]:checked")].map((i) => i.value);
}

export function errorBox(error) {
  if (error.code === "guardrail_violation") {
    return h("div", { class: "flagged", role: "alert" }, h("strong", { text: "Blocked by a shield. " }), error.message);
  }
  return h("div", { class: "error", role: "alert" }, error.message);
}

// An assistant answer: Markdown body re-rendered (once per frame) as text streams in, and a meta line.
export class Answer {
  constructor(label) {
    this.text = "";
    this.body = h("div", { class: "md" });
    this.meta = h("div", { class: "meta" });
    this.el = h("article", { class: "msg assistant" }, label ? h("div", { class: "who", text: label }) : null,
      this.body, this.meta);
    this.render = throttled(() => this.body.replaceChildren(renderMarkdown(this.text)));
  }

  add(delta) {
    this.text += delta;
    this.render();
  }

  set(text) {
    this.text = text;
    this.body.replaceChildren(renderMarkdown(text));
  }

  fail(error) {
    this.body.append(errorBox(error));
  }

  stats({ usage, first, total, stopped }) {
    const parts = [];
    if (usage) parts.push(`${usage.prompt_tokens ?? usage.input_tokens} in · ${usage.completion_tokens ?? usage.output_tokens} out tokens`);
    if (first !== null && first !== undefined) parts.push(`first token ${ms(first)}`);
    if (total !== undefined) parts.push(`total ${ms(total)}`);
    if (stopped) parts.push("stopped");
    clear(this.meta).append(parts.join(" · "));
  }
}

// Streams one chat completion into `answer`; resolves to what it said (also when stopped or failed).
export async function streamChat(body, answer, signal) {
  const started = performance.now();
  let first = null;
  let usage = null;
  let stopped = false;
  try {
    for await (const chunk of stream("chat/completions", { ...body, stream_options: { include_usage: true } }, signal)) {
      if (chunk.usage) usage = chunk.usage;
      const delta = chunk.choices?.[0]?.delta?.content;
      if (delta) {
        if (first === null) first = (performance.now() - started) / 1000;
        answer.add(delta);
      }
    }
    answer.set(answer.text);
  } catch (error) {
    if (error.name === "AbortError") stopped = true;
    else {
      answer.set(answer.text);
      answer.fail(error);
      answer.stats({ first, total: (performance.now() - started) / 1000 });
      return { text: answer.text, error };
    }
  }
  answer.stats({ usage, first, total: (performance.now() - started) / 1000, stopped });
  return { text: answer.text, usage, stopped };
}

// Sampling parameters as form fields, read into a request body.
export function samplingFields() {
  const temperature = h("input", { type: "number", min: 0, max: 2, step: 0.1, value: "0.7", "aria-label": "temperature" });
  const topP = h("input", { type: "number", min: 0, max: 1, step: 0.05, placeholder: "1", "aria-label": "top_p" });
  const maxTokens = h("input", { type: "number", min: 1, step: 1, placeholder: "auto", "aria-label": "max tokens" });
  const read = () => {
    const body = { temperature: Number(temperature.value || 0.7) };
    if (topP.value) body.top_p = Number(topP.value);
    if (maxTokens.value) body.max_tokens = Number(maxTokens.value);
    return body;
  };
  return { temperature, topP, maxTokens, read };
}
