"""A --config file read for TrainConfig: the JSON object's values, or one line that says what is wrong
with the file (not found, a folder, YAML, malformed), and what a field's unknown name most likely meant."""
from __future__ import annotations

import difflib
import json
from pathlib import Path

# What nerfstudio, the Keras example and the PyTorch3D tutorial call a field, for "did you mean".
OTHER_NAMES = {"learning_rate": "lr", "max_num_iterations": "steps", "num_iterations": "steps", "iterations": "steps",
               "n_iter": "steps", "epochs": "steps", "num_rays_per_batch": "batch_rays",
               "train_num_rays_per_batch": "batch_rays", "n_rays_per_image": "batch_rays", "batch_size": "batch_images",
               "num_samples": "samples_per_ray", "n_pts_per_ray": "samples_per_ray",
               "n_harmonic_functions": "pos_frequencies", "pos_encode_dims": "pos_frequencies",
               "num_layers": "depth", "n_hidden_neurons": "width", "hidden_dim": "width",
               # nerf-pytorch's (the original NeRF code's config files), where a close spelling guessed another field
               # (N_samples: fine_samples, max_steps: march_steps, iters: intervals)
               "n_samples": "samples_per_ray", "n_importance": "fine_samples", "n_rand": "batch_rays", "lrate": "lr",
               "netdepth": "depth", "netwidth": "width", "multires": "pos_frequencies",
               "multires_views": "dir_frequencies", "raw_noise_std": "density_noise", "use_viewdirs": "view_dependent",
               "white_bkgd": "background", "llffhold": "val_every", "factor": "downscale", "half_res": "downscale",
               "datadir": "data", "data_dir": "data", "basedir": "out", "output_dir": "out",
               "dataset_type": "data_format", "no_ndc": "ndc", "max_steps": "steps", "iters": "steps",
               "train_steps": "steps", "near_plane": "near", "far_plane": "far", "scene_box": "aabb",
               "bg_color": "background", "background_color": "background", "hidden_size": "width", "n_layers": "depth"}

# `taichi-nerf train`'s options that are no TrainConfig field (what the command does, not what it trains):
# written into a --config file they are pointed at their flag (tests/test_cli.py holds this to train's parser).
COMMAND_OPTIONS = ("config", "resume", "overwrite", "dry_run", "video_frames", "devices", "viewer", "viewer_host",
                   "viewer_port", "viewer_quit_at_end", "viewer_resolution")


def read_values(path) -> dict:
    """The JSON object in the config file at ``path``; ValueError in one line naming the file otherwise."""
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8-sig"))  # -sig: a byte-order mark, as Windows editors write
    except FileNotFoundError:
        raise ValueError(f"{path}: config file not found") from None
    except json.JSONDecodeError as exc:
        other = {".yml": "YAML", ".yaml": "YAML", ".toml": "TOML"}.get(path.suffix.lower())
        if other is None and _name_equals_value(exc.doc):  # the original NeRF code's configs/fern.txt
            other = "name = value lines (nerf-pytorch's format)"
        if other:  # nerfstudio's config.yml, say: not read line by line as JSON
            raise ValueError(f"{path}: a config is a JSON object of TrainConfig fields, not {other}: write it as "
                             '{"steps": 5000, "lr": 0.01}') from None
        raise ValueError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (a config is a JSON object of TrainConfig fields)") from None
    except OSError as exc:
        if (path / "config.json").is_file():  # a run folder: its saved config is the file in it
            raise ValueError(f"{path}: is a folder; give its config file: {path / 'config.json'}") from None
        raise ValueError(f"{path}: cannot read the config ({exc.strerror or exc})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: config must be a JSON object")
    options = [name for name in values if name.lower().replace("-", "_") in COMMAND_OPTIONS]
    if options:  # {"overwrite": true}: refused as an unknown key, with no word of the flag that does it
        flags = " ".join("--" + name.lower().replace("_", "-") for name in options)
        what = "command-line options, not configuration fields: give them as flags" if len(options) > 1 else \
            "a command-line option, not a configuration field: give it as a flag"
        raise ValueError(f"{path}: {', '.join(options)} {'are' if len(options) > 1 else 'is'} {what} ({flags})")
    return values


def with_guesses(names: list[str], fields: list[str], flag_names: dict[str, str]) -> str:
    """The unknown ``names``, each with the field of ``fields`` it most likely meant: a flag's spelling
    (``flag_names``: a flag without its dashes, in snake case -> its field), another tool's name, a typo:
    ``time_limit (did you mean time_limit_s?)``."""
    said = []
    for name in names:
        guess = flag_names.get(name) or OTHER_NAMES.get(name.lower().replace("-", "_")) or next(
            iter(difflib.get_close_matches(name, fields, n=1, cutoff=0.7)), None)
        said.append(f"{name} (did you mean {guess}?)" if guess else name)
    return ", ".join(said)


def _name_equals_value(text: str) -> bool:
    """Whether ``text``'s first line that is neither blank nor a comment reads ``name = value``."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, equals, _ = line.partition("=")
            return bool(equals) and name.strip().isidentifier()
    return False
