"""Training data: face-cropped frames of talking-head clips, decoded once and cached.

A folder of videos (mp4/mov/avi, decoded with PyAV) and still portraits (png/jpg, a clip of
one frame) becomes a list of :class:`Clip`, each an ``N x S x S x 3`` uint8 array cropped
around the face with one stable box per clip. Decoded crops are cached as ``.npy`` under
``cache_dir`` keyed by file, size and crop settings, so later epochs and runs skip decoding.
Unusable files are skipped with a counted warning; nothing usable raises :class:`ValueError`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from models.face_crop import FaceCropper, crop
from training.augment import NONE, Augmentation, augment_pair

log = logging.getLogger(__name__)

DATA_ENV = "CARTOONCODEC_DATA"
# Only the demo and bench entry points fall back to this; nothing below them names a data folder.
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
# Bump when cropping changes so stale caches are not reused.
CACHE_VERSION = 2


@dataclass
class Clip:
    """Frames of one clip: ``frames`` is N x S x S x 3 uint8 RGB (may be a read-only memmap)."""

    name: str
    frames: np.ndarray
    fps: float | None = None  # None for still images

    def __len__(self) -> int:
        return int(self.frames.shape[0])


@dataclass
class LoadReport:
    """What :func:`load_clips` used and what it skipped (file name -> reason)."""

    used: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def discover(folder: Path) -> list[Path]:
    """Video and image files directly in ``folder`` or below it, sorted by path."""
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder; pass a folder of face videos (mp4/mov/avi)")
    suffixes = VIDEO_EXTENSIONS + IMAGE_EXTENSIONS
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def load_clips(
    folder: Path,
    size: int,
    cache_dir: Path | None = None,
    max_frames: int | None = None,
    cropper: FaceCropper | None = None,
) -> tuple[list[Clip], LoadReport]:
    """Face-cropped clips of ``folder`` at ``size`` pixels; raises ValueError if none is usable.

    max_frames: keep at most this many frames per clip (evenly spaced), None keeps all.
    """
    cropper = cropper or FaceCropper()
    report = LoadReport()
    clips: list[Clip] = []
    for path in discover(folder):
        try:
            frames = _cached_frames(path, size, cache_dir, max_frames, cropper)
        except UnusableFileError as skip:
            report.skipped[path.name] = str(skip)
            continue
        clips.append(Clip(name=path.stem, frames=frames, fps=_frame_rate(path)))
        report.used.append(path.name)
    for name, reason in report.skipped.items():
        log.warning("skipped %s: %s", name, reason)
    if report.skipped:
        total = len(clips) + len(report.skipped)
        log.warning("skipped %d of %d files in %s", len(report.skipped), total, folder)
    if not clips:
        found = ", ".join(f"{n} ({r})" for n, r in report.skipped.items()) or "no video or image"
        raise ValueError(
            f"no usable face clip in {folder}: {found}. Put talking-head videos "
            f"({'/'.join(VIDEO_EXTENSIONS)}) or portraits ({'/'.join(IMAGE_EXTENSIONS)}) there."
        )
    return clips, report


class UnusableFileError(ValueError):
    """A file that cannot be used for training; the message says why."""


def _cached_frames(
    path: Path, size: int, cache_dir: Path | None, max_frames: int | None, cropper: FaceCropper
) -> np.ndarray:
    cache_file = None
    if cache_dir is not None:
        cache_file = cache_dir / f"{path.stem}-{_cache_key(path, size, max_frames, cropper)}.npy"
        if cache_file.exists():
            return np.load(cache_file, mmap_mode="r")
    frames = _read_frames(path, max_frames)
    box = cropper.clip_box(frames)
    if box is None:
        raise UnusableFileError("no face detected")
    crops = np.stack([crop(frame, box, size) for frame in frames])
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        # Per-process name: torchrun ranks may fill the same cache at once.
        partial = cache_file.with_name(f"{cache_file.stem}.{os.getpid()}.partial.npy")
        np.save(partial, crops)
        partial.replace(cache_file)  # atomic: a killed run never leaves a truncated cache
    return crops


def _cache_key(path: Path, size: int, max_frames: int | None, cropper: FaceCropper) -> str:
    stat = path.stat()
    text = (
        f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{size}|{max_frames}|"
        f"{cropper.margin}|{CACHE_VERSION}"
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_frames(path: Path, max_frames: int | None) -> list[np.ndarray]:
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise UnusableFileError("unreadable image")
        return [cv2.cvtColor(image, cv2.COLOR_BGR2RGB)]
    frames = read_video(path)
    if max_frames is not None and len(frames) > max_frames:
        picks = np.linspace(0, len(frames) - 1, num=max_frames).round().astype(int)
        frames = [frames[i] for i in picks]
    return frames


def _frame_rate(path: Path) -> float | None:
    """Average frame rate of a video (None for images or when the container does not say)."""
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        return None
    import av

    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
    return float(rate) if rate else None


def read_video(path: Path) -> list[np.ndarray]:
    """All frames of a video as HxWx3 uint8 RGB; UnusableFileError if it cannot be decoded."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UnusableFileError("no video stream")
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise UnusableFileError(f"unreadable video ({error})") from error
    if not frames:
        raise UnusableFileError("video has no frames")
    return frames


class PairDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """(source, driving) pairs from the same clip: item i of epoch e is a fixed random draw.

    Items are ``(source, driving)`` float tensors 3xSxS in [0, 1], drawn from anywhere in
    the clip and augmented together (:func:`training.augment.augment_pair`). Clips are drawn
    in proportion to the square root of their length, so a one-minute clip of one person
    does not drown out fifty short ones of others. ``length`` items make an epoch; a still
    image pairs with itself. Set :attr:`epoch` before iterating (worker processes copy it).
    """

    def __init__(
        self,
        clips: list[Clip],
        length: int,
        seed: int = 0,
        augmentation: Augmentation = NONE,
    ) -> None:
        if not clips:
            raise ValueError("PairDataset needs at least one clip")
        self.clips = clips
        self.length = length
        self.seed = seed
        self.augmentation = augmentation
        self.epoch = 0
        sizes = np.sqrt(np.array([len(c) for c in clips], dtype=np.float64))
        self._clip_weights = sizes / sizes.sum()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        clip = self.clips[int(rng.choice(len(self.clips), p=self._clip_weights))]
        source, driving = rng.integers(0, len(clip), size=2)
        pair = augment_pair(
            np.asarray(clip.frames[source]),
            np.asarray(clip.frames[driving]),
            rng,
            self.augmentation,
        )
        return _to_tensor(pair[0]), _to_tensor(pair[1])


def _to_tensor(frame: np.ndarray) -> torch.Tensor:
    """frame: SxSx3 uint8 -> 3xSxS float in [0, 1]."""
    return torch.from_numpy(np.array(frame)).permute(2, 0, 1).float().div_(255.0)


def data_folder(given: Path | None) -> Path:
    """The data folder of an entry point: ``given`` (its --data option), else $CARTOONCODEC_DATA,
    else DEFAULT_DATA (../shared/data beside the repository)."""
    if given is not None:
        return given
    from_env = os.environ.get(DATA_ENV)
    return Path(from_env) if from_env else DEFAULT_DATA
