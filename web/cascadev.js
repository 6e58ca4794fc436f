// CascadeV canvas extension (plain JS on the ComfyUI frontend's extension API).
//
// * Chunk Sampler: live candidate thumbnails with their scores while the search runs; the candidate chosen for
//   each chunk is outlined, the full run's score shown after it.
// * Refine / Load CascadeV Model: an estimate of attention cost and memory of one model call for the layout and
//   tile in use (asks the pack's /cascadev/attention_cost route; the numbers come from cascadev_core).
//
// Both are DOM widgets with serialize = false, so they never enter a workflow's widgets_values (a test saves a
// workflow from the real frontend and counts them).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const EVENT = "cascadev.chunk_candidates";
const STYLE = `
.cascadev-panel { font: 11px sans-serif; color: var(--input-text, #ddd); padding: 4px; overflow: auto; }
.cascadev-grid { display: flex; flex-wrap: wrap; gap: 4px; }
.cascadev-cand { display: flex; flex-direction: column; align-items: center; border: 2px solid transparent;
  border-radius: 4px; padding: 1px; }
.cascadev-cand img { width: 72px; height: auto; border-radius: 2px; }
.cascadev-cand.chosen { border-color: #4caf50; }
.cascadev-cand.final { border-color: #2196f3; }
.cascadev-cost { white-space: pre-line; line-height: 1.35; }
`;

function injectStyle() {
  if (document.getElementById("cascadev-style")) return;
  const style = document.createElement("style");
  style.id = "cascadev-style";
  style.textContent = STYLE;
  document.head.appendChild(style);
}

function addPanel(node, name, className, text, minHeight) {
  const el = document.createElement("div");
  el.className = `cascadev-panel ${className}`;
  el.textContent = text;
  const widget = node.addDOMWidget(name, "cascadev_panel", el, {
    serialize: false,
    hideOnZoom: false,
    getMinHeight: () => minHeight,
  });
  widget.serialize = false; // LiteGraph reads this flag when it writes widgets_values; the option alone is not enough
  return el;
}

// ---------------------------------------------------------------------------------------------------------------
// Chunk sampler: candidate thumbnails
// ---------------------------------------------------------------------------------------------------------------
export function renderCandidates(el, detail) {
  // detail.candidates: {image, score (null when not scored), candidate, phase ("preview" | "rung" | "full"), rung,
  // steps, chosen, final}; halving's rungs are shown as rows, the chosen candidate outlined, the full run last.
  el.replaceChildren();
  const title = document.createElement("div");
  title.textContent = `chunk ${detail.chunk + 1} · ${detail.mode}`;
  el.append(title);
  const rows = new Map();
  for (const c of detail.candidates) {
    const key = c.final ? "full run" : c.phase === "rung" ? `rung ${c.rung + 1} · ${c.steps} steps` : `${c.phase} · ${c.steps} steps`;
    if (!rows.has(key)) rows.set(key, []);
    rows.get(key).push(c);
  }
  for (const [key, items] of rows) {
    const label = document.createElement("div");
    label.textContent = key;
    const grid = document.createElement("div");
    grid.className = "cascadev-grid";
    for (const c of items) {
      const cell = document.createElement("div");
      cell.className = `cascadev-cand${c.chosen && !c.final ? " chosen" : ""}${c.final ? " final" : ""}`;
      cell.title = c.final ? "full run of the chosen noise" : `candidate ${c.candidate}${c.chosen ? " (chosen)" : ""}`;
      const img = document.createElement("img");
      img.src = c.image;
      const text = document.createElement("span");
      text.textContent = c.score === null || c.score === undefined ? "–" : c.score.toFixed(3);
      cell.append(img, text);
      grid.appendChild(cell);
    }
    el.append(label, grid);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Refine: attention cost estimate
// ---------------------------------------------------------------------------------------------------------------
function widgetValue(node, name, fallback) {
  const w = node?.widgets?.find((x) => x.name === name);
  return w === undefined ? fallback : w.value;
}

function upstream(node, inputName) {
  const input = node.inputs?.find((i) => i.name === inputName);
  if (!input || input.link == null) return null;
  const link = app.graph.links[input.link];
  return link ? app.graph.getNodeById(link.origin_id) : null;
}

function costQuery(node) {
  const loader = node.comfyClass === "CascadeVModelLoader" ? node : upstream(node, "cascadev_model");
  const options = upstream(node, "options");
  const layoutNode = loader && upstream(loader, "custom_layout");
  let layout = widgetValue(loader, "attention_layout", "official");
  if (layoutNode) layout = widgetValue(layoutNode, "schedule", layout).trim();
  const params = { layout, max_batch: Number(widgetValue(options, "max_batch", 1)) || 1 };
  const tile = Number(widgetValue(options, "tile", 0));
  const frames = Number(widgetValue(options, "window", 0));
  if (tile) params.tile = tile; // else the model file's own tile and window
  if (frames) params.frames = frames;
  // the model file's own sizes, when the file is there (a workflow can name one not downloaded yet)
  const ditWidget = loader?.widgets?.find((w) => w.name === "dit_name");
  if (ditWidget?.options?.values?.includes?.(ditWidget.value)) params.dit_name = ditWidget.value;
  params.weight_dtype = widgetValue(loader, "weight_dtype", "auto");
  return new URLSearchParams(params).toString();
}

async function updateCost(node, el) {
  const query = costQuery(node);
  if (query === node.cascadevCostQuery) return;
  node.cascadevCostQuery = query;
  try {
    const res = await api.fetchApi(`/cascadev/attention_cost?${query}`);
    const r = await res.json();
    if (!res.ok) {
      el.textContent = `attention estimate: ${r.error}`;
      return;
    }
    el.textContent =
      `per call: ${r.frames} frames × ${r.tile}² latent × ${r.max_batch} = ` +
      `${r.tokens_per_call.toLocaleString()} tokens\n` +
      `attention ${(100 * r.attention_ratio).toFixed(1)}% of full 3D, whole blocks ` +
      `${(100 * r.block_ratio).toFixed(1)}%\n` +
      `≈ ${r.activation_gib} GiB activations; ${r.scores_gib} GiB if attention scores are materialised`;
  } catch (err) {
    el.textContent = `attention estimate unavailable (${err})`;
  }
}

// ---------------------------------------------------------------------------------------------------------------
app.registerExtension({
  name: "CascadeV.canvas",
  async setup() {
    injectStyle();
    api.addEventListener(EVENT, ({ detail }) => {
      const node = app.graph?.getNodeById(Number(detail.node));
      if (node?.cascadevCandidates) renderCandidates(node.cascadevCandidates, detail);
    });
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const created = nodeType.prototype.onNodeCreated;
    if (nodeData.name === "CascadeVChunkSampler") {
      nodeType.prototype.onNodeCreated = function () {
        const r = created?.apply(this, arguments);
        this.cascadevCandidates = addPanel(this, "candidates", "cascadev-candidates",
          "candidate previews appear here while the search runs", 150);
        return r;
      };
    }
    if (nodeData.name === "CascadeVRefine" || nodeData.name === "CascadeVModelLoader") {
      nodeType.prototype.onNodeCreated = function () {
        const r = created?.apply(this, arguments);
        const el = addPanel(this, "attention_cost", "cascadev-cost", "attention estimate…", 64);
        const tick = () => updateCost(this, el);
        this.cascadevCostTimer = setInterval(tick, 1500);
        setTimeout(tick, 0);
        const removed = this.onRemoved;
        this.onRemoved = function () {
          clearInterval(this.cascadevCostTimer);
          return removed?.apply(this, arguments);
        };
        return r;
      };
    }
  },
});
