"""`cartooncodec bench codec`: what the motion bitstream costs and how exact it is.

Per clip at 25 fps: motion features per frame (the models' MotionExtractor, or a classical
proxy that tracks 10 face points with Lucas-Kanade and fits local affine Jacobians, or
features saved as .npy), coded with `codec.MotionEncoder` at its default setting and decoded
with `codec.MotionDecoder`. Reports payload and header kbps, mean bytes per packet, encode
and decode microseconds per packet and the keypoint reconstruction error in pixels at 256x256.

With `--loss P ...`, also a packet-level loss simulation (no network, no renderer): each packet
is lost with probability P (seeded), the receiver acknowledges each decoded frame
`--ack-delay` frames later and asks for an intra (at most every INTRA_REQUEST_INTERVAL_S, the
server's limit) while it cannot decode. Three ways to predict inter frames are compared: from
the previous frame (`previous`, no feedback), from the last intra (`intra`, feedback on but no
acknowledgement ever arrives) and from the newest acknowledged frame (`ack+D`). Reported per
clip: frames decoded (share of sent), longest freeze (longest gap between decoded frames, at
25 fps), intra frames sent and the payload rate.
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

from bench.call import check_losses
from bench.clips import load_bench_clips
from bench.report import Table, add_bench_parser, publish
from codec import MotionDecoder, MotionEncoder, motion_schema
from codec.distortion import keypoint_error_px
from codec.packet import OVERHEAD, SEQ_MODULUS
from models.checkpoint_option import add_checkpoint_arguments

log = logging.getLogger(__name__)

FPS = 25.0
ERROR_SIZE = 256  # keypoint errors are reported in pixels of a 256x256 frame
MOTIONS = ("model", "tracked")
LOSS_COLUMNS = (
    "clip",
    "motion",
    "reference",
    "loss",
    "frames",
    "decoded_share",
    "longest_freeze_ms",
    "intra_frames",
    "payload_kbps",
    "total_kbps",
)
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


REFERENCES = ("previous", "intra", "ack")


def lossy_features(
    name: str,
    motion: str,
    features: np.ndarray,
    loss: float,
    reference: str,
    ack_delay: int,
    seeds: int,
) -> dict[str, Any]:
    """One loss-table row: ``features`` coded and lost at rate ``loss``, once per seed.

    reference: "previous" (no feedback), "intra" (feedback on, no acknowledgement ever
    arrives) or "ack" (each decoded frame acknowledged ``ack_delay`` frames later). Intra
    requests also take ``ack_delay`` frames. decoded_share is the mean and longest_freeze_ms
    the worst over the seeds."""
    from pipeline.protocol import INTRA_REQUEST_INTERVAL_S

    if reference not in REFERENCES:
        raise ValueError(f"reference {reference!r} not one of {REFERENCES}")
    request_every = max(1, round(INTRA_REQUEST_INTERVAL_S * FPS))
    shares, freezes, intras, payload, total = [], [], [], [], []
    for seed in range(seeds):
        schema = motion_schema()
        encoder = MotionEncoder(schema, fps=FPS, feedback=reference != "previous")
        decoder = MotionDecoder(schema)
        rng = np.random.default_rng(seed)
        acks: dict[int, list[int]] = {}
        request_at, last_request, decoded = -1, -request_every, []
        for index, vector in enumerate(features):
            for seq in acks.pop(index, []):
                encoder.acknowledge(seq)
            if index == request_at:
                encoder.request_intra()
            packet = encoder.encode(vector, round(index * 1000 / FPS))
            if rng.random() < loss:
                continue
            frame = decoder.decode(packet)
            if frame is not None:
                decoded.append(index)
                if reference == "ack":
                    acks.setdefault(index + ack_delay, []).append(frame.seq % SEQ_MODULUS)
            if decoder.needs_intra and index - last_request >= request_every:
                last_request, request_at = index, index + ack_delay
        shares.append(len(decoded) / len(features))
        shown = [-1, *decoded, len(features)]  # a freeze may start or end the clip
        freezes.append(float(np.max(np.diff(shown))) * 1000 / FPS)
        stats = encoder.stats
        intras.append(stats.intra_packets)
        payload.append(stats.payload_kbps)
        total.append(stats.total_kbps)
    return {
        "clip": name,
        "motion": motion,
        "reference": f"ack+{ack_delay}" if reference == "ack" else reference,
        "loss": loss,
        "frames": len(features),
        "decoded_share": float(np.mean(shares)),
        "longest_freeze_ms": float(np.max(freezes)),
        "intra_frames": float(np.mean(intras)),
        "payload_kbps": float(np.mean(payload)),
        "total_kbps": float(np.mean(total)),
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

    losses = check_losses(args.loss) if args.loss else []
    sources = _feature_sources(args)
    rows, loss_rows = [], []
    for name, motion, thunk in tqdm(sources, desc="bench codec", unit="clip"):
        features = thunk()
        rows.append(code_features(name, motion, features, args.target_kbps))
        for loss in losses:
            for reference, delay in [("previous", 1), ("intra", 1)] + [
                ("ack", d) for d in args.ack_delay
            ]:
                loss_rows.append(
                    lossy_features(name, motion, features, loss, reference, delay, args.seeds)
                )
    table = Table("codec", f"Motion bitstream at {FPS:g} fps, default settings", COLUMNS, rows)
    if len(rows) > 1:
        table.add(clip="mean", motion="-", **_mean_row(rows))
    tables = [table]
    if loss_rows:
        tables.append(_loss_table(loss_rows, len(rows) > 1, args.seeds))
    publish(args.out, "codec", tables, args)
    if args.json is not None:
        args.json.write_text(json.dumps(table.rows, indent=2) + "\n")
    return 0


def _loss_table(rows: list[dict[str, Any]], with_means: bool, seeds: int) -> Table:
    table = Table(
        "loss",
        f"Random motion packet loss at {FPS:g} fps, {seeds} seeds per clip "
        "(decoded: mean, freeze: worst)",
        LOSS_COLUMNS,
        rows,
    )
    if with_means:
        for key in sorted({(r["reference"], r["loss"]) for r in rows}, key=lambda k: k[::-1]):
            group = [r for r in rows if (r["reference"], r["loss"]) == key]
            table.add(
                clip="mean",
                motion="-",
                reference=key[0],
                loss=key[1],
                frames=int(sum(r["frames"] for r in group)),
                decoded_share=float(np.mean([r["decoded_share"] for r in group])),
                longest_freeze_ms=float(max(r["longest_freeze_ms"] for r in group)),
                intra_frames=float(np.mean([r["intra_frames"] for r in group])),
                payload_kbps=float(np.mean([r["payload_kbps"] for r in group])),
                total_kbps=float(np.mean([r["total_kbps"] for r in group])),
            )
    return table


def _feature_sources(args: argparse.Namespace) -> list[tuple[str, str, Any]]:
    """(name, motion kind, thunk returning N x 60 features) for every requested input."""
    sources: list[tuple[str, str, Any]] = []
    for path in map(Path, args.features_npy or []):
        sources.append((path.stem, "npy", partial(_load_features, path)))
    if args.clips is not None:
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
    add_checkpoint_arguments(parser)
    parser.add_argument("--frames", type=int, help="use only the first N frames of each clip")
    parser.add_argument(
        "--crop", choices=("face", "center"), default="face", help="square crop of each clip"
    )
    parser.add_argument("--target-kbps", type=float, help="rate control target (default: off)")
    parser.add_argument("--json", type=Path, help="also write the result rows to this file")
    parser.add_argument(
        "--loss",
        type=float,
        nargs="+",
        help="also simulate these fractions of lost packets, e.g. 0 0.1 0.3 (loss table)",
    )
    parser.add_argument(
        "--ack-delay",
        type=int,
        nargs="+",
        default=[1, 2, 4],
        help="frames between a decoded frame and its acknowledgement at the sender (default 1 2 4)",
    )
    parser.add_argument(
        "--seeds", type=int, default=5, help="loss patterns per clip and loss rate (default 5)"
    )
    parser.set_defaults(func=run)
