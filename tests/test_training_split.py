import numpy as np
import pytest

from training.split import person_of, split_by_person
from training.videos import Clip


def _clip(name: str, frames: int = 10) -> Clip:
    return Clip(name=name, frames=np.zeros((frames, 4, 4, 3), dtype=np.uint8), fps=25.0)


@pytest.mark.parametrize(
    ("name", "person"),
    [
        ("dreamtalk__M030_front_angry_level3_001", "dreamtalk__M030"),
        ("dreamtalk__M030_front_neutral_level1_001", "dreamtalk__M030"),
        ("styletalk__style_furious_talk2_clip7", "styletalk__style_furious"),
        ("styletalk__feifeili_clip2_short", "styletalk__feifeili"),
        ("styletalk__andrew_clip_1", "styletalk__andrew"),
        ("edtalk__expression_source", "styletalk__style_happyenglish"),
        ("megactor__driver_audio_CHTF_2", "styletalk__KristiNoem"),
        ("pcavs__741400163", "pcavs__00104"),
        ("pcavs__00098", "pcavs__00098"),
        ("tpsmm__driving", "tpsmm__driving"),
    ],
)
def test_person_of_groups_the_takes_of_one_person(name: str, person: str) -> None:
    assert person_of(name) == person


def test_the_validation_split_never_shares_a_person_with_training() -> None:
    clips = [
        _clip(f"dreamtalk__{who}_front_{mood}_level3_001")
        for who in ("M030", "W009", "W011", "M005")
        for mood in ("angry", "happy", "sad")
    ] + [_clip("pcavs__00104"), _clip("pcavs__741400163"), _clip("tpsmm__driving", 40)]
    for seed in range(20):
        train, validation = split_by_person(clips, 0.3, seed)
        assert {c.name for c in train} | {c.name for c in validation} == {c.name for c in clips}
        assert validation, seed
        assert not {person_of(c.name) for c in train} & {person_of(c.name) for c in validation}


def test_the_split_holds_about_the_fraction_and_is_repeatable() -> None:
    clips = [_clip(f"person{i}") for i in range(20)]
    train, validation = split_by_person(clips, 0.25, seed=3)
    assert len(validation) == 5 and len(train) == 15
    names = [c.name for c in validation]
    assert [c.name for c in split_by_person(clips, 0.25, seed=3)[1]] == names
    assert [c.name for c in split_by_person(clips, 0.25, seed=4)[1]] != names


def test_bad_splits_are_refused() -> None:
    with pytest.raises(ValueError, match=r"validation fraction must be in \[0, 1\), got 1.0"):
        split_by_person([_clip("a"), _clip("b")], 1.0)
    with pytest.raises(ValueError, match="at least two people; all 2 clips show 'a'"):
        split_by_person([_clip("a_clip1"), _clip("a_clip2")], 0.1)
    only = [_clip("a")]
    train, validation = split_by_person(only, 0.0)
    assert [c.name for c in train] == ["a"] and validation == []
