"""The public API table and the CLI surface: every name resolves, every command documents an example."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import bonesim
from bonesim.cli import COMMANDS, main


@pytest.mark.parametrize("name", sorted(bonesim._API))
def test_public_name_resolves(name):
    assert getattr(bonesim, name) is not None


def test_unknown_name_raises_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        bonesim.no_such_thing  # noqa: B018


def test_every_registered_command_exists():
    out = CliRunner().invoke(main, ["--help"]).output
    for name in COMMANDS:
        assert f"  {name} " in out, f"command {name!r} missing from bonesim --help"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_help_has_an_example(name):
    res = CliRunner().invoke(main, [name, "--help"])
    assert res.exit_code == 0, res.output
    assert "Example" in res.output, f"`bonesim {name} --help` shows no example"


def test_version():
    res = CliRunner().invoke(main, ["--version"])
    assert res.exit_code == 0 and bonesim.__version__ in res.output
