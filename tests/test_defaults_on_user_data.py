"""The defaults on data that looks like users' (issue 8's floors, small and fast): every test
set learns well beyond its flat-colour PSNR with the default choices of background, bounds
and scene kind. The full-size version is ``scripts/benchmark.py --matrix``."""
import pytest

from .conftest import ARCH

# name -> (size, views, minimum gain over the flat-colour PSNR in dB after STEPS steps).
# Measured on the 2-core CPU (seeded, so repeatable): see the comment by each value.
SETS = {
    "npz-black": (40, 24, 6.0),
    "npz-white": (40, 24, 4.0),
    "blender-wide": (48, 24, 4.0),
    "blender-portrait": (48, 24, 4.0),
    "llff-backdrop": (48, 16, 2.0),
    "ngp-360-env": (48, 24, 1.5),
    "cow": (40, 24, 4.0),
}
STEPS = 240


@pytest.fixture(scope="module")
def written(tmp_path_factory, taichi_backend):
    from taichi_nerf.data.testsets import write_testset

    root = tmp_path_factory.mktemp("userlike")
    return {name: write_testset(name, root / name, size=size, views=views) for name, (size, views, _) in SETS.items()}


@pytest.mark.parametrize("name", list(SETS))
def test_defaults_learn_each_user_like_set(name, written, tmp_path):
    from taichi_nerf.config import TrainConfig
    from taichi_nerf.diagnostics import flat_colour_psnr
    from taichi_nerf.training import Trainer

    # The defaults, except the run's size: fewer rays and a smaller MLP keep this test fast.
    cfg = TrainConfig(data=str(written[name]), out=str(tmp_path / "run"), arch=ARCH, progress=False, steps=STEPS,
                      batch_rays=1024, width=48, grid_warmup=60, eval_every=0, checkpoint_every=0, preview_every=0)
    trainer = Trainer(cfg)
    flat = flat_colour_psnr([trainer.target_rgb(trainer.val, i) for i in range(trainer.val.count)])
    for _ in range(STEPS):
        trainer.step()
    gain = trainer.validate() - flat
    print(f"{name}: flat {flat:.2f} dB, gain {gain:.2f} dB, {trainer.last_samples_per_ray:.1f} samples/ray")
    assert gain >= SETS[name][2], f"{name}: only {gain:.2f} dB above the flat colour ({flat:.2f} dB)"
