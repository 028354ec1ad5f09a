"""docker/: every file the compose file and Dockerfiles name exists, every command parses."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from cartooncodec.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker" / "compose.yaml"


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def context_of(service: dict) -> Path:
    return (COMPOSE.parent / service["build"]["context"]).resolve()


def dockerfile_of(service: dict) -> Path:
    return context_of(service) / service["build"]["dockerfile"]


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line, continuation lines joined."""
    logical = dockerfile.read_text().replace("\\\n", " ")
    parsed = []
    for line in logical.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            parsed.append((keyword.upper(), rest.strip()))
    return parsed


def exec_form(arguments: str) -> list[str]:
    return json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)


def last(dockerfile: Path, keyword: str) -> list[str]:
    found = [exec_form(args) for kw, args in instructions(dockerfile) if kw == keyword]
    return found[-1] if found else []


SERVICES = sorted(load_compose()["services"].items())


@pytest.mark.parametrize(("name", "service"), SERVICES)
def test_build_files_exist(name: str, service: dict) -> None:
    dockerfile = dockerfile_of(service)
    assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
    context = context_of(service)
    for keyword, arguments in instructions(dockerfile):
        if keyword == "COPY":
            sources = [a for a in exec_form(arguments) if not a.startswith("--")][:-1]
            for source in sources:
                assert (context / source).exists(), f"{dockerfile.name}: COPY {source} missing"


@pytest.mark.parametrize(("name", "service"), SERVICES)
def test_every_package_the_project_installs_is_copied(name: str, service: dict) -> None:
    """A package missing from the image imports nowhere: `pip install .` skips it silently."""
    pyproject = (REPO / "pyproject.toml").read_text()  # tomllib is 3.11+, the project 3.10+
    found = re.search(
        r"\[tool\.setuptools\.packages\.find\]\s*include = \[(.*?)\]", pyproject, re.S
    )
    assert found is not None, "pyproject.toml names no packages to install"
    packages = {pattern.rstrip("*") for pattern in re.findall(r'"([^"]+)"', found.group(1))}
    copied = {
        source.rstrip("/")
        for keyword, arguments in instructions(dockerfile_of(service))
        if keyword == "COPY"
        for source in [a for a in exec_form(arguments) if not a.startswith("--")][:-1]
    }
    assert packages - copied == set(), f"{name}: not copied into the image"


@pytest.mark.parametrize(("name", "service"), SERVICES)
def test_commands_parse(name: str, service: dict) -> None:
    dockerfile = dockerfile_of(service)
    entrypoint = service.get("entrypoint", last(dockerfile, "ENTRYPOINT"))
    # compose resets the image's CMD when it overrides the entrypoint
    command = service.get("command", [] if "entrypoint" in service else last(dockerfile, "CMD"))
    argv = [*entrypoint, *command]
    assert argv[:1] == ["cartooncodec"], f"{name}: runs {argv!r}, not cartooncodec"
    args = build_parser().parse_args(argv[1:])
    assert callable(args.func)


def test_token_secret_comes_from_the_environment_with_no_default() -> None:
    """A secret written in the compose file is everyone's: with it, tokens can be forged."""
    environments = {name: service.get("environment", {}) for name, service in SERVICES}
    assert [name for name, env in environments.items() if "CARTOONCODEC_TOKEN_SECRET" in env] == [
        "server"
    ]
    secret = environments["server"]["CARTOONCODEC_TOKEN_SECRET"]
    # ${VAR:?message}: compose refuses to start when the variable is unset or empty
    assert re.fullmatch(r"\$\{CARTOONCODEC_TOKEN_SECRET:\?[^}]+\}", secret), secret
