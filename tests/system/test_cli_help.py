"""Issue 30: every `ferlite` command explains every option, and shows defaults one way.

Each command's parser is captured as it parses (no command runs) and its --help rendered: every
option has help; an option with a value default says "(default: X)" once; a flag says nothing of
"True"/"False" (beside `--no-augment`, "(default: True)" read as the opposite); nothing says
"(default: None)"; the old "[X]" and "(default X)" forms are gone."""

from __future__ import annotations

import argparse
import importlib
import re

import pytest

from ferlite.app.cli import COMMANDS

FIRST_ARGS = {"serve": ["aggregator"], "ab": ["show"]}  # commands whose parser follows a first word


class Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__(parser.prog)
        self.parser = parser


def parser_of(command: str, monkeypatch) -> argparse.ArgumentParser:
    def capture(self, args=None, namespace=None):
        raise Captured(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", capture)
    module, _, function = COMMANDS[command][0].partition(":")
    with pytest.raises(Captured) as got:
        getattr(importlib.import_module(module), function)(FIRST_ARGS.get(command, []))
    return got.value.parser


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_option_has_help_and_defaults_are_shown_one_way(command, monkeypatch) -> None:
    parser = parser_of(command, monkeypatch)
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction) or action.help == argparse.SUPPRESS:
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"ferlite {command} {name} has no help"
        shown = formatter._get_help_string(action) % {**vars(action), "prog": parser.prog}
        assert not re.search(r"\[[^\]]*\]\s*$", action.help), f"{name}: a [default] of the old form: {shown}"
        assert not re.search(r"\(default [^:]", shown), f"{name}: '(default X)' instead of '(default: X)': {shown}"
        assert shown.count("(default:") <= 1, f"{name}: default shown twice: {shown}"
        for noise in ("(default: None)", "(default: [])", "(default: )"):
            assert noise not in shown, f"{name}: {shown}"
        is_flag = isinstance(action.default, bool) and action.nargs == 0
        if is_flag and not isinstance(action, argparse.BooleanOptionalAction):
            assert "(default: True)" not in shown and "(default: False)" not in shown, f"{name}: {shown}"
        has_value_default = action.option_strings and action.default not in (None, "", [], argparse.SUPPRESS) \
            and not isinstance(action.default, bool)
        if has_value_default:
            assert "(default:" in shown, f"{name} has a default ({action.default!r}) its help does not show"
    parser.format_help()  # renders without a formatting error
