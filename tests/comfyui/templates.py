"""The official ComfyUI video templates (from the installed ``comfyui-workflow-templates`` package) with this pack
spliced in as a user would do it on the canvas, and converted to the API format by the real frontend.

Two splices, each written as rules over the template's UI graph (nodes found by class_type, links followed), never
by node id, so a template that changes its layout still splices, and one that no longer has what a rule expects
fails with a :class:`SpliceError` that says what is missing:

* :func:`cascade_plan`: after the template's video VAE decode, the cascade exactly as the shipped refine workflows
  wire it (``build_workflows.cascade_nodes``: effnet and model loaders, Encode Frames with the model wired, Refine
  Options, Refine, a 4-channel VAE, Decode, Save Video).
* :func:`chunk_plan`: the template's family conditioning node and its sampler(s) replaced by the family's CascadeV
  I2V adapter, Search Options and the Chunk Sampler, fed by the template's own model, VAE, prompts and start image,
  their images going where the template's VAE decode sent its frames (as ``workflows/cascadev_long_video_*``).

A plan is applied in the page by ``template_splice.js`` with the canvas's own calls; :func:`to_api` returns what
``app.graphToPrompt()`` makes of the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from build_workflows import cascade_nodes

SPLICE_JS = Path(__file__).with_name("template_splice.js")

#: the official templates this pack is proven against -> (title, splices); "chunk" only for image-to-video ones
TEMPLATES = {
    "video_wan2_2_5B_ti2v": ("Wan 2.2 5B TI2V", ("cascade", "chunk")),
    "video_wan2_2_14B_i2v": ("Wan 2.2 14B I2V", ("cascade", "chunk")),
    "video_wan2_2_14B_t2v": ("Wan 2.2 14B T2V", ("cascade",)),
    "image_to_video_wan": ("Wan 2.1 I2V", ("cascade", "chunk")),
    "text_to_video_wan": ("Wan 2.1 T2V", ("cascade",)),
    "txt_to_image_to_video": ("SVD-XT txt->img->video", ("cascade",)),
    "image_to_video": ("SVD img->video", ("cascade", "chunk")),
    "ltxv_text_to_video": ("LTXV T2V", ("cascade",)),
    "ltxv_image_to_video": ("LTXV I2V", ("cascade", "chunk")),
    "video_hunyuan_video_1.5_720p_t2v": ("HunyuanVideo 1.5 T2V", ("cascade",)),
    "video_hunyuan_video_1.5_720p_i2v": ("HunyuanVideo 1.5 I2V", ("cascade", "chunk")),
}

SAMPLERS = {"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"}
VIDEO_DECODES = {"VAEDecode", "VAEDecodeTiled"}
#: litegraph node modes: 0 always, 2 never (muted), 4 bypass
ACTIVE = 0


@dataclass(frozen=True)
class Adapter:
    """How a family's conditioning node maps onto this pack's I2V adapter node."""

    node: str  # our adapter's class_type
    copied: tuple[str, ...]  # widgets taken over from the family node (same names)
    start_image: str  # the family node's input that takes the start image
    clip_vision: str | None = None  # the family node's input whose source leads to a CLIP_VISION
    title: str = ""


#: family conditioning node (class_type) -> our adapter
ADAPTERS = {
    "WanImageToVideo": Adapter(
        "CascadeVI2VWan", ("width", "height", "length"), "start_image", "clip_vision_output",
        "CascadeV I2V Adapter (Wan 2.1 / 2.2 14B)",
    ),
    "Wan22ImageToVideoLatent": Adapter(
        "CascadeVI2VWan22", ("width", "height", "length"), "start_image", None, "CascadeV I2V Adapter (Wan 2.2 TI2V 5B)"
    ),
    "HunyuanVideo15ImageToVideo": Adapter(
        "CascadeVI2VHunyuanVideo15", ("width", "height", "length"), "start_image", "clip_vision_output",
        "CascadeV I2V Adapter (HunyuanVideo 1.5)",
    ),
    # strength stays the adapter's 1.0: the template's 0.15 is a legacy image-noise value (see the adapter)
    "LTXVImgToVideo": Adapter("CascadeVI2VLTXV", ("width", "height", "length"), "image", None,
                              "CascadeV I2V Adapter (LTXV)"),
    "SVD_img2vid_Conditioning": Adapter(
        "CascadeVI2VSVD", ("width", "height", "video_frames", "motion_bucket_id", "fps", "augmentation_level"),
        "init_image", "clip_vision", "CascadeV I2V Adapter (SVD)",
    ),
}  # fmt: skip

#: the shipped long-video workflows' search settings (``build_workflows.wan_i2v_long``): k-step search
SEARCH_WIDGETS = {
    "mode": "search", "candidates": 4, "preview_steps": 4, "batch_size": 0, "color_correction": 0.5,
    "keep_guide_frame": False, "score_frames": 0, "score_size": 224,
}  # fmt: skip


class SpliceError(AssertionError):
    """A template no longer has what a splice rule expects."""


# ----------------------------------------------------------------------------------------------------------------
# The installed templates
# ----------------------------------------------------------------------------------------------------------------
def template_path(template_id: str) -> Path | None:
    """The template's UI workflow file, found through the templates package; None when it is not installed."""
    try:
        from comfyui_workflow_templates import get_asset_path
    except ImportError:
        return None
    try:
        return Path(get_asset_path(template_id, f"{template_id}.json"))
    except (KeyError, FileNotFoundError):
        return None


def load_template(template_id: str) -> dict:
    """The template's UI workflow (raises FileNotFoundError when the package does not have it)."""
    path = template_path(template_id)
    if path is None:
        raise FileNotFoundError(f"template {template_id} is not in the installed comfyui-workflow-templates")
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------------------------------------------
# A UI-format graph, read the way the rules need it
# ----------------------------------------------------------------------------------------------------------------
Source = tuple[int, int]  # (node id, output slot)


class UIGraph:
    """Nodes and links of a UI-format workflow's top level, looked up by class_type and followed along links."""

    def __init__(self, workflow: dict, name: str):
        self.name = name
        self.nodes = {n["id"]: n for n in workflow["nodes"]}
        self.links = {}
        for link in workflow["links"]:
            if isinstance(link, dict):  # the newer object form
                link = [link[k] for k in ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")]
            self.links[link[0]] = link

    def type_of(self, node_id: int) -> str:
        return self.nodes[node_id]["type"]

    def is_active(self, node_id: int) -> bool:
        return self.nodes[node_id].get("mode", ACTIVE) == ACTIVE

    def find(self, class_types: set[str] | str) -> list[int]:
        """Ids of the active nodes of these class types (top level: a rule never reaches into a subgraph)."""
        wanted = {class_types} if isinstance(class_types, str) else class_types
        return [i for i, n in self.nodes.items() if n["type"] in wanted and self.is_active(i)]

    def source(self, node_id: int, input_name: str) -> Source | None:
        """Where the input ``input_name`` of a node is linked from, or None when it is not linked."""
        for inp in self.nodes[node_id].get("inputs", []):
            if inp["name"] == input_name and inp.get("link") is not None:
                link = self.links[inp["link"]]
                return link[1], link[2]
        return None

    def required_source(self, node_id: int, input_name: str, rule: str) -> Source:
        """:meth:`source`, or a SpliceError naming the rule when the input is not linked."""
        found = self.source(node_id, input_name)
        if found is None:
            raise SpliceError(f"{self.name}: {rule}: {self.type_of(node_id)} #{node_id} has no link on '{input_name}'")
        return found

    def consumers(self, node_id: int, slot: int, active_only: bool = True) -> list[tuple[int, str]]:
        """(node id, input name) of every input linked from output ``slot`` of a node."""
        found = []
        for link_id, src, src_slot, dst, dst_slot, _ in self.links.values():
            if src == node_id and src_slot == slot and dst in self.nodes and (self.is_active(dst) or not active_only):
                inputs = self.nodes[dst].get("inputs", [])
                name = next((i["name"] for i in inputs if i.get("link") == link_id), None)
                found.append((dst, name if name is not None else inputs[dst_slot]["name"]))
        return found

    def output_slot(self, node_id: int, name_or_type: str) -> int:
        """Index of the output called (or typed) ``name_or_type``."""
        outputs = self.nodes[node_id].get("outputs", [])
        for i, out in enumerate(outputs):
            if name_or_type in (out.get("name"), out.get("type")):
                return i
        raise SpliceError(f"{self.name}: {self.type_of(node_id)} #{node_id} has no output '{name_or_type}'")

    def output_name(self, node_id: int, slot: int) -> str:
        return self.nodes[node_id]["outputs"][slot]["name"]

    def pos(self, node_id: int) -> tuple[float, float]:
        pos = self.nodes[node_id].get("pos", [0, 0])
        return (pos["0"], pos["1"]) if isinstance(pos, dict) else (pos[0], pos[1])

    def only(self, ids: list[int], what: str) -> int:
        """The one node of ``ids``, else a SpliceError saying how many the template has."""
        if len(ids) != 1:
            raise SpliceError(f"{self.name}: expected one active {what}, the template has {len(ids)} ({ids})")
        return ids[0]


# ----------------------------------------------------------------------------------------------------------------
# Splice plans (applied by template_splice.js)
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """What the canvas does: enable bypassed nodes, remove nodes, add nodes, connect slots."""

    enable: list[int] = field(default_factory=list)
    remove: list[int] = field(default_factory=list)
    add: list[dict] = field(default_factory=list)
    links: list[dict] = field(default_factory=list)

    def node(self, key: str, class_type: str, title: str, pos, widgets: dict) -> str:
        """Add a node (known to the page as ``key``) with these widget values; returns ``key``."""
        self.add.append({"key": key, "type": class_type, "title": title, "pos": list(pos), "widgets": widgets})
        return key

    def link(self, source: tuple[int | str, int] | None, target: int | str, input_name: str) -> None:
        """Connect ``source`` (node, output slot) to the input ``input_name`` of ``target``; None: nothing."""
        link = None if source is None else {"from": source[0], "slot": source[1], "to": target, "input": input_name}
        if link is not None and link not in self.links:
            self.links.append(link)

    def as_json(self) -> dict:
        return {"enable": self.enable, "remove": self.remove, "add": self.add, "links": self.links}


def video_decode(graph: UIGraph) -> int:
    """The template's video VAE decode: the active decode whose frames go into a CreateVideo (a text-to-image
    stage's decode, as in SVD's txt->img->video, feeds the video model instead)."""
    decodes = [d for d in graph.find(VIDEO_DECODES) if any(graph.type_of(c) == "CreateVideo" for c, _ in
                                                           graph.consumers(d, 0))]  # fmt: skip
    return graph.only(decodes, "VAE decode feeding a CreateVideo (the video's frames)")


def video_fps(graph: UIGraph, values: dict, decode: int, default: float = 16.0) -> float:
    """Frame rate of the template's video: its CreateVideo's fps."""
    for consumer, _ in graph.consumers(decode, 0):
        if graph.type_of(consumer) == "CreateVideo":
            return float(values[str(consumer)]["inputs"]["fps"])
    return default


def cascade_plan(graph: UIGraph, values: dict) -> Plan:
    """The cascade after the template's video decode, wired as the shipped refine workflows wire it.

    ``values`` is the frontend's API conversion of the untouched template (widget values by name)."""
    decode = video_decode(graph)
    x, y = graph.pos(decode)
    nodes = cascade_nodes(("images", (-1, 0)), int(x) + 400, int(y) + 700, fps=video_fps(graph, values, decode))
    plan = Plan()
    for n in nodes:
        plan.node(f"cascade{n.id}", n.type, n.title, n.pos, n.widgets)
    for n in nodes:
        for name, (src, slot) in n.links.items():
            plan.link((decode if src == -1 else f"cascade{src}", slot), f"cascade{n.id}", name)
    return plan


def family_node(graph: UIGraph) -> int:
    """The template's image-to-video conditioning node (one of :data:`ADAPTERS`)."""
    return graph.only(graph.find(set(ADAPTERS)), f"image-to-video conditioning node ({', '.join(ADAPTERS)})")


def sampler_chain(graph: UIGraph, family: int) -> tuple[list[int], int]:
    """The samplers from the family node's latent to the video decode, in order, and that decode."""
    latent = graph.output_slot(family, "LATENT")
    chain, current, slot = [], family, latent
    while True:
        nexts = [c for c, _ in graph.consumers(current, slot) if graph.type_of(c) in SAMPLERS]
        decodes = [c for c, _ in graph.consumers(current, slot) if graph.type_of(c) in VIDEO_DECODES]
        if decodes and current != family:
            return chain, graph.only(decodes, f"VAE decode after {graph.type_of(current)} #{current}")
        if len(nexts) != 1:
            raise SpliceError(
                f"{graph.name}: expected one sampler taking the latent of {graph.type_of(current)} #{current} on "
                f"the way to the VAE decode, found {len(nexts)}"
            )
        current, slot = nexts[0], 0
        chain.append(current)
        if len(chain) > 2:
            raise SpliceError(
                f"{graph.name}: more than two samplers in a row ({chain}); the chunk sampler has two experts"
            )


@dataclass
class SamplerSettings:
    """What the chunk sampler takes over from the template's first sampler."""

    holder: int  # the node holding model / positive / negative (the sampler, or its guider)
    widgets: dict  # seed, steps, cfg, sampler_name, scheduler
    sigmas: Source | None = None
    sampler: Source | None = None
    removed: list[int] = field(default_factory=list)  # guider nodes that go with the sampler


def sampler_settings(graph: UIGraph, values: dict, sampler: int) -> SamplerSettings:
    """Seed, steps, cfg, sampler and scheduler of a KSampler, KSamplerAdvanced, SamplerCustom or
    SamplerCustomAdvanced (with its guider, noise, SAMPLER and SIGMAS nodes)."""
    kind, inputs = graph.type_of(sampler), values[str(sampler)]["inputs"]
    if kind in ("KSampler", "KSamplerAdvanced"):
        widgets = {k: inputs[k] for k in ("steps", "cfg", "sampler_name", "scheduler")}
        widgets["seed"] = inputs["seed" if kind == "KSampler" else "noise_seed"]
        return SamplerSettings(sampler, widgets)
    holder, removed, widgets = sampler, [], {"seed": inputs.get("noise_seed", 0)}
    if kind == "SamplerCustomAdvanced":
        holder = graph.required_source(sampler, "guider", "the sampler's guider")[0]
        removed.append(holder)
        noise = graph.source(sampler, "noise")
        if noise is not None and "noise_seed" in values.get(str(noise[0]), {}).get("inputs", {}):
            widgets["seed"] = values[str(noise[0])]["inputs"]["noise_seed"]
    widgets["cfg"] = values[str(holder)]["inputs"]["cfg"]
    settings = SamplerSettings(holder, widgets, removed=removed)
    settings.sampler = graph.required_source(sampler, "sampler", "the sampler's SAMPLER")
    sigmas = graph.required_source(sampler, "sigmas", "the sampler's SIGMAS")
    scheduler = values[str(sigmas[0])]["inputs"]
    if graph.type_of(sigmas[0]) == "BasicScheduler":  # the chunk sampler computes the same schedule itself
        widgets.update(steps=scheduler["steps"], scheduler=scheduler["scheduler"])
    else:  # e.g. LTXVScheduler: its curve is wired in, previews resample it (its steps are the full run's)
        settings.sigmas = sigmas
        widgets.update({"steps": scheduler["steps"]} if "steps" in scheduler else {})
    return settings


def conditioning_source(graph: UIGraph, plan: Plan, family: int, holder: int, name: str) -> Source | None:
    """The chunk sampler's ``positive`` / ``negative``: what the sampler got, with the family node taken out. Taken
    straight from the family node, it becomes the family node's own input of that name (the text encode); through a
    node in between (LTXVConditioning), that node stays and is fed from the family node's inputs instead."""
    src = graph.source(holder, name)
    if src is None:
        return None
    if src[0] == family:
        return graph.source(family, graph.output_name(family, src[1]))
    between = src[0]
    for inp in graph.nodes[between].get("inputs", []):
        upstream = graph.source(between, inp["name"])
        if upstream is not None and upstream[0] == family:
            family_input = graph.output_name(family, upstream[1])
            plan.link(graph.required_source(family, family_input, f"{name} conditioning"), between, inp["name"])
    return src


def clip_vision_source(graph: UIGraph, family: int, adapter: Adapter) -> Source | None:
    """The CLIP_VISION model the template conditions on: the family node's input, or the model behind its
    CLIPVisionEncode."""
    if adapter.clip_vision is None:
        return None
    src = graph.source(family, adapter.clip_vision)
    if src is None or graph.nodes[src[0]]["outputs"][src[1]]["type"] == "CLIP_VISION":
        return src
    return graph.source(src[0], "clip_vision")


def chunk_plan(graph: UIGraph, values: dict) -> Plan:
    """The family conditioning node and its sampler(s) replaced by our adapter, Search Options and Chunk Sampler.

    ``values`` is the frontend's API conversion of the untouched template (widget values by name)."""
    family = family_node(graph)
    adapter = ADAPTERS[graph.type_of(family)]
    chain, decode = sampler_chain(graph, family)
    settings = sampler_settings(graph, values, chain[0])
    family_values = values[str(family)]["inputs"]
    plan = Plan(remove=[family, *chain, *settings.removed, decode])
    start = graph.required_source(family, adapter.start_image, "the start image")
    if not graph.is_active(start[0]):  # e.g. Wan 2.2 5B: its start image is bypassed (text-to-video by default)
        plan.enable.append(start[0])
    x, y = graph.pos(family)
    i2v = plan.node("adapter", adapter.node, adapter.title, (x, y),
                    {name: family_values[name] for name in adapter.copied})  # fmt: skip
    search = plan.node("search", "CascadeVSearchOptions", "CascadeV Noise Search Options", (x, y + 400),
                       dict(SEARCH_WIDGETS))  # fmt: skip
    widgets = {"chunks": 2, "switch_step": 0, "fps": video_fps(graph, values, decode), "sampler_name": "euler",
               "scheduler": "simple", **settings.widgets}  # fmt: skip
    models = [graph.required_source(settings.holder, "model", "the model")]
    if len(chain) == 2:  # Wan 2.2 14B: the high-noise expert's steps end where the low-noise one takes over
        low = sampler_settings(graph, values, chain[1])
        models.append(graph.required_source(low.holder, "model", "the low-noise model"))
        plan.remove.extend(low.removed)
        if "end_at_step" not in values[str(chain[0])]["inputs"]:
            raise SpliceError(f"{graph.name}: two samplers in a row, but the first has no end_at_step to switch at")
        widgets["switch_step"] = values[str(chain[0])]["inputs"]["end_at_step"]
    sampler = plan.node("sampler", "CascadeVChunkSampler", "CascadeV Chunk Sampler (k-step noise search)",
                        (x + 400, y), widgets)  # fmt: skip
    report = plan.node("report", "PreviewAny", "Search report", (x + 800, y + 300), {})
    clip_vision = clip_vision_source(graph, family, adapter)
    plan.link(clip_vision, i2v, "clip_vision")
    for name, source in [
        ("model", models[0]), ("model_low_noise", models[1] if len(models) == 2 else None),
        ("vae", graph.required_source(family, "vae", "the VAE")), ("i2v", (i2v, 0)), ("start_image", start),
        ("positive", conditioning_source(graph, plan, family, settings.holder, "positive")),
        ("negative", conditioning_source(graph, plan, family, settings.holder, "negative")),
        ("search_options", (search, 0)), ("clip_vision", clip_vision), ("sigmas", settings.sigmas),
        ("sampler", settings.sampler),
    ]:  # fmt: skip
        plan.link(source, sampler, name)
    frames_to = graph.consumers(decode, 0)
    if not frames_to:
        raise SpliceError(f"{graph.name}: the VAE decode #{decode} sends its frames nowhere")
    for target, name in frames_to:
        plan.link((sampler, 0), target, name)
    plan.link((sampler, 2), report, "source")
    return plan


SPLICES = {"cascade": cascade_plan, "chunk": chunk_plan}


# ----------------------------------------------------------------------------------------------------------------
# The frontend
# ----------------------------------------------------------------------------------------------------------------
def to_api(page, workflow: dict, plan: Plan | None = None) -> dict:
    """Load ``workflow`` into the page's canvas, apply ``plan``, and return the frontend's conversion:
    ``{"output": API prompt, "workflow": UI graph, "added": plan key -> API node id}``."""
    source = SPLICE_JS.read_text()
    wrapper = f"async (arg) => {{ const splice = {source}\n; return await splice(arg); }}"
    return page.evaluate(wrapper, {"workflow": workflow, "plan": plan.as_json() if plan else None})


def splice(page, template_id: str, kind: str) -> tuple[dict, dict]:
    """The template spliced with ``kind`` ("cascade" or "chunk"): (API prompt, plan key -> API node id)."""
    workflow = load_template(template_id)
    values = to_api(page, workflow)["output"]
    plan = SPLICES[kind](UIGraph(workflow, template_id), values)
    converted = to_api(page, workflow, plan)
    return converted["output"], converted["added"]
