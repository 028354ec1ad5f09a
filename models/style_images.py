"""Style pictures (exemplars): read them safely and cut them into the generator's input size.

A style picture comes from a user (``cartooncodec style add``, ``--style-image``), so nothing
about it is trusted: the file size and the pixel count are bounded before any pixel is
decoded, and every failure is a one-line ValueError naming the picture. A picture without a
face is allowed (a style is about look, not identity): it is centre-cropped, and the log says
so.

Pictures that travel (a call's mid-call picture message, a ``.ccv`` file) are re-encoded first
(:func:`encode_style_image`): at most :data:`SENT_STYLE_IMAGE_SIDE` pixels a side, as JPEG (PNG
when that is smaller) within :data:`SENT_STYLE_IMAGE_BYTES`, at most :data:`MAX_SENT_STYLE_IMAGES`
of them. These limits are the one place the call protocol and the container take them from; a
receiver decodes with :func:`decode_sent_style_image`, which holds the sender to them.
"""

from __future__ import annotations

import hashlib
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
    "MAX_SENT_STYLE_IMAGES",
    "MAX_STYLE_IMAGES",
    "MAX_STYLE_IMAGE_BYTES",
    "MAX_STYLE_IMAGE_PIXELS",
    "SENT_STYLE_IMAGE_BYTES",
    "SENT_STYLE_IMAGE_SIDE",
    "decode_sent_style_image",
    "decode_style_image",
    "encode_style_image",
    "exemplar_tensor",
    "picture_style_name",
    "read_sent_style_images",
    "read_style_image",
    "style_image_paths",
]

log = logging.getLogger(__name__)

MAX_STYLE_IMAGE_BYTES = 20 * 1024 * 1024
MAX_STYLE_IMAGE_PIXELS = 25_000_000  # e.g. 5000 x 5000; checked from the header, before decoding
MAX_STYLE_IMAGES = 16
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
# Pictures sent in a call or stored in a .ccv file (see the module's docstring).
SENT_STYLE_IMAGE_SIDE = 512
SENT_STYLE_IMAGE_BYTES = 128 * 1024
MAX_SENT_STYLE_IMAGES = 4
_JPEG_QUALITIES = (90, 75, 60, 45, 30)


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


def decode_style_image(
    data: bytes,
    source: str = "style picture",
    max_bytes: int | None = None,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Encoded picture bytes -> HxWx3 uint8 RGB (alpha dropped, grey expanded).

    ValueError naming ``source`` for more than ``max_bytes`` bytes or ``max_pixels`` pixels
    (default :data:`MAX_STYLE_IMAGE_BYTES`, :data:`MAX_STYLE_IMAGE_PIXELS`), a format PIL does
    not know and truncated or corrupt data.
    """
    max_bytes = MAX_STYLE_IMAGE_BYTES if max_bytes is None else max_bytes
    max_pixels = MAX_STYLE_IMAGE_PIXELS if max_pixels is None else max_pixels
    if len(data) > max_bytes:
        raise ValueError(
            f"{source}: {len(data)} bytes; style pictures are limited to {_bytes_text(max_bytes)}"
        )
    unreadable = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except unreadable as error:
        raise ValueError(f"{source}: not a readable picture ({_reason(error)})") from error
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ValueError(
                f"{source}: {width}x{height} pixels; style pictures are limited to "
                f"{_pixels_text(max_pixels)}"
            )
        try:
            image.draft("RGB", (1024, 1024))  # JPEG: decode at a reduced scale when large
            rgb = np.asarray(image.convert("RGB"))
        except unreadable as error:
            raise ValueError(f"{source}: corrupt picture ({_reason(error)})") from error
    if min(rgb.shape[:2]) < 16:
        raise ValueError(f"{source}: {rgb.shape[1]}x{rgb.shape[0]} is too small for a style")
    return np.ascontiguousarray(rgb)


def read_sent_style_images(inputs: Sequence[str | os.PathLike[str]]) -> list[bytes]:
    """Files and folders (as :func:`style_image_paths`) -> the pictures re-encoded for sending
    (:func:`encode_style_image`); ValueError naming the picture, or when there are more than
    :data:`MAX_SENT_STYLE_IMAGES`."""
    paths = style_image_paths(inputs)
    if len(paths) > MAX_SENT_STYLE_IMAGES:
        raise ValueError(
            f"{len(paths)} style pictures; at most {MAX_SENT_STYLE_IMAGES} can be sent"
        )
    return [encode_style_image(read_style_image(path), str(path)) for path in paths]


def decode_sent_style_image(data: bytes, source: str = "style picture") -> np.ndarray:
    """A picture made by :func:`encode_style_image` (sent in a call, stored in a .ccv file)
    -> HxWx3 uint8 RGB, holding the sender to the sent-picture limits; ValueError otherwise."""
    side = SENT_STYLE_IMAGE_SIDE
    return decode_style_image(data, source, SENT_STYLE_IMAGE_BYTES, side * side)


def decode_sent_style_images(pictures: Sequence[bytes]) -> list[np.ndarray]:
    """Each of ``pictures`` as :func:`decode_sent_style_image`; the ValueError names the
    picture ("style picture 2: ...")."""
    return [
        decode_sent_style_image(data, f"style picture {index + 1}")
        for index, data in enumerate(pictures)
    ]


def encode_style_image(image: np.ndarray, source: str = "style picture") -> bytes:
    """HxWx3 uint8 RGB -> JPEG (or PNG, when smaller) bytes of at most
    :data:`SENT_STYLE_IMAGE_BYTES`, scaled down to :data:`SENT_STYLE_IMAGE_SIDE` pixels a side.

    The JPEG quality falls until the picture fits; ValueError naming ``source`` when even the
    lowest does not (a picture of noise).
    """
    picture = Image.fromarray(np.ascontiguousarray(image), "RGB")
    picture.thumbnail((SENT_STYLE_IMAGE_SIDE, SENT_STYLE_IMAGE_SIDE), Image.Resampling.LANCZOS)
    smallest = b""
    for fmt, options in [("PNG", {"optimize": True})] + [
        ("JPEG", {"quality": quality}) for quality in _JPEG_QUALITIES
    ]:
        buffer = io.BytesIO()
        picture.save(buffer, fmt, **options)
        data = buffer.getvalue()
        if len(data) <= SENT_STYLE_IMAGE_BYTES:
            return data
        smallest = data if not smallest or len(data) < len(smallest) else smallest
    raise ValueError(
        f"{source}: {len(smallest)} bytes even as JPEG at quality {_JPEG_QUALITIES[-1]}; sent "
        f"style pictures are limited to {_bytes_text(SENT_STYLE_IMAGE_BYTES)}"
    )


def picture_style_name(pictures: Sequence[bytes]) -> str:
    """The style name of sent pictures: ``picture-`` and a hash of their bytes, so the same
    pictures find their cached style and two senders' pictures never share a name."""
    digest = hashlib.sha256()
    for data in pictures:
        digest.update(len(data).to_bytes(4, "big") + data)
    return f"picture-{digest.hexdigest()[:16]}"


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


def _bytes_text(count: int) -> str:
    return f"{count / 2**20:.0f} MiB" if count >= 2**20 else f"{count // 1024} KiB"


def _pixels_text(count: int) -> str:
    return f"{count / 1e6:.0f} megapixels" if count >= 1_000_000 else f"{count} pixels"


def _reason(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
