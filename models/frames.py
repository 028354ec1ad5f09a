"""Conversions between RGB frames (HxWx3 uint8 numpy) and network tensors (1x3xSxS in [0, 1])."""

from __future__ import annotations

import cv2
import numpy as np
import torch

__all__ = [
    "MIN_FRAME_SIZE",
    "check_frame",
    "frame_to_tensor",
    "resize_frame",
    "resolve_device",
    "tensor_to_frame",
]

MIN_FRAME_SIZE = 16


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device``, or CUDA when present and CPU otherwise."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_frame(frame: np.ndarray) -> np.ndarray:
    """``frame`` if it is an HxWx3 uint8 RGB image of a usable size, else ValueError."""
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"expected an HxWx3 uint8 RGB numpy array, got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"expected an HxWx3 uint8 RGB image, got shape {frame.shape} dtype {frame.dtype}"
        )
    if min(frame.shape[:2]) < MIN_FRAME_SIZE:
        raise ValueError(
            f"frame {frame.shape[1]}x{frame.shape[0]} is smaller than {MIN_FRAME_SIZE} px"
        )
    return frame


def resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """``frame`` as size x size (area filter when shrinking); non-square frames are stretched."""
    frame = check_frame(frame)
    if frame.shape[:2] == (size, size):
        return frame
    shrinking = frame.shape[0] > size or frame.shape[1] > size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(frame, (size, size), interpolation=interpolation)


def frame_to_tensor(
    frame: np.ndarray, size: int, device: torch.device, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """HxWx3 uint8 RGB -> 1x3xSxS in [0, 1] on ``device``, resized to ``size`` if needed."""
    resized = np.ascontiguousarray(resize_frame(frame, size))
    tensor = torch.from_numpy(resized).to(device).permute(2, 0, 1).unsqueeze(0)
    return tensor.to(dtype).div_(255.0)


def tensor_to_frame(image: torch.Tensor) -> np.ndarray:
    """1x3xHxW (or 3xHxW) in [0, 1] -> HxWx3 uint8 RGB numpy array."""
    image = image.squeeze(0) if image.dim() == 4 else image
    pixels = image.detach().float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return pixels.permute(1, 2, 0).contiguous().cpu().numpy()
