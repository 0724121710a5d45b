// Chat: streaming answers, model and sampling, system prompt, shields per chat, stop / retry / edit.
import { field, h } from "./dom.js";
import { Answer, modelPicker, samplingFields, streamChat } from "./ui.js";

export function mountChat(view, shared) {
  const model = modelPicker(shared);
  const system = h("textarea", { rows: 2, placeholder: "You are a helpful assistant.", "aria-label": "system prompt" });
  const sampling = samplingFields();
  const shields = h("fieldset", { class: "shields" }, h("legend", { text: "Shields" }));
  const log = h("div", { class: "log", "aria-live": "polite" });
  const input = h("textarea", { rows: 3, placeholder: "Message (Enter sends, Shift+Enter for a new line)",
    "aria-label": "message" });
  const send = h("button", { class: "primary", text: "Send", type: "submit" });
  const stop = h("button", { text: "Stop", type: "button", disabled: true });
  const history = [];  // {role, content, el}
  let running = null;

  shared.onChange(() => {
    const on = new Set([...shields.querySelectorAll("input:checked")].map((i) => i.value));
    shields.replaceChildren(shields.firstChild, ...(shared.shields.length ? shared.shields.map((id) => h("label", {},
      h("input", { type: "checkbox", value: id, checked: on.has(id) }), id)) : [h("small", { text: "none configured" })]));
  });

  function userBubble(entry) {
    const text = h("div", { class: "text", text: entry.content });
    const edit = h("button", { class: "link", text: "edit", type: "button", onclick: () => editMessage(entry, text) });
    entry.el = h("article", { class: "msg user" }, text, h("div", { class: "tools" }, edit));
    return entry.el;
  }

  function dropFrom(index) {
    for (const entry of history.splice(index)) entry.el.remove();
  }

  function editMessage(entry, text) {
    if (running) return;
    const box = h("textarea", { rows: 3, value: entry.content, "aria-label": "edit message" });
    const save = h("button", { class: "primary", text: "Save and resend", type: "button", onclick: () => {
      entry.content = box.value;
      dropFrom(history.indexOf(entry) + 1);
      text.textContent = entry.content;
      box.parentElement.replaceWith(text);
      answer();
    } });
    const cancel = h("button", { text: "Cancel", type: "button", onclick: () => box.parentElement.replaceWith(text) });
    text.replaceWith(h("div", { class: "editing" }, box, save, cancel));
    box.focus();
  }

  async function answer() {
    const messages = history.map(({ role, content }) => ({ role, content }));
    if (system.value.trim()) messages.unshift({ role: "system", content: system.value });
    const body = { model: model.value, messages, ...sampling.read() };
    const guardrails = [...shields.querySelectorAll("input:checked")].map((i) => i.value);
    if (guardrails.length) body.guardrails = guardrails;
    const reply = new Answer(model.value);
    const entry = { role: "assistant", content: "", el: reply.el };
    log.append(reply.el);
    running = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    const result = await streamChat(body, reply, running.signal);
    running = null;
    send.disabled = false;
    stop.disabled = true;
    entry.content = result.text;
    if (result.error?.code === "guardrail_violation" && history.at(-1)?.role === "user") {
      history.pop().el.classList.add("blocked");  // kept on screen, flagged; not sent again
      return;
    }
    if (result.error) {
      reply.el.classList.add("failed");
    } else {
      history.push(entry);
    }
    const retry = h("button", { class: "link", text: "retry", type: "button", onclick: () => {
      if (running) return;
      if (history.at(-1) === entry) history.pop();
      reply.el.remove();
      answer();
    } });
    reply.el.append(h("div", { class: "tools" }, retry));
    reply.el.scrollIntoView({ block: "end" });
  }

  function submit(e) {
    e.preventDefault();
    if (running || !input.value.trim() || !model.value) return;
    const failed = log.querySelector(".msg.failed");
    if (failed) failed.remove();
    const entry = { role: "user", content: input.value };
    history.push(entry);
    log.append(userBubble(entry));
    input.value = "";
    answer();
  }

  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) submit(e);
  });
  stop.addEventListener("click", () => running?.abort());
  const reset = h("button", { text: "New chat", type: "button", onclick: () => { if (!running) dropFrom(0); } });

  view.append(
    h("aside", { class: "settings" }, field("Model", model), field("System prompt", system),
      field("Temperature", sampling.temperature), field("top_p", sampling.topP), field("Max tokens", sampling.maxTokens),
      shields, reset),
    h("div", { class: "conversation" }, log,
      h("form", { class: "composer", onsubmit: submit }, input, h("div", { class: "actions" }, send, stop))),
  );
}
