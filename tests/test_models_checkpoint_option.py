import argparse

import pytest

from models.checkpoint_option import RANDOM_WEIGHTS, add_checkpoint_arguments


def parser() -> argparse.ArgumentParser:
    parsed = argparse.ArgumentParser()
    add_checkpoint_arguments(parsed)
    return parsed


def test_the_checkpoint_is_a_file_random_weights_or_the_presets() -> None:
    assert parser().parse_args(["--checkpoint", "a.pt"]).checkpoint == "a.pt"
    assert parser().parse_args(["--random-weights"]).checkpoint == RANDOM_WEIGHTS
    assert parser().parse_args([]).checkpoint is None


def test_a_file_and_random_weights_together_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["--checkpoint", "a.pt", "--random-weights"])
    assert "not allowed with argument --checkpoint" in capsys.readouterr().err
