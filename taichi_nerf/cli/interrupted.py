"""What an interrupted command left: ``cli.main`` stops ``render``, ``export``, ``eval`` and ``data synthetic`` /
``from-mesh`` on SIGTERM and SIGHUP as on Ctrl-C and says, after "interrupted; ", what became of their output. Each
command records its outputs' file states before it writes (``watch_*``: ``args.left_when_interrupted``), and what
changed is said here, in one set of words for every command: written whole, the earlier one kept as it was, or
nothing written."""
from __future__ import annotations

from pathlib import Path

from ..wording import counted


def file_state(path) -> tuple | None:
    """What tells a file rewritten (an atomic write is a new file: a new inode) from the one that was there; None:
    no file."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def states(paths) -> dict[Path, tuple | None]:
    """Each path's :func:`file_state`, to compare with later."""
    return {Path(p): file_state(p) for p in paths}


def rewritten(before: dict, paths=None) -> list[Path]:
    """Of ``paths`` (default: those ``before`` holds), the files there now that were not, or not as they were."""
    return [p for p in (before if paths is None else paths) if file_state(p) not in (before.get(Path(p)), None)]


def left_words(what: str, *, written: bool, earlier: bool, where: str, plural: bool = False) -> str:
    """What an interrupted command says of an output (``what``: "the dataset in OUT", "mesh.ply") that is written
    whole or not at all: ``written`` (the new one is there), else ``earlier`` (the one that was there is kept), else
    nothing was written to ``where``."""
    if written:
        return f"{what} {'were' if plural else 'was'} written whole before it stopped"
    if earlier:
        return f"nothing written; the earlier {what.removeprefix('the ')} kept as {'they were' if plural else 'it was'}"
    return f"nothing written to {where}"


def watch_outputs(args, *paths) -> None:
    """Say, if the command is interrupted, what became of the files ``paths``: each is written whole or not at all
    (and a video's set together), so each is the new file or the earlier one, kept as it was."""
    before = states(paths)

    def left() -> str:
        written = rewritten(before)
        kept = written or [p for p, was in before.items() if was is not None]
        return left_words(", ".join(map(str, kept)), written=bool(written), earlier=bool(kept),
                          where=", ".join(map(str, before)), plural=len(kept) > 1)

    args.left_when_interrupted = left


def watch_dataset(args, out, listing: str = "transforms_train.json") -> None:
    """What an interrupted ``data synthetic``, ``from-mesh`` or ``from-photos`` left in ``out``: the dataset is built
    beside it and moved in only once whole, so ``out`` holds the new dataset or what it held before. Its
    ``listing`` (the train split's; from-photos: ``transforms.json``) tells which."""
    before = states([Path(out) / listing])

    def left() -> str:
        return left_words(f"the dataset in {out}", written=bool(rewritten(before)),
                          earlier=any(was is not None for was in before.values()), where=str(out))

    args.left_when_interrupted = left


def watch_render_folder(args, out: Path) -> None:
    """What an interrupted ``render --split`` left in ``out``: its views are written one by one and metrics.json
    last, so a stop between leaves some views without it, which the next render refuses without --overwrite."""
    from ..outputs.render_folder import METRICS, earlier_render

    before = states(earlier_render(out))

    def left() -> str:
        now = earlier_render(out)
        new = rewritten(before, now)
        if new and out / METRICS not in new:
            return (f"{out}/ holds {counted(len(new), 'PNG')} of the views rendered so far, without {METRICS}: "
                    f"render again with --overwrite to replace them")
        if before and not now:
            return f"the earlier render in {out}/ was cleared (--overwrite), and nothing new written"
        return left_words(f"the render in {out}/", written=bool(new), earlier=bool(now), where=f"{out}/")

    args.left_when_interrupted = left
