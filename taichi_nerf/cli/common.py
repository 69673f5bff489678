"""What every command shares: the user-error type, the ``--arch`` flag, one flag per
TrainConfig field, the run configuration that flags, ``--config`` and a resumed run make, and
the browser viewer's flags (``train --viewer web``, ``gui --web``, ``view``) with the checks
that more than one command makes."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..backend import ARCH_CHOICES
from ..config_checks import without_none  # X | None -> X: None is a flag's "not given"

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


class UserError(Exception):
    """A mistake in the command line: one line on stderr, exit status 2."""


def add_arch(p):
    p.add_argument("--arch", choices=ARCH_CHOICES, default="auto",
                   help="compute backend (default: auto = CUDA if usable, else CPU)")


def at_least(args, minimums: dict[str, float]) -> None:
    """Refuse the first of these flags (``{"--views": 1, "--size": 8}``) below its minimum, naming
    it and the value given; flags left out (None) pass."""
    for flag, minimum in minimums.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None and value < minimum:
            floor = "not be negative" if minimum == 0 else f"be at least {minimum:g}"
            raise UserError(f"{flag} must {floor}, got {value:g}")


def check_seconds(seconds: float | None) -> None:
    """``--seconds`` (gui, view): leave after this long."""
    if seconds is not None and not seconds > 0:
        raise UserError(f"--seconds must be positive, got {seconds:g}")


def check_file_to_write(flag: str, path) -> None:
    """A file a session writes as it goes or at its end (gui's ``--screenshot``, gui's and view's ``--status``):
    refused before the session, whose end or first frame would otherwise fail."""
    from ..files import check_writable_file

    if not path:
        return
    try:
        check_writable_file(path)
    except IsADirectoryError:
        raise UserError(f"{flag} {path} is a folder: give the file to write") from None
    except OSError as exc:
        raise UserError(f"{flag} {path}: {exc.filename}: {exc.strerror}") from None


def check_video_frames(frames: int) -> None:
    """The panel's videos' ``--video-frames`` (gui, view; train's own, 0 for none, is checked there)."""
    if frames < 1:
        raise UserError(f"--video-frames must be at least 1 (the frames of the videos it records), got {frames}")


def add_viewer_flags(parser, *, choice: bool = False) -> None:
    """``--viewer-host``, ``--viewer-port``, ``--viewer-resolution``; with ``choice`` also
    ``--viewer none|web`` and ``--viewer-quit-at-end`` (train)."""
    from ..viewer.server import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_RESOLUTION

    group = parser.add_argument_group("browser viewer options")
    if choice:
        group.add_argument("--viewer", choices=("none", "web"), default="none",
                           help="web: watch and steer training in a browser (needs taichi-nerf[viewer]; default: none)")
        group.add_argument("--viewer-quit-at-end", action="store_true",
                           help="leave when training ends (default: the viewer stays open on the field until Ctrl-C)")
    group.add_argument("--viewer-host", default=DEFAULT_HOST, metavar="ADDR",
                       help="address the viewer listens on (default: 127.0.0.1, this machine only: reach it with "
                            "ssh -L; 0.0.0.0 lets anyone who reaches the port watch and steer the run)")
    group.add_argument("--viewer-port", type=int, default=DEFAULT_PORT, metavar="PORT",
                       help=f"port (default: {DEFAULT_PORT}; the next free one when taken, and it says so; 0: any)")
    group.add_argument("--viewer-resolution", type=int, default=DEFAULT_RESOLUTION, metavar="PX",
                       help=f"longest side of the rendered picture (default: {DEFAULT_RESOLUTION}; the panel's "
                            "resolution cap changes it)")


def check_before_serving(ckpt, arch: str) -> None:
    """What would refuse a browser session after its server announced an address that then goes away,
    said first in one line: a checkpoint that cannot be read (``ckpt``; None: none is opened) and an
    ``--arch`` this machine cannot run."""
    from ..backend import resolve_arch
    from ..runs.checkpoint import read_state

    if ckpt is not None:
        read_state(ckpt)  # a damaged file too, not only one that is no checkpoint at all
    resolve_arch(arch)


def check_viewer_flags(args) -> None:
    """The browser viewer's flags, before its server opens (and before anything on disk changes)."""
    from ..viewer.server import check_address

    if args.viewer_resolution < 16:
        raise UserError(f"--viewer-resolution must be at least 16, got {args.viewer_resolution}")
    check_address(args.viewer_host, args.viewer_port)


def refuse_unused_viewer_flags(args, opens_it: str) -> None:
    """The browser viewer's flags, given where no browser viewer opens (``opens_it``, the flag that
    would open one, is not given): refused, as nothing would read them."""
    from ..viewer.server import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_RESOLUTION

    unused = [flag for flag, value, default in (("--viewer-host", args.viewer_host, DEFAULT_HOST),
                                                ("--viewer-port", args.viewer_port, DEFAULT_PORT),
                                                ("--viewer-resolution", args.viewer_resolution, DEFAULT_RESOLUTION),
                                                ("--viewer-quit-at-end", getattr(args, "viewer_quit_at_end", False),
                                                 False))
              if value != default]
    if unused:
        raise UserError(f"{' and '.join(unused)} {'go' if len(unused) > 1 else 'goes'} with the browser viewer, "
                        f"which only {opens_it} opens: add {opens_it}, or drop {'them' if len(unused) > 1 else 'it'}")


def viewer_options(args):
    """The browser viewer's options from a command's flags (those it has)."""
    from ..viewer.session import ViewerOptions
    from ..viewing import VIDEO_FRAMES

    # train's --video-frames is its own video's (None: the default, 0: none): the panel's videos then take 36
    frames = getattr(args, "video_frames", None) or VIDEO_FRAMES
    return ViewerOptions(resolution_cap=args.viewer_resolution, video_frames=frames,
                         steps_per_frame=getattr(args, "steps_per_frame", None),
                         max_seconds=getattr(args, "seconds", None), status_path=getattr(args, "status", None))


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
            options.update(type=whole_number if kind is int else kind, metavar=meta["metavar"] or _METAVARS[kind])
        groups[meta["group"]].add_argument(flag_of(f.name), *meta["aliases"], **options)


_METAVARS = {int: "N", float: "X", str: "TEXT"}


def whole_number(text: str) -> int:
    """A count flag's value: ``20000``, or a whole number written as a float (``1e4``, ``20000.0``), as a --config
    file's is taken (``--steps 1e4`` was "invalid int value: '1e4'")."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value.is_integer():
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r} (a whole number: 20000, 2e4)")
    return int(value)


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
    from ..runs.checkpoint import ARCHITECTURE_KEYS
    from ..runs.run_folder import check_resume, resume_config
    from ..wording import setting_words

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
        kept = [f"{flag_of(name)} {getattr(resumed, name)} (it trained {getattr(cfg, name)})" for name in given
                if name in ARCHITECTURE_KEYS and getattr(cfg, name) != getattr(resumed, name)]
        if kept:  # refused before the note below says they are kept
            raise UserError(f"a resumed run keeps the model it trained: {', '.join(kept)}; drop it, or start a new "
                            f"run with it and another --out")
        changed = [f"{flag_of(name)} {setting_words(getattr(cfg, name))} -> {setting_words(getattr(resumed, name))}"
                   for name in given  # as flags say them: not "mixed_precision None -> True"
                   if name not in ("arch", "progress") and getattr(cfg, name) != getattr(resumed, name)]
        if changed and says_once(args):  # said, as they outlive this command: the run's config.json keeps them
            check_resume(resume_from, resumed)  # a total below the run's is refused before the note keeps it
            said = "a real start would change, for the rest of the run (and keep in its config.json)" \
                if getattr(args, "dry_run", False) else "changed for the rest of the run (and kept in its config.json)"
            args.resume_note = f"note: {said}: {', '.join(changed)}"  # said once open_run took them: say_resume_note
        edits = config_json_edits(resume_from, cfg, given)
        if edits and says_once(args):
            args.resume_note = "\n".join(filter(None, [getattr(args, "resume_note", None), edits]))
        return resumed
    if not getattr(args, "config", None):
        return (default or TrainConfig()).replace(**given)
    cfg = TrainConfig.from_file(args.config)
    result = cfg.replace(**given)
    if given.get("preset") is not None and says_once(args):  # the preset goes over the file: say what it replaced
        in_file = config_file_values(args.config)  # (read and checked by from_file just now)
        replaced = [f"{name} {getattr(cfg, name)} -> {getattr(result, name)}" for name in in_file
                    if name != "preset" and name not in given and getattr(cfg, name) != getattr(result, name)]
        if replaced:
            print(f"note: --preset {given['preset']} replaced what {args.config} set: {', '.join(replaced)} "
                  f"(a flag typed beside them wins over both)")
    return result


def config_json_edits(resume_from, saved, given: dict) -> str:
    """A note when the run's config.json says other than its checkpoint (``saved``) where no flag (``given``)
    speaks: a resume takes the checkpoint's settings and writes config.json again, so a hand edit there
    (``"steps": 5000``) was undone without a word, the run ending at its old total. "" when they agree."""
    import json
    import shlex

    from ..runs.checkpoint import ARCHITECTURE_KEYS

    folder = Path(resume_from)
    path = (folder if folder.is_dir() else folder.parent) / "config.json"
    again = "a resume takes the run's settings from its checkpoint and writes config.json again"
    try:
        written = json.loads(path.read_text(encoding="utf-8-sig"))  # a hand edit in a Windows editor: a BOM first
    except FileNotFoundError:
        return ""
    except (OSError, ValueError) as exc:
        return f"note: {path} does not read ({exc}); {again}"
    if not isinstance(written, dict):
        return f"note: {path} is not a JSON object; {again}"
    own = saved.to_dict()
    edited = [name for name, value in written.items() if name in own and name not in given
              and name not in ("out", "arch", "progress") and value is not None and value != own[name]]
    if not edited:
        return ""
    said = ", ".join(f"{name} {json.dumps(written[name])} (the checkpoint's: {json.dumps(own[name])})"
                     for name in edited)
    model = [name for name in edited if name in ARCHITECTURE_KEYS]
    flags = " ".join(flag_words(name, written[name]) for name in edited if name not in model)
    how = [f"give a change as a flag: taichi-nerf train --resume {shlex.quote(str(folder))} {flags}"] if flags else []
    if model:  # refused as flags: the checkpoint's weights are of its model
        how.append(f"{', '.join(model)} {'are' if len(model) > 1 else 'is'} the model's, which a resume keeps")
    return f"note: {path} says {said}: {again}; {'; '.join(how)}"


def flag_words(name: str, value) -> str:
    """The flag that sets field ``name`` to ``value``, as typed: ``--steps 5000``, ``--no-ndc``, ``--aabb -1 ...``."""
    import shlex

    if isinstance(value, bool):
        return flag_of(name) if value else "--no-" + name.replace("_", "-")
    values = value if isinstance(value, list) else [value]
    return " ".join([flag_of(name), *(shlex.quote(str(v)) for v in values)])


def say_resume_note(args) -> None:
    """What :func:`run_config` found a resume's flags change, said once the run's checks passed (open_run):
    said before, it called "kept" data options that moved the scene, which open_run then refused."""
    note = getattr(args, "resume_note", None)
    if note:
        print(note)
        args.resume_note = None


def refuse_builtin_scene_flags(args, cfg) -> None:
    """``--scene-views``/``--scene-size`` typed for a run on a dataset (``cfg.data``): refused, as
    they size only the built-in scene and nothing would read them."""
    typed = [flag_of(name) for name in ("scene_views", "scene_size") if name in config_overrides(args)]
    if typed and cfg.data is not None:
        raise UserError(f"{' and '.join(typed)} {'size' if len(typed) > 1 else 'sizes'} the built-in scene, and this "
                        f"run trains on {cfg.data}: drop {'them' if len(typed) > 1 else 'it'}")


def says_once(args) -> bool:
    """Whether this process says what every process of a run would: rank 0 under torchrun, and not
    ``train --devices N``'s launcher, whose ranks say it (each is a ``taichi-nerf train`` of its own)."""
    from ..runs.rank_env import environment

    rank, _, size, _ = environment()
    return rank == 0 and not (size == 1 and getattr(args, "devices", 1) > 1)


BAD_CONFIGURATION = "bad configuration: "  # TrainConfig.validate's message


def in_flag_words(message: str, args=None) -> str:
    """TrainConfig.validate's "bad configuration: batch_rays must be ...; time_limit_s ..." in the
    user's words, each problem where its value came from: a flag typed ("--batch-rays must be ...";
    a field with an alias names both spellings), the --config file ("c.json: steps must be ..."),
    or a preset a flag made invalid ("--intervals gaps needs ... (from --preset keras)")."""
    import dataclasses

    from ..config import TrainConfig
    from ..presets import PRESETS

    if not message.startswith(BAD_CONFIGURATION):
        return message
    flags = {f.name: "/".join((*f.metadata["aliases"], flag_of(f.name))) for f in dataclasses.fields(TrainConfig)}
    typed = set(config_overrides(args)) if args is not None else set()
    config = getattr(args, "config", None)
    written = config_file_values(config)
    preset = getattr(args, "preset", None) or written.get("preset")
    source = f"--preset {preset}" if getattr(args, "preset", None) else f"the preset {preset} in {config}"
    preset_values = PRESETS[preset].values if preset in PRESETS else {}
    problems = []
    for problem in message[len(BAD_CONFIGURATION):].split("; "):
        name, _, rest = problem.partition(" ")
        if name not in flags or not rest:
            problems.append(problem)
        elif name not in typed and name in written:
            problems.append(f"{config}: {problem}")
        elif name not in typed and name in preset_values:
            problems.append(f"{flags[name]} {rest} (from {source})")
        elif name not in typed and config:
            problems.append(problem)  # a default the file left: its field's name, as the file would write it
        else:
            problems.append(f"{flags[name]} {rest}")
    return BAD_CONFIGURATION + "; ".join(problems)


def config_file_values(path) -> dict:
    """The --config file's own values ({} without one, or one that does not read as an object)."""
    from ..config_file import read_values

    try:
        return read_values(path) if path else {}
    except ValueError:
        return {}
