// Building the page without ever parsing text as HTML: every string becomes a text node or an attribute
// value, so model output, file names and tool results cannot run anything (see markdown.js).

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) {
      if (typeof value !== "function") throw new TypeError(`${name} must be a function`);
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name === "value" || name === "checked" || name === "disabled" || name === "hidden") el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// A <select> of options [value, label]; keeps `selected` when it is still offered.
export function fillSelect(select, options, selected) {
  clear(select);
  for (const [value, label] of options) select.append(h("option", { value, text: label ?? value }));
  if (options.some(([v]) => v === selected)) select.value = selected;
  return select;
}

// A label around a form control, with its text first.
export function field(label, control, hint) {
  return h("label", { class: "field" }, h("span", { text: label }), control, hint ? h("small", { text: hint }) : null);
}

// Calls `fn` at most once per animation frame, with the latest arguments (for streaming re-renders).
export function throttled(fn) {
  let pending = null;
  return (...args) => {
    if (pending === null) requestAnimationFrame(() => { const a = pending; pending = null; fn(...a); });
    pending = args;
  };
}

export function ms(seconds) {
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(2)} s`;
}
