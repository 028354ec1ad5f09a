"""Style pictures (exemplars): read them safely and cut them into the generator's input size.

A style picture comes from a user (``cartooncodec style add``, ``--style-image``), so nothing
about it is trusted: the file size and the pixel count are bounded before any pixel is
decoded, and every failure is a one-line ValueError naming the picture. A picture without a
face is allowed (a style is about look, not identity): it is centre-cropped, and the log says
so.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.face_crop import FaceCropper, center_crop, crop

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_STYLE_IMAGES",
    "MAX_STYLE_IMAGE_BYTES",
    "MAX_STYLE_IMAGE_PIXELS",
    "decode_style_image",
    "exemplar_tensor",
    "read_style_image",
    "style_image_paths",
]

log = logging.getLogger(__name__)

MAX_STYLE_IMAGE_BYTES = 20 * 1024 * 1024
MAX_STYLE_IMAGE_PIXELS = 25_000_000  # e.g. 5000 x 5000; checked from the header, before decoding
MAX_STYLE_IMAGES = 16
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def style_image_paths(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files and folders -> the picture files (a folder gives its files with an image suffix,
    sorted). ValueError when an input does not exist, none is found or there are too many."""
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            paths.append(item)
        else:
            raise ValueError(f"{item}: no such file or folder")
    if not paths:
        raise ValueError(
            f"no pictures ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, inputs))}"
        )
    if len(paths) > MAX_STYLE_IMAGES:
        raise ValueError(f"{len(paths)} style pictures; at most {MAX_STYLE_IMAGES} are used")
    return paths


def read_style_image(path: str | os.PathLike[str]) -> np.ndarray:
    """The picture at ``path`` as HxWx3 uint8 RGB; ValueError (one line) when unusable."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_STYLE_IMAGE_BYTES:
            raise ValueError(
                f"{path}: {size / 2**20:.1f} MiB; style pictures are limited to "
                f"{MAX_STYLE_IMAGE_BYTES / 2**20:.0f} MiB"
            )
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"{path}: cannot read ({error.strerror or error})") from error
    return decode_style_image(data, str(path))


def decode_style_image(data: bytes, source: str = "style picture") -> np.ndarray:
    """Encoded picture bytes -> HxWx3 uint8 RGB (alpha dropped, grey expanded).

    ValueError naming ``source`` for too many bytes or pixels, a format PIL does not know and
    truncated or corrupt data.
    """
    if len(data) > MAX_STYLE_IMAGE_BYTES:
        raise ValueError(f"{source}: more than {MAX_STYLE_IMAGE_BYTES / 2**20:.0f} MiB")
    unreadable = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except unreadable as error:
        raise ValueError(f"{source}: not a readable picture ({_reason(error)})") from error
    with image:
        width, height = image.size
        if width * height > MAX_STYLE_IMAGE_PIXELS:
            raise ValueError(
                f"{source}: {width}x{height} pixels; style pictures are limited to "
                f"{MAX_STYLE_IMAGE_PIXELS / 1e6:.0f} megapixels"
            )
        try:
            image.draft("RGB", (1024, 1024))  # JPEG: decode at a reduced scale when large
            rgb = np.asarray(image.convert("RGB"))
        except unreadable as error:
            raise ValueError(f"{source}: corrupt picture ({_reason(error)})") from error
    if min(rgb.shape[:2]) < 16:
        raise ValueError(f"{source}: {rgb.shape[1]}x{rgb.shape[0]} is too small for a style")
    return np.ascontiguousarray(rgb)


def exemplar_tensor(
    images: Sequence[np.ndarray],
    size: int,
    cropper: FaceCropper | None = None,
    names: Sequence[str] | None = None,
) -> torch.Tensor:
    """Pictures (each HxWx3 uint8 RGB) -> Nx3x``size``x``size`` floats in [0, 1].

    With ``cropper`` each picture is cut around its face as the call's frames are; a picture
    without a face (or without ``cropper``) is centre-cropped, and with a cropper that is
    logged.
    """
    if not images:
        raise ValueError("no style pictures given")
    crops = []
    for index, image in enumerate(images):
        box = cropper.detect(image) if cropper is not None else None
        if box is None:
            if cropper is not None:
                name = names[index] if names is not None else f"picture {index + 1}"
                log.info("%s: no face found; using its centre (a style needs no face)", name)
            crops.append(center_crop(image, size))
        else:
            crops.append(crop(image, box, size))
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255.0)


def _reason(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
