"""Network configuration: frozen dataclasses with commented defaults, and the presets.

Defaults are the released Human3R 896L model (CUT3R ViT-L encoder at 512 px, 768-d state, 12+12 decoder blocks,
DINOv2 ViT-L/14 human encoder at 896 px). `Human3RConfig.preset(name)` returns the released variants and the tiny
parity configuration. The reference constructor arguments a checkpoint stores are mapped onto this config by
`human3r.weights.reference_config`.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

from human3r.errors import ConfigError


def _check_positive(owner: str, **values: Any) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{owner}.{name} must be a positive int, got {value!r}")


def _check_divisible(owner: str, dim: int, heads: int, what: str) -> None:
    if dim % heads != 0:
        raise ConfigError(f"{owner}: {what} dim {dim} is not divisible by {heads} heads")


@dataclass(frozen=True)
class EncoderConfig:
    """CUT3R image encoder (croco ViT with RoPE2D, no absolute position embedding)."""

    embed_dim: int = 1024  # token width
    depth: int = 24  # number of ViT blocks
    num_heads: int = 16  # attention heads (head dim 64)
    patch_size: int = 16  # square patch size in pixels
    mlp_ratio: float = 4.0  # MLP hidden = mlp_ratio * embed_dim
    rope_base: float = 100.0  # RoPE2D frequency base ("RoPE100")
    rope_fp16: bool = True  # round q/k to float16 around the rotation, as the reference curope kernel does
    ray_depth: int = 2  # blocks of the ray-map encoder (training views with ray maps; never run at inference)
    ray_num_heads: int = 16  # heads of the ray-map encoder blocks (hard-coded 16 in the reference)

    def __post_init__(self) -> None:
        _check_positive("EncoderConfig", embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads,
                        patch_size=self.patch_size)
        _check_divisible("EncoderConfig", self.embed_dim, self.num_heads, "embed")
        if (self.embed_dim // self.num_heads) % 4 != 0:
            raise ConfigError(f"EncoderConfig: head dim {self.embed_dim // self.num_heads} must be a multiple of 4 "
                              "for RoPE2D")
        if self.rope_base <= 0:
            raise ConfigError(f"EncoderConfig.rope_base must be > 0, got {self.rope_base!r}")
        if self.ray_depth < 0:
            raise ConfigError(f"EncoderConfig.ray_depth must be >= 0, got {self.ray_depth!r}")


@dataclass(frozen=True)
class DecoderConfig:
    """Two-stream recurrent decoder (image stream + state stream) and the pose memory."""

    embed_dim: int = 768  # token width of both streams
    depth: int = 12  # block pairs (image block + state block per layer)
    num_heads: int = 12  # image-stream heads (head dim 64); also the pose-memory heads
    state_num_heads: int = 16  # state-stream heads (head dim 48); differs from the image stream on purpose
    state_size: int = 768  # number of recurrent state tokens
    state_pe: str = "2d"  # state token positions: "2d" grid (even width) or "1d" (i, i)
    mem_size: int = 256  # pose-memory slots (LocalMemory)
    mem_depth: int = 2  # read and write blocks of the pose memory
    mlp_ratio: float = 4.0  # MLP hidden = mlp_ratio * embed_dim

    def __post_init__(self) -> None:
        _check_positive("DecoderConfig", embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads,
                        state_num_heads=self.state_num_heads, state_size=self.state_size, mem_size=self.mem_size,
                        mem_depth=self.mem_depth)
        _check_divisible("DecoderConfig", self.embed_dim, self.num_heads, "embed")
        _check_divisible("DecoderConfig", self.embed_dim, self.state_num_heads, "embed")
        _check_divisible("DecoderConfig", 2 * self.embed_dim, self.num_heads, "pose-memory")
        if self.state_pe not in ("2d", "1d"):
            raise ConfigError(f"DecoderConfig.state_pe must be '2d' or '1d', got {self.state_pe!r}")
        if self.depth < 4:
            raise ConfigError(f"DecoderConfig.depth must be >= 4 (DPT hooks at depth/2, 3*depth/4), got {self.depth}")

    @property
    def hooks(self) -> tuple[int, int, int, int]:
        """Decoder outputs read by the DPT heads (index 0 is the encoder output)."""
        return (0, self.depth * 2 // 4, self.depth * 3 // 4, self.depth)


@dataclass(frozen=True)
class DinoConfig:
    """DINOv2 ViT/14 human encoder of Multi-HMR (CLS token, LayerScale, no register tokens)."""

    embed_dim: int = 1024  # ViT-L width
    depth: int = 24  # blocks
    num_heads: int = 16  # heads
    patch_size: int = 14  # patch size in pixels
    mlp_ratio: float = 4.0  # MLP hidden ratio
    pos_embed_size: int = 518  # image size the learned pos_embed was trained for (37x37 grid + CLS)
    interpolate_offset: float = 0.1  # added to the target grid before computing the bicubic scale_factor
    image_res: int = 896  # square, padded input resolution of the human branch (mhmr_img_res)

    def __post_init__(self) -> None:
        _check_positive("DinoConfig", embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads,
                        patch_size=self.patch_size, pos_embed_size=self.pos_embed_size, image_res=self.image_res)
        _check_divisible("DinoConfig", self.embed_dim, self.num_heads, "embed")
        if self.image_res % self.patch_size != 0:
            raise ConfigError(f"DinoConfig.image_res {self.image_res} is not a multiple of patch {self.patch_size}")

    @property
    def grid(self) -> int:
        """Detection grid size (tokens per side)."""
        return self.image_res // self.patch_size


@dataclass(frozen=True)
class HeadsConfig:
    """DPT point/colour heads, camera head, detection/mask heads and SMPL-X regressors."""

    dpt_layer_dims: tuple[int, int, int, int] = (96, 192, 384, 768)  # DPT act_postprocess widths
    dpt_feature_dim: int = 256  # DPT fusion width
    dpt_last_dim: int = 128  # DPT head hidden width
    rgb_head: bool = True  # build dpt_rgb
    msk_head: bool = True  # build the human mask head (mlp_msk)
    final_transform_depth: int = 2  # adaLN blocks of the world-view branch
    det_threshold: float = 0.3  # detection score threshold (>=), after 3x3 NMS
    nms_kernel: int = 3  # NMS max-pool kernel
    num_rotations: int = 53  # global + 21 body + 15 + 15 hands + jaw
    num_betas: int = 10  # SMPL-X shape coefficients
    num_expression: int = 10  # SMPL-X expression coefficients

    def __post_init__(self) -> None:
        if len(self.dpt_layer_dims) != 4 or any(int(d) <= 0 for d in self.dpt_layer_dims):
            raise ConfigError(f"HeadsConfig.dpt_layer_dims must be 4 positive ints, got {self.dpt_layer_dims!r}")
        object.__setattr__(self, "dpt_layer_dims", tuple(int(d) for d in self.dpt_layer_dims))
        _check_positive("HeadsConfig", dpt_feature_dim=self.dpt_feature_dim, dpt_last_dim=self.dpt_last_dim,
                        final_transform_depth=self.final_transform_depth, nms_kernel=self.nms_kernel,
                        num_rotations=self.num_rotations, num_betas=self.num_betas,
                        num_expression=self.num_expression)
        if self.dpt_feature_dim % 2 != 0:
            raise ConfigError(f"HeadsConfig.dpt_feature_dim must be even, got {self.dpt_feature_dim}")
        if not 0.0 < self.det_threshold < 1.0:
            raise ConfigError(f"HeadsConfig.det_threshold must be in (0, 1), got {self.det_threshold!r}")
        if self.nms_kernel % 2 != 1:
            raise ConfigError(f"HeadsConfig.nms_kernel must be odd, got {self.nms_kernel}")
        for name in ("rgb_head", "msk_head"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"HeadsConfig.{name} must be a bool, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class TrackerConfig:
    """Sinkhorn matching of human tokens across frames (SuperGlue-style, with a dustbin)."""

    sinkhorn_iters: int = 20  # log-space Sinkhorn iterations
    dustbin_score: float = -10.0  # alpha, the dustbin logit
    match_threshold: float = 0.2  # exp(score) must exceed this, with a mutual check
    max_tracks: int | None = None  # cap on remembered tracks; None keeps every unmatched track (reference)

    def __post_init__(self) -> None:
        _check_positive("TrackerConfig", sinkhorn_iters=self.sinkhorn_iters)
        if self.max_tracks is not None:
            _check_positive("TrackerConfig", max_tracks=self.max_tracks)


@dataclass(frozen=True)
class Human3RConfig:
    """The whole network. Nested part configs; `name` is informational."""

    name: str = "896L"  # preset name or "custom"
    image_size: int = 512  # long side of the CUT3R working image (load_images size)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    dino: DinoConfig = field(default_factory=DinoConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)

    def __post_init__(self) -> None:
        _check_positive("Human3RConfig", image_size=self.image_size)
        if self.image_size % self.encoder.patch_size != 0:
            raise ConfigError(f"Human3RConfig.image_size {self.image_size} is not a multiple of the encoder patch "
                              f"{self.encoder.patch_size}")

    # ----------------------------------------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str) -> Human3RConfig:
        """`672S`, `672B`, `672L`, `896L` (released variants) or `tiny` (the parity-fixture configuration)."""
        try:
            factory = _PRESETS[name]
        except KeyError:
            raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(_PRESETS)}") from None
        return factory()

    @staticmethod
    def preset_names() -> tuple[str, ...]:
        return tuple(_PRESETS)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON-friendly: tuples become lists)."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Human3RConfig:
        """Inverse of `to_dict`. Unknown keys are ignored with a warning; bad values raise ConfigError."""
        return _build(cls, d, "Human3RConfig")

    def replace(self, **changes: Any) -> Human3RConfig:
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------------------------------------------
# presets

DINO_BACKBONES = {  # reference backbone name -> (embed_dim, depth, num_heads)
    "dinov2_vits14": (384, 12, 6),
    "dinov2_vitb14": (768, 12, 12),
    "dinov2_vitl14": (1024, 24, 16),
}


def _released(backbone: str, res: int, name: str) -> Human3RConfig:
    dim, depth, heads = DINO_BACKBONES[backbone]
    return Human3RConfig(name=name, dino=DinoConfig(embed_dim=dim, depth=depth, num_heads=heads, image_res=res))


def _tiny() -> Human3RConfig:
    # Mirrors tests/fixtures/parity/config.json (model_config + monkeypatched_internals).
    return Human3RConfig(
        name="tiny",
        image_size=128,
        encoder=EncoderConfig(embed_dim=64, depth=2, num_heads=4),
        decoder=DecoderConfig(embed_dim=48, depth=4, num_heads=3, state_num_heads=4, state_size=60, mem_size=16),
        dino=DinoConfig(embed_dim=64, depth=2, num_heads=4, image_res=224),
        heads=HeadsConfig(dpt_layer_dims=(16, 24, 32, 48), dpt_feature_dim=32, dpt_last_dim=16),
    )


_PRESETS = {
    "672S": lambda: _released("dinov2_vits14", 672, "672S"),
    "672B": lambda: _released("dinov2_vitb14", 672, "672B"),
    "672L": lambda: _released("dinov2_vitl14", 672, "672L"),
    "896L": lambda: _released("dinov2_vitl14", 896, "896L"),
    "tiny": _tiny,
}


# --------------------------------------------------------------------------------------------------------------
# dict round trip


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _build(klass: type, d: dict[str, Any], where: str) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be a dict, got {type(d).__name__}: {d!r}")
    fields = {f.name: f for f in dataclasses.fields(klass)}
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        if key not in fields:
            warnings.warn(f"{where}: ignoring unknown config key {key!r}", stacklevel=3)
            continue
        sub = _NESTED.get((klass, key))
        if sub is not None:
            kwargs[key] = _build(sub, value, f"{where}.{key}")
        elif isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    try:
        return klass(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{where}: bad values {kwargs!r}: {err}") from err


_NESTED = {
    (Human3RConfig, "encoder"): EncoderConfig,
    (Human3RConfig, "decoder"): DecoderConfig,
    (Human3RConfig, "dino"): DinoConfig,
    (Human3RConfig, "heads"): HeadsConfig,
    (Human3RConfig, "tracker"): TrackerConfig,
}
