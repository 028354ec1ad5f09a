"""Built-in style names and the words that select them from a free-text prompt.

Shared by the receiver (``Renderer.set_style`` resolves prompts without CLIP) and by training
(``training.styles`` renders the classical targets of each name). Matching is by whole words, so
"a pencil sketch of me" selects ``sketch`` and "sketchy" selects nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["BUILTIN_STYLE_NAMES", "StyleName", "match_style", "normalize_prompt"]


@dataclass(frozen=True)
class StyleName:
    """One built-in style: its key, a sentence describing it and the prompt words naming it."""

    name: str
    description: str
    keywords: tuple[str, ...]


BUILTIN_STYLE_NAMES: tuple[StyleName, ...] = (
    StyleName(
        "sketch",
        "a grey pencil sketch on white paper",
        ("sketch", "pencil", "graphite", "charcoal", "drawing", "drawn"),
    ),
    StyleName(
        "cel",
        "a flat-shaded cel animation cartoon with dark outlines",
        ("cel", "cartoon", "anime", "toon", "animation", "animated", "flat"),
    ),
    StyleName(
        "comic",
        "a comic book panel with inked lines and hard shadows",
        ("comic", "comics", "ink", "inked", "graphic novel", "manga", "superhero"),
    ),
    StyleName(
        "watercolor",
        "a soft watercolour painting",
        ("watercolor", "watercolour", "painting", "painted", "paint", "aquarelle"),
    ),
    StyleName(
        "pop-art",
        "a saturated pop-art poster in a few bold colours",
        ("pop-art", "pop art", "warhol", "lichtenstein", "poster", "psychedelic"),
    ),
)

_WORD_SPLIT = re.compile(r"\s+")


def normalize_prompt(prompt: str) -> str:
    """Lower-case ``prompt`` with runs of whitespace collapsed: the key prompts are cached by."""
    return _WORD_SPLIT.sub(" ", prompt.strip().lower())


def match_style(prompt: str, available: tuple[str, ...] | list[str] | None = None) -> str | None:
    """The built-in style ``prompt`` names or describes, or None.

    An exact name wins; otherwise the style with the most keyword hits (earliest in
    ``BUILTIN_STYLE_NAMES`` on ties). ``available`` restricts the candidates (e.g. to the styles a
    checkpoint ships).
    """
    text = normalize_prompt(prompt)
    candidates = [s for s in BUILTIN_STYLE_NAMES if available is None or s.name in available]
    for style in candidates:
        if text == style.name:
            return style.name
    padded = f" {re.sub(r'[^a-z0-9-]+', ' ', text)} "
    best, best_hits = None, 0
    for style in candidates:
        hits = sum(f" {keyword} " in padded for keyword in style.keywords)
        if hits > best_hits:
            best, best_hits = style.name, hits
    return best
