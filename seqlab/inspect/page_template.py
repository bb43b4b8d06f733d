"""The HTML, CSS and JavaScript of the `seqlab inspect` page (`seqlab.inspect.page`), inline so that
the file opens offline. {{TITLE}} and {{DATA}} are replaced; DATA is the JSON of `page_data`."""

TEMPLATE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{TITLE}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.2em; max-width: 90em; color: #222; }
h2 { margin: .2em 0 .5em; } h3 { margin: 1.4em 0 .4em; border-bottom: 1px solid #ddd; }
.text { font-family: ui-monospace, monospace; white-space: pre-wrap; line-height: 1.7; font-size: 14px; }
.text span { border-radius: 2px; cursor: pointer; } .text span.pinned { outline: 2px solid #333; }
.info { font-family: ui-monospace, monospace; white-space: pre; background: #f6f6f6; padding: .5em;
        border-radius: 4px; min-height: 4em; margin-top: .5em; font-size: 13px; }
.controls { display: flex; gap: 1em; align-items: center; flex-wrap: wrap; margin: .4em 0; }
.legend { display: flex; align-items: center; gap: .5em; font-size: 12px; }
.legend canvas { border: 1px solid #ccc; }
.grid { display: grid; gap: 6px; } .thumb { text-align: center; font-size: 11px; cursor: pointer; }
.thumb canvas { border: 2px solid #ddd; } .thumb.marked canvas { border-color: #d62728; }
.thumb.marked span { color: #d62728; font-weight: bold; }
.scroll { overflow: auto; max-height: 44em; border: 1px solid #eee; }
</style></head><body>
<h2>{{TITLE}}</h2>
<div id="app"></div>
<script>
const D = {{DATA}};
const app = document.getElementById("app");
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) { if (k.startsWith("on")) e[k] = v; else e.setAttribute(k, v); }
  for (const k of kids) e.append(k);
  return e;
}
function bytes(b64, signed) {
  const s = atob(b64), n = s.length, a = signed ? new Int8Array(n) : new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = s.charCodeAt(i);
  return a;
}
function section(title, ...kids) { app.append(el("h3", {}, title), ...kids); }
function shown(tok) { return tok === "\n" ? "\u21b5\n" : tok === "\t" ? "\u21e5" : tok; }
function heat(v) { const c = Math.round(255 * (1 - Math.min(1, Math.max(0, v)))); return `rgb(255,${c},${c})`; }
function blueRed(a) { const v = Math.round(255 * (1 - Math.min(1, Math.abs(a))));
  return a >= 0 ? `rgb(255,${v},${v})` : `rgb(${v},${v},255)`; }
function legend(label, colour, lo, hi) {
  const c = el("canvas", {width: 160, height: 12}), g = c.getContext("2d");
  for (let x = 0; x < 160; x++) { g.fillStyle = colour(x / 159); g.fillRect(x, 0, 1, 12); }
  return el("div", {class: "legend"}, label + " ", lo, c, hi);
}

// ---- text: surprisal and the top next tokens --------------------------------------------------
const T = D.tokens.length;
const finite = D.surprisal.filter(s => s !== null).sort((a, b) => a - b);
const sMax = Math.max(1, finite.length ? finite[Math.floor(0.95 * (finite.length - 1))] : 1);
const info = el("div", {class: "info"}, "hover or click a token: its surprisal and the model's top next tokens after it");
const textDiv = el("div", {class: "text", id: "surprisal-text"});
let pinned = null;
function describe(t) {
  const s = D.surprisal[t];
  const rows = D.top[t].map(([tok, p]) => `${JSON.stringify(tok).padEnd(14)} ${(100 * p).toFixed(1).padStart(5)}%`);
  return `position ${t} ${JSON.stringify(D.tokens[t])}: surprisal ${s === null ? "undefined (first token)" : s.toFixed(2) + " bits"}\n` +
         "top next tokens after it:\n" + rows.join("\n");
}
const spans = D.tokens.map((tok, t) => {
  const s = el("span", {title: D.surprisal[t] === null ? "" : D.surprisal[t] + " bits"}, shown(tok));
  s.style.background = D.surprisal[t] === null ? "#eee" : heat(D.surprisal[t] / sMax);
  s.onmouseenter = () => { if (pinned === null) info.textContent = describe(t); };
  s.onclick = () => { if (pinned !== null) spans[pinned].classList.remove("pinned");
    pinned = pinned === t ? null : t; if (pinned !== null) s.classList.add("pinned"); info.textContent = describe(t); };
  textDiv.append(s);
  return s;
});
section("Tokens and surprisal", legend("surprisal (bits)", heat, "0", sMax.toFixed(1) + "+"), textDiv, info);

// ---- attention ---------------------------------------------------------------------------------
const kinds = Object.keys(D.attention);
const cache = {};
function weights(kind) {  // Float32 (L, H, T, S) from the quantised bytes
  if (cache[kind]) return cache[kind];
  const a = D.attention[kind], q = bytes(a.q), w = new Float32Array(a.L * a.H * a.T * a.S);
  if (a.causal) { let i = 0;
    for (let lh = 0; lh < a.L * a.H; lh++) for (let t = 0; t < a.T; t++) for (let s = 0; s <= t; s++)
      w[(lh * a.T + t) * a.S + s] = q[i++] / 255;
  } else for (let i = 0; i < q.length; i++) w[i] = q[i] / 255;
  return cache[kind] = w;
}
function labels(a, side) { return a[side] === "source" ? D.source : D.tokens; }
function headImage(kind, l, h) {  // an ImageData of T x S, dark = weight
  const a = D.attention[kind], w = weights(kind), img = new ImageData(a.S, a.T), base = (l * a.H + h) * a.T * a.S;
  for (let i = 0; i < a.T * a.S; i++) { const v = Math.round(255 * (1 - Math.sqrt(w[base + i])));
    img.data[4 * i] = v; img.data[4 * i + 1] = v; img.data[4 * i + 2] = 255; img.data[4 * i + 3] = 255; }
  return img;
}
function drawMatrix(canvas, kind, l, h, size) {
  const a = D.attention[kind], off = document.createElement("canvas");
  off.width = a.S; off.height = a.T; off.getContext("2d").putImageData(headImage(kind, l, h), 0, 0);
  const scale = size / Math.max(a.T, a.S);
  canvas.width = Math.max(1, Math.round(a.S * scale)); canvas.height = Math.max(1, Math.round(a.T * scale));
  const g = canvas.getContext("2d"); g.imageSmoothingEnabled = scale < 1; g.drawImage(off, 0, 0, canvas.width, canvas.height);
}
if (kinds.length) {
  const kindSel = el("select", {id: "attn-kind"}), layerSel = el("select", {id: "attn-layer"}),
        headSel = el("select", {id: "attn-head"}), modeSel = el("select", {id: "attn-mode"});
  kinds.forEach(k => kindSel.add(new Option(k, k)));
  ["lines", "matrix"].forEach(m => modeSel.add(new Option(m, m)));
  const headCanvas = el("canvas", {id: "head-canvas"}), headInfo = el("div", {class: "info"});
  const holder = el("div", {class: "scroll"}, headCanvas), grid = el("div", {class: "grid", id: "model-view"});
  let query = null;
  function fill() {
    const a = D.attention[kindSel.value];
    layerSel.innerHTML = ""; headSel.innerHTML = "";
    for (let l = 0; l < a.L; l++) layerSel.add(new Option("layer " + l, l));
    for (let h = 0; h < a.H; h++) headSel.add(new Option("head " + h, h));
  }
  function score(kind, l, h) {
    const s = kind === "self" ? D.scores.induction : kind === "cross" ? D.scores.mirrored : null;
    return s ? s[l][h] : null;
  }
  function drawHead() {
    const kind = kindSel.value, a = D.attention[kind], l = +layerSel.value, h = +headSel.value;
    const qs = labels(a, "queries"), ks = labels(a, "keys"), w = weights(kind), base = (l * a.H + h) * a.T * a.S;
    const sc = score(kind, l, h);
    headInfo.textContent = `${kind} attention, layer ${l}, head ${h}` + (sc === null ? "" :
      kind === "self" ? `: induction score ${sc}` : `: mass on the mirrored source position ${sc}`) +
      (modeSel.value === "lines" ? "\nhover a query token (left) to show only its lines" : "\nrows: queries, columns: keys");
    if (modeSel.value === "matrix") { drawMatrix(headCanvas, kind, l, h, Math.min(900, Math.max(300, 4 * a.S))); return; }
    const row = 14, width = 520;
    headCanvas.width = width; headCanvas.height = row * Math.max(a.T, a.S) + 8;
    const g = headCanvas.getContext("2d"); g.font = "12px monospace"; g.textBaseline = "middle";
    g.fillStyle = "#222";
    qs.forEach((t, i) => { g.textAlign = "right"; g.fillText(JSON.stringify(t).slice(1, -1).slice(0, 10), 110, 4 + row * (i + .5)); });
    ks.forEach((t, i) => { g.textAlign = "left"; g.fillText(JSON.stringify(t).slice(1, -1).slice(0, 10), width - 110, 4 + row * (i + .5)); });
    const rows = query === null ? [...Array(a.T).keys()] : [query], alphaScale = query === null ? 1 : 1;
    g.lineWidth = 1.5;
    for (const t of rows) for (let s = 0; s < a.S; s++) { const v = w[base + t * a.S + s];
      if (v < 0.01) continue;
      g.strokeStyle = `rgba(31,119,180,${Math.min(1, v * alphaScale)})`; g.beginPath();
      g.moveTo(116, 4 + row * (t + .5)); g.lineTo(width - 116, 4 + row * (s + .5)); g.stroke(); }
  }
  headCanvas.onmousemove = ev => { if (modeSel.value !== "lines") return;
    const r = headCanvas.getBoundingClientRect(), x = ev.clientX - r.left, t = Math.floor((ev.clientY - r.top - 4) / 14);
    const a = D.attention[kindSel.value], next = x < 130 && t >= 0 && t < a.T ? t : null;
    if (next !== query) { query = next; drawHead(); } };
  function drawModel() {
    const kind = kindSel.value, a = D.attention[kind];
    grid.innerHTML = ""; grid.style.gridTemplateColumns = `repeat(${a.H}, 84px)`;
    for (let l = 0; l < a.L; l++) for (let h = 0; h < a.H; h++) {
      const c = el("canvas"), sc = score(kind, l, h);
      drawMatrix(c, kind, l, h, 76);
      const marked = kind === "self" && sc !== null && sc >= D.mark;
      const label = `L${l} H${h}` + (sc === null ? "" : ` ${sc.toFixed(2)}`) + (marked ? " induction" : "");
      const box = el("div", {class: "thumb" + (marked ? " marked" : ""), title: "click to enlarge"}, c, el("br"), el("span", {}, label));
      box.onclick = () => { layerSel.value = l; headSel.value = h; modeSel.value = "matrix"; drawHead();
        headCanvas.scrollIntoView({behavior: "smooth"}); };
      grid.append(box);
    }
  }
  kindSel.onchange = () => { fill(); drawHead(); drawModel(); };
  layerSel.onchange = headSel.onchange = modeSel.onchange = () => { query = null; drawHead(); };
  fill();
  const best = D.scores.induction ? D.scores.induction.flatMap((r, l) => r.map((v, h) => [v, l, h])).sort((x, y) => y[0] - x[0])[0] : null;
  if (best) { layerSel.value = best[1]; headSel.value = best[2]; }
  section("Attention: head view",
          el("div", {class: "controls"}, el("label", {}, "attention ", kindSel), layerSel, headSel, el("label", {}, "view ", modeSel)),
          headInfo, holder);
  const note = D.scores.induction ? `thumbnails: every layer x head; the number is the induction score (mean attention to the token after the previous occurrence of the current token); heads at ${D.mark} or more are marked` :
               "thumbnails: every layer x head (rows layers, columns heads); click one to enlarge";
  section("Attention: model view", el("div", {class: "legend"}, note), grid);
  drawHead(); drawModel();
  if (D.attention.cross) {
    const cross = D.attention.cross, mean = el("canvas", {id: "alignment"});
    const avg = new ImageData(cross.S, cross.T), w = weights("cross"), l = cross.L - 1;
    for (let i = 0; i < cross.T * cross.S; i++) { let v = 0;
      for (let h = 0; h < cross.H; h++) v += w[(l * cross.H + h) * cross.T * cross.S + i];
      v = Math.round(255 * (1 - v / cross.H)); avg.data.set([v, v, v, 255], 4 * i); }
    const off = document.createElement("canvas"); off.width = cross.S; off.height = cross.T;
    off.getContext("2d").putImageData(avg, 0, 0);
    const cell = Math.max(4, Math.min(28, Math.floor(500 / Math.max(cross.S, cross.T))));
    mean.width = cross.S * cell; mean.height = cross.T * cell; const g = mean.getContext("2d");
    g.imageSmoothingEnabled = false; g.drawImage(off, 0, 0, mean.width, mean.height);
    const m = D.scores.mirrored[l], mm = (m.reduce((x, y) => x + y, 0) / m.length).toFixed(3);
    section("Alignment (cross-attention, last layer, mean of heads)",
            el("div", {class: "legend"}, `rows: target tokens ${JSON.stringify(D.tokens.join(""))}; columns: source ${JSON.stringify(D.source.join(""))}; ` +
               `mass on the mirrored source position: ${mm} (per head: ${m.join(", ")})`), mean);
  }
}

// ---- neurons ------------------------------------------------------------------------------------
if (D.neurons.length) {
  const layerSel = el("select", {id: "neuron-layer"}), unitSel = el("select", {id: "neuron-unit"});
  const nText = el("div", {class: "text", id: "neuron-text"}), nInfo = el("div", {class: "info"});
  D.neurons.forEach((n, i) => layerSel.add(new Option(`${n.name} (${n.U} units)`, i)));
  const nSpans = D.tokens.map(tok => { const s = el("span", {}, shown(tok)); nText.append(s); return s; });
  let acts = null;
  function units() {
    const n = D.neurons[layerSel.value]; acts = bytes(n.q, true); unitSel.innerHTML = "";
    const tracked = {};
    for (const [f, list] of Object.entries(n.features)) for (const u of list.slice(0, 1)) tracked[u.unit] = `${f}, r = ${u.r}`;
    n.order.forEach(u => unitSel.add(new Option(`unit ${u}` + (tracked[u] ? ` (tracks ${tracked[u]})` : ""), u)));
    drawUnit();
  }
  function drawUnit() {
    const n = D.neurons[layerSel.value], u = +unitSel.value;
    nSpans.forEach((s, t) => { const a = acts[t * n.U + u] / 127; s.style.background = blueRed(a);
      s.title = (a * n.scale[u]).toFixed(3); });
    const lines = Object.entries(n.features).map(([f, list]) => `${f}: ` + list.map(x => `unit ${x.unit} (r = ${x.r})`).join(", "));
    nInfo.textContent = `unit ${u}: red positive, blue negative, scaled by its largest magnitude ${n.scale[u]}\n` +
                        "units most correlated with features of the text:\n" + lines.join("\n");
  }
  layerSel.onchange = units; unitSel.onchange = drawUnit;
  section("Neurons", el("div", {class: "controls"}, el("label", {}, "layer ", layerSel), el("label", {}, "unit ", unitSel)),
          legend("activation", x => blueRed(2 * x - 1), "-1", "+1"), nText, nInfo);
  units();
}

// ---- HMM trellis ----------------------------------------------------------------------------------
if (D.hmm) {
  const K = D.hmm.K, post = bytes(D.hmm.q), cw = Math.max(3, Math.min(16, Math.floor(1200 / T))), ch = Math.max(6, Math.min(18, Math.floor(360 / K)));
  const c = el("canvas", {id: "trellis", width: 40 + T * cw, height: 20 + K * ch}), g = c.getContext("2d");
  g.font = "10px monospace"; g.fillStyle = "#222";
  for (let k = 0; k < K; k++) g.fillText("z" + k, 2, 10 + k * ch + ch / 2);
  for (let t = 0; t < T; t++) for (let k = 0; k < K; k++) { const v = Math.round(255 * (1 - post[t * K + k] / 255));
    g.fillStyle = `rgb(${v},${v},255)`; g.fillRect(40 + t * cw, 6 + k * ch, cw, ch); }
  g.strokeStyle = "#d62728"; g.lineWidth = 2; g.beginPath();
  D.hmm.viterbi.forEach((k, t) => { const x = 40 + t * cw + cw / 2, y = 6 + k * ch + ch / 2; t ? g.lineTo(x, y) : g.moveTo(x, y); });
  g.stroke();
  section("HMM trellis", el("div", {class: "legend"}, "rows: hidden states, columns: tokens; shade: posterior P(state | whole text); red: the Viterbi path"),
          legend("posterior", x => { const v = Math.round(255 * (1 - x)); return `rgb(${v},${v},255)`; }, "0", "1"), el("div", {class: "scroll"}, c));
}

// ---- n-gram backoff -------------------------------------------------------------------------------
if (D.ngram) {
  const n = D.ngram.weights[0].length - 1, palette = ["#bbbbbb", "#fdd0a2", "#fdae6b", "#fd8d3c", "#e6550d", "#a63603", "#7f2704", "#54278f", "#3f007d", "#000"];
  const colour = k => palette[Math.min(k, palette.length - 1)];
  const gText = el("div", {class: "text", id: "ngram-text"}), gInfo = el("div", {class: "info"}, "hover a token: the order that answered it and the interpolation weights");
  D.tokens.forEach((tok, t) => { const s = el("span", {}, shown(tok)), k = D.ngram.order[t];
    s.style.background = colour(k); if (k >= 5) s.style.color = "#fff";
    s.onmouseenter = () => { gInfo.textContent = `position ${t} ${JSON.stringify(tok)}: answered by order ${k}` +
      (k ? ` (the ${k}-gram ending here was seen in training)` : " (never seen: the uniform distribution)") + "\ninterpolation weights by order:\n" +
      D.ngram.weights[t].map((w, j) => `  ${j === 0 ? "uniform" : "order " + j}: ${"#".repeat(Math.round(30 * w)).padEnd(30)} ${w}`).join("\n"); };
    gText.append(s); });
  const key = el("div", {class: "legend"}, "answering order: ");
  for (let k = 0; k <= n; k++) { const b = el("span", {}, k === 0 ? " uniform " : ` ${k} `); b.style.background = colour(k); if (k >= 5) b.style.color = "#fff"; key.append(b); }
  section("n-gram backoff", key, gText, gInfo);
}
</script></body></html>
"""
