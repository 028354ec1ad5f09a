import csv
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from models import config
from models.checkpoint import CheckpointError, build_models, load_checkpoint
from tests.face_clip import write_face_video
from training.options import Stage1Weights, TrainOptions
from training.trainer import TrainingDivergedError, run


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    write_face_video(folder / "talk.mp4", frames=10)
    return folder


def options(data: Path, out: Path, **changes: object) -> TrainOptions:
    base = TrainOptions(
        data=data,
        out=out,
        preset="tiny",
        steps=6,
        batch_size=4,
        lr=1e-3,
        styles=(),
        log_every=1,
        sample_every=1000,
        checkpoint_every=1000,
        device="cpu",
        cache_dir=out.parent / "cache",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def totals(out: Path) -> list[tuple[int, float]]:
    with (out / "losses.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return [(int(r["step"]), float(r["total"])) for r in rows if r["stage"] == "reconstruction"]


def test_training_end_to_end_lowers_the_loss(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    path = run(options(data, out, steps=60, styles=("sketch",), style_steps=3))
    values = [total for _, total in totals(out)]
    assert len(values) == 60
    assert sum(values[-10:]) / 10 < 0.8 * sum(values[:10]) / 10
    loaded = load_checkpoint(path, preset="tiny")
    assert loaded.meta["step"] == 60
    assert set(loaded.styles) == {"sketch"} and loaded.styles["sketch"].layers
    assert (out / "losses.png").stat().st_size > 0
    grids = sorted((out / "samples").glob("*.png"))
    assert grids, "no sample grid written"
    import cv2

    grid = cv2.imread(str(grids[-1]))
    # source | driving | reconstruction | sketch, one 32-pixel column each.
    assert grid.shape[1] == 4 * 32


def test_resume_continues_from_the_saved_step(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = run(options(data, out, steps=4))
    second = run(options(data, out, steps=7, resume=first))
    assert load_checkpoint(second, preset="tiny").meta["step"] == 7
    assert [step for step, _ in totals(out)] == [1, 2, 3, 4, 5, 6, 7]


def test_resume_refuses_a_checkpoint_of_another_preset(data: Path, tmp_path: Path) -> None:
    checkpoint = run(options(data, tmp_path / "tiny", steps=1))
    wrong = options(data, tmp_path / "lite", preset="lite-128", resume=checkpoint)
    with pytest.raises(CheckpointError, match=rf"{checkpoint}.*preset 'tiny', not 'lite-128'"):
        run(wrong)


def test_resume_refuses_a_corrupt_checkpoint(data: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "checkpoint.pt"
    corrupt.write_bytes(b"\x80\x02 definitely not a checkpoint")
    with pytest.raises(CheckpointError, match=rf"{corrupt}"):
        run(options(data, tmp_path / "run", resume=corrupt))


def test_nan_loss_stops_with_the_step_and_the_terms(data: Path, tmp_path: Path) -> None:
    broken = options(data, tmp_path / "run", weights=Stage1Weights(l1=math.nan))
    with pytest.raises(TrainingDivergedError, match=r"step 0: l1=nan, ms_ssim=[0-9.]+"):
        run(broken)


def test_same_seed_gives_the_same_weights(data: Path, tmp_path: Path) -> None:
    a = load_checkpoint(run(options(data, tmp_path / "a", steps=3)), preset="tiny")
    b = load_checkpoint(run(options(data, tmp_path / "b", steps=3)), preset="tiny")
    for (name, x), y in zip(
        a.generator.state_dict().items(), b.generator.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(x, y, msg=name)


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no usable face clip"):
        run(options(empty, tmp_path / "run"))


def test_validation_holds_out_a_person_and_keeps_the_best_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "people"
    folder.mkdir()
    write_face_video(folder / "alice_clip1.mp4", frames=10)
    write_face_video(folder / "bob_clip1.mp4", frames=10)
    out = tmp_path / "run"
    run(options(folder, out, steps=4, validate_every=2, validation_fraction=0.5, structure_steps=2))
    with (out / "losses.csv").open() as handle:
        every = list(csv.DictReader(handle))
    rows = [r for r in every if r["stage"] == "validation"]
    assert [int(r["step"]) for r in rows] == [2, 4]
    # The structure detector is scored on the held-out person's frames.
    [structure] = [r for r in every if r["stage"] == "structure"]
    assert float(structure["photograph_px"]) > 0 and float(structure["restyled_px"]) > 0
    assert all(
        0 < float(r["validation_ms_ssim"]) <= 1 and 0 < float(r["validation_static_ms_ssim"]) <= 1
        for r in rows
    )
    best = load_checkpoint(out / "best.pt", preset="tiny")
    assert best.meta["best_validation"] == max(float(r["validation_ms_ssim"]) for r in rows)
    assert len(best.meta["validation_clips"]) == 1
    assert best.meta["validation_clips"][0] not in best.meta["clips"]


def test_init_from_takes_the_fitting_weights_and_the_residual_head_of_this_generator_only(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a file of this generator everything that fits is taken, the structure detector
    too, and a module the file lacks (here a reference style) keeps its identity start; from
    an older generator the residual head is not taken."""
    donor_path = run(options(data, tmp_path / "donor", steps=3, structure_steps=2, batch_size=2))
    donor = load_checkpoint(donor_path, preset="tiny")
    assert float(donor.generator.final.weight.abs().max()) > 0
    assert donor.structure_detector is not None
    tiny = config.PRESETS["tiny"]
    restyled = replace(tiny, generator=replace(tiny.generator, style_reference_channels=4))
    monkeypatch.setitem(config.PRESETS, "tiny", restyled)
    started = load_checkpoint(
        run(options(data, tmp_path / "run", steps=0, init_from=donor_path)), preset="tiny"
    )
    torch.testing.assert_close(
        started.kp_detector.state_dict()["kp.weight"], donor.kp_detector.state_dict()["kp.weight"]
    )
    torch.testing.assert_close(
        started.generator.first.conv.weight, donor.generator.first.conv.weight
    )
    torch.testing.assert_close(started.generator.final.weight, donor.generator.final.weight)
    assert started.structure_detector is not None
    torch.testing.assert_close(started.structure.kp.weight, donor.structure.kp.weight)
    assert started.generator.restyle is not None
    assert float(started.generator.restyle.out.weight.abs().max()) == 0.0

    older = torch.load(donor_path, weights_only=True)
    older["config"]["generator"]["architecture"] = "first-order"
    torch.save(older, tmp_path / "older.pt")
    from_older = load_checkpoint(
        run(options(data, tmp_path / "run2", steps=0, init_from=tmp_path / "older.pt")),
        preset="tiny",
    )
    assert float(from_older.generator.final.weight.abs().max()) == 0.0
    torch.testing.assert_close(
        from_older.generator.first.conv.weight, donor.generator.first.conv.weight
    )


def test_a_best_score_from_other_held_out_people_does_not_carry_over(tmp_path: Path) -> None:
    for name in ("alice_clip1", "bob_clip1", "carol_clip1", "dave_clip1"):
        folder = tmp_path / ("first" if name < "c" else "second")
        folder.mkdir(exist_ok=True)
        write_face_video(folder / f"{name}.mp4", frames=10)
    first = run(
        options(
            tmp_path / "first", tmp_path / "a", steps=2, validate_every=2, validation_fraction=0.5
        )
    )
    data = torch.load(first, weights_only=True)
    data["meta"]["best_validation"] = 1.0  # unbeatable, if it carried over
    torch.save(data, first)
    resumed = options(
        tmp_path / "second",
        tmp_path / "b",
        steps=4,
        validate_every=2,
        validation_fraction=0.5,
        resume=first,
    )
    run(resumed)
    best = load_checkpoint(tmp_path / "b" / "best.pt", preset="tiny")
    assert best.meta["step"] == 4
    assert best.meta["validation_clips"][0] in {"carol_clip1", "dave_clip1"}


def test_init_from_refuses_a_file_without_state_dicts(data: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    torch.save({"generator": [1, 2], "kp_detector": {}}, bad)
    with pytest.raises(CheckpointError, match=rf"{bad}: 'generator' is not a state dict"):
        run(options(data, tmp_path / "run", steps=0, init_from=bad))


def test_stage_1_leaves_the_style_finish_and_the_reference_style_the_identity(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finish and the reference style belong to the styles: reconstruction training moves
    the other layers and leaves their last convolutions at zero, and a style may then change
    them."""
    tiny = config.PRESETS["tiny"]
    finished = replace(
        tiny,
        generator=replace(tiny.generator, style_finish_channels=4, style_reference_channels=4),
    )
    monkeypatch.setitem(config.PRESETS, "tiny", finished)
    start = build_models(finished)
    loaded = load_checkpoint(
        run(
            options(
                data,
                tmp_path / "run",
                steps=3,
                styles=("sketch",),
                style_steps=3,
                style_reference_steps=2,
                style_reference_frames=8,
            )
        ),
        preset="tiny",
    )
    trained = loaded.generator.state_dict()
    assert float(trained["finish.out.weight"].abs().max()) == 0.0
    assert float(trained["restyle.out.weight"].abs().max()) == 0.0
    assert not torch.equal(
        trained["first.conv.weight"], start.generator.state_dict()["first.conv.weight"]
    )
    sketch = loaded.styles["sketch"]
    assert any(name.startswith("finish.") for name in sketch.deltas)
    assert any(name.startswith("restyle.") for name in sketch.deltas)


def test_a_reference_fit_without_frames_is_refused(data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--style-reference-frames must be at least 1, got 0"):
        run(
            options(
                data,
                tmp_path / "run",
                steps=1,
                styles=("sketch",),
                style_reference_steps=5,
                style_reference_frames=0,
            )
        )


def test_a_structure_detector_is_distilled_saved_and_dropped_when_stage_1_moves_on(
    data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = run(options(data, tmp_path / "a", steps=2, structure_steps=3, batch_size=2))
    loaded = load_checkpoint(first, preset="tiny")
    assert loaded.structure_detector is not None
    assert not torch.equal(loaded.structure.kp.weight, loaded.kp_detector.kp.weight)
    with (tmp_path / "a" / "losses.csv").open() as handle:
        [row] = [r for r in csv.DictReader(handle) if r["stage"] == "structure"]
    assert row["step"] == "2" and math.isfinite(float(row["loss"]))
    # Stage 2 alone on it keeps it; more stage-1 steps drop it, saying why.
    kept = run(options(data, tmp_path / "b", resume=first, steps=2, styles=("cel",), style_steps=1))
    assert load_checkpoint(kept, preset="tiny").structure_detector is not None
    # More distillation goes on from the checkpoint's detector, not from a new copy.
    with caplog.at_level("INFO"):
        further = run(
            options(data, tmp_path / "d", resume=first, steps=2, structure_steps=1, styles=())
        )
    assert "going on from the checkpoint's" in caplog.text
    went_on = load_checkpoint(further, preset="tiny").structure.kp.weight
    from_first = (went_on - loaded.structure.kp.weight).abs().max()
    assert from_first < (went_on - loaded.kp_detector.kp.weight).abs().max()
    with caplog.at_level("WARNING"):
        dropped = run(options(data, tmp_path / "c", resume=first, steps=3))
    assert load_checkpoint(dropped, preset="tiny").structure_detector is None
    assert "structure detector distilled from it is dropped" in caplog.text
