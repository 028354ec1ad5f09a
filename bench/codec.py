"""`cartooncodec bench codec`: what the motion bitstream costs and how exact it is.

Per clip at 25 fps: motion features per frame (the models' MotionExtractor, or a classical
proxy that tracks 10 face points with Lucas-Kanade and fits local affine Jacobians, or
features saved as .npy), coded with `codec.MotionEncoder` at its default setting and decoded
with `codec.MotionDecoder`. Reports payload and header kbps, mean bytes per packet, encode
and decode microseconds per packet and the keypoint reconstruction error in pixels at 256x256.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import Table, add_bench_parser, publish

log = logging.getLogger(__name__)

FPS = 25.0
ERROR_SIZE = 256  # keypoint errors are reported in pixels of a 256x256 frame
MOTIONS = ("model", "tracked")
COLUMNS = (
    "clip",
    "motion",
    "frames",
    "payload_kbps",
    "header_kbps",
    "total_kbps",
    "bytes_per_packet",
    "intra_bytes",
    "encode_us",
    "decode_us",
    "kp_err_max_px",
    "kp_err_mean_px",
)


def code_features(
    name: str, motion: str, features: np.ndarray, target_kbps: float | None
) -> dict[str, Any]:
    """features: N x 60 float32 -> one result row (rates, timings, keypoint error)."""
    from codec import MotionDecoder, MotionEncoder, motion_schema
    from codec.distortion import keypoint_error_px
    from codec.packet import OVERHEAD

    schema = motion_schema()
    encoder, decoder = (
        MotionEncoder(schema, target_kbps=target_kbps, fps=FPS),
        MotionDecoder(schema),
    )
    packets, encode_s = [], 0.0
    for index, vector in enumerate(features):
        start = time.perf_counter()
        packets.append(encoder.encode(vector, round(index * 1000 / FPS)))
        encode_s += time.perf_counter() - start
    decoded: list[np.ndarray] = []
    decode_s = 0.0
    for packet in packets:
        start = time.perf_counter()
        frame = decoder.decode(packet)
        decode_s += time.perf_counter() - start
        if frame is None:
            raise RuntimeError(f"{name}: in-order packet {len(decoded)} was dropped")
        decoded.append(frame.features)
    stats = encoder.stats
    err_max, err_mean = keypoint_error_px(features, np.stack(decoded), schema, ERROR_SIZE)
    intra = [len(p) for p in packets[:: encoder.intra_period]]
    return {
        "clip": name,
        "motion": motion,
        "frames": len(packets),
        "payload_kbps": stats.payload_kbps,
        "header_kbps": stats.total_kbps - stats.payload_kbps,
        "total_kbps": stats.total_kbps,
        "bytes_per_packet": (stats.payload_bytes + stats.header_bytes) / len(packets),
        "intra_bytes": float(np.mean(intra)) - OVERHEAD,
        "encode_us": 1e6 * encode_s / len(packets),
        "decode_us": 1e6 * decode_s / len(packets),
        "kp_err_max_px": err_max,
        "kp_err_mean_px": err_mean,
    }


def tracked_motion(frames: np.ndarray, num_kp: int = 10, spread: int = 6) -> np.ndarray:
    """frames: N x S x S x 3 uint8 -> N x 6*num_kp features from classical point tracking.

    Keypoints: the ``num_kp`` strongest corners of the first frame's central region, tracked
    with pyramidal Lucas-Kanade, in [-1, 1]. Jacobians: least-squares 2x2 map taking each
    keypoint's neighbourhood (4 points ``spread`` px away) in the first frame to the current one,
    like FOMM's Jacobians relative to a reference.
    """
    import cv2

    size = frames.shape[1]
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    mask = np.zeros_like(gray[0])
    mask[size // 5 : 4 * size // 5, size // 5 : 4 * size // 5] = 255
    corners = cv2.goodFeaturesToTrack(gray[0], num_kp, 0.01, size / 12, mask=mask)
    if corners is None or len(corners) < num_kp:
        raise ValueError(f"fewer than {num_kp} trackable points in the first frame")
    centres = corners.reshape(-1, 2).astype(np.float32)
    offsets = np.array([[spread, 0], [-spread, 0], [0, spread], [0, -spread]], np.float32)
    points = (centres[:, None, :] + offsets[None]).reshape(-1, 2)
    reference = np.concatenate([centres, points])
    tracked = reference.copy()
    features: list[np.ndarray] = [_affine_features(tracked, num_kp, offsets, size)]
    for previous, current in zip(gray[:-1], gray[1:], strict=True):
        moved, _, _ = cv2.calcOpticalFlowPyrLK(
            previous, current, tracked.reshape(-1, 1, 2), np.empty(0, np.float32)
        )
        tracked = np.asarray(moved, np.float32).reshape(-1, 2)
        features.append(_affine_features(tracked, num_kp, offsets, size))
    return np.stack(features)


def _affine_features(
    tracked: np.ndarray, num_kp: int, offsets: np.ndarray, size: int
) -> np.ndarray:
    keypoints = tracked[:num_kp] / (size / 2) - 1
    now = tracked[num_kp:].reshape(num_kp, len(offsets), 2) - tracked[:num_kp, None]
    jacobians = np.stack([np.linalg.lstsq(offsets, d, rcond=None)[0].T for d in now])
    return np.concatenate([keypoints.ravel(), jacobians.ravel()]).astype(np.float32)


def model_motion(frames: np.ndarray, preset: str, checkpoint: Path | None) -> np.ndarray:
    from models import MotionExtractor

    extractor = MotionExtractor(preset=preset, checkpoint=checkpoint)
    return np.stack([extractor.extract(frame) for frame in frames])


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    sources = _feature_sources(args)
    rows = [
        code_features(name, motion, features(), args.target_kbps)
        for name, motion, features in tqdm(sources, desc="bench codec", unit="clip")
    ]
    table = Table("codec", f"Motion bitstream at {FPS:g} fps, default settings", COLUMNS, rows)
    if len(rows) > 1:
        table.add(clip="mean", motion="-", **_mean_row(rows))
    publish(args.out, "codec", [table], args)
    if args.json is not None:
        args.json.write_text(json.dumps(table.rows, indent=2) + "\n")
    return 0


def _feature_sources(args: argparse.Namespace) -> list[tuple[str, str, Any]]:
    """(name, motion kind, thunk returning N x 60 features) for every requested input."""
    sources: list[tuple[str, str, Any]] = []
    for path in map(Path, args.features_npy or []):
        sources.append((path.stem, "npy", partial(_load_features, path)))
    if args.clips is not None:
        from bench.clips import load_bench_clips

        clips = load_bench_clips(args.clips, ERROR_SIZE, max_frames=args.frames, crop=args.crop)
        for name, frames in clips:
            for motion in args.motion:
                if motion == "tracked":
                    sources.append((name, motion, partial(tracked_motion, frames)))
                else:
                    extract = partial(model_motion, frames, args.preset, args.checkpoint)
                    sources.append((name, motion, extract))
    if not sources:
        raise SystemExit("bench codec: give --clips DIR and/or --features-npy FILE")
    return sources


def _load_features(path: Path) -> np.ndarray:
    features = np.load(path)
    if features.ndim != 2 or features.shape[1] != 60:
        raise SystemExit(f"{path}: expected an N x 60 feature array, got shape {features.shape}")
    return features.astype(np.float32)


def _mean_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    numeric = [c for c in COLUMNS if c not in ("clip", "motion")]
    mean = {c: float(np.mean([r[c] for r in rows])) for c in numeric}
    mean["frames"] = int(sum(r["frames"] for r in rows))
    mean["kp_err_max_px"] = float(max(r["kp_err_max_px"] for r in rows))
    return mean


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_bench_parser(
        subparsers, "codec", "motion bitstream rate, speed and keypoint error", __doc__
    )
    parser.add_argument("--clips", type=Path, help="folder of face videos (25 fps)")
    parser.add_argument("--features-npy", nargs="+", help="N x 60 feature arrays (.npy files)")
    parser.add_argument(
        "--motion",
        nargs="+",
        choices=MOTIONS,
        default=["model"],
        help="features from the models' MotionExtractor (default) and/or tracked face points",
    )
    parser.add_argument("--preset", default="lite-128", help="MotionExtractor preset")
    parser.add_argument("--checkpoint", type=Path, help="model checkpoint (default: shipped one)")
    parser.add_argument("--frames", type=int, help="use only the first N frames of each clip")
    parser.add_argument(
        "--crop", choices=("face", "center"), default="face", help="square crop of each clip"
    )
    parser.add_argument("--target-kbps", type=float, help="rate control target (default: off)")
    parser.add_argument("--json", type=Path, help="also write the result rows to this file")
    parser.set_defaults(func=run)
