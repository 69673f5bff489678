"""The command line is derived from TrainConfig: one flag per field, choices from its Literal
types, and only the flags typed override a config file or a resumed run's config."""
import argparse
import dataclasses
import json
import typing

import numpy as np
import pytest

from taichi_nerf import cli
from taichi_nerf.backend import ARCH_CHOICES
from taichi_nerf.config import DATASET_FIELDS, TrainConfig, choice_fields, field_types
from taichi_nerf.config_checks import number_at_least, without_none

from .conftest import refused

FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]


def subparser(*path):
    parser = cli.build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def flags_of(parser) -> dict:
    """dest -> its option strings."""
    return {a.dest: a.option_strings for a in parser._actions if a.option_strings}


def given(*argv) -> dict:
    return cli.config_overrides(cli.build_parser().parse_args(list(argv)))


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@pytest.mark.parametrize("name", FIELDS)
def test_every_field_has_a_train_flag_of_its_own_name(name):
    assert flag(name) in flags_of(subparser("train"))[name]


def test_every_field_declares_help_and_a_known_group():
    groups = ("recipe", "data", "field", "sampling and rendering", "optimisation", "bookkeeping", "built-in scene")
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata["help"] and f.metadata["group"] in groups, f.name
    text = " ".join(subparser("train").format_help().split())  # unwrapped
    assert all(f"{group} options:" in text for group in groups)
    assert "--sampler {grid,stratified,hierarchical,proposal}" in text
    # None: the help says what it means, each scene kind's value from kind_defaults' own table
    assert "(proposal.py; default: grid for objects and forward-facing scenes, proposal for unbounded scenes)" in text
    assert "--lr X initial learning rate (default: 0.005 for objects, 0.01 for forward-facing and unbounded scenes)" \
        in text
    assert "_DEFAULTS" not in text and "PROPOSAL_RENDER_FACTOR" not in text  # names a user cannot look up
    assert "--loss {mse,huber,pseudo-huber}" in text and "huber otherwise (default: mse)" in text
    # the default joins a help text's own parenthesis
    assert "(0: same as training; proposal: 2 x fine_samples; default: 0)" in text


@pytest.mark.parametrize("kind, said", [(dict(ndc=False, unbounded=False), "for objects"),
                                        (dict(ndc=True, unbounded=False), "forward-facing"),
                                        (dict(ndc=False, unbounded=True), "unbounded")])
def test_the_help_says_the_proposal_samplers_own_counts(kind, said):
    """--samples-per-ray and --fine-samples said "(default: 32)" and "(default: 64)", which the
    proposal sampler replaces by its own counts (kind_defaults.PROPOSAL_COUNTS)."""
    from types import SimpleNamespace

    from taichi_nerf.config_checks import MAX_SAMPLES
    from taichi_nerf.kind_defaults import sampling_defaults

    counts = sampling_defaults(TrainConfig(sampler="proposal"), SimpleNamespace(**kind), MAX_SAMPLES)
    helps = {a.dest: " ".join(a.help.split()) for a in subparser("train")._actions}
    assert f"(the proposal sampler: {counts['samples_per_ray']} where left at the default; default: 32)" \
        in helps["samples_per_ray"]
    assert f"{counts['fine_samples']} {said}" in helps["fine_samples"]
    assert helps["fine_samples"].endswith("where left at the default; default: 64)")


def test_render_help_names_every_file_of_a_video():
    # it said "or a gif" of an --out .gif, which writes its depth gif beside it
    from taichi_nerf.rendering.video_route import video_files

    said = {".mp4": "mp4 + depth mp4 + gif", ".gif": "gif + depth gif"}
    for suffix, files in said.items():
        written = [p.name for p in video_files("v" + suffix)]
        assert " + ".join(name.split(".")[1] if name.startswith("v.") else "depth " + name.split(".")[1]
                          for name in written) == files
    assert f"a video ({said['.mp4']}, or {said['.gif']}) along" in " ".join(subparser("render").description.split())


@pytest.mark.parametrize("argv, expected", [
    (["--samples", "8"], {"samples_per_ray": 8}),
    (["--samples-per-ray", "8"], {"samples_per_ray": 8}),
    (["--time-limit", "2.5"], {"time_limit_s": 2.5}),
    (["--time-limit-s", "2.5"], {"time_limit_s": 2.5}),
    (["--format", "llff"], {"data_format": "llff"}),
    (["--data-format", "llff"], {"data_format": "llff"}),
    (["--no-progress"], {"progress": False}),
    (["--ndc"], {"ndc": True}),
    (["--no-ndc"], {"ndc": False}),
    (["--arch", "cpu"], {"arch": "cpu"}),
    (["--lr-final", "1e-4", "--aabb", "-1", "-2", "-3", "1", "2", "3"],
     {"lr_final": 1e-4, "aabb": [-1.0, -2.0, -3.0, 1.0, 2.0, 3.0]}),
    ([], {}),
])
def test_flags_and_aliases_parse_to_their_field(argv, expected):
    assert given("train", *argv) == expected


@pytest.mark.parametrize("name", [n for n, hint in field_types().items() if hint in (bool, bool | None)])
def test_bool_fields_parse_both_ways(name):
    assert given("train", flag(name)) == {name: True}
    assert given("train", "--no-" + flag(name)[2:]) == {name: False}
    assert name not in given("train")


def test_choices_come_from_the_literal_types():
    actions = {a.dest: a for a in subparser("train")._actions}
    choices = choice_fields()
    assert set(choices) == {"background", "sampler", "loss", "arch", "activation", "density_activation", "init",
                            "lr_schedule", "logger", "intervals", "image_order", "mask_mode", "pixel_sampling",
                            "preset"}
    for name, values in choices.items():
        assert tuple(actions[name].choices) == values == typing.get_args(without_none(field_types()[name]))
    assert choices["arch"] == tuple(ARCH_CHOICES)  # the config's Literal and the backend agree


def test_validate_uses_the_literal_choices():
    with pytest.raises(ValueError, match="sampler must be grid, stratified, hierarchical or proposal"):
        TrainConfig(sampler="bogus").validate()
    with pytest.raises(ValueError, match="background must be auto, white, black or random"):
        TrainConfig(background="grey").validate()
    with pytest.raises(ValueError, match="pixel_sampling must be uniform or error"):  # an Optional choice field
        TrainConfig(pixel_sampling="bogus").validate()
    with pytest.raises(ValueError, match="background must be"):  # None only where the type allows it
        TrainConfig(background=None).validate()
    assert TrainConfig(sampler=None, pixel_sampling=None).validate().sampler is None  # by scene kind


@pytest.mark.parametrize("argv, message", [
    (["train", "--sampler", "bogus"], "argument --sampler: invalid choice: 'bogus'"),
    (["train", "--steps", "many"], "argument --steps: invalid int value: 'many'"),
    (["train", "--aabb", "1", "2"], "argument --aabb: expected 6 arguments"),
])
def test_bad_flag_values_exit_2_with_one_error_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and message in errors[0]



@pytest.mark.parametrize("argv, message", [
    (["data", "synthetic", "--out", "x", "--views", "0"], "--views must be at least 1, got 0"),
    (["data", "synthetic", "--out", "x", "--size", "4"], "--size must be at least 8, got 4"),
    (["data", "from-mesh", "m.obj", "--out", "x", "--test-views", "-1"], "--test-views must not be negative, got -1"),
    (["render", "--ckpt", "r", "--frames", "0"], "--frames must be at least 1, got 0"),
    (["render", "--ckpt", "r", "--fps", "0"], "--fps must be positive, got 0"),
    (["render", "--ckpt", "r", "--split", "val", "--limit", "0"], "--limit must be at least 1, got 0"),
    (["train", "--devices", "0"], "--devices must be at least 1, got 0"),
    (["gui", "--headless", "--frames", "3", "--steps-per-frame", "0"], "--steps-per-frame must be at least 1, got 0"),
])
def test_a_number_below_its_minimum_is_named_with_its_value_before_any_work(argv, message, capsys, tmp_path,
                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written: the refusal comes first
    refused(capsys, argv, message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["render", "--ckpt", "r", "--data", "d"], "the video that suits the capture needs no dataset: drop --data"),
    (["render", "--ckpt", "r", "--data", "d", "--path", "cam.json"], "a camera path file needs no dataset"),
    (["train", "--dry-run", "--viewer-port", "9000"],
     "--viewer-port goes with the browser viewer, which only --viewer web opens: add --viewer web, or drop it"),
    (["train", "--dry-run", "--viewer-resolution", "256", "--viewer-quit-at-end"],
     "--viewer-resolution and --viewer-quit-at-end go with the browser viewer"),
    (["gui", "--headless", "--frames", "1", "--ckpt", "nowhere", "--viewer-host", "0.0.0.0"],
     "--viewer-host goes with the browser viewer, which only --web opens"),
    (["gui", "--web", "--ckpt", "nowhere", "--window", "800x600"], "--window is for the window, not --web"),
    (["train", "--dry-run", "--data", "d", "--scene-size", "64"],
     "--scene-size sizes the built-in scene, and this run trains on "),
])
def test_a_flag_the_command_would_ignore_is_refused_before_any_work(argv, message, capsys, tmp_path, monkeypatch):
    """A flag its --help says is for another mode is refused, not read by nothing."""
    monkeypatch.chdir(tmp_path)
    refused(capsys, argv, message)
    assert list(tmp_path.iterdir()) == []


def test_gui_refuses_a_screenshot_or_status_file_it_cannot_write_before_any_work(capsys, tmp_path, monkeypatch):
    """--screenshot under a file (or anywhere unwritable) failed only when the session ended, and
    took the unsaved training with it; --status failed at the first frame."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blocker").write_text("")
    for flag in ("--screenshot", "--status"):
        refused(capsys, ["gui", "--headless", "--frames", "1", flag, "blocker/out"], f"{flag} blocker/out: ",
                "blocker: is a file")
        refused(capsys, ["gui", "--headless", "--frames", "1", flag, "."], f"{flag} . is a folder: give the file")
    # a PNG written under another name (shot.jpg held PNG bytes, which a .jpg reader refuses)
    refused(capsys, ["gui", "--headless", "--frames", "1", "--screenshot", "shot.jpg"], "--screenshot shot.jpg: the "
            "screenshot is written as a PNG; give a name ending in .png")
    assert [p.name for p in tmp_path.iterdir()] == ["blocker"]


def test_view_refuses_a_status_file_it_cannot_write_before_serving(capsys, tmp_path, monkeypatch, run):
    """`view --status FOLDER` served the checkpoint, then its first frame printed a traceback, "the viewer failed
    at step N; saving the run" (view trains nothing) and "error: FOLDER: Is a directory"; gui checked it first."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blocker").write_text("")
    refused(capsys, ["view", "--ckpt", run, "--seconds", "1", "--status", "blocker/s.json"],
            "--status blocker/s.json: ", "blocker: is a file")
    refused(capsys, ["view", "--ckpt", run, "--seconds", "1", "--status", "."], "--status . is a folder: give the file")


@pytest.mark.parametrize("value, whole, accepted", [
    (3, True, 3), (np.int64(3), True, 3), (3.0, True, 3), (2.5, False, 2.5), (np.float32(2.5), False, 2.5),
    (2.5, True, None), (True, True, None), ("3", True, None), (float("nan"), True, None), (float("inf"), True, None),
    (float("nan"), False, None), (0, True, None),
])
def test_the_api_counts_take_numbers_of_any_kind_and_nothing_else(value, whole, accepted):
    if accepted is None:
        with pytest.raises(ValueError, match=f"frames must be a {'whole ' if whole else ''}number of at least 1, got"):
            number_at_least("frames", value, 1, whole)
    else:
        out = number_at_least("frames", value, 1, whole)
        assert out == accepted and type(out) is (int if whole else float)


@pytest.mark.parametrize("argv, usage, message", [
    (["train", "--stpes", "5"], "usage: taichi-nerf train",
     "taichi-nerf train: error: unrecognized arguments: --stpes 5 (did you mean --steps?)"),
    (["render", "--ckpt", "x", "--sise=3", "--zzz"], "usage: taichi-nerf render",
     "taichi-nerf render: error: unrecognized arguments: --sise=3 --zzz (did you mean --size?)"),
    (["data", "info", "x", "--val-evry", "3"], "usage: taichi-nerf data info",
     "taichi-nerf data info: error: unrecognized arguments: --val-evry 3 (did you mean --val-every?)"),
    (["export", "mesh", "--ckpt", "x", "extra"], "usage: taichi-nerf export mesh",
     "taichi-nerf export mesh: error: unrecognized arguments: extra"),
    (["view", "--ckpt", "x", "--port", "8080", "--host", "0.0.0.0"], "usage: taichi-nerf view",  # "--ckpt?"
     "taichi-nerf view: error: unrecognized arguments: --port 8080 --host 0.0.0.0 (did you mean --viewer-port?; "
     "did you mean --viewer-host?)"),
    (["gui", "--devices", "2"], "usage: taichi-nerf gui",  # it was "did you mean --every?"
     "taichi-nerf gui: error: unrecognized arguments: --devices 2 (taichi-nerf gui runs in one process: only train "
     "takes --devices)"),
])
def test_a_mistyped_flag_is_refused_by_its_command_with_the_nearest_flag(argv, usage, message, capsys):
    """Not the top level's usage and "unrecognized arguments" alone: the command's own usage, and
    the flag it has that is nearest to the one typed."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith(usage) and err.rstrip().endswith(message), err

def test_a_flag_given_overrides_the_config_file_and_an_omitted_one_does_not(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"steps": 7, "lr": 0.01, "sampler": "stratified", "progress": False, "arch": "cpu"}))
    cfg = cli.run_config(cli.build_parser().parse_args(["train", "--config", str(path), "--steps", "9", "--progress"]))
    assert (cfg.steps, cfg.progress) == (9, True)  # given: the flag wins
    assert (cfg.lr, cfg.sampler, cfg.arch) == (0.01, "stratified", "cpu")  # omitted: the file's value stays
    assert cfg.batch_rays == TrainConfig().batch_rays  # in neither: the default


def test_a_flag_given_overrides_the_resumed_config(monkeypatch):
    from taichi_nerf.runs import run_folder

    saved = TrainConfig(steps=5, lr=0.02, out="runs/old", arch="cuda")
    monkeypatch.setattr(run_folder, "resume_config", lambda run: saved)
    monkeypatch.setattr(run_folder, "check_resume", lambda run, cfg: None)  # (no checkpoint there)
    args = cli.build_parser().parse_args(["train", "--resume", "runs/old", "--steps", "50"])
    cfg = cli.run_config(args, resume_from=args.resume)
    assert (cfg.steps, cfg.lr, cfg.out) == (50, 0.02, "runs/old")
    assert cfg.arch == "auto"  # a resumed run picks its backend afresh unless --arch is given
    args = cli.build_parser().parse_args(["train", "--resume", "runs/old", "--arch", "cpu"])
    assert cli.run_config(args, resume_from=args.resume).arch == "cpu"


def test_resume_refuses_out_and_config_in_one_line(capsys):
    assert cli.main(["train", "--resume", "runs/x", "--out", "elsewhere"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "drop --out/--config" in err and err.count("\n") == 1


DATASET_ARGV = ["--format", "npz", "--near", "0.5", "--far", "4", "--aabb", "-1", "-1", "-1", "1", "1", "1",
                "--every", "2", "--limit", "3", "--val-every", "4",
                "--no-ndc", "--downscale", "2", "--unbounded", "--mask-mode", "ignore"]
DATASET_GIVEN = {"data_format": "npz", "near": 0.5, "far": 4.0, "aabb": [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0], "every": 2,
                 "limit": 3, "val_every": 4, "ndc": False, "downscale": 2, "unbounded": True, "mask_mode": "ignore"}


def test_gui_and_data_info_take_the_dataset_flags_of_train():
    assert set(DATASET_GIVEN) | {"data"} == set(DATASET_FIELDS)
    assert given("train", "--data", "d", *DATASET_ARGV) == {"data": "d", **DATASET_GIVEN}
    assert given("gui", "--data", "d", *DATASET_ARGV) == {"data": "d", **DATASET_GIVEN}
    assert given("data", "info", "d", *DATASET_ARGV) == DATASET_GIVEN
    train, gui, info = flags_of(subparser("train")), flags_of(subparser("gui")), flags_of(subparser("data", "info"))
    for name in DATASET_FIELDS:
        assert gui[name] == train[name]
        assert name == "data" or info[name] == train[name]


def test_gui_flags_override_its_config_and_its_default_run_folder(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"steps": 7, "width": 32}))
    gui_default = TrainConfig(out=cli.GUI_DEFAULT_OUT)
    cfg = cli.run_config(cli.build_parser().parse_args(["gui", "--config", str(path), "--width", "16"]),
                         default=gui_default)
    assert (cfg.steps, cfg.width) == (7, 16)
    cfg = cli.run_config(cli.build_parser().parse_args(["gui", "--samples", "12", "--no-progress"]),
                         default=gui_default)
    assert (cfg.out, cfg.samples_per_ray, cfg.progress) == ("runs/gui", 12, False)
    assert "(default: runs/gui)" in subparser("gui").format_help()
    with pytest.raises(SystemExit):  # gui takes a subset: --sampler is a --config matter there
        cli.build_parser().parse_args(["gui", "--sampler", "grid"])


def test_saved_configs_still_load():
    cfg = TrainConfig(sampler="hierarchical", aabb=[-1.0, -1.0, -1.0, 1.0, 1.0, 1.0], ndc=False)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert TrainConfig.from_dict({"steps": 3}) == TrainConfig(steps=3)
    with pytest.raises(ValueError, match="unknown configuration keys: bogus"):
        TrainConfig.from_dict({"bogus": 1})


def test_the_continue_line_after_ctrl_c_quotes_the_run_folder(tmp_path, capsys):
    """`continue with: taichi-nerf train --resume /runs/my run` did not paste: the folder is quoted."""
    from pathlib import Path
    from types import SimpleNamespace

    from taichi_nerf.cli.train import report_end

    out = Path(tmp_path) / "my run"
    result = SimpleNamespace(interrupted=True, step=7, checkpoint=out / "checkpoint.pt", out_dir=out)
    assert report_end(SimpleNamespace(cfg=TrainConfig()), result, 0) == cli.EXIT_INTERRUPTED
    assert f"continue with: taichi-nerf train --resume '{out}'\n" in capsys.readouterr().out


def test_a_dry_run_says_what_the_run_would_do(tiny_scene, tmp_path, capsys, monkeypatch):
    """`--dry-run` said only "configuration ... fine": not the data, its scene kind, the values that
    kind picks for the options left out, nor the steps, rays and samples a real start would train."""
    assert cli.main(["train", "--dry-run", "--data", str(tiny_scene), "--out", str(tmp_path / "r"), "--steps", "7",
                     "--lr", "0.02", "--time-limit", "9"]) == 0
    out = capsys.readouterr().out
    assert f"data: blender dataset {tiny_scene}" in out and "near 2.00, far 6.00" in out, out
    kind = next(line for line in out.splitlines() if line.startswith("scene kind: an object in a box;"))
    assert "sampler grid" in kind and "lr_warmup 0" in kind and "lr " not in kind.replace("lr_", ""), kind  # typed
    assert "background: white" in out, out
    assert "MLP) 7 steps (or until the 9 s time limit) of 512 rays x 32 samples" in out, out
    assert "would train on cpu (float32 MLP)" in out or "would train on cpu (bf16 MLP)" in out or "on cuda" in out
    assert not (tmp_path / "r").exists()
    # the built-in scene is not rendered by a dry run; unbounded, the proposal sampler's counts are said
    monkeypatch.setenv("TAICHI_NERF_CACHE", str(tmp_path / "cache"))
    assert cli.main(["train", "--dry-run", "--out", str(tmp_path / "r"), "--unbounded"]) == 0
    out = capsys.readouterr().out
    assert "data: the built-in scene, 100 training views of 100x100 px" in out, out
    assert "px (rendered and cached on the first real start)" in out, out  # (the test's own empty cache)
    assert "scene kind: unbounded scenery;" in out and "fine_samples 24" in out and "march_steps" not in out, out


@pytest.mark.parametrize("argv, config, message", [
    (["--lr-final", "0"], None, "--lr-final must be positive, got 0"),
    (["--pose-lr", "-1"], None, "--pose-lr must be positive, got -1"),
    ([], {"lr": 0}, "c.json: lr must be positive, got 0"),
    (["--near", "5", "--far", "2"], None, "--near must be less than far, got near 5 and far 2"),
])
def test_a_bad_learning_rate_or_bounds_name_the_flag_or_key_and_value(argv, config, message, capsys, tmp_path,
                                                                      monkeypatch):
    """`--lr-final 0` (or "lr": 0 in a --config file) said "learning rates must be positive", naming
    neither which of the three rates nor the file; near above far did not say the values."""
    monkeypatch.chdir(tmp_path)
    if config is not None:
        (tmp_path / "c.json").write_text(json.dumps(config))
        argv = [*argv, "--config", "c.json"]
    refused(capsys, ["train", "--dry-run", *argv], message)


@pytest.mark.parametrize("argv, message", [
    (["--ndc"], "--ndc applies to forward-facing LLFF captures, and without data the run trains on the built-in"),
    (["--format", "llff"], "--format/--data-format llff needs data"),
])
def test_a_dataset_flag_the_built_in_scene_cannot_take_is_refused_by_a_dry_run(argv, message, capsys, tmp_path,
                                                                               monkeypatch):
    """`train --ndc` (no --data) passed --dry-run, then a real start rendered the built-in scene and
    refused it naming the cache folder; `--format llff` failed on a missing poses_bounds.npy there."""
    monkeypatch.chdir(tmp_path)
    refused(capsys, ["train", "--dry-run", *argv], message)
    assert list(tmp_path.iterdir()) == []
    assert cli.main(["train", "--dry-run", "--no-ndc", "--format", "blender", "--out", str(tmp_path / "r")]) == 0


def test_a_dry_run_on_a_cpu_warns_of_a_presets_gpu_sized_steps(tmp_path, capsys):
    """A real start of `--preset keras` on a CPU warns that its 320 steps take 15-75 min; `--dry-run`,
    the command to ask that before starting, did not."""
    from taichi_nerf.presets import PRESETS

    assert cli.main(["train", "--dry-run", "--preset", "keras", "--arch", "cpu", "--out", str(tmp_path / "r")]) == 0
    assert f"warning: {PRESETS['keras'].cpu_warning}" in capsys.readouterr().out


def test_a_yaml_config_or_a_run_folder_as_config_says_what_to_give(tmp_path, capsys):
    """A nerfstudio user's `--config config.yml` said "malformed JSON at line 1 column 1", and a run
    folder given to reuse its config "cannot read the config (Is a directory)"."""
    (tmp_path / "c.yml").write_text("steps: 10\nlr: 0.01\n")
    refused(capsys, ["train", "--dry-run", "--config", tmp_path / "c.yml"], f"{tmp_path / 'c.yml'}: ",
            "a config is a JSON object of TrainConfig fields, not YAML")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    refused(capsys, ["train", "--dry-run", "--config", tmp_path / "run"],
            f"is a folder; give its config file: {tmp_path / 'run' / 'config.json'}")


def test_a_dry_run_names_a_reused_run_configs_values_unlike_this_scene_kinds(tmp_path, capsys):
    """A run's config.json reused as --config carries its scene kind's choices (an object's lr 0.005,
    no warm-up, the grid); on an unbounded scene nothing said they were not that kind's defaults."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"sampler": "grid", "march_steps": 96, "lr": 0.005, "lr_warmup": 0}))
    assert cli.main(["train", "--dry-run", "--config", str(config), "--unbounded", "--out", str(tmp_path / "r")]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("note: given"))
    assert "sampler grid (this kind's: proposal), march_steps 96 (this kind's: 128), lr 0.005 (this kind's: 0.01), " \
           "lr_warmup 0 (this kind's: 500)" in line, line
    assert cli.main(["train", "--dry-run", "--config", str(config), "--out", str(tmp_path / "r")]) == 0
    assert "note: given" not in capsys.readouterr().out  # an object's own defaults


def test_the_bounds_flags_say_their_units_and_where_their_default_comes_from():
    """--near/--far/--aabb said only "override the automatic ..." (no units, no way to see the automatic
    value), and --every N spoke of "every k-th frame"."""
    text = " ".join(subparser("train").format_help().split())
    for flag in ("--near X", "--far X", "--aabb XMIN YMIN ZMIN XMAX YMAX ZMAX"):
        after = text.split(flag, 1)[1].split(" --", 1)[0]
        assert "in the scene's units (default: from the data; `taichi-nerf data info` shows it)" in after, after
    assert "--every N keep every N-th frame" in text


def test_a_dry_run_of_a_resume_says_the_steps_left(run, capsys):
    """`train --dry-run --resume RUN --steps 25` said "would train 25 steps" of a run already at step 10."""
    assert cli.main(["train", "--dry-run", "--resume", str(run), "--steps", "25"]) == 0
    out = capsys.readouterr().out
    assert "MLP) to step 25 (from the checkpoint's 10: 15 more) of 64 rays x 8 samples" in out, out


def test_a_dry_run_of_a_finished_run_says_what_its_resume_does(run, capsys):
    """`train --resume RUN --dry-run` of a run that made its steps (or used its time limit) said "would train
    on cpu ... to step 10", where the real resume says it has nothing to train and validates again."""
    assert cli.main(["train", "--dry-run", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert "note: the run already made its 10 steps: nothing to train, it validates again" in out, out
    assert "would train" not in out


def test_a_dry_run_checks_the_built_in_scene_where_it_is_cached(tmp_path, capsys, monkeypatch):
    """`train --near 7 --dry-run` (no --data) passed, then a real start refused near 7 over the scene's far 6."""
    from taichi_nerf.scenes.synthetic import write_synthetic_dataset

    monkeypatch.setenv("TAICHI_NERF_CACHE", str(tmp_path / "cache"))
    args = ["train", "--dry-run", "--scene-views", "4", "--scene-size", "16", "--out", str(tmp_path / "r")]
    assert cli.main([*args, "--near", "7"]) == 0  # not rendered yet: a dry run does not render it
    from taichi_nerf.scenes.builtin import builtin_path

    write_synthetic_dataset(builtin_path(4, 16), views=4, size=16, val_views=1, test_views=1, progress=False)
    capsys.readouterr()
    refused(capsys, [*args, "--near", "7"], "got near 7, far 6 (near as given, far the data's: give --far too")
    assert cli.main(args) == 0
    assert f"data: blender dataset {builtin_path(4, 16)} (train: 4 x 16x16" in capsys.readouterr().out


def test_another_tools_name_for_a_field_is_pointed_at_ours(tmp_path, capsys):
    """A user from nerfstudio or the tutorials typing --learning-rate or --max-num-iterations, or writing
    "learning_rate" in a --config file, got no hint: no spelling of ours is close to them."""
    for typed, meant in (("--learning-rate", "--lr"), ("--max-num-iterations", "--steps"),
                         ("--num-rays-per-batch", "--batch-rays")):
        with pytest.raises(SystemExit):
            cli.main(["train", "--dry-run", typed, "1"])
        assert f"unrecognized arguments: {typed} 1 (did you mean {meant}?)" in capsys.readouterr().err
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"learning_rate": 0.01, "n_pts_per_ray": 64}))
    refused(capsys, ["train", "--dry-run", "--config", config], "unknown configuration keys: learning_rate (did you "
            "mean lr?), n_pts_per_ray (did you mean samples_per_ray?)")
    # nerf-pytorch's names: N_samples was guessed as fine_samples (its N_importance), max_steps as march_steps
    config.write_text(json.dumps({"N_samples": 64, "N_importance": 128, "max_steps": 9, "iters": 9, "lrate": 5e-4}))
    refused(capsys, ["train", "--dry-run", "--config", config], "N_importance (did you mean fine_samples?), "
            "N_samples (did you mean samples_per_ray?), iters (did you mean steps?), lrate (did you mean lr?), "
            "max_steps (did you mean steps?)")


def test_a_command_option_in_a_config_file_is_pointed_at_its_flag(tmp_path, capsys):
    """{"overwrite": true, "video_frames": 0} in a --config file was "unknown configuration keys: overwrite,
    video_frames", with no word that these are train's flags; every option of train that is no field is named."""
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"steps": 5, "overwrite": True, "video_frames": 0}))
    refused(capsys, ["train", "--dry-run", "--config", config, "--out", tmp_path / "r"],
            f"{config}: overwrite, video_frames are command-line options, not configuration fields: give them as "
            "flags (--overwrite --video-frames)")
    config.write_text(json.dumps({"dry_run": True}))
    with pytest.raises(ValueError, match="dry_run is a command-line option, not a configuration field: give it as "
                                         r"a flag \(--dry-run\)"):
        TrainConfig.from_file(config)
    assert not (tmp_path / "r").exists()
    from taichi_nerf.config_file import COMMAND_OPTIONS  # the list is train's: every option that is no field

    train = flags_of(subparser("train"))
    assert sorted(COMMAND_OPTIONS) == sorted(set(train) - set(FIELDS) - {"help"})
    assert all(flag(name) in train[name] for name in COMMAND_OPTIONS)


def test_a_config_in_the_original_nerf_codes_format_is_named(tmp_path, capsys):
    """nerf-pytorch's configs/fern.txt (name = value lines) was "malformed JSON at line 1 column 1: Expecting value"."""
    config = tmp_path / "fern.txt"
    config.write_text("# fern\n\nexpname = fern_test\ndatadir = ./data/nerf_llff_data/fern\nN_samples = 64\n")
    refused(capsys, ["train", "--dry-run", "--config", config], f"{config}: a config is a JSON object of TrainConfig "
            "fields, not name = value lines (nerf-pytorch's format): write it as {")
    config.write_text('{"steps": 5,\n "lr" = 0.1}')  # JSON with a slip stays a JSON error
    refused(capsys, ["train", "--dry-run", "--config", config], f"{config}: malformed JSON at line 2")


def test_a_config_files_whole_number_written_as_a_float_is_taken(tmp_path):
    """{"steps": 2e4} (JSON has no integer exponent form; 20000.0 from a script's json.dump) was refused:
    "steps must be a whole number, got 20000.0"; 5.5 still is."""
    config = tmp_path / "c.json"
    config.write_text('{"steps": 2e4, "batch_rays": 1024.0, "lr": 1}')
    cfg = TrainConfig.from_file(config)
    assert (cfg.steps, cfg.batch_rays, cfg.lr) == (20000, 1024, 1) and type(cfg.steps) is int
    config.write_text('{"steps": 5.5}')
    with pytest.raises(ValueError, match="steps must be a whole number, got 5.5"):
        TrainConfig.from_file(config)


def test_a_config_file_a_windows_editor_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Notepad's "UTF-8" puts a BOM first; --config refused the file with "malformed JSON at line 1 column 1:
    Unexpected UTF-8 BOM (decode using utf-8-sig)", though a dataset's transforms.json with one loads."""
    config = tmp_path / "c.json"
    config.write_bytes(b"\xef\xbb\xbf" + b'{"steps": 7}')
    assert TrainConfig.from_file(config).steps == 7


@pytest.mark.parametrize("argv, said", [
    (["train", "--dry-run", "--config", ""], "--config is given an empty value (an unset shell variable?): give its "
                                             "value, or leave --config out"),
    (["train", "--dry-run", "--data="], "--data is given an empty value"),
    (["render", "--ckpt", ""], "--ckpt is given an empty value"),
    (["data", "info", ""], "an argument is empty (an unset shell variable?): give its value"),
])
def test_an_empty_value_is_refused_not_read_as_the_current_folder_or_left_out(argv, said, capsys, tmp_path,
                                                                              monkeypatch):
    """`train --config "$CONFIG"` with CONFIG unset trained 20000 steps of the defaults without a word, and
    `--data ""` or `--ckpt ""` read the current folder ("a mesh, not a dataset", "a folder of runs")."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2 and said in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_empty_data_in_a_config_file_or_from_python_is_refused(tmp_path, capsys):
    """{"data": ""} in a --config file, or TrainConfig(data=""), read the current folder as the dataset."""
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"data": ""}))
    refused(capsys, ["train", "--dry-run", "--config", config], "data must name a dataset (a folder or file), or be "
            "left out for the built-in scene")
    with pytest.raises(ValueError, match="data must name a dataset"):
        TrainConfig(data="").validate()


def test_a_count_flag_written_as_a_float_of_a_whole_number_is_taken(capsys):
    """`--steps 1e4` was "invalid int value: '1e4'", though a --config file's 1e4 is taken; 2.5 is still refused."""
    parser = cli.build_parser()
    args = parser.parse_args(["train", "--steps", "1e4", "--batch-rays", "2048.0"])
    assert (args.steps, args.batch_rays) == (10000, 2048) and type(args.steps) is int
    for bad in ("2.5", "20k", "nan", "1e400"):
        with pytest.raises(SystemExit):
            cli.main(["train", "--dry-run", "--steps", bad])
        assert f"argument --steps: invalid int value: '{bad}' (a whole number: 20000, 2e4)" in capsys.readouterr().err


def test_a_prefix_of_one_flags_two_names_is_that_flag(capsys):
    """`--time 30` was refused: "ambiguous option: --time could match --time-limit-s, --time-limit", two
    spellings of one flag; a prefix of two flags (--sample: --sampler, --samples-per-ray) still is."""
    assert given("train", "--time", "30") == {"time_limit_s": 30.0}
    with pytest.raises(SystemExit):
        cli.main(["train", "--dry-run", "--sample", "8"])
    assert "ambiguous option: --sample could match --sampler, --samples-per-ray" in capsys.readouterr().err


def test_the_config_flags_help_gives_an_example_that_loads_and_the_order_of_preset_and_flags():
    """--config's help said only "JSON file of TrainConfig fields; flags override it": not what the file
    looks like, that a run's config.json works, nor that --preset goes over the file."""
    text = " ".join(subparser("train").format_help().split())
    example = text.split("--config FILE JSON object of TrainConfig fields, e.g. ", 1)[1].split("}", 1)[0] + "}"
    assert TrainConfig.from_dict(json.loads(example)).validate().steps == 5000
    assert "(a run's config.json works); --preset goes over it, and every other flag over both" in text


def test_a_dry_run_says_the_backend_and_the_mlps_precision(tmp_path, capsys):
    assert cli.main(["train", "--dry-run", "--arch", "cpu", "--no-mixed-precision", "--out", str(tmp_path / "r")]) == 0
    assert "would train on cpu (float32 MLP) 20000 steps" in capsys.readouterr().out


def test_a_reused_run_config_whose_out_holds_that_run_says_where_the_folder_came_from(tmp_path, capsys):
    """`train --config runs/a/config.json` (no --out) was refused with "add --resume runs/a (in place of
    --out)": the user typed no --out; the folder came from the file."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.json").write_text(json.dumps({"out": str(tmp_path / "a"), "steps": 5}))
    (tmp_path / "a" / "checkpoint.pt").write_bytes(b"")  # (only its presence is checked)
    refused(capsys, ["train", "--dry-run", "--config", tmp_path / "a" / "config.json"],
            f'add --resume {tmp_path / "a"} (in place of --config, whose "out" names this folder)',
            "or choose another --out")


def test_a_run_into_its_datasets_own_folder_is_refused(tmp_path, capsys):
    """`train --data data/mine --out data/mine` wrote the run's files among the photos (a later --overwrite
    deletes a dataset's own config.json or camera_path.json); a run beside an .npz is fine."""
    from taichi_nerf.scenes.synthetic import write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "mine", views=2, size=8, val_views=1, test_views=1, progress=False)
    for given in (data, data / "transforms_train.json"):
        refused(capsys, ["train", "--dry-run", "--data", given, "--out", data, "--arch", "cpu"],
                f"{data}: is the dataset's folder; a run goes in a folder of its own", "choose another --out")
    assert sorted(p.name for p in data.iterdir()) == ["test", "train", "transforms_test.json",
                                                      "transforms_train.json", "transforms_val.json", "val"]
    assert cli.main(["train", "--dry-run", "--data", str(data), "--out", str(tmp_path / "runs" / "mine"), "--arch",
                     "cpu"]) == 0


def test_a_run_into_a_folder_of_its_datasets_images_is_refused(tmp_path, capsys):
    """`train --data data/mine --out data/mine/train` wrote checkpoint.pt, config.json, the previews and the
    video in among the training images; a new folder inside the dataset's stays allowed."""
    from taichi_nerf.scenes.synthetic import write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "mine", views=2, size=8, val_views=1, test_views=1, progress=False)
    before = sorted(p.name for p in (data / "train").iterdir())
    refused(capsys, ["train", "--dry-run", "--data", data, "--out", data / "train", "--arch", "cpu"],
            f"{data / 'train'}: holds the dataset's images (r_000.png, r_001.png)", "choose another --out")
    assert sorted(p.name for p in (data / "train").iterdir()) == before
    assert cli.main(["train", "--dry-run", "--data", str(data), "--out", str(data / "runs" / "a"), "--arch",
                     "cpu"]) == 0
    # an --out that is a link in a loop: Path.resolve's "RuntimeError: Symlink loop" traceback (Python 3.11)
    (tmp_path / "loop").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop")
    refused(capsys, ["train", "--dry-run", "--data", data, "--out", tmp_path / "loop", "--arch", "cpu"],
            f"{tmp_path / 'loop'}: is a link")


def test_a_time_limited_run_that_its_steps_ended_early_says_so(tmp_path, capsys):
    """On a fast host ethiopianHead's `--time-limit 240` run made its 20000 steps in 169 s and
    stopped there without a word: the user had asked for 240 s of training. Without --steps the
    time alone now ends such a run (test_training); a --steps given still can, and is said."""
    from types import SimpleNamespace

    from taichi_nerf.cli.train import report_end

    def end(time_used, step, cfg=TrainConfig(time_limit_s=240.0, steps=20000), resumed_from=0):
        trainer = SimpleNamespace(cfg=cfg, time_used=time_used, resumed_from=resumed_from, pose_refinement=None,
                                  val_name="val", nothing_to_train=lambda: False)
        result = SimpleNamespace(interrupted=False, step=step, checkpoint=tmp_path / "checkpoint.pt",
                                 out_dir=tmp_path, val_psnr=27.1, val_object_psnr=None, seconds=172.0,
                                 training_seconds=169.0)
        assert report_end(trainer, result, 0) == 0
        return capsys.readouterr().out

    said = end(169.0 / 240.0, 20000)
    assert "note: the run's 20000 steps ended it at 70% of its 240 s time limit; without --steps the time" in said, said
    assert "note:" not in end(1.0, 17000)  # the time ended it
    assert "note:" not in end(0.95, 20000)  # steps and time ran out together, near enough
    # A resumed run keeps its config.json's steps (20000 in every run from before they became optional), and a
    # preset's are its own: a flag cannot unset them, so "without --steps" told the user to drop what they never gave.
    said = end(169.0 / 240.0, 20000, resumed_from=12000)
    assert "70% of its 240 s time limit; a larger --steps lets the time decide" in said, said
    said = end(0.1, 320, TrainConfig(time_limit_s=60.0).replace(preset="keras"))
    assert "note: the run's 320 steps ended it at 10% of its 60 s time limit; a larger --steps lets" in said, said
