"""What `cartooncodec train` can set: TrainOptions, whose fields are the command's options.

training/cli.py builds the parser from these fields (name, type, default, and the ``help`` of
each field's metadata), so a default exists here only; a new field is a new option.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_STYLES = ("sketch", "zombie", "cel", "comic", "watercolor", "pop-art")


def option(default: Any, help: str, flag: str | None = None) -> Any:
    """A field with its command-line help (and its flag, where it is not ``--field-name``)."""
    metadata = {"help": help} if flag is None else {"help": help, "flag": flag}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Stage1Weights:
    """Loss weights (FOMM's equivariance weights; L1/MS-SSIM stand in for its VGG loss)."""

    l1: float = option(10.0, "weight of the L1 pyramid loss")
    ms_ssim: float = option(5.0, "weight of the MS-SSIM loss")
    perceptual: float = option(1.0, "weight of the VGG loss (with --vgg-weights)")
    adversarial: float = option(1.0, "weight of the least-squares GAN loss")
    feature_matching: float = option(10.0, "weight of the discriminator feature matching loss")
    equivariance_value: float = option(10.0, "weight of the keypoint equivariance loss")
    equivariance_jacobian: float = option(10.0, "weight of the Jacobian equivariance loss")


@dataclass(frozen=True)
class Stage2Weights:
    """Loss weights of the classical styles' adaptation (stage 2)."""

    image_l1: float = option(10.0, "weight of the L1 to the style's recipe")
    image_ms_ssim: float = option(5.0, "weight of the MS-SSIM to the style's recipe")
    structure: float = option(10.0, "weight of the keypoint term (motion survives the style)")
    clip_directional: float = option(1.0, "weight of the CLIP directional loss")
    clip_global: float = option(0.5, "weight of the CLIP global loss")


@dataclass
class TrainOptions:
    """Everything ``cartooncodec train`` can set."""

    data: Path = field(metadata={"help": "folder of mp4/mov/avi/png/jpg"})
    out: Path = field(metadata={"help": "run folder (created)"})
    preset: str = option("lite-128", "full-256, lite-128 or tiny")
    steps: int = option(100_000, "stage-1 steps")
    batch_size: int = option(8, "pairs per step and process")
    lr: float = option(2e-4, "Adam learning rate")
    seed: int = option(0, "random seed of weights, pairs and augmentation")
    max_minutes: float | None = option(None, "stop stage 1 after this wall time")
    resume: Path | None = option(None, "continue from this checkpoint.pt")
    init_from: Path | None = option(
        None, "start from the weights of this checkpoint that fit (any generator version)"
    )
    cache_dir: Path | None = option(None, "decoded-frame cache (default OUT/cache)")
    max_frames: int | None = option(None, "keep at most N frames per clip")
    device: str | None = option(None, "cpu, cuda or cuda:N (default: cuda when available)")
    log_every: int = option(10, "steps between CSV rows")
    sample_every: int = option(500, "steps between sample grids")
    checkpoint_every: int = option(1000, "steps between saves")
    validate_every: int = option(250, "steps between validation runs")
    validation_fraction: float = option(
        0.1, "share of frames held out for validation, whole people at a time (0: none)"
    )
    validation_pairs: int = option(48, "(source, driving) pairs scored per validation run")
    num_workers: int = option(2, "data loader processes", flag="--workers")
    augment: bool = option(True, "flip, scale/shift and colour jitter of the pairs")
    adversarial: bool = option(True, "a discriminator (else L1 + MS-SSIM only: faster, blurrier)")
    discriminator_lr: float = option(2e-4, "Adam learning rate of the discriminator")
    vgg_weights: Path | None = option(None, "torchvision vgg19 .pth: adds VGG loss")
    clip_weights: Path | None = option(
        None, "local open_clip weights file: adds CLIP directional/global losses in stage 2"
    )
    clip_model: str = option("ViT-B-32", "open_clip architecture")
    styles: tuple[str, ...] = option(
        DEFAULT_STYLES, "comma-separated built-in styles for stage 2; empty to skip stage 2"
    )
    structure_steps: int = option(
        0,
        "before stage 2, distil a structure detector in N steps: the keypoints found through a "
        "style, which stage 2 and `style add` hold styles to; goes on from the checkpoint's "
        "when it has one (0: keep the checkpoint's, or use the keypoint detector)",
    )
    structure_lr: float = option(2e-4, "Adam learning rate of the structure detector")
    style_steps: int = option(100, "adaptation steps per style")
    style_top_k: int = option(4, "layers adapted per style")
    style_probe_steps: int = option(3, "steps of the layer-selection probe per style")
    style_lr: float = option(1e-3, "learning rate of the style deltas")
    style_finish_steps: int = option(
        0,
        "steps fitting the style finish alone first, from the unstyled render to the style's"
        " recipe of it (0: none)",
    )
    style_finish_lr: float = option(3e-3, "learning rate of that finish fit")
    style_reference_steps: int = option(
        0,
        "steps fitting the reference style alone first, from real frames to the style's recipe"
        " of them, at --style-finish-lr (0: none; use instead of --style-finish-steps)",
    )
    style_reference_frames: int = option(
        512, "real frames of the training people that the reference style's fit draws on"
    )
    style_batches: int = option(6, "batches of face crops a style adapts on")
    style_minutes: float | None = option(None, "time budget for all of stage 2")
    style_data: Path | None = option(
        None, "folder of the exemplar styles' pictures (disney-princess, pixar, anime-painting)"
    )
    export: Path | None = option(None, "also write a float16 inference checkpoint")
    weights: Stage1Weights = field(
        default_factory=Stage1Weights, metadata={"help": "stage-1 loss weights"}
    )
    style_weights: Stage2Weights = field(
        default_factory=Stage2Weights, metadata={"help": "stage-2 loss weights"}
    )
