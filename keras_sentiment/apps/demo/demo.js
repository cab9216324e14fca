// The demo page's behaviour. It talks only to the server that sent it, through the same REST API
// clients use: GET /v1/models/NAME (version), POST ...:explain (one review), POST ...:predict (many).
// Every error the server answers with ({"error": ...}) is shown on the page.
"use strict";

const MODEL = document.body.dataset.model;
const BASE = `/v1/models/${encodeURIComponent(MODEL)}`;
const $ = (id) => document.getElementById(id);

async function callServer(path, body) {
  const init = body === undefined ? { method: "GET" }
    : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  let response;
  try {
    response = await fetch(BASE + path, init);
  } catch (error) {
    throw new Error(`The server did not answer (${error.message}). Is keras-sentiment serve still running?`);
  }
  let data;
  try {
    data = await response.json();
  } catch (error) {
    throw new Error(`The server answered ${response.status} ${response.statusText} without JSON.`);
  }
  if (!response.ok || data.error) {
    throw new Error(`The server answered ${response.status}: ${data.error || response.statusText}`);
  }
  return data;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

async function whileBusy(button, work) {
  clearError();
  button.disabled = true;
  try {
    await work();
  } catch (error) {
    showError(error.message);
  } finally {
    button.disabled = false;
  }
}

// --- One review: probability, label and each word coloured by its attribution ---

// Word pieces back to words, as keras_sentiment.core.explanation.merge_word_pieces does: "##x" joins the
// word before it; [CLS], [SEP] and padding ("") are left out.
function mergeWordPieces(tokens, attributions) {
  const words = [];
  tokens.forEach((token, i) => {
    if (token === "" || token === "[CLS]" || token === "[SEP]") return;
    if (token.startsWith("##") && words.length) {
      words[words.length - 1].token += token.slice(2);
      words[words.length - 1].attribution += attributions[i];
    } else {
      words.push({ token, attribution: attributions[i] });
    }
  });
  return words;
}

function colourOf(attribution, largest) {
  const strength = largest > 0 ? Math.abs(attribution) / largest : 0;
  const rgb = attribution >= 0 ? "var(--positive)" : "var(--negative)";
  return `rgba(${rgb}, ${(0.08 + 0.72 * strength).toFixed(3)})`;
}

function showExplanation(row) {
  const probability = row.probability;
  $("label").textContent = probability >= 0.5 ? "positive" : "negative";
  $("label").className = probability >= 0.5 ? "positive" : "negative";
  $("probability").textContent = probability.toFixed(4);
  $("bar-fill").style.width = `${(100 * probability).toFixed(1)}%`;
  const words = mergeWordPieces(row.tokens, row.attributions);
  const largest = Math.max(0, ...words.map((w) => Math.abs(w.attribution)));
  const container = $("words");
  container.replaceChildren(...words.map((word) => {
    const span = document.createElement("span");
    span.className = "word";
    span.textContent = word.token;
    span.dataset.attribution = String(word.attribution);
    span.title = `${word.attribution >= 0 ? "+" : ""}${word.attribution.toFixed(4)}`;
    span.style.backgroundColor = colourOf(word.attribution, largest);
    return span;
  }).flatMap((span) => [span, document.createTextNode(" ")]));
  $("result").hidden = false;
}

async function explainReview() {
  const text = $("text").value;
  if (!text.trim()) {
    showError("Type a review first.");
    return;
  }
  const data = await callServer(":explain", { instances: [text] });
  showExplanation(data.predictions[0]);
}

// --- Many reviews: a sortable table and a CSV download ---

let rows = [];
let sortKey = "line";
let ascending = true;

async function scoreLines() {
  const lines = $("lines").value.split(/\r?\n/).filter((line) => line.trim() !== "");
  if (!lines.length) {
    showError("Paste one review per line first.");
    return;
  }
  const data = await callServer(":predict", { instances: lines });
  rows = lines.map((text, i) => ({
    line: i + 1, text, probability: data.predictions[i].probability,
    label: data.predictions[i].label === 1 ? "positive" : "negative",
  }));
  sortKey = "line";
  ascending = true;
  renderTable();
  $("download").href = URL.createObjectURL(new Blob([toCsv(rows)], { type: "text/csv" }));
  $("download").hidden = false;
}

function renderTable() {
  const sorted = [...rows].sort((a, b) => {
    const order = typeof a[sortKey] === "string" ? a[sortKey].localeCompare(b[sortKey]) : a[sortKey] - b[sortKey];
    return ascending ? order : -order;
  });
  $("table").querySelector("tbody").replaceChildren(...sorted.map((row) => {
    const tr = document.createElement("tr");
    for (const [value, numeric] of [[row.line, true], [row.text, false], [row.probability.toFixed(4), true],
                                    [row.label, false]]) {
      const td = document.createElement("td");
      td.textContent = value;
      if (numeric) td.className = "number";
      tr.appendChild(td);
    }
    return tr;
  }));
  for (const th of $("table").querySelectorAll("th")) {
    th.setAttribute("aria-sort", th.dataset.key === sortKey ? (ascending ? "ascending" : "descending") : "none");
  }
  $("table").hidden = false;
}

function toCsv(table) {
  const quote = (value) => {
    const text = String(value);
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  const lines = [["line", "text", "probability", "label"].join(",")];
  for (const row of table) lines.push([row.line, quote(row.text), row.probability, row.label].join(","));
  return lines.join("\r\n") + "\r\n";
}

// --- Wiring ---

function showTab(name) {
  for (const [tab, section] of [["tab-one", "one"], ["tab-many", "many"]]) {
    const active = section === name;
    $(tab).classList.toggle("active", active);
    $(tab).setAttribute("aria-selected", String(active));
    $(section).hidden = !active;
  }
  clearError();
}

async function showModelVersion() {
  try {
    const status = await callServer("");
    $("model-version").textContent = status.model_version_status[0].version;
  } catch (error) {
    showError(error.message);
  }
}

$("tab-one").addEventListener("click", () => showTab("one"));
$("tab-many").addEventListener("click", () => showTab("many"));
$("explain-button").addEventListener("click", () => whileBusy($("explain-button"), explainReview));
$("score-button").addEventListener("click", () => whileBusy($("score-button"), scoreLines));
$("text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("explain-button").click();
});
for (const th of $("table").querySelectorAll("th")) {
  th.addEventListener("click", () => {
    ascending = th.dataset.key === sortKey ? !ascending : true;
    sortKey = th.dataset.key;
    renderTable();
  });
}
showModelVersion();
