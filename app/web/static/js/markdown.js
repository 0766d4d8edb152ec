// A small Markdown renderer that builds DOM nodes. Text from a message only ever becomes
// text nodes; raw HTML in the Markdown stays visible as text, and links keep to http(s)
// and mailto. Covers what chat answers use: paragraphs, headings, lists, quotes, fenced
// code, tables, rules, emphasis, inline code, links.
//
// Quotes and list items hold blocks, emphasis and links hold inline text: the renderer
// recurses into them. Message text picks the depth (5,000 `>` make 5,000 quotes), so past
// MAX_DEPTH the rest is shown as plain text instead of overflowing the stack.

import { h } from "./dom.js";

const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([\w+#.-]*)\s*$/;
// The closing #s are cut off in code (headingText): `(.*?)\s*#*\s*$` took cubic time on a
// heading followed by thousands of spaces.
const HEADING = /^\s{0,3}(#{1,6})\s+(.*)$/;
const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^\s{0,3}>\s?(.*)$/;
const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_SEPARATOR = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
/** How deep quotes and lists nest (and, apart, emphasis and links) before text stays text. */
export const MAX_DEPTH = 20;

/** The Markdown `source` as a DocumentFragment. */
export function renderMarkdown(source) {
  const fragment = document.createDocumentFragment();
  fragment.append(...blocks(source.replace(/\r\n?/g, "\n").split("\n"), 0));
  return fragment;
}

function blocks(lines, depth) {
  if (depth >= MAX_DEPTH) return [plainText(lines)];
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i++;
      continue;
    }
    let m;
    if ((m = line.match(FENCE))) {
      const fence = m[1];
      const code = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence)) code.push(lines[i++]);
      i++; // the closing fence (or the end of a still-streaming answer)
      const language = m[2] ? { class: `language-${m[2].replace(/[^\w+#-]/g, "")}` } : {};
      out.push(h("pre", {}, h("code", language, code.join("\n"))));
    } else if ((m = line.match(HEADING))) {
      out.push(h(`h${Math.min(m[1].length + 2, 6)}`, {}, inline(headingText(m[2]), 0)));
      i++;
    } else if (RULE.test(line)) {
      out.push(h("hr"));
      i++;
    } else if (QUOTE.test(line)) {
      const quoted = [];
      while (i < lines.length && (m = lines[i].match(QUOTE))) {
        quoted.push(m[1]);
        i++;
      }
      out.push(h("blockquote", {}, blocks(quoted, depth + 1)));
    } else if (ITEM.test(line)) {
      i = list(lines, i, out, depth);
    } else if (line.includes("|") && i + 1 < lines.length && TABLE_SEPARATOR.test(lines[i + 1]) && lines[i + 1].includes("-")) {
      i = table(lines, i, out);
    } else {
      const para = [];
      while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) para.push(lines[i++]);
      if (!para.length) para.push(lines[i++]);
      const children = [];
      para.forEach((text, n) => {
        if (n) children.push(h("br"));
        children.push(...inline(text.trim(), 0));
      });
      out.push(h("p", {}, children));
    }
  }
  return out;
}

/** Lines as one paragraph of text, line breaks kept: what lies past MAX_DEPTH. */
function plainText(lines) {
  const children = [];
  lines.forEach((text, n) => {
    if (n) children.push(h("br"));
    children.push(text);
  });
  return h("p", {}, children);
}

/** A heading's text without its optional closing #s (which follow a space, or stand alone). */
function headingText(text) {
  const trimmed = text.trim();
  let end = trimmed.length;
  while (end > 0 && trimmed[end - 1] === "#") end--;
  if (end === trimmed.length || (end > 0 && !/\s/.test(trimmed[end - 1]))) return trimmed;
  return trimmed.slice(0, end).trimEnd();
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
}

function list(lines, start, out, depth) {
  const first = lines[start].match(ITEM);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const items = [];
  let i = start;
  while (i < lines.length) {
    const m = lines[i].match(ITEM);
    if (m && m[1].length === indent && /\d/.test(m[2]) === ordered) {
      items.push([m[3]]);
      i++;
    } else if (lines[i].trim() && (lines[i].match(/^\s*/)[0].length > indent || !startsBlock(lines[i])) && items.length) {
      items[items.length - 1].push(lines[i].replace(new RegExp(`^\\s{0,${indent + 4}}`), ""));
      i++;
    } else if (!lines[i].trim() && i + 1 < lines.length && lines[i + 1].match(/^\s*/)[0].length > indent) {
      i++; // a blank line inside an item
    } else {
      break;
    }
  }
  const attrs = ordered && parseInt(first[2], 10) !== 1 ? { start: parseInt(first[2], 10) } : {};
  out.push(
    h(
      ordered ? "ol" : "ul",
      attrs,
      items.map((item) => {
        const rest = item.slice(1);
        if (!rest.length) return h("li", {}, inline(item[0], 0));
        return h("li", {}, blocks(item, depth + 1));
      }),
    ),
  );
  return i;
}

function cells(line) {
  return line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((c) => c.trim());
}

function table(lines, start, out) {
  const head = cells(lines[start]);
  let i = start + 2;
  const rows = [];
  while (i < lines.length && lines[i].includes("|") && lines[i].trim()) rows.push(cells(lines[i++]));
  out.push(
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, inline(c, 0))))),
        h("tbody", {}, rows.map((r) => h("tr", {}, head.map((_, n) => h("td", {}, inline(r[n] || "", 0)))))),
      ),
    ),
  );
  return i;
}

// One pattern per inline form; the earliest match wins, text before it stays text.
const INLINE = [
  ["code", /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/],
  ["link", /!?\[([^\]\n]+)\]\(\s*<?([^\s)>]+)>?(?:\s+"[^"\n]*")?\s*\)/],
  ["auto", /\bhttps?:\/\/[^\s<>()]*[^\s<>().,;:!?'"*_~]/],
  // Underscores inside words (snake_case, __dunder__ names) are not emphasis.
  ["strong", /\*\*(?=\S)([\s\S]*?\S)\*\*|(?<![A-Za-z0-9_])__(?=[^\s_])([\s\S]*?[^\s_])__(?![A-Za-z0-9_])/],
  ["del", /~~(?=\S)([\s\S]*?\S)~~/],
  ["em", /(?<!\*)\*(?=[^\s*])([^*]*?[^\s*])\*(?!\*)|(?<![A-Za-z0-9_])_(?=[^\s_])([^_]*?[^\s_])_(?![A-Za-z0-9_])/],
];

function inline(text, depth) {
  if (depth >= MAX_DEPTH) return [text];
  const out = [];
  let rest = text;
  while (rest) {
    let best = null;
    for (const [kind, pattern] of INLINE) {
      const m = rest.match(pattern);
      if (m && (best === null || m.index < best.m.index)) best = { kind, m };
    }
    if (!best) {
      out.push(rest);
      break;
    }
    const { kind, m } = best;
    if (m.index) out.push(rest.slice(0, m.index));
    out.push(inlineNode(kind, m, depth + 1));
    rest = rest.slice(m.index + m[0].length);
  }
  return out;
}

function inlineNode(kind, m, depth) {
  switch (kind) {
    case "code":
      return h("code", {}, m[2].replace(/^ (.*) $/, "$1"));
    case "link": {
      const href = safeUrl(m[2]);
      return href ? link(href, inline(m[1], depth)) : m[0];
    }
    case "auto": {
      const href = safeUrl(m[0]);
      return href ? link(href, m[0]) : m[0];
    }
    case "strong":
      return h("strong", {}, inline(m[1] ?? m[2], depth));
    case "del":
      return h("del", {}, inline(m[1], depth));
    default:
      return h("em", {}, inline(m[1] ?? m[2], depth));
  }
}

function link(href, children) {
  return h("a", { href, target: "_blank", rel: "noopener noreferrer nofollow" }, children);
}

/** The URL when it is http(s) or mailto, else null (no javascript:, data:, and the like). */
export function safeUrl(raw) {
  try {
    const url = new URL(raw, window.location.origin);
    return ["http:", "https:", "mailto:"].includes(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}
