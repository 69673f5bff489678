"""``taichi-nerf`` command line: one module per command, each a thin layer over the Python
API (api.py) and the run entry point (runs/run_folder.py); shared flags and errors in common.py.

Errors the user can fix (bad data, bad config, missing checkpoint) print one line and exit
with status 2; they never surface as a traceback from inside a kernel. Nothing below the CLI
imports it.
"""
from __future__ import annotations

import argparse
import difflib
import os
import sys

from . import data, evaluate, export, gui, render, train, view
from .common import EXIT_INTERRUPTED, EXIT_USAGE, UserError, config_overrides, in_flag_words, run_config
from .gui import GUI_DEFAULT_OUT

# Each module adds one subcommand, in this order in --help.
COMMANDS = [train, render, evaluate, export, data, gui, view]
# Commands that SIGTERM and SIGHUP stop as Ctrl-C does, saying so (train says it its own way; the window and the
# viewer stop on their own signals, data from-photos on its own handlers), rather than ending with status 143 and
# not a word.
SAID_WHEN_TERMINATED = ("render", "eval", "export", "data synthetic", "data from-mesh")


class Parser(argparse.ArgumentParser):
    """argparse's parser, but a prefix that only one flag's spellings share is that flag: ``--time``
    was "ambiguous option: --time could match --time-limit-s, --time-limit", two names of one flag."""

    def _get_option_tuples(self, option_string):
        tuples, actions = [], set()
        for option in super()._get_option_tuples(option_string):  # (action, option string, ...)
            if option[0] not in actions:
                actions.add(option[0])
                tuples.append(option)
        return tuples


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = Parser(prog="taichi-nerf", description="Train and render neural radiance fields with Taichi kernels.")
    parser.add_argument("--version", action="version", version=f"taichi-nerf {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parser.parse_args``, but an unknown flag is refused by the command it was given to (its
    usage, not the top level's), with the nearest flag that command has (``--stpes``: ``--steps``)."""
    _refuse_empty_values(parser, argv)
    args, extra = parser.parse_known_args(argv)
    if extra:
        command = _command_parser(parser, argv)
        flags = [s for action in command._actions for s in action.option_strings]
        typed = [token.split("=")[0] for token in extra if token.startswith("-")]
        guesses = [_nearest_flag(flag, flags) for flag in typed if flag != "--devices"]
        hint = "; ".join(f"did you mean {guess}?" for guess in guesses if guess)
        if "--devices" in typed:  # not a misspelling ("did you mean --every?"): only train runs on several
            hint = "; ".join(filter(None, [f"{command.prog} runs in one process: only train takes --devices", hint]))
        command.error(f"unrecognized arguments: {' '.join(extra)}" + (f" ({hint})" if hint else ""))
    return args


def _refuse_empty_values(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """An empty value (`--config "$CONFIG"` with CONFIG unset, `--data=`, a positional "") is refused by its
    command, naming the flag: --config "" trained the defaults without a word, --data "" read the current folder."""
    for i, token in enumerate(argv):
        if token == "":
            flag = argv[i - 1] if i and argv[i - 1].startswith("--") else ""
        else:
            flag, equals, value = token.partition("=")
            if not (token.startswith("--") and equals and not value):
                continue
        said = f"{flag} is given an empty value" if flag else "an argument is empty"
        _command_parser(parser, argv).error(f"{said} (an unset shell variable?): give its value"
                                            + (f", or leave {flag} out" if flag else ""))


def _nearest_flag(typed: str, flags: list[str]) -> str | None:
    """The flag ``typed`` most likely meant: another tool's name for it (``--learning-rate``: ``--lr``,
    config_file.OTHER_NAMES), else the closest spelling among ``flags``."""
    from ..config_file import OTHER_NAMES

    other = OTHER_NAMES.get(typed.lstrip("-").lower().replace("-", "_"))
    if other is not None and "--" + other.replace("_", "-") in flags:
        return "--" + other.replace("_", "-")
    # a web server's --port, --host: the one flag named so with a prefix (--viewer-port; it said "--ckpt?")
    name = typed.lstrip("-")
    prefixed = [flag for flag in flags if flag.endswith("-" + name) and flag.startswith("--")]
    if len(prefixed) == 1 and len(name) >= 3:  # (not -s: --time-limit-s)
        return prefixed[0]
    return next(iter(difflib.get_close_matches(typed, flags, n=1, cutoff=0.6)), None)


def _command_parser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The (sub)command's own parser that ``argv`` names: ``data info`` -> data's info parser."""
    while True:
        subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = next((subcommands[0].choices[t] for t in argv if t in subcommands[0].choices), None) \
            if subcommands else None
        if chosen is None:
            return parser
        parser = chosen


def main(argv=None) -> int:
    from ..data.dataset import DataError
    from ..gui.launch import GuiUnavailable
    from ..interrupts import raise_swallowed
    from ..runs.checkpoint import CheckpointError
    from ..runs.distributed import PeerLost
    from ..runs.rank_env import rank_said, refuse_several
    from ..training.trainer import TrainingDiverged
    from ..viewer.server import ViewerUnavailable

    # what the user can fix where they are (a flag, a missing extra, no display): never a traceback
    user_errors = (UserError, GuiUnavailable, ViewerUnavailable)

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(build_parser(), argv)
    args.argv = argv  # for train --devices: what each rank runs
    try:
        raise_swallowed()  # a Ctrl-C that Taichi's kernel decorators swallowed while the commands were imported
        if args.command != "train":  # under torchrun every rank would do the whole job, into the same files
            refuse_several(f"taichi-nerf {args.command}")
        if " ".join(filter(None, (args.command, getattr(args, "data_command", None)))) in SAID_WHEN_TERMINATED:
            from ..interrupts import terminations_interrupt

            with terminations_interrupt():  # a scheduler's SIGTERM (or a hang-up) is said as a Ctrl-C is
                return args.run(args)
        return args.run(args)
    except (*user_errors, DataError, CheckpointError, ValueError) as exc:
        if os.environ.get("TAICHI_NERF_DEBUG") and not isinstance(exc, user_errors):
            raise  # a ValueError from a bug reads as a user error too: developers get the traceback
        said = in_flag_words(str(exc), args)  # each value as it was given: a flag, a --config file, a preset
        print(f"taichi-nerf: error: {rank_said()}{said}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `taichi-nerf eval ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the flush at exit is quiet too
        return 0
    except OSError as exc:  # unwritable output folder, full disk, ...
        # a failed rename names the file asked for (filename2), not the hidden temporary it was written as
        print(f"taichi-nerf: error: {rank_said()}{exc.filename2 or exc.filename or ''}: {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_USAGE
    except (TrainingDiverged, PeerLost) as exc:
        if not getattr(exc, "reported", False):
            print(f"taichi-nerf: training stopped: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        left = getattr(args, "left_when_interrupted", None)  # what its outputs are now (cli/interrupted.py)
        print("taichi-nerf: interrupted" + (f"; {left()}" if left else ""), file=sys.stderr)
        return EXIT_INTERRUPTED


__all__ = ["main", "build_parser", "UserError", "EXIT_USAGE", "EXIT_INTERRUPTED", "GUI_DEFAULT_OUT", "run_config",
           "config_overrides"]
