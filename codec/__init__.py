"""Compact motion bitstream: features -> loss-tolerant packets -> features.

enc = MotionEncoder(schema=motion_schema(), stream_id=0, target_kbps=None, intra_period=25)
packet = enc.encode(features, capture_time_ms, prompt_id)
frame = MotionDecoder(schema=motion_schema()).decode(packet)  # DecodedFrame | None
"""

from codec.errors import BitstreamError
from codec.motiondecoder import DecodedFrame, DecoderStats, MotionDecoder
from codec.motionencoder import MotionEncoder
from codec.ratecontrol import DEFAULT_TARGET_KBPS, RateReport
from codec.schema import (
    FeatureGroup,
    FeatureSchema,
    feature_map_schema,
    model_schema,
    motion_schema,
)

__all__ = [
    "BitstreamError",
    "DEFAULT_TARGET_KBPS",
    "DecodedFrame",
    "DecoderStats",
    "FeatureGroup",
    "FeatureSchema",
    "MotionDecoder",
    "MotionEncoder",
    "RateReport",
    "feature_map_schema",
    "model_schema",
    "motion_schema",
]
