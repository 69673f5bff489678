"""What every command shares: the user-error type, the ``--arch`` flag, one flag per
TrainConfig field, and the run configuration that flags, ``--config`` and a resumed run make."""
from __future__ import annotations

import argparse

from ..backend import ARCH_CHOICES
from ..config_checks import without_none  # X | None -> X: None is a flag's "not given"

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


class UserError(Exception):
    """A mistake in the command line: one line on stderr, exit status 2."""


def counted(count: int, noun: str) -> str:
    """"1 image", "3 images": what the command lines print."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def add_arch(p):
    p.add_argument("--arch", choices=ARCH_CHOICES, default="auto",
                   help="compute backend (default: auto = CUDA if usable, else CPU)")


def add_config_flags(parser, names=None, *, shown_defaults=None) -> None:
    """One ``--kebab-case`` flag per TrainConfig field in ``names`` (default: every field), in
    the ``--help`` group the field declares, built from its type hint and metadata (config.py):
    ``Literal`` -> choices, ``bool`` -> ``--x/--no-x``, ``list[float]`` -> ``nargs`` values.
    Every flag defaults to None, so only the flags typed override a config (read them back
    with :func:`config_overrides`). ``shown_defaults``: a command's own default for ``--help``."""
    import dataclasses
    import typing

    from ..config import TrainConfig, field_types

    hints, shown_defaults, groups = field_types(), shown_defaults or {}, {}
    for f in dataclasses.fields(TrainConfig):
        if names is not None and f.name not in names:
            continue
        meta = f.metadata
        if meta["group"] not in groups:
            groups[meta["group"]] = parser.add_argument_group(f"{meta['group']} options")
        kind = without_none(hints[f.name])
        shown = shown_defaults.get(f.name, f.default)
        options = dict(dest=f.name, default=None, help=with_default(meta["help"], shown))
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is typing.Literal:
            options["choices"] = typing.get_args(kind)
        elif typing.get_origin(kind) is list:
            options.update(type=typing.get_args(kind)[0], nargs=meta["nargs"] or "+", metavar=meta["metavar"])
        else:
            options.update(type=kind, metavar=meta["metavar"] or _METAVARS[kind])
        groups[meta["group"]].add_argument(flag_of(f.name), *meta["aliases"], **options)


_METAVARS = {int: "N", float: "X", str: "TEXT"}


def flag_of(name: str) -> str:
    """A TrainConfig field's own flag: ``time_limit_s`` -> ``--time-limit-s`` (aliases beside it)."""
    return "--" + name.replace("_", "-")


def with_default(text: str, default) -> str:
    """Help text + its default, inside a closing parenthesis when there is one; escaped for argparse."""
    if default is not None:
        shown = ("on" if default else "off") if isinstance(default, bool) else default
        text = text[:-1] + f"; default: {shown})" if text.endswith(")") else text + f" (default: {shown})"
    return text.replace("%", "%%")


class HelpFormatter(argparse.HelpFormatter):
    """Wider flag column, and ``--samples-per-ray, --samples N`` instead of repeating the metavar."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=32)

    def _format_action_invocation(self, action):
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        metavar = self._format_args(action, self._get_default_metavar_for_optional(action))
        return ", ".join(action.option_strings) + " " + metavar


def config_overrides(args) -> dict:
    """The TrainConfig fields whose flag was given on the command line."""
    import dataclasses

    from ..config import TrainConfig

    given = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(TrainConfig)}
    return {name: value for name, value in given.items() if value is not None}


def run_config(args, resume_from=None, default=None):
    """The run's TrainConfig: the resumed run's config (``resume_from``: its folder or checkpoint),
    else the --config file, else ``default`` (TrainConfig()); then --preset, if given, over it;
    then every other flag given on top (TrainConfig.replace applies a preset first)."""
    from ..config import TrainConfig
    from ..runs.run_folder import resume_config

    given = config_overrides(args)
    if resume_from is not None:
        cfg = resume_config(resume_from)
        given.pop("out", None)  # a resumed run stays in its folder
        given.setdefault("arch", "auto")  # it may be on another machine: pick the backend afresh unless --arch says
        if given.get("preset") not in (None, cfg.preset):
            raise UserError(f"--preset {given['preset']} sets a model of its own, and a resumed run keeps the one it "
                            "trained: drop --preset (or start a new run with it and another --out)")
        given.pop("preset", None)  # the run's own: applied again, it would reset what the run set over it
        resumed = cfg.replace(**given)
        changed = [f"{name} {getattr(cfg, name)} -> {getattr(resumed, name)}" for name in given
                   if name not in ("arch", "progress") and getattr(cfg, name) != getattr(resumed, name)]
        if changed:  # said, as they outlive this command: the run's config.json keeps them
            print(f"note: changed for the rest of the run (and kept in its config.json): {', '.join(changed)}")
        return resumed
    if getattr(args, "config", None):
        cfg = TrainConfig.from_file(args.config)
    else:
        cfg = default or TrainConfig()
    return cfg.replace(**given)


BAD_CONFIGURATION = "bad configuration: "  # TrainConfig.validate's message


def in_flag_words(message: str) -> str:
    """TrainConfig.validate's "bad configuration: batch_rays must be ...; time_limit_s ..." as the
    flags the user typed: "--batch-rays must be ...; --time-limit/--time-limit-s ..." (each problem
    starts with its field; a field with an alias names both spellings). Not for a --config file's
    values, which the user wrote as fields."""
    import dataclasses

    from ..config import TrainConfig

    if not message.startswith(BAD_CONFIGURATION):
        return message
    flags = {f.name: "/".join((*f.metadata["aliases"], flag_of(f.name))) for f in dataclasses.fields(TrainConfig)}
    problems = []
    for problem in message[len(BAD_CONFIGURATION):].split("; "):
        name, _, rest = problem.partition(" ")
        problems.append(f"{flags[name]} {rest}" if name in flags and rest else problem)
    return BAD_CONFIGURATION + "; ".join(problems)
