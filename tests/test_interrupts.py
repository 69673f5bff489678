"""StopRequest with real signals sent to this process: a first Ctrl-C asks for a stop, a second
raises; a stop agreed with other ranks is not this process's Ctrl-C, and the launcher's own
signal that arrives after the run has unwound is absorbed once."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taichi_nerf.interrupts import StopRequest, terminations_interrupt

from .conftest import CHECKOUT, TINY, checkout_env, stop_if_running


def deliver(sig):
    os.kill(os.getpid(), sig)  # CPython runs the Python-level handler before the next bytecode


@pytest.fixture(autouse=True)
def python_ctrl_c():
    """Python's own Ctrl-C handler, whatever the suite inherited: a shell that starts a job in
    the background (`nohup ... &`) passes SIGINT ignored, and Python then leaves it ignored."""
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, inherited)


def test_a_first_signal_asks_for_a_stop_and_a_second_ctrl_c_raises():
    before = signal.getsignal(signal.SIGINT)
    with StopRequest() as stop:
        deliver(signal.SIGTERM)
        assert stop.requested and stop.signals == 1
        with pytest.raises(KeyboardInterrupt):
            deliver(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_a_stop_agreed_with_other_ranks_is_not_a_first_ctrl_c():
    with StopRequest() as stop:
        stop.stop_with_peers()  # another rank's vote
        assert stop.requested and stop.peer_stopped
        deliver(signal.SIGINT)  # this rank's copy of the launcher's signal: no KeyboardInterrupt
        assert stop.signals == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # nothing left installed


def test_the_launchers_signal_after_an_agreed_stop_is_absorbed_once():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with StopRequest() as stop:
        stop.stop_with_peers()
    deliver(signal.SIGINT)  # late: the run has unwound; once it raised KeyboardInterrupt at exit
    assert {s: signal.getsignal(s) for s in before} == before
    with pytest.raises(KeyboardInterrupt):  # a real Ctrl-C after that behaves as always
        deliver(signal.SIGINT)


def test_a_stop_this_process_asked_for_itself_leaves_no_absorber():
    with StopRequest() as stop:
        deliver(signal.SIGINT)
        stop.stop_with_peers()  # the vote it started comes back
        assert not stop.peer_stopped
    with pytest.raises(KeyboardInterrupt):
        deliver(signal.SIGINT)


def test_a_signal_handled_during_the_stop_vote_waits_for_the_next_vote(monkeypatch):
    """Under torchrun a rank's handler can run while its ballot is already cast (inside the
    collective): the vote said "go on", so this rank must go on too, or it leaves its peers
    waiting in the next step's all-reduce (CI saw rank 0 lose its peers that way)."""
    from taichi_nerf.runs.distributed import Ranks

    ranks = Ranks(rank=1, size=2)
    stop = StopRequest()
    ballots = []

    def agree(flag):  # the collective: every rank voted "go on"; this rank's signal lands meanwhile
        ballots.append(flag)
        stop.requested, stop.signals = True, 1
        return len(ballots) > 1 and ballots[-1]  # the first vote: all "go on"; the next: this rank stops

    monkeypatch.setattr(ranks, "agree", agree)
    assert ranks.agree_to_stop(stop) is False  # the outcome of the vote, not the flag set during it
    assert ranks.agree_to_stop(stop) is True and not stop.peer_stopped  # the next vote carries it


def test_a_hang_up_stops_and_saves_unless_nohup_ignored_it():
    """An SSH session that dropped sends SIGHUP, whose default ends the process at once: the
    steps since the last checkpoint were lost. Now it is a stop request like SIGTERM; under
    `nohup` (SIGHUP ignored at start) it stays ignored and the run goes on."""
    before = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        with StopRequest() as stop:
            deliver(signal.SIGHUP)
            assert stop.requested
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what nohup leaves
        with StopRequest() as stop:
            deliver(signal.SIGHUP)
            assert not stop.requested and signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


SWALLOWED_BY_TAICHI = """
import inspect, os, signal, sys
from taichi_nerf import interrupts
interrupts.guard_startup()
import taichi
from taichi_nerf import backend
real, sent = inspect.getframeinfo, []
def getframeinfo(*args, **kwargs):  # Ctrl-C arrives while Taichi's kernel decorator looks at its caller
    if not sent:
        sent.append(signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
    return real(*args, **kwargs)
inspect.getframeinfo = getframeinfo
import taichi_nerf.stages.encoding  # a module that defines kernels, as a command imports it
inspect.getframeinfo = real
print("the decorator swallowed it" if sent else "no interrupt sent", flush=True)
try:
    backend.init("cpu")
except KeyboardInterrupt:
    print("raised when Taichi was up", flush=True)
    sys.exit(130)
"""


def test_a_ctrl_c_that_taichis_kernel_decorator_swallows_is_raised_once_taichi_is_up():
    """Taichi 1.7.4's kernel decorators run a bare `except: pass`; a Ctrl-C while a module defined
    its kernels was lost and the command ran on to its end. The start's guard raises it again."""
    res = subprocess.run([sys.executable, "-c", SWALLOWED_BY_TAICHI], cwd=CHECKOUT, env=checkout_env(),
                         capture_output=True, text=True, timeout=300,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    said = res.stdout + res.stderr
    assert res.stdout.splitlines() == ["the decorator swallowed it", "raised when Taichi was up"], said
    assert res.returncode == 130


SWALLOWED_BY_A_COMMAND_WITHOUT_TAICHI = """
import inspect, os, signal, sys
real, sent = inspect.getframeinfo, []
def getframeinfo(*args, **kwargs):  # Ctrl-C while a kernel decorator looks at its caller, the start's guard up
    if not sent and sys._getframe(1).f_code.co_name == "_inside_class" and \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        sent.append(signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
    return real(*args, **kwargs)
inspect.getframeinfo = getframeinfo
sys.argv = ["taichi-nerf", "data", "info", "no-such-dataset"]
from taichi_nerf.__main__ import main
code = main()
print("sent while importing" if sent else "no interrupt sent", flush=True)
sys.exit(code)
"""


def test_a_ctrl_c_swallowed_while_a_command_without_taichi_starts_stops_it():
    """The start's guard raised a Ctrl-C that Taichi's kernel decorators swallowed only once Taichi was up: a
    command that never starts it (data from-photos, data info) ran on to its end, a dataset written by
    from-photos after a Ctrl-C 1.5 s into it, status 0."""
    res = subprocess.run([sys.executable, "-c", SWALLOWED_BY_A_COMMAND_WITHOUT_TAICHI], cwd=CHECKOUT,
                         env=checkout_env(), capture_output=True, text=True, timeout=300,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    said = res.stdout + res.stderr
    assert res.stdout.splitlines() == ["sent while importing"], said
    assert res.returncode == 130 and res.stderr.strip().splitlines() == ["taichi-nerf: interrupted"], said


def test_ctrl_c_while_the_command_imports_torch_is_one_line(tmp_path):
    """`taichi-nerf train` interrupted while it still imports torch (seconds on a small machine):
    one line and status 130, not a traceback of the import."""
    proc = subprocess.Popen([sys.executable, "-m", "taichi_nerf", "train", "--out", str(tmp_path / "run")],
                            cwd=CHECKOUT, env=checkout_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        maps = Path(f"/proc/{proc.pid}/maps")
        deadline = time.monotonic() + 120
        while True:  # until torch's own import is under way: the guard is up by then
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            try:
                if "libtorch" in maps.read_text():
                    break
            except OSError:  # the process ended between the check and the read: said above next time
                pass
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        stop_if_running(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "taichi-nerf: interrupted", err


def test_sigterm_or_a_hang_up_in_a_block_is_a_ctrl_c_and_nohup_stays():
    before = {s: signal.signal(s, signal.SIG_DFL) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with pytest.raises(KeyboardInterrupt), terminations_interrupt():
                deliver(sig)
            assert signal.getsignal(sig) == signal.SIG_DFL
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what nohup leaves
        with terminations_interrupt():
            deliver(signal.SIGHUP)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


TERMINATED_DURING_THE_VIDEO = """
import os, signal, sys, time
from taichi_nerf.outputs import default_video
def write_default_video(*args, **kwargs):  # a scheduler's SIGTERM while the video renders
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
default_video.write_default_video = write_default_video
from taichi_nerf.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_while_the_video_renders_says_what_is_saved(tiny_scene, tmp_path):
    """SIGTERM (`timeout`, a scheduler) after training, while the video rendered, ended the process
    without a word (status -15); now it is said as a Ctrl-C there is: the run saved, the video missing."""
    res = subprocess.run([sys.executable, "-c", TERMINATED_DURING_THE_VIDEO, "train", "--data", str(tiny_scene),
                          "--out", str(tmp_path / "run"), "--steps", "1", "--video-frames", "2", *TINY],
                         cwd=CHECKOUT, env=checkout_env(), capture_output=True, text=True, timeout=300,
                         preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    assert res.returncode == 130, res.stdout + res.stderr
    assert "interrupted while rendering the video; the trained run is saved" in res.stdout, res.stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_first_signal_during_the_final_validation_stops_it_at_once(tiny_scene, tmp_path, sig):
    """The checkpoint is saved before the final validation, so a stop there costs nothing: yet a first Ctrl-C (or a
    scheduler's SIGTERM) only asked for a stop, every view was still rendered (minutes on a large capture, without a
    word), and the run was then said to be interrupted, its resume rendering them all again."""
    from taichi_nerf.runs import checkpoint
    from taichi_nerf.training.trainer import Trainer

    from .conftest import tiny_config

    trainer = Trainer(tiny_config(tiny_scene, tmp_path / "run", steps=3, eval_every=0, preview_every=0))
    views = []

    class SignalAtTheFirstView:
        def on_val_view(self, trainer, index, pred, truth):
            views.append(index)
            if len(views) == 1:
                deliver(sig)
    trainer.callbacks.append(SignalAtTheFirstView())
    result = trainer.run()
    assert result.interrupted and views == [0], views
    assert checkpoint.read_state(result.checkpoint)["step"] == 3
    rows = [line for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"final"' in line]
    assert rows == []


TERMINATED_WHILE_IT_RENDERS = """
import os, signal, sys
from taichi_nerf.rendering.renderer import Renderer
def terminated_once(method):  # a scheduler's SIGTERM once the command renders (or queries the field)
    def first_call(*args, **kwargs):
        if not getattr(Renderer, "terminated", False):
            Renderer.terminated = True
            os.kill(os.getpid(), signal.SIGTERM)
        return method(*args, **kwargs)
    return first_call
Renderer.render_rays = terminated_once(Renderer.render_rays)
Renderer.density = terminated_once(Renderer.density)
from taichi_nerf.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command, says", [
    (["render", "--frames", "2", "--size", "16", "--out", "{tmp}/orbit.mp4"],
     "nothing written; the earlier {tmp}/orbit.mp4 kept as it was"),
    (["render", "--split", "test", "--limit", "1", "--out", "{tmp}/views"], "nothing written to {tmp}/views/"),
    (["export", "mesh", "--resolution", "16", "--out", "{tmp}/mesh.ply"], "nothing written to {tmp}/mesh.ply"),
    (["eval", "--limit", "1"], "no scores printed"),
], ids=["render", "render-split", "export-mesh", "eval"])
def test_sigterm_to_render_export_or_eval_says_what_it_left(trained, tmp_path, command, says):
    """SIGTERM (`timeout`, a scheduler) to render, export or eval ended it with status 143 and not a word, where
    train says what was saved; now it is said as a Ctrl-C is (status 130), with what became of the output."""
    (tmp_path / "orbit.mp4").write_bytes(b"an earlier render")
    command = [part.format(tmp=tmp_path) for part in command]
    res = subprocess.run([sys.executable, "-c", TERMINATED_WHILE_IT_RENDERS, *command, "--ckpt", str(trained),
                          "--no-progress", "--arch", "cpu"],
                         cwd=CHECKOUT, env=checkout_env(), capture_output=True, text=True, timeout=300,
                         preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    assert res.returncode == 130, res.stdout + res.stderr
    assert res.stderr.strip().splitlines()[-1] == f"taichi-nerf: interrupted; {says.format(tmp=tmp_path)}", res.stderr
    assert (tmp_path / "orbit.mp4").read_bytes() == b"an earlier render"
    assert [p.name for p in tmp_path.iterdir()] == ["orbit.mp4"]  # no partial file stays


TERMINATED_AFTER_THE_TRAIN_SPLIT = """
import os, signal, sys
import taichi_nerf.data.blender as blender
write_split = blender.write_split
def terminated_at_the_second_split(root, split, *args, **kwargs):  # the train split is written, val not yet
    if split != "train":
        os.kill(os.getpid(), signal.SIGTERM)
    return write_split(root, split, *args, **kwargs)
blender.write_split = terminated_at_the_second_split
from taichi_nerf.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_to_data_synthetic_keeps_the_earlier_render(tmp_path, taichi_backend):
    """`data synthetic --out X` removed the earlier render in X, then wrote the splits into X one by one: a SIGTERM
    after the train split left X with it and no val or test (which `train --data X` took without a word), and ended
    with status 143 and not a word. The splits are now rendered beside X and moved in whole; a stop leaves X as it
    was, no partial folder beside it, and says so as a Ctrl-C does (status 130)."""
    from taichi_nerf.scenes.synthetic import write_synthetic_dataset

    from .conftest import snapshot

    out = tmp_path / "ds"
    write_synthetic_dataset(out, views=3, size=8, val_views=1, test_views=1, progress=False)
    (out / "NOTES.md").write_text("mine")
    before = snapshot(out)
    res = subprocess.run([sys.executable, "-c", TERMINATED_AFTER_THE_TRAIN_SPLIT, "data", "synthetic", "--out",
                          str(out), "--views", "2", "--size", "16", "--no-progress"],
                         cwd=CHECKOUT, env=checkout_env(), capture_output=True, text=True, timeout=300,
                         preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    assert res.returncode == 130, res.stdout + res.stderr
    assert res.stderr.strip().splitlines()[-1] == \
        f"taichi-nerf: interrupted; nothing written; the earlier dataset in {out} kept as it was", res.stderr
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no partial folder (nor its lock) stays


def test_every_command_says_what_an_interrupt_left_in_the_same_words(tmp_path):
    """render/export/eval, data synthetic/from-mesh and render --split each compared their outputs before and after
    in code and words of their own ("X written before it stopped", "the dataset ... was written whole", "X not
    written", "nothing written to X"). One home (cli/interrupted.py) says each case one way: written whole, the
    earlier one kept as it was, or nothing written to it."""
    from types import SimpleNamespace

    from taichi_nerf.cli.interrupted import watch_dataset, watch_outputs

    def said(watch, *paths, change=lambda: None):
        args = SimpleNamespace()
        watch(args, *paths)
        change()
        return args.left_when_interrupted()

    mp4, gif = tmp_path / "a.mp4", tmp_path / "a.gif"
    assert said(watch_outputs, mp4, gif) == f"nothing written to {mp4}, {gif}"
    mp4.write_bytes(b"earlier")
    assert said(watch_outputs, mp4, gif) == f"nothing written; the earlier {mp4} kept as it was"

    def write_both():
        (tmp_path / "new").write_bytes(b"new")
        (tmp_path / "new").replace(mp4)  # an atomic write: a new file in its place
        gif.write_bytes(b"new")

    assert said(watch_outputs, mp4, gif, change=write_both) == f"{mp4}, {gif} were written whole before it stopped"

    out = tmp_path / "ds"
    listing = out / "transforms_train.json"

    def write_dataset():
        out.mkdir(exist_ok=True)
        (tmp_path / "new").write_text("{}")
        (tmp_path / "new").replace(listing)

    assert said(watch_dataset, out) == f"nothing written to {out}"
    assert said(watch_dataset, out, change=write_dataset) == f"the dataset in {out} was written whole before it stopped"
    assert said(watch_dataset, out) == f"nothing written; the earlier dataset in {out} kept as it was"


def test_an_interrupted_from_photos_says_what_became_of_its_out(tmp_path, capsys, monkeypatch):
    """Ctrl-C in data from-photos said "taichi-nerf: interrupted" alone, where data synthetic and from-mesh say
    what became of --out: the user was left to look whether a half-written dataset was there, or the earlier one."""
    from taichi_nerf import cli
    from taichi_nerf.capture import photos

    def stopped(*args, **kwargs):  # COLMAP's stages stop at once on a Ctrl-C (capture/partial.Interrupts)
        raise KeyboardInterrupt
    monkeypatch.setattr(photos, "from_photos", stopped)
    (tmp_path / "photos").mkdir()
    out = tmp_path / "ds"
    argv = ["data", "from-photos", str(tmp_path / "photos"), "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 130
    assert capsys.readouterr().err.strip() == f"taichi-nerf: interrupted; nothing written to {out}"
    out.mkdir()
    (out / "transforms.json").write_text("{}")  # an earlier from-photos' dataset
    assert cli.main([*argv, "--overwrite"]) == 130
    assert capsys.readouterr().err.strip() == \
        f"taichi-nerf: interrupted; nothing written; the earlier dataset in {out} kept as it was"


def test_an_interrupted_render_split_says_an_earlier_render_it_did_not_reach_is_kept(tmp_path):
    """A `render --split --overwrite` stopped before it cleared the earlier render (loading the checkpoint) said
    "nothing written to OUT/", as of an empty folder; the earlier render is there, as it was, and now it says so.
    Its other cases: views without metrics.json, the earlier render cleared, a whole render, nothing at all."""
    from types import SimpleNamespace

    from taichi_nerf.cli.interrupted import watch_render_folder

    out = tmp_path / "views"

    def said(change=lambda: None):
        args = SimpleNamespace()
        watch_render_folder(args, out)
        change()
        return args.left_when_interrupted()

    assert said() == f"nothing written to {out}/"
    out.mkdir()
    (out / "000_r_0.png").write_bytes(b"png")
    (out / "metrics.json").write_text('{"images": [{"files": {"rgb": "000_r_0.png"}}]}')
    assert said() == f"nothing written; the earlier render in {out}/ kept as it was"

    def cleared():
        for p in out.iterdir():
            p.unlink()

    assert said(cleared) == f"the earlier render in {out}/ was cleared (--overwrite), and nothing new written"

    def views_so_far():
        (out / "000_r_0.png").write_bytes(b"new png")
        (out / "001_r_1.png").write_bytes(b"new png")

    assert said(views_so_far) == (f"{out}/ holds 2 PNGs of the views rendered so far, without metrics.json: render "
                                  "again with --overwrite to replace them")
    assert said(lambda: (out / "metrics.json").write_text('{"images": []}')) == \
        f"the render in {out}/ was written whole before it stopped"
