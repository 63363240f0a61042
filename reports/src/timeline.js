// The report's timeline: an overview strip of the whole run and a zoomable canvas of its
// operations, drawn from the compact columns `timeline_data` writes (html.rs).
//
// An hour-long run holds half a million operations, so nothing here makes an object per
// operation: the columns become typed arrays once, a draw looks only at the operations
// that can show, and one zoomed-out bar stands for a lane's operations of one outcome in
// a pixel column. `op(i)` builds an operation's object only when one is asked about.
const T_START = performance.now();
const ERRS = [];
window.addEventListener('error', e => ERRS.push(String(e.message)));
const dataEl = document.getElementById('data');
const D = JSON.parse(dataEl.textContent);
// The page keeps the parsed columns, not megabytes of their text in its DOM.
dataEl.remove();
const N = D.ops.lane.length;
// Calls are steps from the previous call and ends lengths from the call (µs), values
// indices into D.vals, give-ups listed apart, a lane's process changes listed where they
// happen; an operation's id is its position.
const LANE = Uint16Array.from(D.ops.lane), KEY = Int32Array.from(D.ops.key);
const FN = Uint16Array.from(D.ops.fn), OUTCOME = Uint8Array.from(D.ops.outcome);
const NODE = Int16Array.from(D.ops.node);
const CALL = new Float64Array(N), RET = new Float64Array(N), GAVE = new Float64Array(N).fill(-1);
const PROC = new Float64Array(N), END = new Float64Array(N);
{
  let clock = 0, change = 0;
  const at = D.ops.process.at, to = D.ops.process.to, step = D.ops.call, len = D.ops.len, lp = [];
  for (let i = 0; i < N; i++) {
    clock += step[i]; CALL[i] = clock;
    if (at[change] === i) lp[LANE[i]] = to[change++];
    PROC[i] = lp[LANE[i]];
    RET[i] = len[i] < 0 ? -1 : clock + len[i];
  }
  D.ops.gave_up.at.forEach((i, j) => { GAVE[i] = CALL[i] + D.ops.gave_up.after[j]; });
  // Where a bar ends: its completion; for an unknown outcome, where its client gave up
  // on it (a fade follows), or the end of the run.
  for (let i = 0; i < N; i++) END[i] = RET[i] >= 0 ? RET[i] : GAVE[i] >= 0 ? GAVE[i] : D.end;
  for (const c of ['lane', 'key', 'fn', 'outcome', 'node', 'call', 'len', 'process', 'gave_up']) D.ops[c] = null;
}
// Operation `i` as an object with named fields (hover, zoom, the self-test).
const op = i => ({
  id: i, lane: LANE[i], key: KEY[i], fn: FN[i], outcome: OUTCOME[i], call: CALL[i],
  ret: RET[i], gaveUp: GAVE[i], end: END[i], input: D.vals[D.ops.input[i]],
  output: D.vals[D.ops.output[i]], process: PROC[i], node: NODE[i],
});
const ORDER = new Map(D.prefix.map((id, i) => [id, i + 1]));
const failing = new Set(D.failing);
const cv = document.getElementById('tl'), ctx = cv.getContext('2d'), tip = document.getElementById('tip');
const ov = document.getElementById('ov'), octx = ov.getContext('2d');
const LH = 14, FH = 13, LEFT = 56, OH = 46;
// The axis, then one lane per overlapping fault, then one lane per client.
const TOP = 22, PT = TOP + D.flanes * FH + (D.flanes ? 4 : 0);
const COLORS = ['#2e8b57', '#c83232', '#e69614'];
// Colour by node: one hue per node that answered; grey when no node is known.
const NODE_COLORS = ['#1f77b4', '#9467bd', '#17becf', '#8c564b', '#e377c2', '#bcbd22', '#ff7f0e', '#7f7f7f', '#2ca02c'];
const nodeColor = n => n < 0 ? '#aaa' : NODE_COLORS[(n - 1 + NODE_COLORS.length) % NODE_COLORS.length];
let t0 = 0, t1 = Math.max(D.end, 1), keyFilter = -1, byNode = false;
// Each fault knows where the next one of its lane starts: the room its label may use.
{
  const last = new Map();
  for (const f of [...D.faults].sort((x, y) => x.start - y.start)) {
    if (last.has(f.lane)) last.get(f.lane).next = f.start;
    last.set(f.lane, f);
  }
}
// Each lane's operations in call order, for the hover's binary search.
const byLane = D.procs.map(() => []);
{
  const counts = new Uint32Array(D.procs.length);
  for (let i = 0; i < N; i++) counts[LANE[i]]++;
  const lanes = Array.from(counts, c => new Int32Array(c)), fill = new Uint32Array(D.procs.length);
  for (let i = 0; i < N; i++) lanes[LANE[i]][fill[LANE[i]]++] = i;
  lanes.forEach((l, k) => { byLane[k] = l; });
}
// The operations that may show between t0 and t1, without looking at all of them: the
// calls are in order (as a history's are), so those that begin after t0 less the longest
// bar, up to t1, and those that never end. Any other order: all of them.
let SORTED = true, LONGEST = 0;
const OPEN = [];
for (let i = 0; i < N; i++) {
  if (i > 0 && CALL[i - 1] > CALL[i]) SORTED = false;
  if (RET[i] < 0 && GAVE[i] < 0) OPEN.push(i); else LONGEST = Math.max(LONGEST, END[i] - CALL[i]);
}
function eachVisible(f) {
  if (!SORTED) { for (let i = 0; i < N; i++) f(i); return; }
  let lo = 0, hi = N;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (CALL[mid] < t0 - LONGEST) lo = mid + 1; else hi = mid; }
  for (let i = lo; i < N && CALL[i] <= t1; i++) if (RET[i] >= 0 || GAVE[i] >= 0) f(i);
  for (const i of OPEN) f(i);
}
function size() {
  const dpr = window.devicePixelRatio || 1, w = cv.clientWidth, h = PT + D.procs.length * LH + 4;
  cv.width = w * dpr; cv.height = h * dpr; cv.style.height = h + 'px'; ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ov.width = ov.clientWidth * dpr; ov.height = OH * dpr; ov.style.height = OH + 'px'; octx.setTransform(dpr, 0, 0, dpr, 0, 0);
  density = null;
}
// Pixels per µs, set at each draw: X runs for every visible operation, and the canvas's
// width is a question to the layout engine, too dear to ask half a million times.
let XK = 1;
const X = t => LEFT + (t - t0) * XK;
const T = x => t0 + (x - LEFT) / (cv.clientWidth - LEFT - 8) * (t1 - t0);
// The overview: the whole run at one pixel column per slice of time, its operations'
// density by outcome, the faults beneath, the anomalies marked, and the window the
// timeline shows. A click or a drag moves that window.
const OX = t => LEFT + t / Math.max(D.end, 1) * (ov.clientWidth - LEFT - 8);
const OT = x => (x - LEFT) / (ov.clientWidth - LEFT - 8) * Math.max(D.end, 1);
let density = null;
function overview() {
  const w = ov.clientWidth, cols = Math.max(1, Math.floor(w - LEFT - 8));
  if (!density || density.cols !== cols) {
    const c = new Uint32Array(cols * 3);
    for (let i = 0; i < N; i++) {
      if (keyFilter >= 0 && KEY[i] !== keyFilter) continue;
      const x = Math.min(cols - 1, Math.floor(CALL[i] / Math.max(D.end, 1) * cols));
      c[x * 3 + OUTCOME[i]]++;
    }
    let max = 1;
    for (let x = 0; x < cols; x++) max = Math.max(max, c[x * 3] + c[x * 3 + 1] + c[x * 3 + 2]);
    density = { cols, c, max, key: keyFilter };
  }
  octx.clearRect(0, 0, w, OH); octx.font = '10px sans-serif';
  octx.fillStyle = '#888'; octx.fillText('whole', 4, 14); octx.fillText('run', 4, 26);
  const base = OH - 12, room = base - 4, { c, max } = density;
  for (let x = 0; x < density.cols; x++) {
    let y = base;
    for (const k of [0, 1, 2]) {
      const n = c[x * 3 + k]; if (!n) continue;
      const hgt = n / max * room;
      octx.fillStyle = COLORS[k]; octx.globalAlpha = k === 2 ? 0.6 : 0.8;
      octx.fillRect(LEFT + x, y - hgt, 1, hgt); y -= hgt;
    }
  }
  octx.globalAlpha = 1;
  // The faults in their lanes, squeezed into the strip's foot: the weather's long spells
  // keep to their lanes and do not hide the kills and partitions.
  octx.fillStyle = 'rgba(90,90,168,0.85)';
  const rh = 9 / Math.max(1, D.flanes);
  for (const f of D.faults) {
    const a = OX(f.start), b = Math.max(a + 1, OX(f.end));
    octx.fillRect(a, base + 2 + f.lane * rh, b - a, Math.max(1, rh - 0.5));
  }
  octx.fillStyle = '#c00';
  for (const id of failing) {
    const x = OX(CALL[id]);
    octx.beginPath(); octx.moveTo(x - 4, 0); octx.lineTo(x + 4, 0); octx.lineTo(x, 7); octx.fill();
  }
  const a = OX(Math.max(0, t0)), b = Math.max(a + 2, OX(Math.min(D.end, t1)));
  octx.fillStyle = 'rgba(0,0,0,0.06)'; octx.fillRect(a, 0, b - a, OH);
  octx.strokeStyle = '#333'; octx.lineWidth = 1; octx.strokeRect(a + 0.5, 0.5, b - a - 1, OH - 1);
}
let ovDrag = false;
function ovMove(ev) {
  const r = ov.getBoundingClientRect(), t = OT(ev.clientX - r.left);
  // From the whole run, a click opens a twentieth of it; else the window keeps its width.
  const whole = t0 <= 0 && t1 >= D.end, span = whole ? Math.max(D.end / 20, 10) : t1 - t0;
  t0 = t - span / 2; t1 = t + span / 2; draw();
}
ov.addEventListener('mousedown', ev => { ovDrag = true; ovMove(ev); });
ov.addEventListener('mousemove', ev => { if (ovDrag) ovMove(ev); });
window.addEventListener('mouseup', () => { ovDrag = false; });
let drawnFailing = 0;
function draw() {
  const w = cv.clientWidth, h = PT + D.procs.length * LH + 4;
  XK = (w - LEFT - 8) / (t1 - t0);
  ctx.clearRect(0, 0, w, h); ctx.font = '10px sans-serif';
  if (D.flanes) { ctx.fillStyle = '#888'; ctx.fillText('faults', 4, TOP + 10); }
  for (const f of D.faults) {
    if (f.end < t0 || f.start > t1) continue;
    const a = Math.max(LEFT, X(f.start)), b = Math.max(a + 2, Math.min(w, X(f.end))), y = TOP + f.lane * FH;
    ctx.fillStyle = 'rgba(120,120,200,0.10)'; ctx.fillRect(a, PT, b - a, h - PT);
    ctx.fillStyle = 'rgba(90,90,168,0.85)'; ctx.fillRect(a, y, b - a, FH - 2);
    // The label inside its bar when it fits; else after the bar, in the lane's free
    // room up to the next fault of the lane (or the edge), so it is read whole.
    const tw = ctx.measureText(f.label).width, room = Math.min(w, f.next === undefined ? w : X(f.next)) - b - 4;
    if (tw + 4 <= b - a) {
      ctx.fillStyle = '#fff'; ctx.fillText(f.label, a + 2, y + 9);
    } else if (tw + 4 <= room) {
      ctx.fillStyle = '#3a3a80'; ctx.fillText(f.label, b + 3, y + 9);
    } else if (b - a > 14) {
      // No room either way: as much as the bar holds; the hover and runner.log have it all.
      ctx.save(); ctx.beginPath(); ctx.rect(a, y, b - a, FH - 2); ctx.clip();
      ctx.fillStyle = '#fff'; ctx.fillText(f.label, a + 2, y + 9); ctx.restore();
    }
  }
  ctx.fillStyle = '#666'; ctx.strokeStyle = '#ddd';
  const span = (t1 - t0) / 1e6, step = Math.pow(10, Math.floor(Math.log10(span / 8)));
  const nice = [1, 2, 5, 10].map(m => m * step).find(s => span / s <= 10) || step * 10;
  for (let s = Math.ceil(t0 / 1e6 / nice) * nice; s * 1e6 <= t1; s += nice) {
    const x = X(s * 1e6); ctx.beginPath(); ctx.moveTo(x, TOP - 4); ctx.lineTo(x, h); ctx.stroke();
    // A label that would run off the right edge goes on the tick's left.
    const label = (+s.toFixed(6)) + ' s', tw = ctx.measureText(label).width;
    ctx.fillStyle = '#666'; ctx.fillText(label, x + 2 + tw > w ? x - tw - 2 : x + 2, 10);
  }
  for (let l = 0; l < D.procs.length; l++) { ctx.fillStyle = '#888'; ctx.fillText(D.procs[l], 4, PT + l * LH + 10); }
  // Zoomed out, many operations share a pixel column of a lane: one bar stands for
  // those of one shade (outcome, or node and outcome) there, so a column costs a few
  // rectangles however many operations it holds; the counterexample's are always drawn,
  // and so are those whose outcome is open (they fade, and are few).
  const marked = failing.size > 0 || ORDER.size > 0;
  const SHADES = 64, seen = new Float64Array(D.procs.length * SHADES);
  eachVisible(i => {
    if (keyFilter >= 0 && KEY[i] !== keyFilter) return;
    const e = END[i], c = CALL[i]; if (e < t0 || c > t1) return;
    const lane = LANE[i], a = Math.max(LEFT, X(c)), b = Math.max(a + 1.5, Math.min(w, X(e))), y = PT + lane * LH + 1;
    const ret = RET[i], gave = GAVE[i], outcome = OUTCOME[i];
    if (b - a < 2 && ret >= 0 && !(marked && (failing.has(i) || ORDER.has(i)))) {
      const shade = byNode ? ((NODE[i] + 1) % 20) * 3 + outcome : outcome, slot = lane * SHADES + shade;
      const px = Math.floor(a) + 1;
      if (seen[slot] === px) return;
      seen[slot] = px;
    }
    if (ret < 0 && gave >= 0) {
      // Its client gave up on it, its outcome open: solid to then, a short fade after.
      ctx.fillStyle = 'rgba(230,150,20,0.75)'; ctx.fillRect(a, y, b - a, LH - 3);
      const g = ctx.createLinearGradient(b, 0, b + 16, 0);
      g.addColorStop(0, 'rgba(230,150,20,0.5)'); g.addColorStop(1, 'rgba(230,150,20,0)');
      ctx.fillStyle = g; ctx.fillRect(b, y, 16, LH - 3);
    } else if (ret < 0) {
      // Never completed: its outcome is open, so it fades out rather than hide what
      // happened after it.
      const g = ctx.createLinearGradient(a, 0, b, 0);
      g.addColorStop(0, 'rgba(230,150,20,0.75)'); g.addColorStop(Math.min(1, 60 / Math.max(b - a, 1)), 'rgba(230,150,20,0.25)'); g.addColorStop(1, 'rgba(230,150,20,0)');
      ctx.fillStyle = g; ctx.fillRect(a, y, b - a, LH - 3);
    } else if (byNode) {
      // By node: the node's hue, solid when ok, faint when the answer was fail or info.
      ctx.fillStyle = nodeColor(NODE[i]); ctx.globalAlpha = outcome === 0 ? 0.85 : 0.35; ctx.fillRect(a, y, b - a, LH - 3);
      ctx.globalAlpha = 1;
    } else {
      ctx.fillStyle = COLORS[outcome]; ctx.globalAlpha = outcome === 2 ? 0.45 : 0.85; ctx.fillRect(a, y, b - a, LH - 3);
      ctx.globalAlpha = 1;
    }
    if (failing.has(i)) { ctx.strokeStyle = '#000'; ctx.lineWidth = 2; ctx.strokeRect(a - 1, y - 1, b - a + 2, LH - 1); ctx.lineWidth = 1; ctx.strokeStyle = '#ddd'; }
    // An operation of the counterexample carries its number (#id, as in the table) in
    // a badge at its start: its text begins after the badge.
    const badge = ORDER.has(i) ? String(i).length * 6 + 10 : 0;
    if (b - a > 44 + badge) {
      const input = D.vals[D.ops.input[i]], output = D.vals[D.ops.output[i]];
      const read = input === '' || input === 'nil' || input === 'null';
      const text = D.fns[FN[i]] + (read ? '' : ' ' + input) + (output && output !== input ? ' → ' + output : '');
      ctx.fillStyle = ret < 0 ? '#7a4a00' : '#fff'; ctx.fillText(text.slice(0, Math.floor((b - a - badge) / 6)), a + 2 + badge, y + 9);
    }
  });
  // The operations of the counterexample's table, with the numbers the table gives them
  // (their ids); the table lists them in the order the model accepted.
  if (ORDER.size) {
    ctx.font = 'bold 10px sans-serif';
    for (const i of ORDER.keys()) {
      if (i >= N || CALL[i] > t1 || END[i] < t0) continue;
      if (keyFilter >= 0 && KEY[i] !== keyFilter) continue;
      const x = Math.max(LEFT, X(CALL[i])), y = PT + LANE[i] * LH, label = '#' + i;
      ctx.fillStyle = '#fff'; ctx.fillRect(x - 1, y, ctx.measureText(label).width + 4, 11);
      ctx.fillStyle = '#123'; ctx.fillText(label, x + 1, y + 9);
    }
    ctx.font = '10px sans-serif';
  }
  // The anomaly stays visible at any zoom: a red line through its lane and a marker above.
  drawnFailing = 0;
  for (const i of failing) {
    if (i >= N || CALL[i] > t1 || END[i] < t0) continue;
    if (keyFilter >= 0 && KEY[i] !== keyFilter) continue;
    const x = Math.max(LEFT, X(CALL[i])), y = PT + LANE[i] * LH;
    ctx.strokeStyle = '#c00'; ctx.lineWidth = 2; ctx.beginPath(); ctx.moveTo(x, PT - 2); ctx.lineTo(x, y + LH); ctx.stroke();
    ctx.fillStyle = '#c00'; ctx.beginPath(); ctx.moveTo(x - 5, PT - 9); ctx.lineTo(x + 5, PT - 9); ctx.lineTo(x, PT - 2); ctx.fill();
    ctx.lineWidth = 1; ctx.strokeStyle = '#ddd';
    drawnFailing++;
  }
  overview();
}
function find(x, y) {
  const l = Math.floor((y - PT) / LH); if (l < 0 || l >= byLane.length) return null;
  const t = T(x), list = byLane[l]; let lo = 0, hi = list.length - 1, best = -1;
  while (lo <= hi) { const m = (lo + hi) >> 1; if (CALL[list[m]] <= t) { best = m; lo = m + 1; } else hi = m - 1; }
  for (let k = best; k >= 0 && k > best - 3; k--) {
    const i = list[k]; if (keyFilter >= 0 && KEY[i] !== keyFilter) continue;
    const px = (t1 - t0) / cv.clientWidth * 2;
    if (CALL[i] - px <= t && t <= END[i] + px) return op(i);
  }
  return null;
}
const OUT = ['ok', 'fail', 'info'];
function showTip(ev, text) {
  tip.textContent = text;
  tip.style.display = 'block'; tip.style.left = (ev.clientX + 14) + 'px'; tip.style.top = (ev.clientY + 14) + 'px';
}
cv.addEventListener('mousemove', ev => {
  const r = cv.getBoundingClientRect();
  if (drag) { const dt = (ev.clientX - drag.x) / (cv.clientWidth - LEFT - 8) * (drag.t1 - drag.t0); t0 = drag.t0 - dt; t1 = drag.t1 - dt; draw(); return; }
  const o = find(ev.clientX - r.left, ev.clientY - r.top);
  if (!o) {
    // A fault's lane: its whole label and its times.
    const x = ev.clientX - r.left, y = ev.clientY - r.top, lane = Math.floor((y - TOP) / FH);
    const f = y >= TOP && lane < D.flanes && D.faults.find(f => f.lane === lane && X(f.start) <= x && x <= Math.max(X(f.end), X(f.start) + 2));
    if (!f) { tip.style.display = 'none'; return; }
    showTip(ev, `${f.label}\n${(f.start / 1e6).toFixed(3)} s to ${(f.end / 1e6).toFixed(3)} s`);
    return;
  }
  showTip(ev, `#${o.id}  process ${o.process}${o.node >= 0 ? '  node ' + o.node : ''}  ${OUT[o.outcome]}\n${D.fns[o.fn]} ${o.key >= 0 ? 'key ' + D.keys[o.key] : ''}\nvalue ${o.input}${o.output ? '  result ' + o.output : ''}\ninvoked ${(o.call / 1e6).toFixed(6)} s\n` + (o.ret < 0 ? (o.gaveUp >= 0 ? `its client gave up at ${(o.gaveUp / 1e6).toFixed(6)} s (outcome unknown)` : 'never completed (outcome unknown)') : `completed ${(o.ret / 1e6).toFixed(6)} s (${((o.ret - o.call) / 1e3).toFixed(3)} ms)`));
});
cv.addEventListener('mouseleave', () => tip.style.display = 'none');
let drag = null;
cv.addEventListener('mousedown', ev => { drag = { x: ev.clientX, t0, t1 }; cv.style.cursor = 'grabbing'; });
window.addEventListener('mouseup', () => { drag = null; cv.style.cursor = 'grab'; });
cv.addEventListener('wheel', ev => {
  ev.preventDefault(); const r = cv.getBoundingClientRect(), t = T(ev.clientX - r.left), k = ev.deltaY > 0 ? 1.25 : 0.8;
  t0 = t - (t - t0) * k; t1 = t + (t1 - t) * k; if (t1 - t0 < 10) { t1 = t0 + 10; } draw();
}, { passive: false });
function fit() { t0 = 0; t1 = Math.max(D.end, 1); draw(); }
cv.addEventListener('dblclick', fit);
document.getElementById('fit').onclick = fit;
const sel = document.getElementById('key');
D.keys.forEach((k, i) => { const o = document.createElement('option'); o.value = i; o.textContent = k; sel.appendChild(o); });
sel.onchange = () => { keyFilter = +sel.value; density = null; draw(); };
// Colour by node: which node answered each operation, with a legend of the nodes seen.
const colourSel = document.getElementById('colour'), nodeLegend = document.getElementById('nodes');
{
  const seen = new Set(); for (let i = 0; i < N; i++) seen.add(NODE[i]);
  for (const n of [...seen].sort((a, b) => a - b)) {
    const s = document.createElement('span'); s.style.background = nodeColor(n);
    nodeLegend.appendChild(s); nodeLegend.appendChild(document.createTextNode(n < 0 ? 'unknown' : 'node ' + n));
  }
  if (!seen.size || (seen.size === 1 && seen.has(-1))) colourSel.disabled = true;
}
colourSel.onchange = () => {
  byNode = colourSel.value === 'node';
  document.getElementById('outcomes').style.display = byNode ? 'none' : '';
  nodeLegend.style.display = byNode ? '' : 'none'; draw();
};
// Zooms to operation `id` (and its key), so that it and the numbered order before it fit.
function zoomTo(id, key) {
  if (!(id >= 0 && id < N)) return null;
  const ki = D.keys.indexOf(key); if (ki >= 0) { keyFilter = ki; sel.value = ki; density = null; }
  let from = CALL[id];
  for (const p of ORDER.keys()) if (p < N && (ki < 0 || KEY[p] === ki)) from = Math.min(from, CALL[p]);
  const e = END[id], pad = Math.max((e - from) * 0.15, 2000);
  t0 = from - pad; t1 = e + pad; draw();
  const box = document.getElementById('tlbox'); box.scrollTop = Math.max(0, PT + LANE[id] * LH - 60);
  return op(id);
}
function focusOp(id, key) {
  if (zoomTo(id, key)) document.getElementById('timeline').scrollIntoView({ behavior: 'smooth' });
}
document.querySelectorAll('button.focus-op').forEach(b =>
  b.addEventListener('click', () => focusOp(+b.dataset.op, b.dataset.key)));
window.addEventListener('resize', () => { size(); draw(); });
size(); draw();
// An invalid run opens zoomed to its first anomaly, ready for the keyboard, but the page
// stays at the verdict; a valid one opens on the whole run.
const first = document.querySelector('#counterexample button.focus-op');
if (first) { zoomTo(+first.dataset.op, first.dataset.key); first.focus({ preventScroll: true }); }
// #selftest: what a browser test checks, written into the page (no test code outside).
if (location.hash === '#selftest') {
  const nav = performance.getEntriesByType('navigation')[0];
  const r = {
    errors: ERRS, scrollY: window.scrollY, end: D.end, opened: [t0, t1], ops: N,
    anomalyDrawn: drawnFailing, overviewCols: density ? density.cols : 0,
    // When the page's own script began and ended, from the start of the navigation (ms).
    scriptStart: T_START, scriptEnd: performance.now(), responseEnd: nav ? nav.responseEnd : -1,
  };
  if (first) {
    t0 = 0; t1 = D.end; first.click();
    const o = op(+first.dataset.op);
    r.clicked = { t0, t1, call: o.call, ret: o.end, keyFilter, key: D.keys.indexOf(first.dataset.key), id: o.id, output: o.output, process: o.process };
  }
  colourSel.value = 'node'; colourSel.onchange(); r.byNode = byNode;
  colourSel.value = 'outcome'; colourSel.onchange();
  r.errors = ERRS;
  const write = () => document.body.setAttribute('data-selftest', JSON.stringify(r));
  write();
  window.addEventListener('load', () => { r.load = performance.now(); r.errors = ERRS; write(); });
}
