// cnnviz's map chart: a figure of heatmap and RGB image traces (the dictionaries that
// cnnviz.figures builds for Plotly), drawn on one <canvas> in the browser. Used where a figure
// is redrawn on every slider move (the convolution lab; issue 15): with Plotly the browser took
// 221 ms to draw the step-through's three maps after their data arrived, with this 63 ms
// (bench/interaction.py, one idle run, Streamlit's own rendering included). It draws what
// those figures use: heatmaps (a colorscale with zmin/zmax, or the data's range; one value
// everywhere gets the middle colour, as in Plotly), values written in the cells ("auto" colour:
// black on light cells, white on dark ones), RGB images, square cells centred in each axis'
// domain (rows top to bottom), rectangle outlines, the title, subplot titles, a colour bar for
// traces with showscale, and a hover label following the trace's hovertemplate.

const TYPED = {u1: Uint8Array, i1: Int8Array, u2: Uint16Array, i2: Int16Array, u4: Uint32Array,
               i4: Int32Array, f4: Float32Array, f8: Float64Array};

function decode(value) {
  // A Plotly typed array ({dtype, bdata, shape}) or nested lists: [flat values, shape].
  if (value && value.bdata !== undefined) {
    const binary = atob(value.bdata);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    const values = new TYPED[value.dtype](bytes.buffer);
    const shape = value.shape ? String(value.shape).split(',').map(Number) : [values.length];
    return [values, shape];
  }
  const shape = [];
  let level = value;
  while (Array.isArray(level)) { shape.push(level.length); level = level[0]; }
  return [value.flat(Infinity), shape];
}

function parseColor(text) {
  if (text.startsWith('#')) {
    const hex = text.length === 4 ? text.slice(1).split('').map((c) => c + c).join('') : text.slice(1);
    return [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16));
  }
  return text.replace(/[^0-9.,]/g, '').split(',').slice(0, 3).map(Number);
}

function scaleLookup(colorscale) {
  const stops = colorscale.map(([position, color]) => [Number(position), parseColor(color)]);
  return (t) => {
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    let i = 1;
    while (i < stops.length - 1 && stops[i][0] < t) i++;
    const [p0, c0] = stops[i - 1];
    const [p1, c1] = stops[i];
    const f = p1 > p0 ? (t - p0) / (p1 - p0) : 0;
    return [0, 1, 2].map((k) => Math.round(c0[k] + (c1[k] - c0[k]) * f));
  };
}

function axisName(ref, letter) {
  // 'x' -> 'xaxis', 'x2' -> 'xaxis2'
  return `${letter}axis${(ref || letter).slice(1)}`;
}

function formatValue(value, spec) {
  if (!Number.isFinite(value)) return String(value);
  const digits = /\.(\d+)g/.exec(spec || '');
  return String(Number(value.toPrecision(digits ? Number(digits[1]) : 4)));
}

function hoverText(template, row, col, value) {
  const text = (template || 'row %{y}, column %{x}<br>%{z}')
    .replace(/<extra>.*?<\/extra>/g, '')
    .replace(/%\{y\}/g, String(row)).replace(/%\{x\}/g, String(col))
    .replace(/%\{z(?::([^}]*))?\}/g, (_, spec) => (Array.isArray(value) ? value.join(', ') : formatValue(value, spec)));
  return text.split('<br>').map((line) => line.replace(/<[^>]*>/g, ''));
}

function fitFont(ctx, text, size, font, maxWidth) {
  // The font at `size` px, or smaller (down to 8 px) so that `text` fits in `maxWidth`.
  ctx.font = `${size}px ${font}`;
  const width = ctx.measureText(text).width;
  if (width > maxWidth && maxWidth > 0) {
    ctx.font = `${Math.max(8, Math.floor(size * maxWidth / width))}px ${font}`;
  }
}

function titleText(layout) {
  // The figure's title: a string, or {text} (presenter mode may give a title only a font).
  const title = (layout || {}).title;
  return plainText(typeof title === 'string' ? title : (title && title.text) || '');
}

function plainText(text) {
  return String(text || '').replace(/<br\s*\/?>/g, ' ').replace(/<[^>]*>/g, '');
}

function layoutPanels(figure, width, height) {
  // One panel per trace: its pixel box (square cells centred in its axes' domains) and its data.
  const layout = figure.layout || {};
  const margin = Object.assign({l: 10, r: 10, t: 40, b: 10}, layout.margin || {});
  const withScale = figure.data.some((trace) => trace.type === 'heatmap' && trace.showscale !== false);
  const scaleRoom = withScale ? 56 : 0;
  const plotW = Math.max(10, width - margin.l - margin.r - scaleRoom);
  const plotH = Math.max(10, height - margin.t - margin.b);
  return figure.data.map((trace) => {
    const [values, shape] = decode(trace.z);
    const rows = shape[0];
    const cols = shape[1];
    const xDomain = (layout[axisName(trace.xaxis, 'x')] || {}).domain || [0, 1];
    const yDomain = (layout[axisName(trace.yaxis, 'y')] || {}).domain || [0, 1];
    const boxLeft = margin.l + xDomain[0] * plotW;
    const boxWidth = (xDomain[1] - xDomain[0]) * plotW;
    const boxTop = margin.t + (1 - yDomain[1]) * plotH;
    const boxHeight = (yDomain[1] - yDomain[0]) * plotH;
    const cell = Math.max(1e-3, Math.min(boxWidth / cols, boxHeight / rows));
    const left = boxLeft + (boxWidth - cell * cols) / 2;
    const top = boxTop + (boxHeight - cell * rows) / 2;
    return {trace, values, shape, rows, cols, cell, left, top, x0: Number(trace.x0 || 0),
            y0: Number(trace.y0 || 0), xref: trace.xaxis || 'x', yref: trace.yaxis || 'y',
            scaleLeft: margin.l + plotW + 12, plotTop: margin.t, plotH};
  });
}

function valueRange(panel) {
  const {trace, values} = panel;
  let low = trace.zmin;
  let high = trace.zmax;
  if (low === undefined || high === undefined) {
    let min = Infinity;
    let max = -Infinity;
    for (const v of values) { if (Number.isFinite(v)) { if (v < min) min = v; if (v > max) max = v; } }
    if (trace.zmid !== undefined) {
      const half = Math.max(Math.abs(max - trace.zmid), Math.abs(min - trace.zmid));
      min = trace.zmid - half;
      max = trace.zmid + half;
    }
    low = low === undefined ? min : low;
    high = high === undefined ? max : high;
  }
  low = Number(low);
  high = Number(high);
  if (!(high > low)) {  // One value everywhere: the scale's middle colour, as Plotly shows it.
    low = (Number.isFinite(low) ? low : 0) - 0.5;
    high = low + 1;
  }
  return [low, high];
}

function drawPanel(ctx, panel, font, textColor, baseSize) {
  const {trace, values, rows, cols, cell, left, top} = panel;
  if (trace.type === 'image') {
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const at = (r * cols + c) * 3;
        ctx.fillStyle = `rgb(${values[at]},${values[at + 1]},${values[at + 2]})`;
        ctx.fillRect(left + c * cell, top + r * cell, Math.ceil(cell), Math.ceil(cell));
      }
    }
    return;
  }
  const lookup = scaleLookup(trace.colorscale || [[0, '#000000'], [1, '#ffffff']]);
  const [low, high] = valueRange(panel);
  panel.range = [low, high];
  panel.lookup = lookup;
  const span = high - low || 1;
  const texts = trace.text ? trace.text.flat(Infinity) : null;
  const size = (trace.textfont && trace.textfont.size) || 14;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const value = values[r * cols + c];
      if (!Number.isFinite(value)) continue;
      const rgb = lookup((value - low) / span);
      ctx.fillStyle = `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
      // Whole pixels, so that neighbouring cells leave no hairline gaps between them.
      const x = Math.floor(left + c * cell);
      const y = Math.floor(top + r * cell);
      ctx.fillRect(x, y, Math.floor(left + (c + 1) * cell) - x, Math.floor(top + (r + 1) * cell) - y);
      if (texts) {
        const light = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140;
        ctx.fillStyle = light ? '#000000' : '#ffffff';
        fitFont(ctx, String(texts[r * cols + c]), size, font, cell * 0.92);
        ctx.textAlign = 'center';
        ctx.textBaseline = 'middle';
        ctx.fillText(String(texts[r * cols + c]), left + (c + 0.5) * cell, top + (r + 0.5) * cell);
      }
    }
  }
  if (trace.showscale !== false) {
    const barTop = panel.plotTop + panel.plotH * 0.075;
    const barHeight = panel.plotH * 0.85;
    for (let i = 0; i < barHeight; i++) {
      const rgb = lookup(1 - i / barHeight);
      ctx.fillStyle = `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
      ctx.fillRect(panel.scaleLeft, barTop + i, 12, 1.5);
    }
    ctx.fillStyle = textColor;
    ctx.font = `${Math.max(12, baseSize - 2)}px ${font}`;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    const ticks = trace.zmid !== undefined ? [high, trace.zmid, low] : [high, (high + low) / 2, low];
    ticks.forEach((tick, index) => {
      ctx.fillText(formatValue(tick, '.3g'), panel.scaleLeft + 16, barTop + (index / 2) * barHeight);
    });
  }
}

function drawShapes(ctx, figure, panels) {
  for (const shape of (figure.layout || {}).shapes || []) {
    if (shape.type !== 'rect') continue;
    const panel = panels.find((p) => p.xref === (shape.xref || 'x') && p.yref === (shape.yref || 'y'));
    if (!panel) continue;
    const x = (value) => panel.left + (value - (panel.x0 - 0.5)) * panel.cell;
    const y = (value) => panel.top + (value - (panel.y0 - 0.5)) * panel.cell;
    ctx.strokeStyle = (shape.line && shape.line.color) || '#FFB000';
    ctx.lineWidth = (shape.line && shape.line.width) || 2;
    ctx.strokeRect(x(shape.x0), y(shape.y0), x(shape.x1) - x(shape.x0), y(shape.y1) - y(shape.y0));
  }
}

function drawTexts(ctx, figure, width, height, font, textColor) {
  const layout = figure.layout || {};
  const margin = Object.assign({l: 10, r: 10, t: 40, b: 10}, layout.margin || {});
  const withScale = figure.data.some((trace) => trace.type === 'heatmap' && trace.showscale !== false);
  const plotW = Math.max(10, width - margin.l - margin.r - (withScale ? 56 : 0));
  const plotH = Math.max(10, height - margin.t - margin.b);
  ctx.fillStyle = textColor;
  const title = titleText(layout);
  if (title) {
    const size = (layout.title.font && layout.title.font.size) || 16;
    fitFont(ctx, title, size, font, width - margin.l - 4);
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    ctx.fillText(title, margin.l, Math.max(size / 2 + 2, margin.t / 2));
  }
  // Subplot titles share the width: each fits in its share (the grid's column width).
  const notes = layout.annotations || [];
  const share = plotW / Math.max(1, new Set(notes.map((note) => note.x)).size) - 6;
  for (const note of notes) {
    const size = (note.font && note.font.size) || 14;
    fitFont(ctx, plainText(note.text), size, font, share);
    ctx.textAlign = 'center';
    ctx.textBaseline = 'bottom';
    ctx.fillText(plainText(note.text), margin.l + note.x * plotW, margin.t + (1 - note.y) * plotH - 2);
  }
}

function draw(root) {
  const figure = root.__figure;
  const canvas = root.querySelector('canvas');
  const width = Math.max(60, root.clientWidth);
  const height = Number((figure.layout || {}).height) || 340;
  const ratio = window.devicePixelRatio || 1;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const style = getComputedStyle(root);
  const font = style.fontFamily || 'sans-serif';
  const textColor = style.color || '#31333F';
  const panels = layoutPanels(figure, width, height);
  const baseSize = Number(((figure.layout || {}).font || {}).size) || 12;
  for (const panel of panels) drawPanel(ctx, panel, font, textColor, baseSize);
  drawShapes(ctx, figure, panels);
  drawTexts(ctx, figure, width, height, font, textColor);
  root.__panels = panels;
  root.__width = width;
  root.dataset.title = titleText(figure.layout);
  root.dataset.draws = String(Number(root.dataset.draws || 0) + 1);
}

function hover(root, event) {
  const tip = root.querySelector('.cnnviz-map-tip');
  const box = root.querySelector('canvas').getBoundingClientRect();
  const x = event.clientX - box.left;
  const y = event.clientY - box.top;
  for (const panel of root.__panels || []) {
    const col = Math.floor((x - panel.left) / panel.cell);
    const row = Math.floor((y - panel.top) / panel.cell);
    if (row >= 0 && row < panel.rows && col >= 0 && col < panel.cols) {
      const at = row * panel.cols + col;
      const value = panel.trace.type === 'image'
        ? Array.from(panel.values.slice(at * 3, at * 3 + 3)) : panel.values[at];
      tip.textContent = '';
      for (const line of hoverText(panel.trace.hovertemplate, panel.y0 + row, panel.x0 + col, value)) {
        const div = document.createElement('div');
        div.textContent = line;
        tip.appendChild(div);
      }
      const size = Number((((root.__figure.layout || {}).hoverlabel || {}).font || {}).size) || 14;
      tip.style.fontSize = `${size}px`;
      tip.style.display = 'block';
      // Inside the chart: a label past its edge would make the component scroll.
      tip.style.left = `${Math.max(0, Math.min(x + 14, box.width - tip.offsetWidth - 2))}px`;
      tip.style.top = `${Math.max(0, Math.min(y + 14, box.height - tip.offsetHeight - 2))}px`;
      return;
    }
  }
  tip.style.display = 'none';
}

export default function ({ parentElement, data }) {
  let root = parentElement.querySelector('.cnnviz-map');
  if (!root) {
    root = document.createElement('div');
    root.className = 'cnnviz-map';
    root.innerHTML = '<canvas role="img"></canvas><div class="cnnviz-map-tip"></div>';
    parentElement.appendChild(root);
    root.addEventListener('mousemove', (event) => hover(root, event));
    root.addEventListener('mouseleave', () => { root.querySelector('.cnnviz-map-tip').style.display = 'none'; });
    // Drawn again at a new width (a resized window or column), not on every layout change.
    root.__observer = new ResizeObserver(() => {
      if (root.__figure && Math.max(60, root.clientWidth) !== root.__width) draw(root);
    });
    root.__observer.observe(root);
  }
  root.__figure = data;
  root.querySelector('canvas').setAttribute('aria-label', titleText(data.layout) || 'map');
  draw(root);
  // New data drawn (a resize draws again without new data): what bench/interaction.py waits for.
  root.dataset.renders = String(Number(root.dataset.renders || 0) + 1);
}
