"""A phone video through ``data from-photos``, found by a new-user probe: the mapping bar through
COLMAP's later attempts, and the one line for a video file that cannot give frames (an audio-only
file, an empty one, a copy cut short before its index). Nothing here runs COLMAP."""
import io

from tqdm import tqdm


def test_the_mapping_bar_moves_through_every_attempt():
    """The bar stood at 0/40 for the whole of attempts 2 and 3 (half a minute on a 40-frame
    video): tqdm drew only once the count passed the 40 it drew at the end of attempt 1."""
    from taichi_nerf.capture.photos import _new_attempt

    out = io.StringIO()
    bar = tqdm(total=10, file=out, mininterval=0, miniters=1, ascii=True)  # a photo at a time, as COLMAP goes
    bar.update(10)
    _new_attempt(bar, 1)
    bar.update(3)
    drawn = out.getvalue().split("\r")
    assert "attempt 2/3" in drawn[-1] and " 3/10 " in drawn[-1], drawn[-3:]
