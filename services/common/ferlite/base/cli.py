"""What every `ferlite` command's --help shares: defaults shown one way.

An option with a value default gets "(default: X)" after its help; a flag (on/off) gets none,
because "(default: True)" beside `--no-augment` reads as the opposite of what it does; an option
whose default is worked out at run time says so in its own help, in the same words
("(default: runs/<date-time>)"). tests/system/test_cli_help.py holds every command to it, and to
help on every option.
"""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or "(default:" in text or not action.option_strings
                or default is None or default is argparse.SUPPRESS or isinstance(default, bool)
                or default in ("", [])):
            return text
        return f"{text} (default: %(default)s)"
