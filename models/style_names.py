"""Built-in style names and the words that select them from a free-text prompt.

Shared by the receiver (``Renderer.set_style`` resolves prompts without CLIP) and by training
(``training.styles`` renders the classical targets of each name). Matching is by whole words, so
"a pencil sketch of me" selects ``sketch`` and "sketchy" selects nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The longest style prompt anyone accepts: renderer, wire protocol and .ccv files alike.
MAX_PROMPT_CHARS = 200

__all__ = [
    "MAX_PROMPT_CHARS",
    "BUILTIN_STYLE_NAMES",
    "StyleName",
    "custom_style_key",
    "match_style",
    "normalize_prompt",
]


@dataclass(frozen=True)
class StyleName:
    """One built-in style: its key, a sentence describing it and the prompt words naming it."""

    name: str
    description: str
    keywords: tuple[str, ...]


# Order matters on keyword ties (the earlier style wins): the research's five styles first.
BUILTIN_STYLE_NAMES: tuple[StyleName, ...] = (
    StyleName(
        "disney-princess",
        "a Disney princess cartoon with big eyes, smooth skin and warm colours",
        ("disney-princess", "disney princess", "disney", "princess", "fairy tale", "fairytale"),
    ),
    StyleName(
        "pixar",
        "a Pixar-style 3D animation character with soft shading",
        ("pixar", "3d", "3d animation", "3d cartoon", "cgi", "dreamworks", "animated movie"),
    ),
    StyleName(
        "sketch",
        "a grey pencil sketch on white paper",
        ("sketch", "pencil", "graphite", "charcoal", "drawing", "drawn"),
    ),
    StyleName(
        "zombie",
        "a pale green rotting zombie face with dark eye sockets",
        ("zombie", "undead", "walking dead", "ghoul", "corpse", "horror", "halloween"),
    ),
    StyleName(
        "anime-painting",
        "an anime painting with clean lines and painted shading",
        ("anime-painting", "anime painting", "anime", "manga painting", "japanese animation"),
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


def custom_style_key(name: str) -> str:
    """The cache key of a user's own style ``name``; ValueError when it is empty or selects a
    built-in style (a prompt would then never reach it)."""
    key = normalize_prompt(name)
    if not key:
        raise ValueError("a style name must not be empty")
    builtin = match_style(key)
    if builtin is not None:
        raise ValueError(
            f"style name {name!r} selects the built-in style {builtin!r}; choose another name"
        )
    return key
