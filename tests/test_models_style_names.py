import pytest

from models.style_names import BUILTIN_STYLE_NAMES, match_style, normalize_prompt


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("sketch", "sketch"),
        ("  A Pencil   sketch of me ", "sketch"),
        ("anime", "anime-painting"),
        ("an anime painting of me", "anime-painting"),
        ("disney princess", "disney-princess"),
        ("like a Pixar 3D animation", "pixar"),
        ("3d cartoon", "pixar"),
        ("scary zombie", "zombie"),
        ("cartoon", "cel"),
        ("oil painting", "watercolor"),
        ("comic book hero", "comic"),
        ("soft watercolour", "watercolor"),
        ("Pop Art like Warhol", "pop-art"),
        ("pop-art", "pop-art"),
        ("sketchy zebra", None),
        ("", None),
    ],
)
def test_prompts_select_builtin_styles_by_name_or_words(prompt: str, expected: str | None) -> None:
    assert match_style(prompt) == expected


def test_available_restricts_the_candidates() -> None:
    assert match_style("pencil sketch", available=["cel"]) is None
    assert match_style("cel", available=["cel"]) == "cel"
    assert match_style("anime", available=["cel", "comic"]) == "cel"


def test_nine_builtin_styles_with_descriptions() -> None:
    names = [style.name for style in BUILTIN_STYLE_NAMES]
    assert names == [
        "disney-princess",
        "pixar",
        "sketch",
        "zombie",
        "anime-painting",
        "cel",
        "comic",
        "watercolor",
        "pop-art",
    ]
    assert all(style.description and style.keywords for style in BUILTIN_STYLE_NAMES)


def test_normalize_prompt_collapses_case_and_space() -> None:
    assert normalize_prompt("  Ink\tDRAWING \n") == "ink drawing"
