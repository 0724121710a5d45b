// Markdown to DOM nodes, for model output. Nothing is ever parsed as HTML: text goes into text nodes, so
// `<img src=x onerror=...>` is shown as the characters it is. Links are kept only when they point to
// http(s) or mailto; a `javascript:` or `data:` link is shown as plain text. Markers a shield left in
// place of what it removed ([EMAIL], [PHONE], ...) are shown flagged.
import { h } from "./dom.js";

const INLINE = new RegExp([
  "(`+)([\\s\\S]*?[^`])\\1(?!`)",          // 1,2 code span
  "\\*\\*(?=\\S)([\\s\\S]*?\\S)\\*\\*",      // 3 strong
  "(?<!\\w)__(?=\\S)([\\s\\S]*?\\S)__(?!\\w)",  // 4 strong
  "\\*(?=[^\\s*])([\\s\\S]*?[^\\s*])\\*",    // 5 emphasis
  "(?<!\\w)_(?=[^\\s_])([\\s\\S]*?[^\\s_])_(?!\\w)",  // 6 emphasis
  "\\[([^\\]\\n]+)\\]\\(([^)\\s]+)\\)",       // 7,8 link
  "\\[(EMAIL|PHONE|PAYMENT_CARD|IBAN|SECRET)\\]", // 9 shield marker
  "(https?://[^\\s<>()\\]]+[^\\s<>()\\].,;:!?'\"])", // 10 bare URL
].join("|"), "g");

export function safeUrl(raw) {
  try {
    const url = new URL(raw, location.href);
    return ["http:", "https:", "mailto:"].includes(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

function link(label, href) {
  const url = safeUrl(href);
  if (url === null) return h("span", { class: "unsafe-link", title: "link not followed: not http(s)" }, label);
  return h("a", { href: url, target: "_blank", rel: "noopener noreferrer nofollow" }, label);
}

export function inline(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    if (m[2] !== undefined) out.push(h("code", { text: m[2] }));
    else if (m[3] !== undefined || m[4] !== undefined) out.push(h("strong", {}, ...inline(m[3] ?? m[4])));
    else if (m[5] !== undefined || m[6] !== undefined) out.push(h("em", {}, ...inline(m[5] ?? m[6])));
    else if (m[7] !== undefined) out.push(link(inline(m[7]), m[8]));
    else if (m[9] !== undefined) out.push(h("mark", { class: "flag", title: `removed by a shield: ${m[9].toLowerCase()}`,
      text: m[0] }));
    else out.push(link(m[10], m[10]));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

const FENCE = /^\s*(`{3,}|~{3,})\s*([\w+-]*)/;
const HEADING = /^(#{1,6})\s+(.*?)\s*#*\s*$/;
const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const RULE = /^\s*([-*_])(\s*\1){2,}\s*$/;

function codeBlock(lines, i) {
  const [, fence, lang] = lines[i].match(FENCE);
  const body = [];
  let j = i + 1;
  while (j < lines.length && !lines[j].trim().startsWith(fence)) body.push(lines[j++]);
  const code = h("code", { text: body.join("\n") });
  if (lang) code.dataset.lang = lang;
  return [h("pre", {}, code), j + 1];
}

function list(lines, i) {
  const ordered = /\d/.test(lines[i].match(ITEM)[2]);
  const el = h(ordered ? "ol" : "ul");
  let j = i;
  while (j < lines.length) {
    const m = lines[j].match(ITEM);
    if (m) el.append(h("li", {}, ...inline(m[3])));
    else if (lines[j].trim() && el.lastChild && /^\s+/.test(lines[j])) el.lastChild.append(" ", ...inline(lines[j].trim()));
    else break;
    j++;
  }
  return [el, j];
}

function quote(lines, i) {
  const body = [];
  let j = i;
  while (j < lines.length && /^\s*>/.test(lines[j])) body.push(lines[j++].replace(/^\s*>\s?/, ""));
  return [h("blockquote", {}, renderMarkdown(body.join("\n"))), j];
}

function paragraph(lines, i) {
  const body = [];
  let j = i;
  while (j < lines.length && lines[j].trim() && !FENCE.test(lines[j]) && !HEADING.test(lines[j])
         && !(body.length && ITEM.test(lines[j])) && !/^\s*>/.test(lines[j])) body.push(lines[j++]);
  return [h("p", {}, ...inline(body.join("\n"))), Math.max(j, i + 1)];
}

export function renderMarkdown(text) {
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  const out = document.createDocumentFragment();
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let block;
    if (!line.trim()) { i++; continue; }
    if (FENCE.test(line)) [block, i] = codeBlock(lines, i);
    else if (HEADING.test(line)) {
      const [, hashes, title] = line.match(HEADING);
      block = h(`h${hashes.length + 2 > 6 ? 6 : hashes.length + 2}`, {}, ...inline(title));
      i++;
    } else if (RULE.test(line)) { block = h("hr"); i++; }
    else if (/^\s*>/.test(line)) [block, i] = quote(lines, i);
    else if (ITEM.test(line)) [block, i] = list(lines, i);
    else [block, i] = paragraph(lines, i);
    out.append(block);
  }
  return out;
}
