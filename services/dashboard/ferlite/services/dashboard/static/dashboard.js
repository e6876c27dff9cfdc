// The classroom page: asks /api/classrooms/{id}/summary every few seconds and draws the shares,
// the model that answered, and the timeline (SVG bars with a table that says the same in words).
// Text from the server goes in with textContent only, never as HTML.
"use strict";

const LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
// Okabe-Ito: told apart with the common colour-vision deficiencies; grey is "uncertain".
const COLOURS = {angry: "#D55E00", disgust: "#009E73", fear: "#CC79A7", happy: "#E69F00", sad: "#0072B2",
                 surprise: "#F0E442", neutral: "#56B4E9", uncertain: "#8C8C8C"};
const SVG = "http://www.w3.org/2000/svg";
const classroom = decodeURIComponent(window.location.pathname.split("/").filter(Boolean)[1] || "");
let windowSeconds = 900;
let windowName = "15 min";
let timer = null;
let refreshMs = 5000;

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function pct(x) { return `${Math.round(100 * x)} %`; }

function todaySeconds() {
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  return Math.max(60, Math.round((Date.now() - midnight.getTime()) / 1000));
}

function windowWords() { return windowName === "today" ? "today" : `the last ${windowName}`; }

function buildWindows(windows) {
  const group = document.getElementById("windows");
  const choices = [...Object.entries(windows), ["today", null]];
  for (const [name, seconds] of choices) {
    const button = el("button", name === "today" ? "Today" : `Last ${name}`,
                      {type: "button", "aria-pressed": String(name === windowName), "data-window": name});
    button.addEventListener("click", () => {
      windowName = name;
      windowSeconds = seconds || todaySeconds();
      for (const b of group.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b === button));
      load();
    });
    group.appendChild(button);
  }
}

function renderShares(data) {
  const list = document.getElementById("shares");
  list.replaceChildren();
  const ranked = LABELS.slice().sort((a, b) => data.shares[b] - data.shares[a]);
  for (const label of ranked) {
    const share = data.shares[label];
    const item = el("li", null, {"data-label": label, "data-share": String(share)});
    item.appendChild(el("span", label));
    const bar = el("span", null, {class: "bar", "aria-hidden": "true"});
    bar.style.width = `${100 * share}%`;
    if (share === 0) bar.style.borderWidth = "0";
    bar.style.background = COLOURS[label];
    item.appendChild(bar);
    item.appendChild(el("span", pct(share)));
    list.appendChild(item);
  }
  const top = ranked[0];
  document.getElementById("headline").textContent = data.events === 0
    ? `No faces in ${windowWords()}.`
    : `${data.events} faces in ${windowWords()}; among those kept, mostly ${top} (${pct(data.shares[top])}).`;
  document.getElementById("uncertain").textContent = data.events === 0 ? "" :
    `${pct(data.uncertain_share)} of the faces were marked uncertain (the model was not sure) and are left out ` +
    `of the shares above.`;
  const models = Object.entries(data.models);
  document.getElementById("models").textContent = models.length === 0 ? "" :
    "Labelled by " + models.map(([arch, m]) => `${arch} (${pct(m.share)})`).join(", ") + ".";
}

function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
}

function renderTimeline(data) {
  const svg = document.getElementById("timeline");
  svg.replaceChildren();
  const width = 720, height = 220;
  const first = Math.floor(data.start_time / 60) * 60, last = Math.floor(data.end_time / 60) * 60;
  const slots = Math.max(1, Math.round((last - first) / 60) + 1);
  const step = width / slots;
  for (const minute of data.timeline) {
    const x = ((minute.start - first) / 60) * step;
    let y = height;
    const parts = LABELS.map((l) => [l, minute.shares[l] * (1 - minute.uncertain_share)]);
    parts.push(["uncertain", minute.uncertain_share]);
    for (const [label, share] of parts) {
      if (share <= 0) continue;
      const h = share * height;
      y -= h;
      const rect = document.createElementNS(SVG, "rect");
      for (const [k, v] of Object.entries({x: x + step * 0.08, y, width: step * 0.84, height: h,
                                            fill: COLOURS[label], "data-label": label,
                                            "data-minute": String(minute.start)})) rect.setAttribute(k, v);
      const tip = document.createElementNS(SVG, "title");
      tip.textContent = `${clock(minute.start)}: ${label} ${pct(share)} of ${minute.events} faces`;
      rect.appendChild(tip);
      svg.appendChild(rect);
    }
  }
  const busiest = data.timeline.length;
  document.getElementById("timeline-desc").textContent = busiest === 0
    ? `No minutes with faces in ${windowWords()}.`
    : `${busiest} minute${busiest === 1 ? "" : "s"} with faces in ${windowWords()}, from ${clock(first)} to ` +
      `${clock(last)}.`;
  renderTable(data);
}

function renderTable(data) {
  const table = document.getElementById("timeline-table");
  const head = el("tr");
  for (const name of ["minute", "faces", ...LABELS, "uncertain"]) head.appendChild(el("th", name, {scope: "col"}));
  table.tHead.replaceChildren(head);
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const minute of data.timeline) {
    const row = el("tr");
    row.appendChild(el("th", clock(minute.start), {scope: "row"}));
    row.appendChild(el("td", String(minute.events)));
    for (const label of LABELS) row.appendChild(el("td", pct(minute.shares[label])));
    row.appendChild(el("td", pct(minute.uncertain_share)));
    body.appendChild(row);
  }
}

function buildLegend() {
  const legend = document.getElementById("legend");
  for (const label of [...LABELS, "uncertain"]) {
    const item = el("li");
    const swatch = el("span", null, {class: "swatch"});
    swatch.style.background = COLOURS[label];
    item.appendChild(swatch);
    item.appendChild(document.createTextNode(label));
    legend.appendChild(item);
  }
}

async function load() {
  const status = document.getElementById("status");
  if (windowName === "today") windowSeconds = todaySeconds();
  try {
    const reply = await fetch(`/api/classrooms/${encodeURIComponent(classroom)}/summary?window=${windowSeconds}`,
                              {credentials: "same-origin", cache: "no-store"});
    if (reply.status === 401) {
      window.location.assign(`/?classroom=${encodeURIComponent(classroom)}`);
      return;
    }
    const data = await reply.json();
    if (!reply.ok) {
      status.textContent = data.error || `error ${reply.status}`;
      return;
    }
    renderShares(data);
    renderTimeline(data);
    document.body.dataset.events = String(data.events);
    status.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${refreshMs / 1000} s.`;
  } catch (err) {
    status.textContent = "The dashboard cannot be reached; retrying.";
  } finally {
    clearTimeout(timer);
    timer = setTimeout(load, refreshMs);
  }
}

async function start() {
  document.getElementById("classroom-name").textContent = classroom;
  document.title = `ferlite: classroom ${classroom}`;
  let windows = {"5 min": 300, "15 min": 900, "60 min": 3600};
  try {
    const settings = await (await fetch("/api/settings", {cache: "no-store"})).json();
    windows = settings.windows;
    refreshMs = 1000 * settings.refresh_seconds;
  } catch (err) { /* the defaults above */ }
  buildWindows(windows);
  buildLegend();
  load();
}

start();
