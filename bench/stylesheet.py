"""`cartooncodec bench stylesheet`: every style of a checkpoint on a few faces, in one PNG.

Rows: the real frames, the unstyled render, then one row per style of the checkpoint. Columns:
for each clip, its first frame rendered at zero motion ("still") and the frame of the clip
whose keypoints moved most from it ("moving"); then, beside each row, what the style was
learned from: its recipe applied to the first face (for an exemplar style, in the palette of
its pictures, which follow: ``--style-data``). The table gives, per style, the mean
keypoint distance between the styled and the unstyled render (pixels at the model's size):
whether motion survives the style. It is measured by the checkpoint's structure detector (the
codec's keypoints found through a style, :mod:`training.structure`); beside it by the codec's
keypoint detector, which also moves its keypoints when only the colours change; and by a judge
this project did not train, MediaPipe's face mesh (:mod:`bench.landmarks`), with the number of
frame pairs in which it found both faces. A second table calibrates the three: what each
reports when the unstyled render is only restyled (grey, a classical recipe), which moves
nothing. A third tells how far each style goes toward what it was trained on: the L1 distance
from its recipe of the real frame to the unstyled and to the styled render, whole and split
into coarse colour and light (8x8 block means) and fine detail (the rest: lines, texture);
and from its recipe of the unstyled render (softer than the frame: what a style can reach).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from bench.clips import load_bench_clips
from bench.landmarks import FaceLandmarker, landmark_shift
from bench.report import Table, add_bench_parser, add_model_arguments, publish

if TYPE_CHECKING:
    import torch

    from models.checkpoint import LoadedModels
    from training.styles import Palette

log = logging.getLogger(__name__)

EXEMPLARS_BESIDE = 3  # pictures shown beside a row
# changes of colour and line that move no pixel of the face: what the judges make of them
JUDGED_RESTYLINGS = ("grey", "sketch", "zombie", "cel", "comic", "watercolor", "pop-art")
LABEL_WIDTH = 120  # pixels of the row-name column


@dataclass(frozen=True)
class Face:
    """One clip's frames: ``source`` and ``driving``, each size x size x 3 uint8 RGB."""

    name: str
    source: np.ndarray
    driving: np.ndarray


@dataclass(frozen=True)
class StyleStructure:
    """How far one style moves the face from the unstyled render, in pixels at the model's size:
    keypoints by the structure detector and by the codec's detector, face-mesh landmarks (over
    ``landmark_pairs`` frame pairs where the mesh found both faces; NaN if none)."""

    keypoint_px: float
    codec_keypoint_px: float
    landmark_px: float
    landmark_pairs: int


@dataclass(frozen=True)
class RecipeDistance:
    """Mean L1 distance (RGB in [0, 1]) from a style's recipe of the real frames to the
    unstyled (``plain*``) and to the styled render (``styled*``): whole, coarse (8x8 block
    means) and fine (each image minus its coarse part, upsampled); and (``render_*``) from the
    recipe of the unstyled render to the styled render, whole and fine: the render is softer
    than the frame, so this is the part of the look the style can reach (the style finish is
    fitted to it)."""

    plain: float
    styled: float
    plain_coarse: float
    styled_coarse: float
    plain_fine: float
    styled_fine: float
    render_plain: float
    render_styled: float
    render_plain_fine: float
    render_styled_fine: float


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_bench_parser(
        subparsers, "stylesheet", "every style on a few faces, still and moving (one PNG)", __doc__
    )
    add_model_arguments(parser)
    parser.add_argument("--clips", type=Path, required=True, help="folder of face videos")
    parser.add_argument("--faces", type=int, default=3, help="clips shown (default 3)")
    parser.add_argument("--style-data", type=Path, help="folder of the exemplar styles' pictures")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import torch

    from models.checkpoint import load_models

    models = load_models(args.preset, args.checkpoint, torch.device("cpu"))
    size = models.config.image_size
    clips = load_bench_clips(args.clips, size, max_frames=50)[: args.faces]
    faces = [_face(models, name, frames) for name, frames in clips]
    palettes, beside = style_recipes(list(models.styles), faces[0].source, size, args.style_data)
    with FaceLandmarker() as landmarker:
        sheet, structure, recipes, distances = style_sheet(
            models, faces, beside, landmarker, palettes
        )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "stylesheet.png"
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    table = Table(
        "structure",
        f"Keypoint distance, styled vs unstyled render (px at {size}), mean over faces: "
        "keypoint_px by the structure detector (the keypoint detector where the checkpoint has "
        "none), codec_keypoint_px by the keypoint detector, landmark_px by MediaPipe's face mesh "
        f"over landmark_pairs of {2 * len(faces)} frame pairs (where it found both faces)",
        ("style", "keypoint_px", "codec_keypoint_px", "landmark_px", "landmark_pairs"),
    )
    for name, figures in structure.items():
        table.add(style=name, **vars(figures))
    judges = Table(
        "judges",
        "What each judge reports for a change of colour or line alone: the unstyled render "
        "against itself restyled by a classical recipe or turned grey (no pixel of the face "
        "moved; px at the model's size, as above)",
        ("restyling", "keypoint_px", "codec_keypoint_px", "landmark_px", "landmark_pairs"),
    )
    for name, figures in recipes.items():
        judges.add(restyling=name, **vars(figures))
    toward = Table(
        "recipe",
        "How far each style goes toward its recipe (what it was trained on): mean L1 (RGB in "
        "[0, 1]) from the recipe of the real frame to the unstyled render (plain) and to the "
        "styled render (styled), whole, coarse (8x8 block means: colour and light) and fine "
        "(the rest: lines, texture); render_*: from the recipe of the unstyled render, whole "
        "and fine (the render is softer than the frame: the part of the look a style can "
        "reach); styles whose recipe is unknown here are left out",
        ("style", *(item.name for item in fields(RecipeDistance))),
    )
    for name, distance in distances.items():
        toward.add(style=name, **vars(distance))
    publish(args.out, "stylesheet", [table, judges, toward], args, plots=[path])
    return 0


def _face(models: LoadedModels, name: str, frames: np.ndarray) -> Face:
    """The clip's first frame and the frame whose keypoints moved most from it."""
    import torch

    tensors = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255)
    with torch.no_grad():
        keypoints = models.kp_detector.eval()(tensors)["value"]
    moved = (keypoints - keypoints[:1]).norm(dim=-1).mean(dim=-1)
    return Face(name, frames[0], frames[int(moved.argmax())])


def style_recipes(
    styles: Sequence[str], first_face: np.ndarray, size: int, style_data: Path | None
) -> tuple[dict[str, Palette | None], dict[str, list[np.ndarray]]]:
    """For the styles among ``styles`` whose recipe can be made here: (what the recipe needs —
    None for a classical style, its pictures' palette for an exemplar style, only with
    ``style_data``; the size x size x 3 pictures shown beside its row — the recipe on
    ``first_face``, then up to :data:`EXEMPLARS_BESIDE` of an exemplar style's pictures).
    Each exemplar set is read and face-cropped once, as training crops it."""
    from models.face_crop import FaceCropper
    from training.styles import CLASSICAL_STYLES, EXEMPLAR_STYLES, Palette, load_exemplars, stylize

    cropper = FaceCropper() if style_data is not None else None
    palettes: dict[str, Palette | None] = {}
    beside: dict[str, list[np.ndarray]] = {}
    for name in styles:
        if name in CLASSICAL_STYLES:
            palettes[name] = None
            beside[name] = [stylize(first_face, name)]
        elif name in EXEMPLAR_STYLES and style_data is not None:
            pictures = load_exemplars(name, style_data, size, cropper)
            palettes[name] = Palette.of(pictures)
            shown = (pictures[:EXEMPLARS_BESIDE].permute(0, 2, 3, 1) * 255).round().byte()
            beside[name] = [stylize(first_face, name, palettes[name]), *shown.numpy().copy()]
    return palettes, beside


def style_sheet(
    models: LoadedModels,
    faces: Sequence[Face],
    beside: Mapping[str, list[np.ndarray]],
    landmarker: FaceLandmarker | None = None,
    palettes: Mapping[str, Palette | None] | None = None,
) -> tuple[
    np.ndarray, dict[str, StyleStructure], dict[str, StyleStructure], dict[str, RecipeDistance]
]:
    """(sheet: HxWx3 uint8 RGB, per style how far it moves the face, per restyling of
    :data:`JUDGED_RESTYLINGS` how far the same judges say it moves the unstyled render, which
    it does not move at all, per style of ``palettes`` how far it goes toward its recipe) for
    ``faces``; without a ``landmarker`` the landmark figures are NaN over 0 pairs."""
    import torch

    from training.stage2 import stylize_batch
    from training.structure import restyle

    generator, detector = models.generator.eval(), models.kp_detector.eval()
    structure = models.structure.eval()
    sources = _batch([face.source for face in faces for _ in (0, 1)])
    drivings = _batch([frame for face in faces for frame in (face.source, face.driving)])
    with torch.no_grad():
        kp_source, kp_driving = detector(sources), detector(drivings)
        plain = generator(sources, kp_driving=kp_driving, kp_source=kp_source)["prediction"]
        plain_structure, plain_codec = structure(plain)["value"], detector(plain)["value"]
    plain_frames = _frames(plain)
    plain_landmarks = (
        [landmarker.find(frame) for frame in plain_frames] if landmarker is not None else []
    )

    def judge(styled: torch.Tensor, styled_frames: list[np.ndarray]) -> StyleStructure:
        with torch.no_grad():
            keypoint_px = _moved(structure, styled, plain_structure)
            codec_keypoint_px = _moved(detector, styled, plain_codec)
        landmark_px, pairs = (
            landmark_shift(landmarker, styled_frames, plain_landmarks)
            if landmarker is not None
            else (float("nan"), 0)
        )
        return StyleStructure(keypoint_px, codec_keypoint_px, landmark_px, pairs)

    rows = [_row("frames", _frames(drivings), []), _row("none", plain_frames, [])]
    figures: dict[str, StyleStructure] = {}
    distances: dict[str, RecipeDistance] = {}
    for name, delta in models.styles.items():
        with torch.no_grad(), delta.applied(generator):
            styled = generator(sources, kp_driving=kp_driving, kp_source=kp_source)["prediction"]
        styled_frames = _frames(styled)
        figures[name] = judge(styled, styled_frames)
        if palettes is not None and name in palettes:
            target = stylize_batch(drivings, name, palettes[name])
            render_target = stylize_batch(plain, name, palettes[name])
            distances[name] = _recipe_distance(plain, styled, target, render_target)
        rows.append(_row(name, styled_frames, beside.get(name, [])))
    rng = np.random.default_rng(0)
    recipes = {}
    for name in JUDGED_RESTYLINGS:
        restyled = restyle(plain, name, rng)
        recipes[name] = judge(restyled, _frames(restyled))
    width = max(row.shape[1] for row in rows)
    padded = [
        np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=255)
        for row in rows
    ]
    return np.vstack(padded), figures, recipes, distances


def _recipe_distance(
    plain: torch.Tensor, styled: torch.Tensor, target: torch.Tensor, render_target: torch.Tensor
) -> RecipeDistance:
    """:class:`RecipeDistance` of Bx3xHxW renders ``plain`` and ``styled`` to ``target`` (the
    recipe of the real frames) and ``render_target`` (the recipe of ``plain``)."""
    import torch.nn.functional as F

    def parts(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        coarse = F.avg_pool2d(images, 8)
        return coarse, images - F.interpolate(coarse, size=images.shape[-2:], mode="bilinear")

    def l1(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).abs().mean())

    (plain_coarse, plain_fine), (styled_coarse, styled_fine) = parts(plain), parts(styled)
    target_coarse, target_fine = parts(target)
    render_fine = parts(render_target)[1]
    return RecipeDistance(
        l1(plain, target),
        l1(styled, target),
        l1(plain_coarse, target_coarse),
        l1(styled_coarse, target_coarse),
        l1(plain_fine, target_fine),
        l1(styled_fine, target_fine),
        l1(plain, render_target),
        l1(styled, render_target),
        l1(plain_fine, render_fine),
        l1(styled_fine, render_fine),
    )


def _moved(detector: torch.nn.Module, styled: torch.Tensor, plain_kp: torch.Tensor) -> float:
    """Mean distance in pixels between ``detector``'s keypoints on ``styled`` and ``plain_kp``
    (BxKx2, the same detector's on the unstyled render)."""
    moved = (detector(styled)["value"] - plain_kp).norm(dim=-1).mean()
    return float(moved) * styled.shape[-1] / 2


def _batch(frames: Sequence[np.ndarray]) -> torch.Tensor:
    """N frames (size x size x 3 uint8) -> Nx3xSxS floats in [0, 1]."""
    import torch

    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255)


def _frames(images: torch.Tensor) -> list[np.ndarray]:
    return list((images.clamp(0, 1).permute(0, 2, 3, 1) * 255).round().byte().numpy())


def _row(name: str, cells: Sequence[np.ndarray], beside: Sequence[np.ndarray]) -> np.ndarray:
    """Label | cells | gap | pictures beside, as one strip of height size."""
    size = cells[0].shape[0]
    label = np.full((size, LABEL_WIDTH, 3), 255, np.uint8)
    cv2.putText(label, name, (4, size // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    gap = np.full((size, size // 4, 3), 255, np.uint8)
    resized = [cv2.resize(p, (size, size), interpolation=cv2.INTER_AREA) for p in beside]
    return np.hstack([label, *cells, gap, *resized])
