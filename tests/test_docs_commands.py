"""The docs never lie about the command line. Every ``taichi-nerf ...``, ``python -m taichi_nerf
...``, ``torchrun ... -m taichi_nerf ...`` and ``python scripts/benchmark.py ...`` written in a
code block or inline code of README.md, CONTRIBUTING.md or docs/*.md is read against the parser
the program itself builds (``taichi_nerf.cli.build_parser``, ``scripts.bench.build_parser``):
its (sub)subcommands exist, every ``--flag`` after them is one that command takes by its full
name (argparse would take a prefix; a doc must not rely on it), a value written for a flag with
choices is one of them, and a code block's command, meant to be pasted, parses as a whole
(required flags, numbers of values). Inline code that starts with a subcommand (``train --viewer
web``) is read the same way. The files, modules and links the docs name exist, and a
``scripts/X.py --flag`` is a flag that script defines.
"""
from __future__ import annotations

import argparse
import ast
import functools
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^\s*(```|~~~)")
# inline code: one or more backticks, the text, the same run of backticks; not across a blank line
INLINE = re.compile(r"(`+)((?:(?!\n[ \t]*\n).)+?)\1", re.S)
# what starts a command; a name inside a word or path (`taichi-nerf[colmap]`, `my/benchmark.py`) does not
LAUNCHER = re.compile(r"(?<![\w./'\"\[-])(?:(?P<cli>taichi-nerf|python3? -m taichi_nerf|torchrun\b.*?-m taichi_nerf)"
                      r"|(?P<bench>(?:python3? )?(?:\./)?(?:scripts/)?benchmark\.py))(?=\s|$)")
SCRIPT = re.compile(r"(?<![\w./-])(?:python3? )?(?P<path>scripts/\w+\.py)(?P<rest>(?:\s+[^\s#;&|]+)*)")
ENDS = {"#", "&&", "||", ";", ">", ">>", "2>&1", "|"}  # a comment, the next command, a redirect
PLACEHOLDER = re.compile(r"^(<.*>|[A-Z][A-Z0-9_]*|\.\.\.|…)$")  # SUBCOMMAND, <path>, ...


def code_texts(markdown: str) -> list[tuple[int, str, bool]]:
    """(line number, text, inline) of every piece of code: each logical line of a fenced block
    (continuation lines ending in ``\\`` joined) and each inline code span outside them."""
    pieces, prose, fenced, pending, start = [], [], False, "", 0
    for number, line in enumerate(markdown.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            prose.append("")
            continue
        if not fenced:
            prose.append(line)
            continue
        prose.append("")
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        pieces.append((start, pending + line, False))
        pending = ""
    text = "\n".join(prose)
    for match in INLINE.finditer(text):
        code = match.group(2).replace("\\|", "|").replace("\n", " ")  # `\|` escapes a table's pipe
        pieces.append((text.count("\n", 0, match.start()) + 1, code, True))
    return sorted(pieces)


def words_of(rest: str) -> list[str]:
    """The words of a command line up to its end (a comment, ``&&``, a pipe outside ``[...]``),
    brackets and quotes taken off: ``[--data DIR | --ckpt RUN [--train]]`` -> its flags and words."""
    words, depth = [], 0
    for word in rest.split():
        if depth == 0 and (word in ENDS or word.startswith("#")):
            break
        depth = max(0, depth + word.count("[") - word.count("]"))
        word = word.strip("[]()\"',;")
        if word:
            words.append(word)
    return words


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: action for action in parser._actions for s in action.option_strings}


def _value_problems(action: argparse.Action, value: str, prog: str) -> list[str]:
    """A value written for an option with choices (``--arch auto|cuda|cpu``) is one of them."""
    if not action.choices or value.startswith("-") or action.nargs not in (None, "?"):
        return []
    return [f"`{prog}` {action.option_strings[-1]} has no choice {piece!r}" for piece in value.split("|")
            if not PLACEHOLDER.match(piece) and piece not in action.choices]


def check_words(parser: argparse.ArgumentParser, words: list[str], prog: str) -> list[str]:
    """What is wrong with ``prog WORDS`` for ``parser``: a subcommand it does not have, a flag the
    (sub)command named does not take, a value not among a flag's choices. A placeholder in a
    subcommand's place ends the check."""
    problems, options = [], _options(parser)
    for i, word in enumerate(words):
        if word.startswith("-"):
            for flag, _, value in (w.partition("=") for w in word.split("|")):
                if not re.match(r"^(--[a-zA-Z]|-[a-zA-Z]$)", flag):
                    continue  # `-1.5`, `--`
                if flag not in options:
                    problems.append(f"`{prog}` has no option {flag}")
                elif value or i + 1 < len(words):
                    problems += _value_problems(options[flag], value or words[i + 1], prog)
            continue
        subcommands = _subcommands(parser)
        if subcommands is None:
            continue  # a positional argument or a flag's value
        if PLACEHOLDER.match(word):
            return problems
        for name in word.split("|"):  # `export mesh|points`
            if name not in subcommands.choices:
                problems.append(f"`{prog}` has no subcommand {name!r}")
            else:
                problems += check_words(subcommands.choices[name], words[i + 1:], f"{prog} {name}")
        return problems
    return problems


class Refused(Exception):
    pass


def _refuse(prog: str, message: str):
    raise Refused(f"{prog}: {message}")


def parse_problem(parser: argparse.ArgumentParser, words: list[str]) -> str | None:
    """Why the parser refuses a whole command (a code block's, to be pasted as it is), if it does:
    a required argument left out, a wrong number of values. A placeholder where a number goes
    (``--steps N``) is no problem."""
    try:
        parser.parse_args(words)
    except Refused as refused:
        said = str(refused)
        value = re.search(r"invalid (?:\w+ value|choice): '(.*?)'", said)
        return None if value and PLACEHOLDER.match(value.group(1)) else said
    except SystemExit:  # --help, --version
        pass
    return None


@functools.lru_cache(maxsize=None)
def parsers() -> dict[str, argparse.ArgumentParser]:
    from scripts.bench import build_parser as benchmark_parser
    from taichi_nerf.cli import build_parser

    made = {"cli": build_parser(), "bench": benchmark_parser()}
    for parser in made.values():  # refusals raise Refused instead of printing usage and exiting
        stack = [parser]
        while stack:
            stack[-1].error = functools.partial(_refuse, stack[-1].prog)
            subcommands = _subcommands(stack.pop())
            stack += list(subcommands.choices.values()) if subcommands else []
    return made


def command_problems(markdown: str, where: str) -> list[str]:
    """Every command of ``markdown`` read against the real parsers; one line per problem, with
    ``where:LINE``."""
    problems = []
    cli = parsers()["cli"]
    top = _subcommands(cli).choices
    for line, code, inline in code_texts(markdown):
        found = list(LAUNCHER.finditer(code))
        for match in found:
            kind = "cli" if match.group("cli") else "bench"
            prog = "taichi-nerf" if kind == "cli" else "benchmark.py"
            words = words_of(code[match.end():])
            said = check_words(parsers()[kind], words, prog)
            if not said and not inline and not any("|" in w or w in ("...", "…", "-h", "--help", "--version")
                                                   for w in words):
                said = [p for p in [parse_problem(parsers()[kind], words)] if p]
            problems += [f"{where}:{line}: {p} (in {code.strip()!r})" for p in said]
        first = code.split()[0] if code.split() else ""
        if inline and not found and first in top and re.search(r"\s--\w", code):  # `train --viewer web`
            said = check_words(cli, words_of(code), "taichi-nerf")
            problems += [f"{where}:{line}: {p} (in {code.strip()!r})" for p in said]
    return problems


def script_flag_problems(markdown: str, where: str) -> list[str]:
    """``scripts/X.py --flag``: X.py exists and defines ``--flag`` (``add_argument(..., "--flag"``:
    scripts that build their parser inside ``main`` cannot be asked for it cheaply; their source
    can, though not from a flag it only passes on to a command it runs). Words after a bare ``--``
    are that command's. benchmark.py is read above."""
    problems = []
    for line, code, _ in code_texts(markdown):
        for match in SCRIPT.finditer(code):
            path = ROOT / match.group("path")
            if path.name == "benchmark.py":
                continue
            if not path.is_file():
                problems.append(f"{where}:{line}: {match.group('path')} does not exist")
                continue
            source, words = path.read_text(), words_of(match.group("rest"))
            words = words[:words.index("--")] if "--" in words else words  # after `--`: another command's flags
            for flag in re.findall(r"(?<!\S)(--[a-zA-Z][\w-]*)", " ".join(words)):
                if not re.search(rf"""add_argument\((?:\s*["'][\w-]+["'],)*\s*["']{flag}["']""", source):
                    problems.append(f"{where}:{line}: {match.group('path')} has no option {flag}")
    return problems


@pytest.mark.parametrize("script", sorted((ROOT / "scripts").rglob("*.py")),
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_command_a_script_shows_in_its_help_is_one_it_accepts(script):
    """A script's docstring is its ``--help``: the command lines it shows (``python scripts/...``, read
    as a code block's) name subcommands and flags that exist."""
    where = f"{script.relative_to(ROOT).as_posix()}'s docstring"  # its lines counted from the fence below
    lines = (ast.get_docstring(ast.parse(script.read_text())) or "").splitlines()
    commands = (line[line.find("python scripts/"):] if "python scripts/" in line else "" for line in lines)
    text = "\n".join(["```", *commands, "```"])
    assert command_problems(text, where) + script_flag_problems(text, where) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_documented_command_is_one_the_cli_accepts(doc):
    where = doc.relative_to(ROOT).as_posix()
    text = doc.read_text()
    assert command_problems(text, where) + script_flag_problems(text, where) == []


def test_the_docs_hold_commands_to_check():
    # guards the scan itself: if it found nothing, the test above would pass vacuously
    found = [m.group(0) for doc in DOCS for _, code, _ in code_texts(doc.read_text()) for m in LAUNCHER.finditer(code)]
    assert sum(m.startswith("taichi-nerf") for m in found) > 50
    assert any(m.startswith("torchrun") for m in found) and any("benchmark.py" in m for m in found)


def test_a_wrong_command_in_a_doc_is_reported():
    doc = "\n".join([
        "Run `taichi-nerf train --stpes 10` or `taichi-nerf train --step 10` (a prefix: refused too).",
        "```bash",
        "taichi-nerf data info PATH --near 2 \\",
        "    --bogus-flag 3   # a continuation line",
        "taichi-nerf data from-foto DIR --out X",
        "taichi-nerf exprot mesh --ckpt RUN",
        "taichi-nerf export mesh|dots --ckpt RUN",
        "torchrun --nproc-per-node 2 -m taichi_nerf train --dta DIR",
        "python scripts/benchmark.py matrix --no-such-thing",
        "python scripts/viewer_bench.py --no-such-thing",
        "python scripts/gone.py",
        "taichi-nerf train --arch tpu --steps N",
        "taichi-nerf data synthetic --views 4",
        "taichi-nerf train --aabb 1 2 3",
        "```",
        "In a table: `taichi-nerf gui [--data DIR \\| --ckpt RUN [--trian]]`; `render --sprial`;",
        "`taichi-nerf export points --views train|all` (prose may leave out a required flag: `eval --split val`)",
        # what is right, including placeholders, `...`, values that look like flags and a comment
        "`taichi-nerf COMMAND --help`, `taichi-nerf train ... --out runs/x`, `taichi-nerf --version`",
        "```",
        "taichi-nerf data info PATH --aabb -1.5 -1.5 -1.5 1.5 1.5 1.5   # --not-a-flag in a comment",
        "python -m taichi_nerf export points --ckpt <run> --max-points 10 && ls --color",
        "python scripts/benchmark.py SUBCOMMAND --help",
        "```",
    ])
    problems = command_problems(doc, "doc.md") + script_flag_problems(doc, "doc.md")
    expected = ["doc.md:1: `taichi-nerf train` has no option --stpes",
                "doc.md:1: `taichi-nerf train` has no option --step",
                "doc.md:3: `taichi-nerf data info` has no option --bogus-flag",
                "doc.md:5: `taichi-nerf data` has no subcommand 'from-foto'",
                "doc.md:6: `taichi-nerf` has no subcommand 'exprot'",
                "doc.md:7: `taichi-nerf export` has no subcommand 'dots'",
                "doc.md:8: `taichi-nerf train` has no option --dta",
                "doc.md:9: `benchmark.py matrix` has no option --no-such-thing",
                "doc.md:10: scripts/viewer_bench.py has no option --no-such-thing",
                "doc.md:11: scripts/gone.py does not exist",
                "doc.md:12: `taichi-nerf train` --arch has no choice 'tpu'",
                "doc.md:13: taichi-nerf data synthetic: the following arguments are required: --out",
                "doc.md:14: taichi-nerf train: argument --aabb: expected 6 arguments",
                "doc.md:16: `taichi-nerf gui` has no option --trian",
                "doc.md:16: `taichi-nerf render` has no option --sprial",
                "doc.md:17: `taichi-nerf export points` --views has no choice 'all'"]
    assert sorted(p.split(" (in ")[0] for p in problems) == sorted(expected)


def test_a_script_flag_is_one_it_defines_not_one_it_passes_on():
    doc = ("`python scripts/gui_fps.py --seconds 9 -- --data DIR --turn-evry 3`\n"
           "`python scripts/distributed_bench.py --devices 2` (a flag of the `train` it runs)\n")
    assert script_flag_problems(doc, "doc.md") == ["doc.md:2: scripts/distributed_bench.py has no option --devices"]


PATH_TEXT = re.compile(r"(?<![\w./-])((?:taichi_nerf|scripts|tests|docs)/[\w./-]*[\w/])")
MODULE_TEXT = re.compile(r"(?<![\w./-])(taichi_nerf(?:\.\w+)+)")
LINK = re.compile(r"\]\(([^)\s#]*)(#[^)\s]*)?\)")


def _defines(source: Path, name: str) -> bool:
    return bool(re.search(rf"^\s*(?:def|class)\s+{name}\b|^{name}\s*[:=]", source.read_text(), re.M))


def _module_path(dotted: str) -> Path | None:
    path = ROOT.joinpath(*dotted.split("."))
    return next((p for p in (path.with_suffix(".py"), path / "__init__.py") if p.is_file()), None)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but ``-`` and ``_`` dropped, spaces to ``-``."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(markdown: str) -> set[str]:
    """The anchors of a doc's headings (a ``# comment`` in a code block is none)."""
    anchors, fenced = set(), False
    for line in markdown.splitlines():
        fenced ^= bool(FENCE.match(line))
        if not fenced and (heading := re.match(r"^#+\s+(.*)$", line)):
            anchors.add(_slug(heading.group(1)))
    return anchors


def reference_problems(markdown: str, doc: Path) -> list[str]:
    """Files and folders (``taichi_nerf/...``, ``scripts/...``; ``scripts/gpu_check.run_tests``:
    a name in a module), modules (``taichi_nerf.runs.checkpoint``) and relative links, with their
    anchors, that the doc names but that do not exist."""
    where, problems = doc.relative_to(ROOT).as_posix() if doc.is_relative_to(ROOT) else doc.name, []
    for number, line in enumerate(markdown.splitlines(), 1):
        for path in PATH_TEXT.findall(line):
            stem, _, name = path.rpartition(".")
            if not (ROOT / path).exists() and not (stem and Path(ROOT / f"{stem}.py").is_file()
                                                    and _defines(ROOT / f"{stem}.py", name)):
                problems.append(f"{where}:{number}: {path} does not exist")
        for dotted in MODULE_TEXT.findall(line):
            module, _, name = dotted.rpartition(".")
            if name.startswith("__") or _module_path(dotted) is not None:  # taichi_nerf.__file__
                continue
            if _module_path(module) is None or not hasattr(importlib.import_module(module), name):
                problems.append(f"{where}:{number}: no module {dotted}")
        for target, anchor in LINK.findall(line):
            linked = doc.parent / target
            if target.startswith(("http:", "https:", "mailto:")):
                continue
            if target and not linked.exists():
                problems.append(f"{where}:{number}: link to {target}, which does not exist")
            elif anchor and (not target or linked.suffix == ".md") and anchor[1:] not in \
                    _anchors(linked.read_text() if target else markdown):
                problems.append(f"{where}:{number}: link to {target}{anchor}, a heading it does not have")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_file_module_and_link_a_doc_names_exists(doc):
    assert reference_problems(doc.read_text(), doc) == []


def test_a_missing_file_module_or_link_is_reported():
    doc = ("See taichi_nerf/stages/packing.py, `scripts/gpu_check.run_tests`, taichi_nerf.runs.checkpoint.load,\n"
           "[DATASETS](docs/DATASETS.md#your-own-photos) and [the top](#the-top).\n"
           "# The top\n"
           "Gone: taichi_nerf/stages/gone.py, scripts/gpu_check.no_such_name, taichi_nerf.runs.gone,\n"
           "[x](docs/GONE.md), [y](docs/DATASETS.md#no-such-heading).\n")
    assert [p.split(": ", 1)[1] for p in reference_problems(doc, ROOT / "doc.md")] == [
        "taichi_nerf/stages/gone.py does not exist", "scripts/gpu_check.no_such_name does not exist",
        "no module taichi_nerf.runs.gone", "docs/GONE.md does not exist", "link to docs/GONE.md, which does not exist",
        "link to docs/DATASETS.md#no-such-heading, a heading it does not have"]


def test_every_file_the_help_names_exists():
    # the CLI's own docs: `--preset ... see taichi_nerf/presets.py`, `--format ... see docs/DATASETS.md`
    texts, stack = [], list(parsers().values())
    while stack:
        parser = stack.pop()
        texts += [parser.description or ""] + [action.help or "" for action in parser._actions]
        texts += [group.description or "" for group in parser._action_groups]
        stack += list(_subcommands(parser).choices.values()) if _subcommands(parser) else []
    named = {path for text in texts for path in PATH_TEXT.findall(text)}
    assert "taichi_nerf/presets.py" in named and "docs/DATASETS.md" in named
    assert sorted(path for path in named if not (ROOT / path).exists()) == []


def test_every_flag_the_help_names_is_one_that_command_takes():
    # `data info --limit` and `gui --limit` said "... on --resume", a flag neither has (benchmark.py's
    # help names the flags of the `taichi-nerf train` it runs)
    problems, stack = [], [parsers()["cli"]]
    while stack:
        parser = stack.pop()
        options = _options(parser)
        texts = [parser.description or "", parser.epilog or ""] + [action.help or "" for action in parser._actions]
        texts += [group.title or "" for group in parser._action_groups]
        problems += [f"{parser.prog}: {flag}" for text in texts
                     for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", text) if flag not in options]
        stack += list(_subcommands(parser).choices.values()) if _subcommands(parser) else []
    assert problems == []


def test_every_flag_and_argument_of_the_cli_has_help():
    # `data from-mesh --val-views` and every command's `--no-progress` showed in --help with nothing beside them
    bare, stack = [], [parsers()["cli"]]
    while stack:
        parser = stack.pop()
        bare += [f"{parser.prog} {'/'.join(action.option_strings) or action.dest}" for action in parser._actions
                 if not action.help and not isinstance(action, argparse._SubParsersAction)]
        stack += list(_subcommands(parser).choices.values()) if _subcommands(parser) else []
    assert bare == []


DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
MACHINE = re.compile(r"\b(CPU-2|H200|H100|Xeon|EPYC)\b")


def unlabelled_measurements(markdown: str) -> list[str]:
    """The sections (``##``, ``###``) of docs/BENCHMARKS.md holding a table of numbers without a
    date (in the heading or the text) and a machine (there, or in the ``##`` section's heading)."""
    sections, fenced, parent = [], False, ""
    for line in markdown.splitlines():
        fenced ^= bool(FENCE.match(line))
        heading = None if fenced else re.match(r"^(#{2,})\s+(.*)$", line)
        if heading:
            parent = line if len(heading.group(1)) == 2 else parent
            sections.append([line, parent, []])
        elif sections:
            sections[-1][2].append(line)
    problems = []
    for heading, parent, body in sections:
        text = "\n".join([heading, *body])
        if not any(line.startswith("|") and re.search(r"\d", line) and not re.fullmatch(r"[|:\- ]+", line)
                   for line in body):
            continue
        if not DATE.search(text):
            problems.append(f"{heading}: no date")
        if not MACHINE.search(text + parent):
            problems.append(f"{heading}: no machine")
    return problems


def test_every_measured_table_in_the_benchmarks_says_when_and_on_what():
    text = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    assert unlabelled_measurements(text) == []
    sample = "## A (CPU-2)\n\n| x |\n|---|\n| 1.5 |\n## B, 2026-12-01\n| 2 |\n### C\n| 3 |\n### D, 2026-12-02\n| 4 |\n"
    assert unlabelled_measurements(sample) == [
        "## A (CPU-2): no date", "## B, 2026-12-01: no machine", "### C: no date", "### C: no machine",
        "### D, 2026-12-02: no machine"]


def python_blocks(markdown: str) -> list[tuple[int, str]]:
    """(first line, source) of each ```python block."""
    blocks, lines, start = [], None, 0
    for number, line in enumerate(markdown.splitlines(), 1):
        if lines is None and re.match(r"^\s*```python\s*$", line):
            lines, start = [], number + 1
        elif lines is not None and FENCE.match(line):
            blocks.append((start, "\n".join(lines)))
            lines = None
        elif lines is not None:
            lines.append(line)
    return blocks


def api_call_problems(markdown: str, where: str) -> list[str]:
    """Each ``tn.NAME(...)`` call (``import taichi_nerf as tn``) of a doc's Python blocks: NAME is in the
    package's API, and every keyword is a parameter of it (``train``'s: TrainConfig fields too)."""
    import dataclasses
    import inspect

    import taichi_nerf

    fields = {f.name for f in dataclasses.fields(taichi_nerf.TrainConfig)}
    problems = []
    for start, source in python_blocks(markdown):
        for node in ast.walk(ast.parse(source)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "tn"):
                continue
            name, line = node.func.attr, start + node.lineno - 1
            if name not in taichi_nerf.__all__:
                problems.append(f"{where}:{line}: taichi_nerf has no {name}")
                continue
            taken = set(inspect.signature(getattr(taichi_nerf, name)).parameters)
            taken |= fields if name == "train" else set()
            problems += [f"{where}:{line}: tn.{name} takes no {k.arg}=" for k in node.keywords
                         if k.arg is not None and k.arg not in taken]
    return problems


def test_every_api_call_in_the_docs_is_one_the_package_takes():
    found = [doc for doc in DOCS if "import taichi_nerf as tn" in doc.read_text()]
    assert ROOT / "docs" / "API.md" in found  # guards the scan
    assert [p for doc in found for p in api_call_problems(doc.read_text(), doc.relative_to(ROOT).as_posix())] == []
    wrong = "```python\nimport taichi_nerf as tn\ntn.train(stpes=5)\ntn.render(x)\ntn.evaluate(c, splt='test')\n```\n"
    assert api_call_problems(wrong, "doc.md") == ["doc.md:3: tn.train takes no stpes=",
                                                  "doc.md:4: taichi_nerf has no render",
                                                  "doc.md:5: tn.evaluate takes no splt="]


def test_the_trainer_methods_and_hooks_the_api_page_lists_exist():
    # docs/API.md: "Trainer(cfg) exposes `begin()`, ..., and `callbacks` (objects with `on_step`/...)"
    from taichi_nerf.training.callbacks import TrainingCallback
    from taichi_nerf.training.trainer import Trainer

    text = (ROOT / "docs" / "API.md").read_text()
    listed = text[text.index("`taichi_nerf.training.trainer.Trainer(cfg)` exposes"):text.index("custom loops")]
    methods = re.findall(r"`(\w+)\(\)`", listed)
    hooks = re.findall(r"\bon_\w+", listed)
    assert len(methods) >= 7 and len(hooks) >= 7
    assert [m for m in methods if not callable(getattr(Trainer, m, None))] == []
    assert [h for h in hooks if not callable(getattr(TrainingCallback, h, None))] == []
    documented = {name for name in vars(TrainingCallback) if name.startswith("on_")}
    assert documented == set(hooks)  # and no hook left out of the page


def test_the_reliability_page_names_every_file_overwrite_removes():
    # `run_folder.RUN_OUTPUTS` grew camera_path_*.json (a GUI session keeps the earlier path as
    # camera_path_1.json) while docs/RELIABILITY.md's list of what --overwrite deletes kept camera_path.json alone
    from taichi_nerf.runs.run_folder import RUN_OUTPUTS

    text = (ROOT / "docs" / "RELIABILITY.md").read_text()
    row = next(line for line in text.splitlines() if "run_folder.RUN_OUTPUTS" in line)
    named = set(re.findall(r"`([^`]+)`", row))
    names = {pattern.replace("*", "1") if pattern.startswith("camera_path_") else pattern for pattern in RUN_OUTPUTS}
    top = {name for name in names if "/" not in name and not name.startswith(("orbit", "spiral", "path"))}
    folders = {name.split("/")[0] + "/" for name in names if "/" in name}
    assert sorted(top - named) == [] and sorted(folders - named) == []


def documented_rows(markdown: str) -> dict[str, set[str]]:
    """The keys docs/OUTPUTS.md's "Watching a run" gives each kind of metrics.jsonl row: a training
    row's, a validation row's, and what the final row adds to a validation row's."""
    text = markdown[markdown.index("**Watching a run.**"):]
    def names(start: str, end: str) -> set[str]:
        part = text[text.index(start):]
        # a key is followed by its comma, colon or bracket (the prose's `train` prints... is not one)
        return set(re.findall(r"`\"?(\w+)\"?(?::[^`]*)?`(?=[,:)])", part[:part.index(end) + 1]))
    return {"training": names("A training row", "); a run stopped"),
            "validation": names("A validation row", ") comes at step 0"),
            "final": names("The last row", "; a run stopped by Ctrl-C")}


def test_the_metrics_rows_hold_the_keys_the_outputs_page_lists(tiny_scene, tmp_path):
    # a validation row's time_s was missing from the page's list
    import json

    from taichi_nerf.training.trainer import Trainer

    from .conftest import tiny_config

    rows = documented_rows((ROOT / "docs" / "OUTPUTS.md").read_text())
    assert rows["training"] >= {"step", "loss", "time_s"} and "step" in rows["validation"]  # guards the scan
    Trainer(tiny_config(tiny_scene, tmp_path / "run", steps=10, log_every=5, eval_every=5, preview_every=0,
                        checkpoint_every=0, width=16, batch_rays=64, samples_per_ray=8, sampler="stratified")).run()
    written = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    kinds = {"final" if "final" in row else "training" if "loss" in row else "validation": set(row) for row in written}
    # the tiny scene's photos have transparency: the final row scores the object alone too
    assert kinds == {"training": rows["training"], "validation": rows["validation"],
                     "final": rows["validation"] | (rows["final"] - {"true"})}
