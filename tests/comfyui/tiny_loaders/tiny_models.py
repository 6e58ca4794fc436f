"""Tiny random models of every video family the official ComfyUI templates use, built by ComfyUI's own classes.

Imported in two places, always inside a ComfyUI (``comfy`` importable):

* by ``scripts/make_tiny_models.py`` in a subprocess, to write the tiny files (:func:`write_tiny_file`);
* by the test loader nodes of this folder (``__init__.py``), to build the models ComfyUI's stock loaders cannot
  build at tiny widths, because their detection hard-codes the released widths (:func:`load_vae`,
  :func:`load_checkpoint`, :func:`load_clip_vision`, :func:`load_text_encoder`).

Every file written here carries its tiny configuration in its safetensors metadata (:data:`TINY_KEY`), so the
writer and the loaders share one definition. The released widths that reach another model stay real (text widths
4096 / 3584 / 2048, CLIP vision outputs 1280 / 1152 / 1024, latent channels), so every family's conditioning has
its real shapes.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import logging
import os
import tempfile

import torch

#: safetensors metadata key holding a tiny file's configuration (JSON)
TINY_KEY = "cascadev_tiny"


# ---------------------------------------------------------------------------------------------------------------
# Random weights
# ---------------------------------------------------------------------------------------------------------------
def randomised(state_dict: dict, seed: int, dtype: torch.dtype = torch.float32) -> dict:
    """Deterministic random weights for a ComfyUI module's state dict (ComfyUI's ops skip weight init): fan-in
    scaled normal weights, zero biases, norms (and other vectors) one; integer buffers kept."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in state_dict.items():
        if not v.is_floating_point():
            out[k] = v.clone().contiguous()
            continue
        if v.ndim > 1:
            v = torch.randn(v.shape, generator=gen) / (v[0].numel() ** 0.5)
        elif k.endswith("bias"):
            v = torch.zeros(v.shape)
        else:
            v = torch.ones(v.shape)
        out[k] = v.to(dtype).contiguous()
    return out


def prefixed(prefix: str, state_dict: dict) -> dict:
    return {prefix + k: v for k, v in state_dict.items()}


# ---------------------------------------------------------------------------------------------------------------
# Tiny configurations (each written into its file's metadata)
# ---------------------------------------------------------------------------------------------------------------
WAN_DIT = dict(image_model="wan2.1", dim=128, ffn_dim=256, num_heads=1, num_layers=1, out_dim=16)
WAN_FAMILIES = {
    "wan21_t2v": dict(model_type="t2v", in_dim=16),
    "wan21_i2v": dict(model_type="i2v", in_dim=36),  # img_emb: the CLIP vision input (1280 wide)
    "wan22_i2v_14b": dict(model_type="t2v", in_dim=36),  # as detection sees the released file: no img_emb
    "wan22_ti2v_5b": dict(model_type="t2v", in_dim=48, out_dim=48),
}
HUNYUAN15_DIT = dict(
    image_model="hunyuan_video", in_channels=65, out_channels=32, patch_size=[1, 1, 1], vec_in_dim=None,
    axes_dim=[16, 56, 56], meanflow=False, context_in_dim=3584, hidden_size=128, mlp_ratio=4.0, num_heads=1,
    depth=1, depth_single_blocks=1, theta=256, qkv_bias=True, byt5=True, guidance_embed=False,
    use_cond_type_embedding=True, vision_in_dim=1152,
)  # fmt: skip
LTXV_TRANSFORMER = dict(num_attention_heads=2, attention_head_dim=32, cross_attention_dim=64, num_layers=1)
LTXV_VAE = {
    "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128,
    "blocks": [["compress_all", 1], ["compress_all", 1], ["compress_all", 1], ["res_x", 1]], "scaling_factor": 1.0,
    "norm_layer": "pixel_norm", "patch_size": 4, "latent_log_var": "uniform", "use_quant_conv": False,
    "causal_decoder": False,
}  # fmt: skip
#: SD-type UNets, in the format ComfyUI's detection gives (the loader re-detects it from the weights)
SD_UNET = dict(
    use_checkpoint=False, image_size=32, out_channels=4, use_spatial_transformer=True, legacy=False,
    num_classes="sequential", model_channels=64, num_res_blocks=[1, 1], channel_mult=[1, 2],
    transformer_depth_middle=1, use_linear_in_transformer=True,
)  # fmt: skip
SDXL_UNET = dict(
    SD_UNET, in_channels=4, adm_in_channels=2816, context_dim=2048, transformer_depth=[0, 1],
    transformer_depth_output=[0, 0, 1, 1], use_temporal_attention=False, use_temporal_resblock=False,
)  # fmt: skip
#: no attention at full latent resolution (as the tiny SDXL): 9216 tokens at 1024x576 cost minutes on 2 cores
SVD_UNET = dict(
    SD_UNET, in_channels=8, adm_in_channels=768, context_dim=1024, transformer_depth=[0, 1],
    transformer_depth_output=[0, 0, 1, 1], extra_ff_mix_layer=True, use_spatial_context=True,
    merge_strategy="learned_with_images", merge_factor=0.0, video_kernel_size=[3, 1, 1], use_temporal_resblock=True,
    use_temporal_attention=True, disable_temporal_crossattention=False,
)  # fmt: skip
#: VAEs: the family's detection path in comfy.sd.VAE, with these widths in place of the hard-coded ones
VAE_WIDTHS = {
    "wan21": {"dim": 8},
    "wan22": {"dim": 8, "dec_dim": 8},
    "hunyuan15": {"block_out_channels": [32, 32, 64, 64, 64], "num_res_blocks": 1},  # last: 2 x 32 latent
    "svd": {"ch": 32, "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1},
    "sd": {"ch": 32, "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1},
}
#: CLIP vision: the released config with two layers and a narrow MLP (its output widths stay the released ones)
CLIP_VISION = {
    "clip_vision_h": ("clip_vision_config_h.json", {}),
    "siglip_384": ("clip_vision_siglip_384.json", {}),
    "svd": ("clip_vision_config_h.json", {"hidden_size": 64, "num_attention_heads": 2}),  # image_embeds: 1024
}
#: text encoders: (text width, pooled width, tokens) of the family's real conditioning
TEXT_ENCODERS = {
    "umt5_xxl": (4096, None, 512),
    "t5xxl": (4096, None, 128),
    "qwen25_7b": (3584, None, 0),
    "byt5_small": (1472, None, 0),
    "sdxl": (2048, 1280, 77),
}


def clip_vision_config(name: str) -> dict:
    """The tiny CLIP vision config ``name``: the released JSON config, two layers, a narrow MLP."""
    import comfy.clip_vision

    file, override = CLIP_VISION[name]
    with open(os.path.join(os.path.dirname(comfy.clip_vision.__file__), file)) as f:
        config = json.load(f)
    return {**config, "num_hidden_layers": 2, "intermediate_size": 32, **override}


# ---------------------------------------------------------------------------------------------------------------
# VAEs whose widths comfy.sd.VAE hard-codes
# ---------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def replaced(module_name: str, attr: str, make):
    """Within: ``module.attr`` is ``make(original)``."""
    module = importlib.import_module(module_name)
    original = getattr(module, attr)
    setattr(module, attr, make(original))
    try:
        yield
    finally:
        setattr(module, attr, original)


def with_kwargs(cls, **fixed):
    """``cls`` called with ``fixed`` keyword arguments overriding the caller's."""

    @functools.wraps(cls)
    def build(*args, **kwargs):
        return cls(*args, **{**kwargs, **fixed})

    return build


def with_config_params(cls, key: str, **fixed):
    """``cls`` called with ``fixed`` overriding the entries of the ``params`` of its ``key`` config argument(s)."""

    @functools.wraps(cls)
    def build(*args, **kwargs):
        for name in [k for k in kwargs if k.endswith(key) and "params" in kwargs[k]]:
            config = dict(kwargs[name])
            config["params"] = {**config["params"], **fixed}
            kwargs[name] = config
        if "ddconfig" in kwargs:
            kwargs["ddconfig"] = {**kwargs["ddconfig"], **fixed}
        return cls(*args, **kwargs)

    return build


def vae_widths(family: str, widths: dict):
    """A context in which ``comfy.sd.VAE`` builds the ``family`` VAE at ``widths`` (its detection path otherwise)."""
    if family == "wan21":
        return replaced("comfy.ldm.wan.vae", "WanVAE", lambda c: with_kwargs(c, **widths))
    if family == "wan22":
        return replaced("comfy.ldm.wan.vae2_2", "WanVAE", lambda c: with_kwargs(c, **widths))
    if family == "hunyuan15":
        stack = contextlib.ExitStack()
        for part in ("Encoder", "Decoder"):
            stack.enter_context(
                replaced("comfy.ldm.hunyuan_video.vae_refiner", part, lambda c: with_kwargs(c, **widths))
            )
        return stack
    if family == "svd":
        return replaced("comfy.sd", "AutoencodingEngine", lambda c: with_config_params(c, "_config", **widths))
    if family == "sd":
        return replaced("comfy.sd", "AutoencoderKL", lambda c: with_config_params(c, "_config", **widths))
    raise ValueError(f"no tiny VAE family {family!r}")


def load_vae(sd: dict, family: str, widths: dict):
    """A ComfyUI VAE from a tiny state dict, through ``comfy.sd.VAE``'s own detection at the tiny widths; raises if
    a weight of the model is missing from the file."""
    import comfy.sd

    with vae_widths(family, widths):
        vae = comfy.sd.VAE(sd=sd)
    missing = set(vae.first_stage_model.state_dict()) - set(sd)
    if missing:
        raise ValueError(f"tiny {family} VAE: the file lacks {sorted(missing)[:5]}")
    return vae


# VAE state dicts that steer comfy.sd.VAE's detection to each family (shapes as the tiny models have them)
def vae_detection_keys(family: str, widths: dict) -> dict:
    """Keys that lead ``comfy.sd.VAE`` into the ``family`` branch (the writer builds the model from them)."""
    if family == "wan21":
        return {"decoder.middle.0.residual.0.gamma": None, "decoder.head.0.gamma": torch.ones(widths["dim"], 1, 1, 1)}
    if family == "wan22":
        return {"decoder.middle.0.residual.0.gamma": None, "decoder.upsamples.0.upsamples.0.residual.2.weight": None}
    if family == "hunyuan15":
        return {"decoder.conv_in.weight": torch.zeros(1, 32, 3, 3, 3)}
    if family == "svd":
        return {"decoder.mid.block_1.mix_factor": None}
    if family == "sd":
        return {
            "decoder.conv_in.weight": torch.zeros(1, 4, 3, 3),
            "post_quant_conv.weight": torch.zeros(4, 4, 1, 1),
            "encoder.down.2.downsample.conv.weight": None,
        }
    raise ValueError(family)


def build_vae_state_dict(family: str, seed: int, dtype=torch.float16) -> dict:
    """Random weights of the tiny ``family`` VAE, its model built by ``comfy.sd.VAE``'s detection path."""
    import comfy.sd

    widths = VAE_WIDTHS[family]
    keys = vae_detection_keys(family, widths)

    class DetectionKeys(dict):
        """Answers ``in`` and ``[]`` for detection but iterates as empty: nothing is loaded."""

        def __iter__(self):
            return iter(())

        def __len__(self):
            return 0

        def keys(self):
            return []

        def items(self):
            return []

    logging.disable(logging.WARNING)  # "Missing VAE keys": all of them, by design
    try:
        with vae_widths(family, widths):
            vae = comfy.sd.VAE(sd=DetectionKeys(keys))
    finally:
        logging.disable(logging.NOTSET)
    return randomised(vae.first_stage_model.state_dict(), seed, dtype)


# ---------------------------------------------------------------------------------------------------------------
# Diffusion models
# ---------------------------------------------------------------------------------------------------------------
def diffusion_state_dict(model_class: str, unet_config: dict, seed: int, dtype=torch.float32) -> dict:
    """Random weights of ``comfy.supported_models.<model_class>(unet_config)``'s diffusion model."""
    import comfy.supported_models

    config = getattr(comfy.supported_models, model_class)(dict(unet_config))
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({})
    return randomised(model.diffusion_model.state_dict(), seed, dtype)


def wan_state_dict(family: str, seed: int) -> dict:
    import comfy.ldm.wan.model
    import comfy.ops

    config = {**WAN_DIT, **WAN_FAMILIES[family]}
    config.pop("image_model")
    model = comfy.ldm.wan.model.WanModel(**config, operations=comfy.ops.disable_weight_init)
    return randomised(model.state_dict(), seed)


def ltxv_checkpoint(seed: int) -> tuple[dict, dict]:
    """The tiny LTXV checkpoint (transformer + VAE) and its metadata config, as the released files carry one."""
    import comfy.ldm.lightricks.vae.causal_video_autoencoder as ltxv_vae

    unet = dict(image_model="ltxv", **LTXV_TRANSFORMER)
    sd = prefixed("model.diffusion_model.", diffusion_state_dict("LTXV", unet, seed))
    vae = ltxv_vae.VideoVAE(config=LTXV_VAE)
    sd.update(prefixed("vae.", randomised(vae.state_dict(), seed + 1, torch.float16)))
    return sd, {"config": json.dumps({"transformer": LTXV_TRANSFORMER, "vae": LTXV_VAE})}


def clip_vision_state_dict(name: str, seed: int) -> dict:

    model = make_clip_vision(clip_vision_config(name))
    return randomised(model.get_sd(), seed, torch.float16)


def make_clip_vision(config: dict):
    """``comfy.clip_vision.ClipVisionModel`` of ``config`` (it reads its config from a JSON file)."""
    import comfy.clip_vision

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config, f)
    try:
        return comfy.clip_vision.ClipVisionModel(f.name)
    finally:
        os.unlink(f.name)


def text_encoder_state_dict(name: str, seed: int) -> dict:
    width, pooled, _ = TEXT_ENCODERS[name]
    gen = torch.Generator().manual_seed(seed)
    sd = {"embed.weight": torch.randn(256, width, generator=gen).half()}
    if pooled:
        sd["pooled.weight"] = torch.randn(256, pooled, generator=gen).half()
    return sd


def svd_checkpoint(seed: int) -> tuple[dict, dict]:
    """SVD-XT: UNet (``model.diffusion_model.``), temporal VAE (``first_stage_model.``), CLIP vision
    (``clip_vision.``, transformers key names)."""
    sd = prefixed("model.diffusion_model.", diffusion_state_dict("SVD_img2vid", SVD_UNET, seed, torch.float16))
    sd.update(prefixed("first_stage_model.", build_vae_state_dict("svd", seed + 1)))
    sd.update(prefixed("clip_vision.", clip_vision_state_dict("svd", seed + 2)))
    meta = {
        "kind": "svd",
        "clip_vision": clip_vision_config("svd"),
        "vae": {"family": "svd", "widths": VAE_WIDTHS["svd"]},
    }
    return sd, {TINY_KEY: json.dumps(meta)}


def sdxl_checkpoint(seed: int) -> tuple[dict, dict]:
    """SDXL: UNet, VAE (``first_stage_model.``) and the tiny text encoder (``text_encoders.tiny.``)."""
    sd = prefixed("model.diffusion_model.", diffusion_state_dict("SDXL", SDXL_UNET, seed, torch.float16))
    sd.update(prefixed("first_stage_model.", build_vae_state_dict("sd", seed + 1)))
    sd.update(prefixed("text_encoders.tiny.", text_encoder_state_dict("sdxl", seed + 2)))
    meta = {"kind": "sdxl", "text_encoder": "sdxl", "vae": {"family": "sd", "widths": VAE_WIDTHS["sd"]}}
    return sd, {TINY_KEY: json.dumps(meta)}


def wan_lora(seed: int, rank: int = 4) -> dict:
    """A LoRA (``lora_up`` / ``lora_down``) on every attention and FFN linear of the tiny Wan DiTs (width 128)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    dim, ffn = WAN_DIT["dim"], WAN_DIT["ffn_dim"]
    layers = {f"{a}.{p}": (dim, dim) for a in ("self_attn", "cross_attn") for p in ("q", "k", "v", "o")}
    layers.update({"ffn.0": (ffn, dim), "ffn.2": (dim, ffn)})
    for name, (out_f, in_f) in layers.items():
        key = f"diffusion_model.blocks.0.{name}"
        sd[f"{key}.lora_up.weight"] = (torch.randn(out_f, rank, generator=gen) * 0.05).half()
        sd[f"{key}.lora_down.weight"] = (torch.randn(rank, in_f, generator=gen) / in_f**0.5).half()
    return sd


# ---------------------------------------------------------------------------------------------------------------
# What the writer writes
# ---------------------------------------------------------------------------------------------------------------
def vae_file(family: str, seed: int, dtype=torch.float16) -> tuple[dict, dict]:
    sd = {k: v.to(dtype) for k, v in build_vae_state_dict(family, seed).items()}
    return sd, {TINY_KEY: json.dumps({"kind": "vae", "family": family, "widths": VAE_WIDTHS[family]})}


def tiny_file(kind: str, seed: int) -> tuple[dict, dict]:
    """``(state dict, metadata)`` of the tiny file ``kind`` (a key of :data:`WRITERS`)."""
    return WRITERS[kind](seed)


def _taesd(seed):
    import comfy.taesd.taesd as taesd

    return randomised(taesd.TAESD().state_dict(), seed), {}


def _diffusion(family):
    return lambda seed: (wan_state_dict(family, seed), {TINY_KEY: json.dumps({"kind": "diffusion", "family": family})})


def _hunyuan15(model_class: str, in_channels: int):
    def write(seed):
        config = dict(HUNYUAN15_DIT, in_channels=in_channels)
        sd = diffusion_state_dict(model_class, config, seed, torch.float16)
        return sd, {TINY_KEY: json.dumps({"kind": "diffusion", "family": model_class})}

    return write


def _text(name):
    def write(seed):
        meta = {"kind": "text_encoder", "name": name}
        return text_encoder_state_dict(name, seed), {TINY_KEY: json.dumps(meta)}

    return write


def _clip_vision(name):
    def write(seed):
        meta = {"kind": "clip_vision", "config": clip_vision_config(name)}
        return clip_vision_state_dict(name, seed), {TINY_KEY: json.dumps(meta)}

    return write


WRITERS = {
    "TAESD": _taesd,
    "WAN21_I2V": _diffusion("wan21_i2v"),
    "WAN21_T2V": _diffusion("wan21_t2v"),
    "WAN22_TI2V_5B": _diffusion("wan22_ti2v_5b"),
    "WAN22_I2V_14B": _diffusion("wan22_i2v_14b"),
    "WAN22_T2V_14B": _diffusion("wan21_t2v"),
    "HUNYUAN15": _hunyuan15("HunyuanVideo15", 65),
    "HUNYUAN15_SR": _hunyuan15("HunyuanVideo15_SR_Distilled", 98),
    "WAN21_VAE": lambda seed: vae_file("wan21", seed),
    "WAN22_VAE": lambda seed: vae_file("wan22", seed),
    "HUNYUAN15_VAE": lambda seed: vae_file("hunyuan15", seed),
    "LTXV": ltxv_checkpoint,
    "SVD_XT": svd_checkpoint,
    "SDXL": sdxl_checkpoint,
    "CLIP_VISION_H": _clip_vision("clip_vision_h"),
    "SIGLIP_384": _clip_vision("siglip_384"),
    "UMT5_XXL": _text("umt5_xxl"),
    "T5XXL": _text("t5xxl"),
    "QWEN25_7B": _text("qwen25_7b"),
    "BYT5_SMALL": _text("byt5_small"),
    "WAN22_LORA": lambda seed: (wan_lora(seed), {}),
}


def write_tiny_file(kind: str, path: str, seed: int) -> None:
    from safetensors.torch import save_file

    sd, metadata = tiny_file(kind, seed)
    save_file({k: v.contiguous() for k, v in sd.items()}, path, metadata={"format": "pt", **metadata})


# ---------------------------------------------------------------------------------------------------------------
# Loading (in the server, by the test loader nodes)
# ---------------------------------------------------------------------------------------------------------------
def read_tiny_file(path: str) -> tuple[dict, dict]:
    """``(state dict, tiny config)`` of a file written here (the config is empty for a file without one)."""
    import comfy.utils

    sd, metadata = comfy.utils.load_torch_file(path, safe_load=True, return_metadata=True)
    return sd, json.loads((metadata or {}).get(TINY_KEY, "{}"))


def load_diffusion_checkpoint(sd: dict, model_class: str):
    """A MODEL (ModelPatcher) of ``comfy.supported_models.<model_class>`` from a tiny checkpoint's
    ``model.diffusion_model.`` weights: ComfyUI's own detection reads the tiny widths from the weights; only the
    match against the released widths is skipped, by naming the class."""
    import comfy.model_detection
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models
    import comfy.utils

    prefix = "model.diffusion_model."
    unet_config = comfy.model_detection.detect_unet_config(sd, prefix)
    config = getattr(comfy.supported_models, model_class)(unet_config)
    config.set_inference_dtype(torch.float32, None)
    in_file = {k[len(prefix) :] for k in sd if k.startswith(prefix)}
    model = config.get_model(sd, prefix)
    model.load_model_weights(sd, prefix)  # (takes the weights out of sd)
    missing = set(model.diffusion_model.state_dict()) - in_file
    if missing:
        raise ValueError(f"tiny {model_class}: the file lacks {sorted(missing)[:5]}")
    return comfy.model_patcher.ModelPatcher(
        model,
        load_device=comfy.model_management.get_torch_device(),
        offload_device=comfy.model_management.unet_offload_device(),
    )


def sub_state_dict(sd: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def load_clip_vision(sd: dict, config: dict):
    """A CLIP_VISION: ``comfy.clip_vision.ClipVisionModel`` of the tiny ``config`` with the weights ``sd``."""
    clip_vision = make_clip_vision(config)
    missing, _ = clip_vision.load_sd(sd)
    if missing:
        raise ValueError(f"tiny CLIP vision: the file lacks {missing[:5]}")
    return clip_vision


class TinyTokenizer:
    """Bytes of the text as tokens (0 pads to the family's token count; no count: the text's own length)."""

    def __init__(self, tokens: int, embedding_directory=None, tokenizer_data=None):
        self.tokens = tokens

    def tokenize_with_weights(self, text: str, return_word_ids=False, **kwargs):
        ids = list(text.encode("utf-8"))[: max(self.tokens, 1) if self.tokens else None] or [0]
        ids += [0] * max(0, self.tokens - len(ids))
        return {"tiny": [[(i, 1.0, 0) if return_word_ids else (i, 1.0) for i in ids]]}

    def untokenize(self, token_weight_pair):
        return token_weight_pair

    def state_dict(self):
        return {}


class TinyTextEncoder(torch.nn.Module):
    """A text encoder with the family's real output shapes: each byte token's embedding (``[1, tokens, width]``),
    the pooled output (mean of ``pooled`` embeddings) where the family has one, an attention mask where the
    family's encoder gives one. The text matters (different prompts, different conditioning)."""

    def __init__(self, width: int, pooled: int | None, mask: bool, device=None, dtype=None, model_options=None):
        super().__init__()
        self.embed = torch.nn.Embedding(256, width)
        self.pooled = torch.nn.Embedding(256, pooled) if pooled else None
        self.mask = mask
        self.dtypes = {torch.float32}

    def set_clip_options(self, options):
        pass

    def reset_clip_options(self):
        pass

    def encode_token_weights(self, token_weight_pairs):
        ids = torch.tensor([[t[0] for t in token_weight_pairs["tiny"][0]]], device=self.embed.weight.device)
        cond = self.embed(ids).float().cpu()
        pooled = self.pooled(ids).float().mean(1).cpu() if self.pooled is not None else None
        extra = {"attention_mask": torch.ones(ids.shape, dtype=torch.long)} if self.mask else {}
        return cond, pooled, extra

    def load_sd(self, sd):
        return self.load_state_dict(sd, strict=False)


class ClipTarget:
    def __init__(self, tokenizer, clip):
        self.clip, self.tokenizer, self.params = clip, tokenizer, {}


#: CLIPLoader / DualCLIPLoader ``type`` -> (token count, attention mask) of that family's text encoder
TEXT_FAMILIES = {
    "wan": (512, False),
    "ltxv": (128, True),
    "hunyuan_video_15": (0, False),
    "sdxl": (77, False),
}


def load_text_encoder(sd: dict, family: str):
    """A ComfyUI CLIP (``comfy.sd.CLIP``) whose encoder is :class:`TinyTextEncoder`, shaped as ``family``'s."""
    import comfy.sd

    tokens, mask = TEXT_FAMILIES.get(family, (0, False))
    width = sd["embed.weight"].shape[1]
    pooled = sd["pooled.weight"].shape[1] if "pooled.weight" in sd else None
    target = ClipTarget(
        functools.partial(TinyTokenizer, tokens), functools.partial(TinyTextEncoder, width, pooled, mask)
    )
    clip = comfy.sd.CLIP(target, parameters=sum(v.numel() for v in sd.values()))
    missing, _ = clip.load_sd(sd, full_model=True)
    if missing:
        raise ValueError(f"tiny text encoder: the file lacks {missing}")
    return clip
