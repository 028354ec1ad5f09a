"""Sender side: face frame -> motion feature vector (keypoints and Jacobians)."""

from __future__ import annotations

import os

import numpy as np
import torch

from models.checkpoint import LoadedModels, load_models
from models.frames import frame_to_tensor, resolve_device
from models.motion_features import pack_motion, regularize_motion

__all__ = ["MotionExtractor"]


class MotionExtractor:
    """Runs the keypoint detector on RGB frames.

    ``checkpoint`` None uses the shipped checkpoint of ``preset`` (a missing one is a
    CheckpointError unless random weights are asked for: :func:`models.checkpoint.load_models`).
    ``models`` passes already loaded networks (shared with a Renderer) instead.
    """

    def __init__(
        self,
        preset: str = "lite-128",
        checkpoint: str | os.PathLike[str] | None = None,
        device: str | torch.device | None = None,
        models: LoadedModels | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.models = models or load_models(preset, checkpoint, self.device)
        self.config = self.models.config
        self.kp_detector = self.models.kp_detector.eval()

    @property
    def size(self) -> int:
        """Side of the square frames the detector expects (others are resized)."""
        return self.config.image_size

    @torch.inference_mode()
    def keypoints(self, frame: np.ndarray) -> dict[str, torch.Tensor]:
        """HxWx3 uint8 RGB -> {"value": 1xKx2, "jacobian": 1xKx2x2} on the model's device."""
        dtype = next(self.kp_detector.parameters()).dtype
        return self.kp_detector(frame_to_tensor(frame, self.size, self.device, dtype))

    def extract(self, frame: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 RGB -> (feature_size,) float32 motion features (60 for K = 10)."""
        kp = self.keypoints(frame)
        jacobian = kp.get("jacobian")
        return pack_motion(
            *regularize_motion(
                kp["value"][0].float().cpu().numpy(),
                None if jacobian is None else jacobian[0].float().cpu().numpy(),
            )
        )
