"""Is a reconstruction good for a radiance field? The camera baseline against the scene's depth.

A radiance field needs to see its content from places far apart compared with how far away
it is. COLMAP can register every photo of a capture and still return cameras that barely
move relative to the points they see:

* a turntable without masks: the object turns, the room stands still; COLMAP matches the
  room, and the camera never moved relative to it;
* a tripod pan: the camera turns about its own centre.

Five checks, each refused by ``data from-photos`` unless ``--keep-degenerate``:

* after matching, the share of verified matches whose feature stands still between the two
  photos (it moved less than STATIC_PIXELS): the room of a turntable, a tripod's scene. Above
  MAX_STATIC_SHARE the capture is refused before the (long) mapping: measured on the
  ethiopianHead turntable without masks, COLMAP then registered every photo at 1 px
  reprojection error with cameras 49 degrees (median) from the published ones;
* after mapping, fewer than MIN_REGISTERED photos registered;
* after mapping, the baseline ratio: the spread of the camera centres (root mean square
  distance from their mean) divided by the median depth at which the cameras see their
  points. Near 0 when the cameras collapse to one point; an orbit around an object is near 1,
  a hand-held forward-facing capture 0.05-0.2. Refused below MIN_BASELINE_RATIO;
* after mapping, the turning centre: among pairs of photos taken from nearly the same place
  looking nearly the same way (by the model), the share whose image centres share no verified
  match. Such photos show the same thing in the middle, unless it turned while the camera stood
  still relative to what COLMAP matched: a turntable whose photographer moved about, so neither
  check above fires (ethiopianHead without masks: 53% of 312 such pairs; every honest capture
  measured, forward-facing or 360 degrees: 0%). Refused above MAX_TURNING_SHARE;
* after mapping a video, the largest camera step between neighbouring frames over the median
  step: a hand-held camera moves smoothly, so a jump means part of the model is wrong although
  every frame registers at a sub-pixel error (a 40-frame walk in the textured dome: 4 frames 15x the
  walk's radius away, 120x the median step, or cameras collapsed onto one place with a jump of
  millions; right models: 1.5 for tests/test_colmap.py's video, 7.7 for that walk from all its 90
  frames). Refused above MAX_VIDEO_JUMP where that step is also over MIN_JUMP_SHARE of the cameras'
  spread (a hand-held pause before a walk makes the median step tiny, not the walk's steps large).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..data.dataset import DataError
from .colmap_stages import MIN_INLIERS

MIN_BASELINE_RATIO = 0.03
MIN_REGISTERED = 8  # fewer posed photos cannot train a field worth having (data/loaders.FEW_TRAINING_VIEWS)
MAX_STATIC_SHARE = 0.25
STATIC_PIXELS = 1.0  # at 1000 px on the longer side; scaled with the photos
# The turning-centre check (turning_centre_share): pairs within CLOSE_DEGREES of each other's
# optical axis and CLOSE_BASELINE x the median viewing depth of each other's centre; their
# centre is a disc of CENTRE_RADIUS x the image size, judged where both photos have
# MIN_CENTRE_KEYPOINTS features there; decided on MIN_CLOSE_PAIRS such pairs or more.
CLOSE_DEGREES = 10.0
CLOSE_BASELINE = 0.15
CENTRE_RADIUS = 0.2
MIN_CENTRE_KEYPOINTS = 20
MIN_CLOSE_PAIRS = 10
MAX_TURNING_SHARE = 0.1
MAX_VIDEO_JUMP = 30.0
# ...and that step over the largest distance between two cameras: the broken models' were 0.4-1.
MIN_JUMP_SHARE = 0.3
TURNTABLE_HINT = ("for a turntable capture (the object turns, the room stands still) give the object's masks with "
                  "--masks DIR, so only the object is matched")


def static_match_share(database: Path, image_size: tuple[int, int]) -> float:
    """Share of the verified matches (pairs with MIN_INLIERS inliers or more) in COLMAP's
    ``database`` whose two keypoints lie within STATIC_PIXELS of each other (NaN: no matches)."""
    import pycolmap

    limit = STATIC_PIXELS * max(1.0, max(image_size) / 1000.0)
    db = pycolmap.Database.open(str(database))
    try:
        pair_ids, geometries = db.read_two_view_geometries()
        keypoints: dict[int, np.ndarray] = {}
        static = total = 0
        for pair_id, geometry in zip(pair_ids, geometries):
            matches = np.asarray(geometry.inlier_matches)
            if len(matches) < MIN_INLIERS:
                continue
            first, second = pycolmap.pair_id_to_image_pair(pair_id)
            for image in (first, second):
                if image not in keypoints:
                    keypoints[image] = np.asarray(db.read_keypoints(image))[:, :2]
            moved = np.linalg.norm(keypoints[first][matches[:, 0]] - keypoints[second][matches[:, 1]], axis=1)
            static += int((moved < limit).sum())
            total += len(matches)
    finally:
        db.close()
    return static / total if total else math.nan


def unmasked_hint(source, cut_out: bool = False) -> str:
    """What to do without --masks: give the object's masks, which ``cut_out`` photos (with
    transparency) already hold, as COLMAP matches their colours alone."""
    if not cut_out:
        return TURNTABLE_HINT
    return (f"the photos' transparency is such a mask, but COLMAP matches their colours alone: give the photos as "
            f"their own masks, --masks {source}")


def still_room_hint(masked: bool, source=None, cut_out: bool = False) -> str:
    """What to do about a still room the checks saw: give masks, or masks that keep only what turns."""
    if masked:
        return "the masks let through what stands still; they must keep only what turns"
    return unmasked_hint(source, cut_out)


def static_message(source, share: float, masked: bool, cut_out: bool = False) -> str:
    hint = still_room_hint(masked, source, cut_out)
    return (f"{source}: degenerate capture: {share:.0%} of the matched features stand still between photos (at "
            f"most {MAX_STATIC_SHARE:.0%} allowed), so the camera did not move relative to them (a turntable's "
            f"still room, or a tripod) and COLMAP's cameras would be meaningless; {hint}; --keep-degenerate maps "
            "it anyway")


def median_viewing_depth(model, centres: np.ndarray) -> float:
    """Median distance from each camera (``centres`` (N, 3)) to the points it sees in a
    colmap_files.Model (NaN without points): the scale both checks after mapping measure by."""
    index = {int(pid): k for k, pid in enumerate(model.point_ids)}
    depths = []
    for n, ids in enumerate(model.observed):
        rows = [index[int(i)] for i in ids if int(i) in index]
        if rows:
            depths.append(np.linalg.norm(model.xyz[rows] - centres[n], axis=1))
    return float(np.median(np.concatenate(depths))) if depths else math.nan


def baseline_ratio(model) -> float:
    """Camera spread / median viewing depth of a colmap_files.Model (NaN without points)."""
    from ..data.colmap_model import camera_to_world

    centres = camera_to_world(model)[:, :3, 3]
    spread = float(np.sqrt(((centres - centres.mean(axis=0)) ** 2).sum(axis=1).mean()))
    depth = median_viewing_depth(model, centres)
    return spread / depth if depth > 0 else math.nan


class DegenerateReconstruction(DataError):
    """The reconstruction cannot train a radiance field; ``table``: the figures found."""

    def __init__(self, message: str, table: str):
        super().__init__(message)
        self.table = table


def refuse_few_registered(source, report, frames: int | None = None) -> None:
    """Refuse a model of fewer than MIN_REGISTERED photos (``report``: capture/photos.PhotoReport):
    a video's frames 2 apart once registered 2 of 30, and the dataset trained on one view.
    ``frames``: a video's --frames (None for photos)."""
    count, total = len(report.registered), report.total
    if count >= MIN_REGISTERED:
        return
    raise DegenerateReconstruction(
        f"{source}: COLMAP registered only {count} of {total} {'photos' if frames is None else 'frames'}, too few to "
        f"train a radiance field (need at least {MIN_REGISTERED}); {more_views_hint(total, frames, report.cut_short)}; "
        "--keep-degenerate writes the dataset anyway", report.table())


def more_views_hint(total: int, frames: int | None = None, cut_short: bool = False) -> str:
    """What gets more photos registered: for a video, more of its frames, unless it gave all it has
    (``cut_short``: all it could, the rest of the file being damaged or missing)."""
    if frames is None:
        return "take more photos, closer together (60-80% overlap between neighbours)"
    if cut_short:
        return "a complete copy of the video (this one is cut short or damaged) gives more frames"
    if total < frames:
        return f"the video gave all its {total} frames: film longer or slower"
    return f"keep more frames (--frames N; {total} now), so that neighbours overlap more"


def degenerate_message(source, ratio: float, masked: bool, cut_out: bool = False) -> str:
    """The one-line refusal: what was found, why it cannot train, what to do (``cut_out``: the
    photos have transparency, unmasked_hint)."""
    hint = ("the masks may not cover the object, or the photos barely move around it" if masked else
            unmasked_hint(source, cut_out))
    return (f"{source}: degenerate reconstruction: the cameras spread only {ratio:.3f} x the depth of what they see "
            f"(need at least {MIN_BASELINE_RATIO}); they barely move relative to the scene COLMAP matched (a "
            f"turntable's still room, or a tripod pan), which cannot train a radiance field; {hint}; "
            "--keep-degenerate writes the dataset anyway")


def turning_centre_share(model, database: Path) -> tuple[float, int]:
    """(share of close photo pairs whose centres share no verified match, how many close pairs
    were judged; NaN below MIN_CLOSE_PAIRS) for a colmap_files.Model mapped from COLMAP's
    ``database``. Only pairs that were matched count."""
    import pycolmap

    from ..data.colmap_model import camera_to_world

    c2w = camera_to_world(model)
    depth = median_viewing_depth(model, c2w[:, :3, 3])
    if not depth > 0:
        return math.nan, 0
    reach = CLOSE_BASELINE * depth
    cos_close = math.cos(math.radians(CLOSE_DEGREES))
    row = {int(image_id): n for n, image_id in enumerate(model.image_ids)}
    db = pycolmap.Database.open(str(database))
    try:
        matched = set(db.read_all_matches()[0])
        pair_ids, geometries = db.read_two_view_geometries()
        inliers = {p: np.asarray(g.inlier_matches) for p, g in zip(pair_ids, geometries)}
        in_centre: dict[int, np.ndarray] = {}
        for image_id, n in row.items():
            camera = model.cameras[int(model.camera_ids[n])]
            keypoints = np.asarray(db.read_keypoints(image_id))
            if keypoints.size == 0:  # a model made from another database (or none): nothing to judge
                in_centre[image_id] = np.zeros(0, dtype=bool)
                continue
            xy = keypoints[:, :2] / np.array([camera.width, camera.height])
            in_centre[image_id] = np.linalg.norm(xy - 0.5, axis=1) < CENTRE_RADIUS
    finally:
        db.close()
    judged = changed = 0
    for pair_id in matched:
        first, second = pycolmap.pair_id_to_image_pair(pair_id)
        if first not in row or second not in row:
            continue
        a, b = c2w[row[first]], c2w[row[second]]
        if a[:3, 2] @ b[:3, 2] < cos_close or np.linalg.norm(a[:3, 3] - b[:3, 3]) > reach:
            continue
        if min(in_centre[first].sum(), in_centre[second].sum()) < MIN_CENTRE_KEYPOINTS:
            continue  # a plain middle (sky, a white wall) has nothing to match
        m = inliers.get(pair_id, np.zeros((0, 2), dtype=np.int64))
        shared = (in_centre[first][m[:, 0]] & in_centre[second][m[:, 1]]).sum() if len(m) else 0
        judged += 1
        changed += shared == 0
    return (changed / judged if judged >= MIN_CLOSE_PAIRS else math.nan), judged


def turning_message(source, share: float, pairs: int, masked: bool, cut_out: bool = False) -> str:
    hint = still_room_hint(masked, source, cut_out)
    return (f"{source}: degenerate reconstruction: {share:.0%} of {pairs} photo pairs taken from nearly the same "
            f"place share nothing in the middle of the picture (at most {MAX_TURNING_SHARE:.0%} allowed), so what "
            "is there turned while the cameras stood still relative to what COLMAP matched (a turntable); its "
            f"cameras would be meaningless for it; {hint}; --keep-degenerate writes the dataset anyway")


def video_jump(model, frames: list[str] | None = None) -> tuple[float, str, float]:
    """(largest camera step between neighbouring frames over the median step, "A -> B": which, that
    step over the cameras' spread: the largest distance between two of them) for a
    colmap_files.Model of a video's frames, whose names sort in the video's order (NaN below 3).
    ``frames``: every frame given to COLMAP, in order: a step across frames left unregistered is
    divided by the frames it spans."""
    from ..data.colmap_model import camera_to_world

    order = sorted(range(len(model.names)), key=lambda n: model.names[n])
    if len(order) < 3:
        return math.nan, "", math.nan
    names = [model.names[n] for n in order]
    place = {name: k for k, name in enumerate(sorted(frames if frames is not None else names))}
    spans = np.diff([place[name] for name in names]).clip(min=1)
    centres = camera_to_world(model)[order, :3, 3]
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1) / spans
    worst, median = int(np.argmax(steps)), float(np.median(steps))
    ratio = steps[worst] / median if median > 0 else math.inf if steps[worst] > 0 else math.nan
    spread = float(np.linalg.norm(centres[:, None] - centres[None], axis=-1).max())
    share = steps[worst] * spans[worst] / spread if spread > 0 else math.nan
    return float(ratio), f"{names[worst]} -> {names[worst + 1]}", float(share)


def video_jumped(jump: tuple[float, str, float]) -> bool:
    """Whether :func:`video_jump`'s figures say a broken model: a step far over the median that is
    also a large part of the cameras' spread (a hand-held pause makes the median step tiny, but
    the walk's next step is still a small part of the walk)."""
    ratio, _, share = jump
    return ratio > MAX_VIDEO_JUMP and share > MIN_JUMP_SHARE


def jump_message(source, ratio: float, where: str, share: float) -> str:
    return (f"{source}: broken reconstruction: between {where.replace(' -> ', ' and ')} COLMAP's camera moved "
            f"{ratio:.0f} x its median step between neighbouring frames, {share:.0%} of the cameras' spread (at most "
            f"{MAX_VIDEO_JUMP:.0f} x and {MIN_JUMP_SHARE:.0%} allowed); "
            "a hand-held camera moves smoothly, so part of the model is wrong (a pattern repeated round the scene, "
            "such as windows or tiles, does this); keep more frames (--frames N) so neighbours overlap more, or "
            "film again with more of the unrepeated surroundings in view (COLMAP's mapping also varies from run to "
            "run); --keep-degenerate writes the dataset anyway")
