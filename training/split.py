"""Validation split by person: no person is both in training and in validation.

Clips are grouped by the person they show. The person of a clip is its file stem with the
take-specific suffix removed (``dreamtalk__M030_front_angry_level3_001`` and
``dreamtalk__M030_front_sad_level3_001`` are both ``dreamtalk__M030``), then mapped through
:data:`SAME_PERSON` for people who appear under unrelated names (recorded in
``../shared/data/SOURCES.md``). Whole groups go to validation until it holds about
``fraction`` of the frames; which groups is a seeded draw, so a split is repeatable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from training.videos import Clip

__all__ = ["SAME_PERSON", "person_of", "split_by_person"]

# Take-specific endings: emotion/level takes, numbered clips and talks, "_short" cuts.
_TAKE_SUFFIX = re.compile(r"(_front_[a-z]+_level\d+_\d+|(_talk\d+)?_clip_?\d+(_short)?)$")

# Person keys of the same person under unrelated file names (SOURCES.md notes them).
SAME_PERSON: dict[str, str] = {
    "edtalk__expression_source": "styletalk__style_happyenglish",
    "megactor__driver_audio_CHTF_2": "styletalk__KristiNoem",
    "pcavs__741400163": "pcavs__00104",
    "edtalk__pose_source1": "sadtalker__WDA_AlexandriaOcasioCortez_000",
    "fomm__demo_old_04": "tpsmm__source",
    "styletalk__style_trump": "tpsmm__source",
    # "probably the same person" as d13; d12 shows a man with glasses too: kept together.
    "liveportrait__d9": "liveportrait__d13",
    "liveportrait__d12": "liveportrait__d13",
}


def person_of(clip_name: str) -> str:
    """The person key of a clip's file stem (see the module docstring)."""
    key = _TAKE_SUFFIX.sub("", clip_name)
    return SAME_PERSON.get(key, key)


def split_by_person(
    clips: Sequence[Clip], fraction: float, seed: int = 0
) -> tuple[list[Clip], list[Clip]]:
    """(training clips, validation clips) with about ``fraction`` of the frames in validation.

    ValueError when ``fraction`` is outside [0, 1) or the clips show a single person and a
    validation share was asked for.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    groups: dict[str, list[Clip]] = {}
    for clip in clips:
        groups.setdefault(person_of(clip.name), []).append(clip)
    if fraction == 0.0:
        return list(clips), []
    if len(groups) < 2:
        raise ValueError(
            f"a validation split by person needs clips of at least two people; "
            f"all {len(clips)} clips show {next(iter(groups), 'nobody')!r}"
        )
    order = np.random.default_rng(seed).permutation(sorted(groups))
    total = sum(len(clip) for clip in clips)
    validation_people: set[str] = set()
    held = 0
    for person in order[:-1]:  # at least one person always trains
        if held >= fraction * total:
            break
        validation_people.add(str(person))
        held += sum(len(clip) for clip in groups[str(person)])
    train = [c for c in clips if person_of(c.name) not in validation_people]
    validation = [c for c in clips if person_of(c.name) in validation_people]
    return train, validation
