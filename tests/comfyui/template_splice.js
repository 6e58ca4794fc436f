// Page-side half of tests/comfyui/templates.py: load a UI-format workflow into ComfyUI's real canvas, apply a
// splice plan with the canvas's own calls (create nodes, set widgets, connect slots, bypass or remove nodes),
// then let the frontend convert the graph to the API format (it resolves subgraphs, primitives, reroutes,
// bypassed nodes and groups). Evaluated by Playwright as `async ({workflow, plan}) => ...`.
//
// plan: {enable: [node id], remove: [node id],
//        add: [{key, type, title, pos, widgets: {name: value}}],
//        links: [{from: node id or added key, slot: output index, to: node id or added key, input: name}]}
async ({ workflow, plan }) => {
  const app = window.app;
  const fail = (message) => {
    throw new Error(`template splice: ${message}`);
  };
  await app.loadGraphData(structuredClone(workflow), true, false, null);
  const graph = app.graph;
  const added = {};
  const node = (ref) => {
    const found = typeof ref === "string" ? added[ref] : graph.getNodeById(ref);
    return found || fail(`no node ${JSON.stringify(ref)} in the graph`);
  };
  const always = LiteGraph.ALWAYS ?? 0;
  for (const id of plan?.enable ?? []) node(id).mode = always;
  for (const id of plan?.remove ?? []) graph.remove(node(id));
  for (const spec of plan?.add ?? []) {
    const created = LiteGraph.createNode(spec.type) || fail(`the frontend has no node type ${spec.type}`);
    if (spec.title) created.title = spec.title;
    if (spec.pos) created.pos = [...spec.pos];
    graph.add(created);
    for (const [name, value] of Object.entries(spec.widgets ?? {})) {
      const widget = (created.widgets ?? []).find((w) => w.name === name);
      if (!widget) fail(`${spec.type} has no widget '${name}'`);
      widget.value = value;
    }
    added[spec.key] = created;
  }
  for (const link of plan?.links ?? []) {
    const source = node(link.from);
    const target = node(link.to);
    const slot = target.findInputSlot(link.input);
    if (slot < 0) fail(`${target.type} #${target.id} has no input '${link.input}'`);
    if (!source.connect(link.slot, target, slot)) {
      fail(`could not connect ${source.type} #${source.id} output ${link.slot} to ${target.type}.${link.input}`);
    }
  }
  const prompt = await app.graphToPrompt();
  const ids = Object.fromEntries(Object.entries(added).map(([key, n]) => [key, String(n.id)]));
  return { output: prompt.output, workflow: prompt.workflow, added: ids };
};
