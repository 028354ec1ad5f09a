"""The training run: stage 1 (reconstruction), then stage 2 (built-in style deltas).

One command for CPU, one GPU and many GPUs: under ``torchrun`` (``WORLD_SIZE`` set) every
process trains a DistributedDataParallel replica on its own share of the pairs and rank 0
writes the log, plots, sample grids and checkpoints. Seeds are fixed, so a run is repeatable
on the same hardware, and ``--resume`` continues from the step a checkpoint was written at.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from models.text_encoder import ClipGuide

from models.checkpoint import (
    CheckpointError,
    build_models,
    load_checkpoint,
    load_state,
    read_checkpoint,
    save_checkpoint,
)
from models.config import ModelConfig, get_preset
from models.face_crop import FaceCropper
from models.keypoint_detector import KPDetector
from training.augment import NONE, Augmentation
from training.discriminator import MultiScaleDiscriminator
from training.losses import VGGPerceptualLoss, ms_ssim_value
from training.monitor import LossLog, plot_losses, save_grid
from training.options import TrainOptions
from training.split import split_by_person
from training.stage1 import ReconstructionModel, discriminator_step
from training.stage2 import ClipTarget, make_style_batches, render_styles, train_style
from training.structure import distill_structure_detector, structure_errors
from training.styles import BUILTIN_STYLES, EXEMPLAR_STYLES, exemplar_palette
from training.videos import Clip, PairDataset, load_clips

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"  # the checkpoint with the best validation MS-SSIM so far


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or infinite; the message names the step and every loss term."""


@dataclass
class Distributed:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str | None) -> Distributed:
    """Join the torchrun process group when WORLD_SIZE > 1; otherwise one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if world_size <= 1:
        return Distributed(device=torch.device(device or ("cuda" if use_cuda else "cpu")))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    return Distributed(
        rank=torch.distributed.get_rank(),
        world_size=world_size,
        device=torch.device(f"cuda:{local_rank}" if use_cuda else "cpu"),
    )


def describe_hardware(dist: Distributed) -> str:
    """E.g. "2 x NVIDIA H100" or "cpu, 2 threads"."""
    if dist.device.type == "cuda":
        return f"{dist.world_size} x {torch.cuda.get_device_name(dist.device)}"
    return f"cpu, {torch.get_num_threads()} threads x {dist.world_size} processes"


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def check_finite(step: int, losses: dict[str, torch.Tensor]) -> None:
    """Stop with the step and every loss term as soon as one is NaN or infinite."""
    if all(torch.isfinite(value).all() for value in losses.values()):
        return
    terms = ", ".join(f"{name}={value.item():.4g}" for name, value in losses.items())
    raise TrainingDivergedError(
        f"loss is not finite at step {step}: {terms}. Lower --lr or check the input frames."
    )


@contextmanager
def _progress(total: int, initial: int, desc: str, enabled: bool) -> Iterator[Any]:
    from tqdm import tqdm

    bar = tqdm(total=total, initial=initial, desc=desc, unit="it", disable=not enabled)
    try:
        yield bar
    finally:
        bar.close()


class Trainer:
    """Owns the networks, optimiser, data and run folder of one training run."""

    def __init__(self, options: TrainOptions) -> None:

        self.options = options
        self.dist = setup_distributed(options.device)
        seed_everything(options.seed + self.dist.rank)
        self.config: ModelConfig = get_preset(options.preset)
        clips, _ = load_clips(
            options.data,
            self.config.image_size,
            options.cache_dir or options.out / "cache",
            options.max_frames,
        )
        train_clips, validation_clips = self._split(clips)
        self.dataset = PairDataset(
            train_clips,
            length=sum(len(c) for c in train_clips),
            seed=options.seed,
            augmentation=Augmentation() if options.augment else NONE,
        )
        self.validation = (
            PairDataset(validation_clips, length=options.validation_pairs, seed=options.seed + 1)
            if validation_clips
            else None
        )
        self.best_validation = -math.inf
        self.step = 0
        self.models = build_models(self.config)
        if options.init_from is not None:
            self._init_from(options.init_from)
        train_state = self._resume(options.resume) if options.resume is not None else None
        self.kp_detector = self.models.kp_detector.to(self.dist.device).train()
        if self.models.structure_detector is not None:
            self.models.structure_detector.to(self.dist.device)
        self.generator = self.models.generator.to(self.dist.device).train()
        for own in (self.generator.finish, self.generator.restyle):
            if own is not None:  # the identity until a style delta changes it
                own.requires_grad_(False)
        self.model = self._build_model()
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=options.lr, betas=(0.5, 0.999)
        )
        self.discriminator = (
            MultiScaleDiscriminator().to(self.dist.device).train() if options.adversarial else None
        )
        self.discriminator_optimizer = (
            torch.optim.Adam(
                self.discriminator.parameters(), lr=options.discriminator_lr, betas=(0.5, 0.999)
            )
            if self.discriminator is not None
            else None
        )
        if train_state is not None:
            self._load_train_state(train_state)
        self.out = options.out
        if self.dist.is_main:
            (self.out / "samples").mkdir(parents=True, exist_ok=True)
        self.loss_log = LossLog(self.out / "losses.csv")
        self._fixed_batch = self._batch(-1, size=min(4, options.batch_size))
        self.started = time.monotonic()
        self.seconds_before = float(self.models.meta.get("train_seconds", 0.0))

    def _split(self, clips: list[Clip]) -> tuple[list[Clip], list[Clip]]:
        """Training and validation clips, by person; no validation for one person's clips."""
        try:
            train, validation = split_by_person(
                clips, self.options.validation_fraction, self.options.seed
            )
        except ValueError as error:
            log.warning("training without a validation split: %s", error)
            return clips, []
        if validation:
            log.info(
                "validation: %d clips (%d frames) of people not in training: %s",
                len(validation),
                sum(len(c) for c in validation),
                ", ".join(c.name for c in validation),
            )
        return train, validation

    def _validation_names(self) -> list[str]:
        return [c.name for c in self.validation.clips] if self.validation is not None else []

    def _init_from(self, path: Path) -> None:
        """Start from the weights of ``path`` that fit (same name and shape), any architecture.

        The generator's residual head is taken only from a generator of this architecture (an
        older one's means something else: it starts at zero, the output the warped reference),
        and the structure detector only with a keypoint detector taken whole (it was distilled
        from that one). New modules, such as a reference style the file lacks, keep their own
        initialisation.
        """

        data = read_checkpoint(path)
        config = data.get("config")
        generator = config.get("generator") if isinstance(config, dict) else None
        same_generator = (
            isinstance(generator, dict)
            and generator.get("architecture") == self.config.generator.architecture
        )
        taken, whole = 0, {}
        for part, module, skip in (
            ("kp_detector", self.models.kp_detector, ()),
            ("generator", self.models.generator, () if same_generator else ("final.",)),
        ):
            if not isinstance(data[part], dict):
                raise CheckpointError(f"checkpoint {path}: {part!r} is not a state dict")
            own = module.state_dict()
            fitting = {
                key: value
                for key, value in data[part].items()
                if key in own
                and not key.startswith(skip)
                and isinstance(value, torch.Tensor)
                and value.shape == own[key].shape
            }
            module.load_state_dict({**own, **{k: v.float() for k, v in fitting.items()}})
            taken += len(fitting)
            whole[part] = len(fitting) == len(own)
        structure = data.get("structure_detector")
        if whole["kp_detector"] and isinstance(structure, dict):
            detector = KPDetector(self.config).eval()
            load_state(detector, {k: v.float() for k, v in structure.items()}, path, "structure")
            self.models.structure_detector = detector.requires_grad_(False)
            taken += len(structure)
        log.info("initialised %d tensors from %s", taken, path)

    def _resume(self, path: Path) -> dict[str, Any] | None:
        """Load networks, styles and step from ``path``; CheckpointError names file and mismatch."""

        self.models = load_checkpoint(path, preset=self.options.preset)
        train_state = read_checkpoint(path).get("train_state")
        self.step = int(self.models.meta.get("step", 0))
        # A best score only counts against the same held-out clips (another data folder or
        # split would make best.pt unreachable or wrong).
        same_split = self.models.meta.get("validation_clips") == self._validation_names()
        if same_split:
            self.best_validation = float(self.models.meta.get("best_validation", -math.inf))
        log.info("resuming from %s at step %d", path, self.step)
        return train_state if isinstance(train_state, dict) else None

    def _load_train_state(self, state: dict[str, Any]) -> None:
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.discriminator is not None and "discriminator" in state:
            self.discriminator.load_state_dict(state["discriminator"])
            assert self.discriminator_optimizer is not None
            self.discriminator_optimizer.load_state_dict(state["discriminator_optimizer"])

    def save(self, path: Path, half: bool = False, with_train_state: bool = True) -> Path:
        """Checkpoint in the models' format; the train state (optimizers, discriminator) lets
        --resume continue."""

        extra = None
        if with_train_state:
            state: dict[str, Any] = {"optimizer": self.optimizer.state_dict()}
            if self.discriminator is not None and self.discriminator_optimizer is not None:
                state["discriminator"] = self.discriminator.state_dict()
                state["discriminator_optimizer"] = self.discriminator_optimizer.state_dict()
            extra = {"train_state": state}
        return save_checkpoint(path, self.models, meta=self.meta(), half=half, extra=extra)

    def meta(self) -> dict[str, Any]:
        """What the model card needs: data, steps, time, hardware."""
        return {
            **self.models.meta,
            "step": self.step,
            "train_seconds": round(self.seconds_before + time.monotonic() - self.started, 1),
            "data": str(self.options.data),
            "clips": self.dataset_names(),
            "batch_size": self.options.batch_size * self.dist.world_size,
            "lr": self.options.lr,
            "seed": self.options.seed,
            "best_validation": self.best_validation,
            "validation_clips": self._validation_names(),
            "device": describe_hardware(self.dist),
            "torch": str(torch.__version__),
        }

    def dataset_names(self) -> list[str]:
        return [clip.name for clip in self.dataset.clips]

    def _build_model(self) -> nn.Module:
        perceptual = None
        if self.options.vgg_weights is not None:
            perceptual = VGGPerceptualLoss(self.options.vgg_weights).to(self.dist.device)
        model: nn.Module = ReconstructionModel(
            self.kp_detector, self.generator, self.options.weights, perceptual
        )
        if self.dist.world_size > 1:
            if self.dist.device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            model = nn.parallel.DistributedDataParallel(model)
        return model

    def _batch(self, index: int, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed (source, driving) batch from pairs that no training step uses (sample grid,
        style adaptation): item ``2**61 + index * size`` onwards of epoch 0."""
        size = size or self.options.batch_size
        first = 2**61 + index * size
        return self._stack([self.dataset[first + i] for i in range(size)])

    def _stack(
        self, pairs: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        source = torch.stack([p[0] for p in pairs]).to(self.dist.device)
        driving = torch.stack([p[1] for p in pairs]).to(self.dist.device)
        return source, driving

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Training batches for this rank, epoch after epoch, decoded by worker processes.

        DistributedSampler gives each torchrun rank its own share (one rank: all of it).
        """
        from torch.utils.data import DataLoader, DistributedSampler

        sampler: DistributedSampler[tuple[torch.Tensor, torch.Tensor]] = DistributedSampler(
            self.dataset,
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
            shuffle=True,
            seed=self.options.seed,
            drop_last=True,
        )
        per_epoch = max(1, len(sampler) // self.options.batch_size)
        epoch = self.step // per_epoch
        while True:
            sampler.set_epoch(epoch)
            self.dataset.epoch = epoch  # workers are forked per epoch and copy it
            loader = DataLoader(
                self.dataset,
                batch_size=self.options.batch_size,
                sampler=sampler,
                num_workers=self.options.num_workers,
                drop_last=True,
            )
            for source, driving in loader:
                yield source.to(self.dist.device), driving.to(self.dist.device)
            epoch += 1

    def train_stage1(self) -> None:
        """Reconstruction until ``steps`` or ``max_minutes``, whichever comes first."""
        options = self.options
        deadline = (
            time.monotonic() + 60.0 * options.max_minutes if options.max_minutes else math.inf
        )
        started = time.monotonic()
        if self.step < options.steps and self.models.structure_detector is not None:
            log.warning(
                "stage 1 changes the keypoint detector, so the structure detector distilled from "
                "it is dropped; --structure-steps N distils a new one"
            )
            self.models.structure_detector = None
        self.model.train()
        batches = self._batches()
        with _progress(options.steps, self.step, "stage 1", self.dist.is_main) as bar:
            while self.step < options.steps and time.monotonic() < deadline:
                source, driving = next(batches)
                losses, prediction = self.model(source, driving, self.discriminator)
                check_finite(self.step, losses)
                total = torch.stack(list(losses.values())).sum()
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                self.optimizer.step()
                if self.discriminator is not None and self.discriminator_optimizer is not None:
                    losses["discriminator"] = discriminator_step(
                        self.discriminator, self.discriminator_optimizer, driving, prediction
                    )
                self.step += 1
                self._after_step(losses, total, bar, time.monotonic() - started)
        log.info(
            "stage 1 stopped at step %d after %.1f min",
            self.step,
            (time.monotonic() - started) / 60,
        )

    def validate(self) -> dict[str, float]:
        """Mean MS-SSIM on the validation people: the model's render and the static baseline
        (the source frame shown unchanged). Empty without a validation split."""
        if self.validation is None:
            return {}
        was_training = self.model.training
        self.model.eval()
        scores: dict[str, list[float]] = {"validation_ms_ssim": [], "validation_static_ms_ssim": []}
        pairs = [self.validation[i] for i in range(len(self.validation))]
        with torch.no_grad():
            for first in range(0, len(pairs), self.options.batch_size):
                source, driving = self._stack(pairs[first : first + self.options.batch_size])
                kp_source, kp_driving = self.kp_detector(source), self.kp_detector(driving)
                prediction = self.generator(source, kp_driving, kp_source)["prediction"]
                for render, key in (
                    (prediction, "validation_ms_ssim"),
                    (source, "validation_static_ms_ssim"),
                ):
                    scores[key] += [
                        float(ms_ssim_value(render[i : i + 1], driving[i : i + 1]))
                        for i in range(len(source))
                    ]
        self.model.train(was_training)
        return {key: float(np.mean(values)) for key, values in scores.items()}

    def _after_step(
        self, losses: dict[str, torch.Tensor], total: torch.Tensor, bar: Any, seconds: float
    ) -> None:
        bar.update(1)
        if not self.dist.is_main:
            return
        if self.step % self.options.log_every == 0 or self.step == 1:
            values = {name: value.item() for name, value in losses.items()}
            values["total"] = total.item()
            self.loss_log.write(self.step, "reconstruction", seconds, values)
            bar.set_postfix(loss=f"{total.item():.3f}")
        if self.step % self.options.sample_every == 0:
            self.write_samples()
        if self.step % self.options.validate_every == 0 and self.validation is not None:
            scores = self.validate()
            self.loss_log.write(self.step, "validation", seconds, scores)
            log.info("step %d validation %s", self.step, scores)
            if scores["validation_ms_ssim"] > self.best_validation:
                self.best_validation = scores["validation_ms_ssim"]
                self.save(self.out / BEST_NAME)
        if self.step % self.options.checkpoint_every == 0:
            self.save(self.out / CHECKPOINT_NAME)
            plot_losses(self.loss_log, self.out / "losses.png")

    def write_samples(self) -> Path:
        """Sample grid PNG: source | driving | reconstruction | each trained style."""

        source, driving = self._fixed_batch
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            kp_source = self.kp_detector(source)
            kp_driving = self.kp_detector(driving)
            prediction = self.generator(source, kp_driving=kp_driving, kp_source=kp_source)[
                "prediction"
            ]
            columns = [("source", source), ("driving", driving), ("reconstruction", prediction)]
            columns += render_styles(
                self.generator, self.models.styles, source, kp_source, kp_driving
            )
        self.model.train(was_training)
        path = self.out / "samples" / f"step-{self.step:07d}.png"
        save_grid(columns, path)
        return path

    def restore_best(self) -> None:
        """Take the weights of the best validation checkpoint, if this run wrote one."""

        best = self.out / BEST_NAME
        if self.validation is None or not best.exists():
            return
        loaded = load_checkpoint(best, preset=self.config)
        self.kp_detector.load_state_dict(loaded.kp_detector.state_dict())
        self.generator.load_state_dict(loaded.generator.state_dict())
        log.info(
            "continuing with %s (step %s, validation MS-SSIM %.4f)",
            best,
            loaded.meta.get("step"),
            self.best_validation,
        )

    def train_structure(self) -> None:
        """Distil the structure detector from the keypoint detector (``--structure-steps``;
        rank 0) on the training frames; logs its error on the validation people's frames."""

        options = self.options
        if not options.structure_steps or not self.dist.is_main:
            return
        started = time.monotonic()
        frames = (torch.cat(pair) for pair in self._batches())
        start = self.models.structure_detector
        if start is not None:
            log.info("structure detector: going on from the checkpoint's")
        row: dict[str, float] = {}
        with _progress(options.structure_steps, 0, "structure detector", True) as bar:

            def progress(step: int, loss: float) -> None:
                row["loss"] = loss
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")

            detector = distill_structure_detector(
                self.kp_detector.eval(),
                frames,
                options.structure_steps,
                options.structure_lr,
                options.seed,
                progress=progress,
                start=start,
            )
        self.models.structure_detector = detector
        if self.validation is not None:
            count = min(len(self.validation), options.validation_pairs)
            images = torch.stack([self.validation[i][1] for i in range(count)])
            images = images.to(self.dist.device)
            # What a style is held to: each detector's keypoints on a restyled frame against its
            # own on the photograph; and how far the new one strays on photographs.
            before = structure_errors(self.kp_detector, self.kp_detector, images)
            after = structure_errors(detector, detector, images)
            photographs = structure_errors(detector, self.kp_detector, images, restylings=())
            drift = photographs["photograph"]
            log.info(
                "structure detector: on the validation photographs %.2f px from the keypoint "
                "detector's keypoints; keypoints moved by a restyling (px, its own on the "
                "photograph as reference): %s",
                drift,
                ", ".join(
                    f"{name} {after[name]:.2f} (keypoint detector {before[name]:.2f})"
                    for name in after
                    if name != "photograph"
                ),
            )
            row.update(photograph_px=drift, restyled_px=float(np.mean(list(after.values())[1:])))
        self.loss_log.write(self.step, "structure", time.monotonic() - started, row)

    def train_stage2(self) -> None:
        """One style delta per requested built-in style (rank 0; deltas are small)."""

        options = self.options
        if not options.styles or not self.dist.is_main:
            return
        deadline = (
            time.monotonic() + 60.0 * options.style_minutes if options.style_minutes else math.inf
        )
        pairs = [self._batch(-2 - i) for i in range(options.style_batches)]
        # The reference style's fit sees many more people than the style batches (its U-Net
        # learns few frames by heart); fixed pairs no training step or style batch uses.
        if options.style_reference_steps and options.style_reference_frames < 1:
            raise ValueError(
                f"--style-reference-frames must be at least 1, got "
                f"{options.style_reference_frames}: the reference style's fit needs real frames"
            )
        count = -(-options.style_reference_frames // (2 * options.batch_size))
        reference_frames = (
            [f for i in range(count) for f in self._batch(-1_000_000 - i)]
            if options.style_reference_steps
            else []
        )
        guide = self._clip_guide()
        cropper = FaceCropper() if set(options.styles) & set(EXEMPLAR_STYLES) else None
        for done, name in enumerate(options.styles):
            if time.monotonic() > deadline:
                log.warning("style time is up: skipped %s", ", ".join(options.styles[done:]))
                break
            started = time.monotonic()
            palette = (
                exemplar_palette(name, options.style_data, pairs[0][0].shape[-1], cropper)
                if name in EXEMPLAR_STYLES
                else None
            )
            batches = make_style_batches(
                pairs,
                name,
                self.kp_detector.eval(),
                self.generator.eval(),
                self.models.structure,
                palette,
            )
            delta, terms = train_style(
                name,
                self.generator,
                self.kp_detector,
                self.models.structure,
                batches,
                top_k=options.style_top_k,
                probe_steps=options.style_probe_steps,
                steps=options.style_steps,
                lr=options.style_lr,
                weights=options.style_weights,
                finish_steps=options.style_finish_steps,
                finish_lr=options.style_finish_lr,
                reference_steps=options.style_reference_steps,
                reference_frames=reference_frames,
                palette=palette,
                clip=ClipTarget.for_prompt(guide, BUILTIN_STYLES[name].description)
                if guide is not None
                else None,
            )
            self.models.styles[name] = delta
            self.loss_log.write(self.step, f"style:{name}", time.monotonic() - started, terms)
            log.info(
                "style %s: %d layers, %.1f s, %s",
                name,
                len(delta.layers),
                time.monotonic() - started,
                terms,
            )

    def _clip_guide(self) -> ClipGuide | None:
        """CLIP guidance for stage 2 when --clip-weights is given (never downloaded here)."""
        if self.options.clip_weights is None:
            return None
        from models.text_encoder import load_clip

        return load_clip(self.options.clip_weights, self.options.clip_model, self.dist.device)


def run(options: TrainOptions) -> Path:
    """Stage 1, then stage 2; returns the final checkpoint (rank 0 writes it)."""
    trainer = Trainer(options)
    try:
        trainer.train_stage1()
        if trainer.dist.is_main:
            trainer.save(options.out / CHECKPOINT_NAME)  # stage 1 is safe before stage 2 starts
        trainer.restore_best()
        trainer.train_structure()
        trainer.train_stage2()
        path = options.out / CHECKPOINT_NAME
        if trainer.dist.is_main:
            trainer.save(path)
            trainer.write_samples()
            plot_losses(trainer.loss_log, options.out / "losses.png")
            if options.export is not None:
                trainer.save(options.export, half=True, with_train_state=False)
                log.info("exported %s", options.export)
    finally:
        if trainer.dist.world_size > 1:
            torch.distributed.destroy_process_group()
    return path
