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

// --- One review: a bar per class, the label, and each word coloured by its attribution ---

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

// One bar per class: its name, its probability as a bar and as a number; the predicted class stands out.
function classBar(name, score, predicted) {
  const row = document.createElement("div");
  row.className = predicted ? "class-bar predicted" : "class-bar";
  row.dataset.class = name;
  const label = document.createElement("span");
  label.className = "class-name";
  label.textContent = name;
  const bar = document.createElement("div");
  bar.className = "bar";
  const fill = document.createElement("div");
  fill.className = "bar-fill";
  fill.style.width = `${(100 * score).toFixed(1)}%`;
  bar.appendChild(fill);
  const number = document.createElement("span");
  number.className = "class-score";
  number.textContent = score.toFixed(4);
  row.append(label, bar, number);
  return row;
}

// `prediction`: a row of :predict (label, scores, classes); `row`: the same text's row of :explain. Two
// classes: the attributions push towards the second class (P(positive)); more: towards the explained one.
function showExplanation(prediction, row) {
  const classes = prediction.classes;
  const two = classes.length === 2;
  const explained = two ? classes[1] : classes[row.class_id];
  $("label").textContent = classes[prediction.label];
  $("label").className = two ? (prediction.label === 1 ? "positive" : "negative") : "predicted";
  $("probability-of").textContent = `P(${explained}) =`;
  $("probability").textContent = row.probability.toFixed(4);
  $("class-bars").replaceChildren(...classes.map((name, i) => classBar(name, prediction.scores[i], i === prediction.label)));
  $("towards").textContent = explained;
  $("away").textContent = two ? `towards ${classes[0]}` : `away from ${explained}`;
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
  const scored = await callServer(":predict", { instances: [text] });
  const explained = await callServer(":explain", { instances: [text] });
  showExplanation(scored.predictions[0], explained.predictions[0]);
}

// --- Many reviews: a sortable table and a CSV download ---

// Two classes: one probability column, P(second class) ("probability" in the CSV, as `score` writes it);
// more: a column per class, named by the class.
let rows = [];
let columns = [];
let sortKey = "line";
let ascending = true;

function columnsFor(classes) {
  const scores = classes.length === 2 ? [{ key: "probability", title: `P(${classes[1]})`, csv: "probability", index: 1 }]
    : classes.map((name, i) => ({ key: `p${i}`, title: `P(${name})`, csv: name, index: i }));
  return [{ key: "line", title: "#", csv: "line" }, { key: "text", title: "review", csv: "text" },
          ...scores.map((column) => ({ ...column, numeric: true })), { key: "label", title: "label", csv: "label" }];
}

async function scoreLines() {
  const lines = $("lines").value.split(/\r?\n/).filter((line) => line.trim() !== "");
  if (!lines.length) {
    showError("Paste one review per line first.");
    return;
  }
  const data = await callServer(":predict", { instances: lines });
  columns = columnsFor(data.predictions[0].classes);
  rows = lines.map((text, i) => {
    const prediction = data.predictions[i];
    const row = { line: i + 1, text, label: prediction.classes[prediction.label] };
    for (const column of columns) if (column.numeric) row[column.key] = prediction.scores[column.index];
    return row;
  });
  sortKey = "line";
  ascending = true;
  renderTable();
  $("download").href = URL.createObjectURL(new Blob([toCsv(rows)], { type: "text/csv" }));
  $("download").hidden = false;
}

function renderHeader() {
  const tr = document.createElement("tr");
  for (const column of columns) {
    const th = document.createElement("th");
    th.dataset.key = column.key;
    th.textContent = column.title;
    th.setAttribute("aria-sort", column.key === sortKey ? (ascending ? "ascending" : "descending") : "none");
    th.addEventListener("click", () => {
      ascending = column.key === sortKey ? !ascending : true;
      sortKey = column.key;
      renderTable();
    });
    tr.appendChild(th);
  }
  $("table").querySelector("thead").replaceChildren(tr);
}

function renderTable() {
  const sorted = [...rows].sort((a, b) => {
    const order = typeof a[sortKey] === "string" ? a[sortKey].localeCompare(b[sortKey]) : a[sortKey] - b[sortKey];
    return ascending ? order : -order;
  });
  renderHeader();
  $("table").querySelector("tbody").replaceChildren(...sorted.map((row) => {
    const tr = document.createElement("tr");
    for (const column of columns) {
      const td = document.createElement("td");
      td.textContent = column.numeric ? row[column.key].toFixed(4) : row[column.key];
      if (column.numeric || column.key === "line") td.className = "number";
      tr.appendChild(td);
    }
    return tr;
  }));
  $("table").hidden = false;
}

function toCsv(table) {
  const quote = (value) => {
    const text = String(value);
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  const lines = [columns.map((column) => quote(column.csv)).join(",")];
  for (const row of table) lines.push(columns.map((column) => quote(row[column.key])).join(","));
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
showModelVersion();
