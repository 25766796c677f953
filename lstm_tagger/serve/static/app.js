// lstm-tag's web page: asks the server's /models and /tag and shows the tagged sentences.
// Plain JavaScript, nothing fetched from elsewhere; user text is only ever set as textContent.
"use strict";

const UPOS = ["ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
  "PUNCT", "SCONJ", "SYM", "VERB", "X"];
const $ = (id) => document.getElementById(id);
let downloadUrl = null;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function colour(node, tag) {
  // The 17 UPOS tags have their colours in style.css; any other tag a hue of its own.
  if (UPOS.includes(tag)) { node.classList.add("upos-" + tag); return; }
  let hash = 0;
  for (const char of String(tag)) hash = (hash * 31 + char.codePointAt(0)) % 360;
  node.style.background = `hsl(${hash}, 70%, 85%)`;
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(isError));
}

async function post(body) {
  const response = await fetch("/tag", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).error; } catch (ignored) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function chosen(sentence, column, i) {
  // The probability of word i's chosen tag in column, when the answer has scores.
  const scores = sentence.scores && sentence.scores[column];
  return scores ? scores[i][sentence[column][i]] : undefined;
}

function hover(sentence, i) {
  const lines = [];
  for (const column of ["upos", "xpos", "feats"]) {
    if (!sentence[column]) continue;
    const p = chosen(sentence, column, i);
    lines.push(column.toUpperCase() + ": " + sentence[column][i] + (p === undefined ? "" : ` (${p.toFixed(3)})`));
  }
  if (sentence.scores && sentence.scores.upos) {
    const best = Object.entries(sentence.scores.upos[i]).slice(0, 3);
    lines.push("most probable: " + best.map(([tag, p]) => `${tag} ${p.toFixed(3)}`).join(", "));
  }
  return lines.join("\n");
}

function wordsRow(sentence) {
  const row = element("div", "words");
  sentence.words.forEach((form, i) => {
    const word = element("span", "word");
    word.title = hover(sentence, i);
    word.append(element("span", "form", form));
    const upos = sentence.upos ? sentence.upos[i] : (sentence.xpos || sentence.feats)[i];
    const tag = element("span", "tag", upos);
    word.dataset.upos = upos;
    colour(word, upos);
    word.append(tag);
    const p = chosen(sentence, sentence.upos ? "upos" : "xpos", i);
    if (p !== undefined) word.append(element("span", "prob", p.toFixed(3)));
    row.append(word);
  });
  return row;
}

function table(sentence) {
  const columns = ["upos", "xpos", "feats"].filter((column) => sentence[column]);
  const details = element("details");
  details.append(element("summary", null, "Table"));
  const grid = element("table");
  const head = element("tr");
  for (const name of ["ID", "FORM", ...columns.map((c) => c.toUpperCase())]) head.append(element("th", null, name));
  if (sentence.scores) head.append(element("th", null, "P"));
  grid.append(head);
  sentence.words.forEach((form, i) => {
    const row = element("tr");
    row.append(element("td", null, String(i + 1)), element("td", null, form));
    for (const column of columns) row.append(element("td", null, sentence[column][i]));
    if (sentence.scores) {
      const p = chosen(sentence, columns[0], i);
      row.append(element("td", null, p === undefined ? "" : p.toFixed(3)));
    }
    grid.append(row);
  });
  details.append(grid);
  return details;
}

function show(sentences) {
  const result = $("result");
  result.replaceChildren();
  sentences.forEach((sentence, n) => {
    const block = element("div", "sentence");
    block.dataset.sentence = String(n + 1);
    block.append(wordsRow(sentence), table(sentence));
    result.append(block);
  });
}

function offerDownload(conllu) {
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = URL.createObjectURL(new Blob([conllu], { type: "text/plain;charset=utf-8" }));
  const link = $("download");
  link.href = downloadUrl;
  link.classList.remove("disabled");
  link.setAttribute("aria-disabled", "false");
}

async function tag(event) {
  event.preventDefault();
  const body = { text: $("text").value, model: $("model").value || null, scores: $("scores").checked };
  setStatus("Tagging…");
  $("tag").disabled = true;
  try {
    const [json, conllu] = await Promise.all([
      post({ ...body, format: "json" }).then((r) => r.json()),
      post({ ...body, format: "conllu" }).then((r) => r.text()),
    ]);
    show(json.sentences);
    offerDownload(conllu);
    const words = json.sentences.reduce((sum, s) => sum + s.words.length, 0);
    setStatus(`${json.sentences.length} sentence(s), ${words} word(s), model ${json.model}`);
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    $("tag").disabled = false;
  }
}

async function loadModels() {
  try {
    const answer = await (await fetch("/models")).json();
    for (const name of Object.keys(answer.models)) {
      const option = element("option", null, name);
      option.value = name;
      option.selected = name === answer.default_model;
      $("model").append(option);
    }
  } catch (error) {
    setStatus("cannot list the models: " + error.message, true);
  }
}

$("form").addEventListener("submit", tag);
loadModels();
