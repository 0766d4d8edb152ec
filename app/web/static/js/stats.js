// The stats view (#/stats): totals, a chart of messages per day, a table per model.

import { api } from "./api.js";
import { $, h, svg } from "./dom.js";
import { guarded } from "./session.js";
import { dateFormat, state } from "./state.js";

export async function renderStats() {
  const days = $("stats-days").value;
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const stats = await api("GET", `/api/users/me/stats?${new URLSearchParams({ days, tz })}`);
  const number = new Intl.NumberFormat(state.prefs?.language || undefined);
  const card = (label, value) => h("div", { class: "stat-card" }, h("strong", {}, value), h("span", { class: "muted small" }, label));
  $("stats-body").replaceChildren(
    h("div", { class: "stat-cards" },
      card("conversations", number.format(stats.conversationCount)),
      card("messages", number.format(stats.messageCount)),
      card("prompt tokens", number.format(stats.tokens.prompt)),
      card("completion tokens", number.format(stats.tokens.completion)),
      card("active days", number.format(stats.activeDays)),
      card("day streak", number.format(stats.currentStreakDays)),
    ),
    h("h2", {}, `Messages per day (last ${days} days)`),
    dailyChart(stats.daily),
    h("h2", {}, "Per model"),
    modelTable(stats.models, number),
  );
}

function dailyChart(daily) {
  const width = 720, height = 220, left = 36, bottom = 28, top = 10;
  const max = Math.max(1, ...daily.map((d) => d.messages));
  const step = (width - left - 8) / Math.max(1, daily.length);
  const y = (v) => height - bottom - (v / max) * (height - bottom - top);
  const short = dateFormat({ month: "short", day: "numeric" });
  const bars = daily.map((d, i) => {
    const x = left + i * step + step * 0.15;
    const label = `${short.format(new Date(`${d.date}T12:00:00`))}: ${d.messages} messages, ${d.tokens} tokens`;
    return svg("rect", { class: "bar", x: x.toFixed(1), y: y(d.messages).toFixed(1), width: Math.max(1, step * 0.7).toFixed(1), height: (height - bottom - y(d.messages)).toFixed(1) }, svg("title", {}, label));
  });
  const every = Math.ceil(daily.length / 8);
  const labels = daily
    .map((d, i) => (i % every === 0 ? svg("text", { x: (left + i * step).toFixed(1), y: height - 8 }, short.format(new Date(`${d.date}T12:00:00`))) : null))
    .filter(Boolean);
  const total = daily.reduce((sum, d) => sum + d.messages, 0);
  return svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `Messages per day: ${total} in ${daily.length} days, at most ${max} a day` },
    svg("line", { class: "axis", x1: left, y1: height - bottom, x2: width, y2: height - bottom }),
    svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: height - bottom }),
    svg("text", { x: 2, y: top + 10 }, String(max)),
    svg("text", { x: 2, y: height - bottom }, "0"),
    ...bars,
    ...labels,
  );
}

function modelTable(models, number) {
  if (!models.length) return h("p", { class: "muted" }, "No answers yet.");
  return h("div", { class: "table-wrap" },
    h("table", { class: "data" },
      h("thead", {}, h("tr", {}, ["Model", "Messages", "Prompt tokens", "Completion tokens", "Avg. first token", "Errors"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, models.map((m) =>
        h("tr", {},
          h("th", { scope: "row" }, m.model || "unknown"),
          h("td", {}, number.format(m.messages)),
          h("td", {}, number.format(m.promptTokens)),
          h("td", {}, number.format(m.completionTokens)),
          h("td", {}, m.avgTimeToFirstTokenMs == null ? "–" : `${number.format(Math.round(m.avgTimeToFirstTokenMs))} ms`),
          h("td", {}, `${(100 * (m.errorRate || 0)).toFixed(1)} %`),
        ))),
    ));
}

export function wireStats() {
  $("stats-days").addEventListener("change", () => guarded(renderStats));
}
