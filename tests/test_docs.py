"""Docs that cannot drift: every setting and every command is in the README."""

import re
from pathlib import Path

import typer.main

from dailypapers.cli import app
from dailypapers.config import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_documented():
    missing = [f"DAILYPAPERS_{name.upper()}" for name in Settings.model_fields
               if f"`DAILYPAPERS_{name.upper()}`" not in README]
    assert missing == []


def commands(group, prefix=""):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}"


def test_every_command_is_in_the_readme():
    cli = typer.main.get_command(app)
    missing = [c for c in commands(cli) if not re.search(rf"dailypapers {re.escape(c)}\b", README)]
    assert missing == []
