"""Every command line the README and docs give parses: the command exists (its ``--help`` works) and
every option named exists; every built-in config name they give loads and ``train --config NAME``
accepts it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _command_lines() -> list[tuple[str, str]]:
    """``(file, command line)`` for every ``fomm-kp ...`` in code blocks and inline code of the docs."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        blocks = [body for _, body in re.findall(r"```(\w*)\n(.*?)```", text, flags=re.S)]
        inline = re.findall(r"`(fomm-kp [^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
        lines = [line for block in blocks for line in block.splitlines()] + inline
        for line in lines:
            line = " ".join(line.split("#")[0].split())
            if line.startswith("fomm-kp "):
                found.append((doc.name, line))
    return found


COMMAND_LINES = _command_lines()


def _click_command():
    import typer

    from fomm_kp.cli import app

    return typer.main.get_command(app)


def _resolve(words: list[str]):
    """The click command a command line names, and the words after its name."""
    command, rest = _click_command(), list(words)
    while rest and hasattr(command, "commands") and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    return command, rest


def test_the_docs_give_command_lines() -> None:
    assert len(COMMAND_LINES) >= 20, COMMAND_LINES
    named = {tuple(_resolve(shlex.split(line)[1:])[0].name.split()) for _, line in COMMAND_LINES}
    for expected in ("train", "track", "features", "fit", "classify", "score", "motifs", "distill", "export", "demo",
                     "animate"):
        assert (expected,) in named, expected


@pytest.mark.parametrize(("doc", "line"), COMMAND_LINES, ids=[f"{d}:{line[:60]}" for d, line in COMMAND_LINES])
def test_documented_command_line_parses(doc: str, line: str, capsys, monkeypatch) -> None:
    words = shlex.split(line)[1:]
    command, rest = _resolve(words)
    assert not hasattr(command, "commands") or not rest or rest[0].startswith("-"), f"unknown command in {line}"
    known = {"--help"} | {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for word in rest:
        for option in word.strip("[]").split("|"):
            if option.startswith("-") and not re.fullmatch(r"-?\d+(\.\d+)?", option):
                assert option.split("=")[0] in known, f"{doc}: {line}: {option} is not an option of {command.name}"
    path = words[: len(words) - len(rest)]
    code, out, err = run_cli([*path, "--help"], capsys, monkeypatch)
    assert code == 0 and "Usage" in out, err


def _documented_config_names() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Configs"):readme.index("### Training details")]
    names = set(re.findall(r"`(\w+)`", section.split("YAML file")[0])) - {"config"}
    help_text = next(p.help for p in _click_command().commands["train"].params if p.name == "config")
    return names | set(re.findall(r"(\w+)(?:,|\.$)", help_text.split(":")[-1]))


def test_documented_config_names_are_all_built_in() -> None:
    from fomm_kp.config import BUILTIN_CONFIGS

    names = _documented_config_names()
    assert {"cpu", "cpu128", "gpu", "tiny"} <= names, names
    assert names <= set(BUILTIN_CONFIGS), names - set(BUILTIN_CONFIGS)


@pytest.mark.parametrize("name", sorted({"cpu", "cpu128", "gpu", "tiny"}))
def test_train_accepts_each_built_in_config_name(name: str, disc_clip, tmp_path: Path, capsys, monkeypatch) -> None:
    from types import SimpleNamespace

    from fomm_kp.cli import train_track
    from fomm_kp.config import builtin_config

    seen = {}

    def fake_train(video, out, **kwargs):
        seen.update(kwargs)
        return SimpleNamespace(step=0)

    monkeypatch.setattr(train_track, "train_with_progress", fake_train)
    code, _, err = run_cli(["train", str(disc_clip.path), "-o", str(tmp_path / "run"), "--config", name], capsys,
                           monkeypatch)
    assert code == 0, err
    assert seen["config"] == builtin_config(name)
