// seqlab serve: the page. Plain JavaScript, no build step, no library; every number comes from the
// JSON endpoints (see /docs). One column per shown run: its tokens coloured by surprisal and its
// next-token bars; the tabs below act on the run chosen in the header.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  runs: [], limits: {}, primary: 0, compared: new Set(), view: "generate",
  seq: 0,            // request counter: only the latest answer of each kind is drawn
  drawn: {},         // key -> the seq last drawn
  keys: [], timings: [],  // keystrokes not yet shown ({text, at}); keystroke -> bars latency (ms), for the benchmark
  tokensTimer: null,
  rendered: 0,       // bumped each time the primary run's bars are drawn
  gen: null, controller: null, trace: null, traceKey: null, timer: null,
  neuronRank: 0,
};
window.seqlab = state;

// ---- helpers ------------------------------------------------------------------------------------

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function api(path, body, signal) {
  const init = body === undefined ? {signal} :
    {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body), signal};
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({error: `HTTP ${response.status}`}));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function latest(key) { const seq = ++state.seq; state.drawn[key] = seq; return () => state.drawn[key] === seq; }

function run(index) { return state.runs[index === undefined ? state.primary : index]; }
function text() { return $("text").value; }
function sampling() {
  return {temperature: parseFloat($("temperature").value), top_k: Math.max(0, parseInt($("top-k").value || "0", 10)),
          top_p: parseFloat($("top-p").value)};
}
function shown() { return [state.primary, ...[...state.compared].filter((i) => i !== state.primary).sort((a, b) => a - b)]; }
function isLM(index) { return run(index).kind !== "seq2seq"; }
function showError(message) { $("error").hidden = !message; $("error").textContent = message || ""; }
function visible(token) { return token.replace(/\n/g, "↵").replace(/\t/g, "⇥").replace(/ /g, "␣"); }
function heat(bits) {  // 0 bits white, 12 bits and more deep red
  const x = Math.min(1, Math.max(0, (bits || 0) / 12));
  return `rgb(255, ${Math.round(255 - 170 * x)}, ${Math.round(255 - 200 * x)})`;
}

// ---- the columns: tokens, surprisal and next-token bars of each shown run --------------------------

function columns() {
  const box = $("columns");
  const wanted = shown();
  if (box.dataset.runs !== wanted.join(",")) {
    box.replaceChildren(...wanted.map((i) => {
      const col = el("div", "column"); col.id = `col-${i}`; col.dataset.run = i;
      const title = el("h2", null, run(i).name);
      title.append(" ", el("small", null, `${run(i).family}`));
      col.append(title, el("div", "meta"), el("p", "error"), el("div", "tokens"), el("div", "bars"));
      col.querySelector(".error").hidden = true;
      return col;
    }));
    box.dataset.runs = wanted.join(",");
  }
  return wanted;
}

function update() {
  for (const i of columns()) {
    const col = $(`col-${i}`);
    if (!isLM(i)) {
      col.querySelector(".meta").textContent = "a seq2seq run: it translates the text (Translate tab)";
      col.querySelector(".bars").replaceChildren(); col.querySelector(".tokens").replaceChildren();
      continue;
    }
    askBars(i, col);
  }
  // The tokens do not depend on the knobs, and wait for a pause in the typing (TOKENS_PAUSE ms), so
  // that the bars, asked for at every keystroke, have the run's worker first.
  clearTimeout(state.tokensTimer);
  state.tokensTimer = setTimeout(updateTokens, TOKENS_PAUSE);
  scheduleTrace();
}

const TOKENS_PAUSE = 60;

function updateTokens() {
  const t = text();
  for (const i of shown()) {
    const col = $(`col-${i}`);
    if (!col || !isLM(i) || col.dataset.asked === t) continue;
    col.dataset.asked = t;
    const freshTokens = latest(`tokens-${i}`);
    api("/api/tokens", {run: i, text: t})
      .then((d) => { if (freshTokens()) { drawTokens(col, d); col.dataset.text = t; } })
      .catch((e) => { if (freshTokens()) { columnError(col, e); col.dataset.asked = ""; } });
  }
}

// One request for a column's bars at a time: keys typed while it is out are gathered into one more
// request, for the text and knobs of the moment, sent when it returns. So the server never holds a
// queue of stale texts, and the bars show each answer as it comes (the newest asked so far).
function askBars(i, col) {
  if (col.dataset.busy === "1") { col.dataset.again = "1"; return; }
  col.dataset.busy = "1"; col.dataset.again = "";
  const t = text(), body = {run: i, text: t, bars: parseInt($("bars").value, 10), ...sampling()};
  api("/api/distribution", body)
    .then((d) => { if (col.isConnected) drawBars(i, col, d, t); })
    .catch((e) => { if (col.isConnected) columnError(col, e); })
    .finally(() => { col.dataset.busy = ""; if (col.dataset.again && col.isConnected) askBars(i, col); });
}

function columnError(col, error) {
  const p = col.querySelector(".error"); p.hidden = false; p.textContent = error.message;
}

function drawBars(index, col, d, t) {
  col.querySelector(".error").hidden = true;
  const beta = d.beta === null ? "∞ (greedy)" : d.beta.toFixed(2);
  col.querySelector(".meta").textContent =
    `T = ${d.temperature.toFixed(2)} · β = ${beta} · kept ${d.kept} of ${d.vocab_size} tokens ` +
    `(mass ${d.kept_mass.toFixed(4)} under T) · entropy ${d.entropy_bits.toFixed(2)} bits` +
    (d.cut ? ` · reads the last ${d.context_tokens} tokens` : "");
  const rows = d.bars.map((b) => {
    const row = el("div", b.kept ? "bar" : "bar removed");
    Object.assign(row.dataset, {id: b.id, p: b.p, pTemperature: b.p_temperature, kept: b.kept});
    const track = el("span", "track"), ghost = el("span", "ghost"), fill = el("span", "fill");
    ghost.style.width = `${(100 * b.p_temperature).toFixed(2)}%`;
    fill.style.width = `${(100 * b.p).toFixed(2)}%`;
    track.append(ghost, fill);
    track.title = `softmax(logits/T) = ${b.p_temperature.toFixed(4)}; drawn with p = ${b.p.toFixed(4)}`;
    row.append(el("span", "label", visible(b.token)), track, el("span", "num", b.p.toFixed(4)));
    return row;
  });
  const box = col.querySelector(".bars");
  box.replaceChildren(...rows);
  box.dataset.text = t;
  if (index === state.primary) {
    state.rendered += 1;
    $("columns").dataset.rendered = state.rendered;
    $("columns").dataset.text = t;
    // Every keystroke up to the one that made this text now shows its bars (or newer ones).
    const upTo = state.keys.map((k) => k.text).lastIndexOf(t);
    if (upTo >= 0) {
      const shownKeys = state.keys.splice(0, upTo + 1);
      requestAnimationFrame(() => { const now = performance.now(); for (const k of shownKeys) state.timings.push(now - k.at); });
    }
  }
}

function drawTokens(col, d) {
  col.querySelector(".error").hidden = true;
  const spans = d.tokens.map((tok) => {
    const span = el("span", tok.text === "\n" ? "tok nl" : "tok", tok.text === "\n" ? "" : tok.text);
    span.dataset.id = tok.id;
    if (tok.surprisal !== null) {
      span.dataset.surprisal = tok.surprisal;
      span.style.background = heat(tok.surprisal);
      span.title = `${JSON.stringify(tok.text)} (id ${tok.id}): ${tok.surprisal.toFixed(3)} bits`;
    } else span.title = `${JSON.stringify(tok.text)} (id ${tok.id}): the first token`;
    return tok.text === "\n" ? [span, el("br")] : [span];
  }).flat();
  const box = col.querySelector(".tokens");
  box.replaceChildren(...spans);
  const h2 = col.querySelector("h2 small");
  const family = run(Number(col.dataset.run)).family;
  h2.textContent = d.bits_per_char === null ? family :
    `${family} · ${d.tokens.length} tokens · ${d.bits.toFixed(1)} bits · ${d.bits_per_char.toFixed(3)} bits/char`;
}

// ---- generation: step by step, or streamed with a stop button ----------------------------------

function genRequest(n) {
  return {run: state.primary, prompt: state.gen.prompt, max_new_tokens: n, seed: parseInt($("seed").value || "0", 10),
          stop: $("stop").value, top: 10, ...sampling()};
}

function resetGeneration() {
  if (state.controller) state.controller.abort();
  state.gen = {prompt: text(), n: 0, tokens: []};
  drawGeneration();
  $("gen-status").textContent = "";
  $("gen-step").replaceChildren();
}

function drawGeneration() {
  const out = $("gen-output");
  const spans = [el("span", "prompt", state.gen.prompt)];
  for (const tok of state.gen.tokens) {
    const span = el("span", "new", tok.text);
    Object.assign(span.dataset, {id: tok.id, p: tok.p});
    span.title = `${JSON.stringify(tok.token)} (id ${tok.id}) drawn with p = ${tok.p.toFixed(4)}`;
    spans.push(span);
  }
  out.replaceChildren(...spans);
  if (state.gen.tail) out.append(el("span", "new", state.gen.tail));
}

async function step() {
  if (!state.gen || state.gen.prompt !== text() || state.gen.streamed) resetGeneration();
  const n = state.gen.n + 1;
  try {
    const d = await api("/api/generate", genRequest(n));
    state.gen.n = n; state.gen.tokens = d.tokens; state.gen.tail = d.completion.slice(d.tokens.map((t) => t.text).join("").length);
    drawGeneration();
    const last = d.tokens[d.tokens.length - 1];
    if (d.tokens.length < n || !last) { $("gen-status").textContent = `stopped: ${d.finished}`; return; }
    $("gen-status").textContent = `step ${n}: ${JSON.stringify(last.token)} drawn with p = ${last.p.toFixed(4)} ` +
      `(seed ${genRequest(n).seed}: step n shows the first n tokens of the seeded sample)`;
    const box = $("gen-step");
    box.replaceChildren(...last.top.map((alt) => {
      const row = el("div", alt.id === last.id ? "bar" : "bar removed");
      Object.assign(row.dataset, {id: alt.id, p: alt.p});
      const track = el("span", "track"), fill = el("span", "fill");
      fill.style.width = `${(100 * alt.p).toFixed(2)}%`; track.append(fill);
      row.append(el("span", "label", visible(alt.token)), track, el("span", "num", alt.p.toFixed(4)));
      return row;
    }));
    box.className = "step-bars bars";
  } catch (e) { $("gen-status").textContent = e.message; }
}

async function stream() {
  resetGeneration();
  state.gen.streamed = true;
  const controller = new AbortController();
  state.controller = controller;
  $("stream").disabled = true; $("step").disabled = true; $("stop-button").disabled = false;
  $("gen-status").textContent = "generating…";
  let stoppedByUser = false;
  controller.signal.addEventListener("abort", () => { stoppedByUser = true; });
  try {
    const response = await fetch("/api/generate/stream", {method: "POST", headers: {"content-type": "application/json"},
      body: JSON.stringify(genRequest(parseInt($("max-new").value || "1", 10))), signal: controller.signal});
    if (!response.ok) throw new Error((await response.json().catch(() => ({}))).error || `HTTP ${response.status}`);
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const line = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        if (!line.startsWith("data: ")) continue;
        const event = JSON.parse(line.slice(6));
        if (event.type === "token") {
          state.gen.tokens.push(event);
          const span = el("span", "new", event.text);
          Object.assign(span.dataset, {id: event.id, p: event.p});
          span.title = `${JSON.stringify(event.token)} (id ${event.id}) drawn with p = ${event.p.toFixed(4)}`;
          $("gen-output").append(span);
          $("gen-status").textContent = `${state.gen.tokens.length} tokens…`;
        } else if (event.type === "done") {
          state.gen.tail = event.text;
          if (event.text) $("gen-output").append(el("span", "new", event.text));
          $("gen-status").textContent = `done: ${event.count} tokens (${event.finished})`;
          $("gen-output").dataset.done = "1";
        }
      }
    }
  } catch (e) {
    $("gen-status").textContent = stoppedByUser ? `stopped after ${state.gen.tokens.length} tokens` : e.message;
    if (stoppedByUser) $("gen-output").dataset.done = "stopped";
  } finally {
    if (state.controller === controller) state.controller = null;
    $("stream").disabled = false; $("step").disabled = false; $("stop-button").disabled = true;
  }
}

// ---- traced views: attention, neurons, trellis --------------------------------------------------

const PARTS = {attention: ["attention"], neurons: ["activations"], trellis: ["hmm", "ngram"]};

function scheduleTrace() {
  clearTimeout(state.timer);
  if (PARTS[state.view]) state.timer = setTimeout(loadTrace, 150);
  if (state.view === "translate" && !isLM()) $("translate-status").textContent = "press Translate";
}

async function loadTrace() {
  const view = state.view, status = $(`${view === "neurons" ? "neuron" : view === "attention" ? "att" : view}-status`);
  if (!isLM()) { status.textContent = `${run().name} is a seq2seq run: see the Translate tab`; return; }
  const key = `${state.primary}|${view}|${text()}`;
  if (state.traceKey === key) return;
  if (!text()) { status.textContent = "type a text to trace"; return; }
  const fresh = latest("trace");
  status.textContent = "tracing…";
  try {
    const d = await api("/api/trace", {run: state.primary, text: text(), parts: PARTS[view], top: 0});
    if (!fresh()) return;
    state.trace = d; state.traceKey = key;
    status.textContent = `${d.tokens.length} tokens`;
    if (view === "attention") drawAttentionView();
    if (view === "neurons") drawNeuronsView();
    if (view === "trellis") drawTrellisView();
  } catch (e) { if (fresh()) { status.textContent = e.message; state.traceKey = null; } }
}

function fillSelect(select, values, keep) {
  const old = select.value;
  select.replaceChildren(...values.map((v) => { const o = el("option", null, String(v)); o.value = String(v); return o; }));
  if (keep && values.map(String).includes(old)) select.value = old;
}

function shade(w) { const x = Math.max(0, Math.min(1, w || 0)); return `rgb(${Math.round(255 - 225 * x)}, ${Math.round(255 - 170 * x)}, ${Math.round(255 - 60 * x)})`; }

function heatmap(canvas, rows, rowLabels, colLabels, size) {
  const T = rows.length, S = rows[0] ? rows[0].length : 0;
  const cell = Math.max(2, Math.min(24, Math.floor(size / Math.max(T, S, 1))));
  const margin = cell >= 9 ? 44 : 0;
  canvas.width = margin + cell * S; canvas.height = margin + cell * T;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  rows.forEach((row, t) => row.forEach((w, s) => {
    ctx.fillStyle = w === null ? "#eee" : shade(w); ctx.fillRect(margin + s * cell, margin + t * cell, cell, cell);
  }));
  if (margin) {
    ctx.fillStyle = "#1d2430"; ctx.font = `${Math.min(12, cell)}px monospace`; ctx.textAlign = "right"; ctx.textBaseline = "middle";
    rowLabels.forEach((label, t) => ctx.fillText(visible(label).slice(0, 5), margin - 3, margin + t * cell + cell / 2));
    colLabels.forEach((label, s) => {
      ctx.save(); ctx.translate(margin + s * cell + cell / 2, margin - 3); ctx.rotate(-Math.PI / 2); ctx.textAlign = "left";
      ctx.fillText(visible(label).slice(0, 5), 0, 0); ctx.restore();
    });
  }
  return {cell, margin};
}

function drawAttentionView() {
  const att = state.trace.attention;
  if (!att) { $("att-status").textContent = `${run().name} (${run().family}) has no attention to show`;
    $("att-thumbs").replaceChildren(); $("att-row").replaceChildren(); clearCanvas($("att-map")); return; }
  fillSelect($("att-kind"), Object.keys(att), true);
  const maps = att[$("att-kind").value];
  fillSelect($("att-layer"), maps.map((_, l) => l), true);
  fillSelect($("att-head"), maps[0].map((_, h) => h), true);
  drawAttention();
}

function drawAttention() {
  const maps = state.trace.attention[$("att-kind").value];
  const layer = parseInt($("att-layer").value, 10), head = parseInt($("att-head").value, 10);
  const labels = state.trace.tokens.map((t) => t.text);
  const rows = maps[layer][head];
  const geometry = heatmap($("att-map"), rows, labels, rows[0].length === labels.length ? labels : rows[0].map((_, s) => String(s)), 440);
  $("att-map").onmousemove = (e) => {
    const r = $("att-map").getBoundingClientRect(), scale = $("att-map").height / r.height;
    const t = Math.floor(((e.clientY - r.top) * scale - geometry.margin) / geometry.cell);
    if (t >= 0 && t < rows.length) attentionRow(rows, labels, t, layer, head);
  };
  attentionRow(rows, labels, rows.length - 1, layer, head);
  const thumbs = $("att-thumbs");
  thumbs.style.gridTemplateColumns = `repeat(${maps[0].length}, auto)`;
  thumbs.replaceChildren(...maps.flatMap((heads, l) => heads.map((map, h) => {
    const c = el("canvas"); c.title = `layer ${l} head ${h}`; c.dataset.layer = l; c.dataset.head = h;
    heatmap(c, map, [], [], 48);
    if (l === layer && h === head) c.className = "selected";
    c.addEventListener("click", () => { $("att-layer").value = l; $("att-head").value = h; drawAttention(); });
    return c;
  })));
}

function attentionRow(rows, labels, t, layer, head) {
  const row = rows[t];
  const order = row.map((w, s) => [w, s]).filter(([w]) => w !== null).sort((a, b) => b[0] - a[0]).slice(0, 8);
  const box = $("att-row");
  Object.assign(box.dataset, {layer, head, query: t});
  const table = el("table");
  const head1 = el("tr"); head1.append(el("th", null, "key"), el("th", null, "token"), el("th", null, "weight"));
  table.append(head1);
  for (const [w, s] of order) {
    const tr = el("tr"); tr.dataset.key = s; tr.dataset.weight = w;
    tr.append(el("td", null, String(s)), el("td", null, visible(labels[s] ?? String(s))), el("td", null, w.toFixed(4)));
    table.append(tr);
  }
  box.replaceChildren(el("p", null, `layer ${layer}, head ${head}: query ${t} (${JSON.stringify(labels[t])}) attends most to`), table);
}

function clearCanvas(canvas) { canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height); }

function drawNeuronsView() {
  const acts = state.trace.activations;
  if (!acts) { $("neuron-status").textContent = `${run().name} has no hidden units to show`; $("neuron-text").replaceChildren(); return; }
  fillSelect($("neuron-layer"), Object.keys(acts), true);
  drawNeurons();
}

function drawNeurons() {
  const layer = state.trace.activations[$("neuron-layer").value];
  const units = layer.order.length;
  state.neuronRank = Math.max(0, Math.min(units - 1, state.neuronRank));
  const unit = layer.order[state.neuronRank];
  $("neuron-unit").max = units - 1; $("neuron-unit").value = unit;
  $("neuron-status").textContent = `unit ${unit} of ${units} (rank ${state.neuronRank + 1} by variation); ` +
    `red positive, blue negative, scaled by its largest magnitude ${layer.scale[unit]}`;
  const spans = state.trace.tokens.map((tok, t) => {
    const value = layer.values[t][unit], x = Math.max(-1, Math.min(1, value / layer.scale[unit]));
    const span = el("span", "tok", tok.text);
    span.dataset.value = value;
    span.style.background = x >= 0 ? `rgba(220, 40, 40, ${x.toFixed(3)})` : `rgba(40, 90, 220, ${(-x).toFixed(3)})`;
    span.title = `${JSON.stringify(tok.text)}: ${value}`;
    return span;
  });
  $("neuron-text").replaceChildren(...spans);
  $("neuron-text").dataset.unit = unit;
}

function drawTrellisView() {
  const d = state.trace, canvas = $("trellis");
  clearCanvas(canvas); $("ngram").replaceChildren(); canvas.hidden = !d.hmm;
  if (!d.hmm && !d.ngram) { $("trellis-status").textContent = `${run().name} (${run().family}) has no HMM states or n-gram orders`; return; }
  const labels = d.tokens.map((t) => t.text);
  if (d.hmm) {
    const posteriors = d.hmm.posteriors, K = posteriors[0].length, T = posteriors.length;
    const rows = Array.from({length: K}, (_, k) => posteriors.map((p) => p[k]));  // (K, T)
    const g = heatmap(canvas, rows, rows.map((_, k) => `z${k}`), labels, 560);
    const ctx = canvas.getContext("2d");
    ctx.strokeStyle = "#b3261e"; ctx.lineWidth = Math.max(1, g.cell / 6); ctx.beginPath();
    d.hmm.viterbi.forEach((k, t) => {
      const x = g.margin + t * g.cell + g.cell / 2, y = g.margin + k * g.cell + g.cell / 2;
      if (t === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
    canvas.dataset.viterbi = d.hmm.viterbi.join(",");
    $("trellis-status").textContent = `${K} states × ${T} tokens: P(state | the whole text) shaded, the Viterbi path in red`;
  }
  if (d.ngram) {
    const table = el("table"), head = el("tr");
    head.append(el("th", null, "token"), el("th", null, "longest context seen"), el("th", null, "interpolation weights (order 0 …)"));
    table.append(head);
    d.tokens.forEach((tok, t) => {
      const tr = el("tr"); tr.dataset.order = d.ngram.order[t];
      tr.append(el("td", null, visible(tok.text)), el("td", null, String(d.ngram.order[t])),
        el("td", null, d.ngram.weights[t].map((w) => (w === null ? "–" : w.toFixed(3))).join("  ")));
      table.append(tr);
    });
    $("ngram").replaceChildren(el("p", null, "n-gram backoff: the order that answered each token and each order's weight"), table);
    if (!d.hmm) $("trellis-status").textContent = `${d.tokens.length} tokens`;
  }
}

// ---- translation --------------------------------------------------------------------------------

async function translateText() {
  if (isLM()) { $("translate-status").textContent = `${run().name} is a language model: choose a seq2seq run`; return; }
  const body = {run: state.primary, text: text()};
  if ($("translate-sampled").checked) Object.assign(body, sampling(), {seed: parseInt($("seed").value || "0", 10)});
  $("translate-status").textContent = "translating…";
  try {
    const d = await api("/api/translate", body);
    state.translation = d;
    $("translation").textContent = d.output;
    $("translate-status").textContent = d.alignment ? `alignment of ${d.alignment.of}` : "";
    if (d.alignment) { fillSelect($("align-map"), Object.keys(d.alignment.maps), true); drawAlignment(); }
  } catch (e) { $("translate-status").textContent = e.message; }
}

function drawAlignment() {
  const a = state.translation.alignment;
  heatmap($("align"), a.maps[$("align-map").value], a.target_tokens, state.translation.source_tokens, 440);
}

// ---- wiring -------------------------------------------------------------------------------------

function knobsChanged() {
  const t = parseFloat($("temperature").value);
  $("temperature-value").textContent = t.toFixed(2);
  $("beta").textContent = t === 0 ? "∞ (greedy)" : (1 / t).toFixed(2);
  $("top-p-value").textContent = parseFloat($("top-p").value).toFixed(2);
  update();
}

function setDefaults(r) {
  $("temperature").value = Math.min(4, r.sample.temperature);
  $("top-k").value = r.sample.top_k; $("top-p").value = r.sample.top_p; $("seed").value = r.sample.seed;
  $("max-new").value = Math.min(r.sample.max_new_tokens || 200, state.limits.new_tokens);
}

function showView(view) {
  state.view = view;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.view === view);
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== `view-${view}`;
  state.traceKey = null; scheduleTrace();
}

async function start() {
  const d = await api("/api/runs");
  state.runs = d.runs; state.limits = d.limits;
  $("text").maxLength = d.limits.text_chars;
  fillSelect($("run"), d.runs.map((r) => r.index));
  [...$("run").options].forEach((o, i) => { o.textContent = `${d.runs[i].name} (${d.runs[i].family})`; });
  $("compare").replaceChildren(...d.runs.filter((r) => r.kind !== "seq2seq").map((r) => {
    const label = el("label"), box = el("input"); box.type = "checkbox"; box.value = r.index; box.id = `compare-${r.index}`;
    box.disabled = box.checked = r.index === state.primary;
    box.addEventListener("change", () => { if (box.checked) state.compared.add(r.index); else state.compared.delete(r.index); update(); });
    label.append(box, ` ${r.name}`); return label;
  }));
  setDefaults(d.runs[0]);
  $("run").addEventListener("change", () => {
    state.primary = parseInt($("run").value, 10); state.gen = null; state.traceKey = null;
    for (const box of $("compare").querySelectorAll("input")) {
      box.disabled = Number(box.value) === state.primary; box.checked = box.disabled || state.compared.has(Number(box.value));
    }
    if (!isLM() && state.view !== "translate") showView("translate");
    update();
  });
  $("text").addEventListener("input", () => { state.keys.push({text: text(), at: performance.now()}); update(); });
  for (const id of ["temperature", "top-p", "top-k", "bars"]) $(id).addEventListener("input", knobsChanged);
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showView(b.dataset.view));
  $("step").addEventListener("click", step);
  $("stream").addEventListener("click", stream);
  $("stop-button").addEventListener("click", () => { if (state.controller) state.controller.abort(); });
  $("reset").addEventListener("click", resetGeneration);
  $("use").addEventListener("click", () => { $("text").value = $("gen-output").textContent; update(); });
  $("att-kind").addEventListener("change", drawAttentionView);
  $("att-layer").addEventListener("change", drawAttention);
  $("att-head").addEventListener("change", drawAttention);
  $("neuron-layer").addEventListener("change", () => { state.neuronRank = 0; drawNeurons(); });
  $("neuron-prev").addEventListener("click", () => { state.neuronRank -= 1; drawNeurons(); });
  $("neuron-next").addEventListener("click", () => { state.neuronRank += 1; drawNeurons(); });
  $("neuron-unit").addEventListener("change", () => {
    const layer = state.trace.activations[$("neuron-layer").value];
    const rank = layer.order.indexOf(parseInt($("neuron-unit").value, 10));
    if (rank >= 0) { state.neuronRank = rank; drawNeurons(); }
  });
  $("translate").addEventListener("click", translateText);
  $("align-map").addEventListener("change", drawAlignment);
  knobsChanged();
  document.body.dataset.ready = "1";
}

start().catch((e) => showError(`cannot reach the server: ${e.message}`));
