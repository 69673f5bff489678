"""COLMAP's stages for ``data from-photos`` (capture/photos.py), through pycolmap: SIFT features (a few
images per call so the bar moves per image), matching (the image pairs in chunks through
``match_image_pairs``: every pair, or neighbours in capture order at doubling gaps) and incremental
mapping (the bar moves per registered image; a few seeds, the best model kept). pycolmap is optional
(extra ``colmap``) and imported only when they run."""
from __future__ import annotations

import contextlib
import itertools
import time
from pathlib import Path

from ..data.dataset import DataError

INSTALL_HINT = 'from-photos needs pycolmap, which is not installed: pip install "taichi-nerf[colmap]"'
SEQUENTIAL_OVERLAP = 10  # sequential matching: each image with its next 10, then at doubling gaps
RANDOM_SEED = 0  # COLMAP's RANSAC and mapper seeds: runs repeat
# Incremental mapping can settle into a wrong model that registers every photo (the cow
# capture: 2 seeds in 6, 4.7 and 22 degrees off): quick mappings are run with MAPPING_ATTEMPTS
# seeds and the best model kept (_better); a further attempt only while they took < RETRY_WITHIN_S.
MAPPING_ATTEMPTS = 3
RETRY_WITHIN_S = 30.0
MIN_INLIERS = 15  # a verified pair needs this many geometric inliers (COLMAP's default)
MASKED_PEAK_THRESHOLD = 0.0067 / 2  # with --masks: SIFT's contrast threshold (COLMAP's default 0.0067)
MASKED_MIN_INLIERS = 15  # with --masks: inliers to register an image (COLMAP's default 30)


def require_pycolmap():
    try:
        import pycolmap
    except ImportError:
        raise DataError(INSTALL_HINT) from None
    return pycolmap


def image_pairs(names: list[str], matching: str) -> list[tuple[str, str]]:
    if matching == "exhaustive":
        return list(itertools.combinations(names, 2))
    pairs = set()
    for i in range(len(names)):
        gaps = list(range(1, SEQUENTIAL_OVERLAP + 1)) + [2 ** k for k in range(4, 12)]
        pairs.update((names[i], names[i + g]) for g in gaps if i + g < len(names))
    return sorted(pairs, key=lambda p: (names.index(p[0]), names.index(p[1])))


def _bar(total, desc, progress, unit):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"{desc:<9}", unit=unit, disable=not progress, leave=True)


def _new_attempt(bar, attempt: int) -> None:
    """Each attempt maps the photos anew: the bar counts this attempt's registered photos. tqdm
    draws only once n passes the count it last drew, so that goes back to 0 too (else the bar
    stood at 0 through attempts 2 and 3, half a minute on a 40-frame video)."""
    bar.n = bar.last_print_n = 0
    bar.set_postfix_str(f"attempt {attempt + 1}/{MAPPING_ATTEMPTS}", refresh=True)


def _chunks(items: list, parts: int) -> list[list]:
    size = max(1, -(-len(items) // parts))
    return [items[k:k + size] for k in range(0, len(items), size)]


def run_colmap(images_dir: Path, work: Path, names: list[str], matching: str, camera_model: str,
               per_image_cameras: bool, progress: bool, threads: int, seconds: dict, masks_dir: Path | None = None,
               after_matching=None):
    """Features, matching and mapping; returns (the largest reconstruction or None, models made,
    verified pairs). ``after_matching(database)`` may refuse the capture before mapping."""
    pycolmap = require_pycolmap()
    pycolmap.logging.minloglevel = 3  # fatal only: the bars say what happens, a failure our one-line error
    pycolmap.set_random_seed(RANDOM_SEED)  # COLMAP's global generator (this thread's), before any stage draws
    db = work / "database.db"
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = camera_model
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = threads
    mapper = pycolmap.IncrementalPipelineOptions()
    if masks_dir is not None:  # COLMAP's layout: masks_dir/<image name>.png, no features where black
        reader.mask_path = str(masks_dir)
        # A masked object is a small part of each photo (a museum head: a quarter of the pixels, dark
        # and glossy): more, fainter features, and images registered on fewer inliers.
        extraction.sift.peak_threshold = MASKED_PEAK_THRESHOLD
        mapper.mapper.abs_pose_min_num_inliers = MASKED_MIN_INLIERS
        mapper.mapper.init_min_num_inliers = 4 * MASKED_MIN_INLIERS
    mode = pycolmap.CameraMode.PER_IMAGE if per_image_cameras else pycolmap.CameraMode.SINGLE
    start = time.perf_counter()
    with _bar(len(names), "features", progress, "img") as bar:
        for chunk in _chunks(names, 20):
            pycolmap.extract_features(db, images_dir, image_names=chunk, camera_mode=mode, reader_options=reader,
                                      extraction_options=extraction)
            if not per_image_cameras:
                reader.existing_camera_id = 1  # later calls share the first call's camera
            bar.update(len(chunk))
    seconds["features"] = time.perf_counter() - start
    start = time.perf_counter()
    pairs = image_pairs(names, matching)
    options = pycolmap.FeatureMatchingOptions()
    options.num_threads = threads
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = RANDOM_SEED
    plain = {name: f"{k}.pair" for k, name in enumerate(names)}
    with _bar(len(pairs), "matching", progress, "pair") as bar, _named_plainly(pycolmap, db, plain):
        for chunk in _chunks(pairs, 12):
            (work / "pairs.txt").write_text("".join(f"{plain[a]} {plain[b]}\n" for a, b in chunk))
            pairing = pycolmap.ImportedPairingOptions()
            pairing.match_list_path = str(work / "pairs.txt")
            pycolmap.match_image_pairs(db, matching_options=options, pairing_options=pairing,
                                       verification_options=verification)
            bar.update(len(chunk))
    seconds["matching"] = time.perf_counter() - start
    verified = _verified_pairs(pycolmap, db)
    if after_matching is not None:
        after_matching(db)
    mapper.num_threads = mapper.mapper.num_threads = threads  # the nested options keep their own counts
    best, models, spent = None, 0, 0.0
    with _bar(len(names), "mapping", progress, "img") as bar:
        for attempt in range(MAPPING_ATTEMPTS if verified else 0):
            if attempt and spent > RETRY_WITHIN_S:
                break
            _new_attempt(bar, attempt)
            start = time.perf_counter()
            seed = RANDOM_SEED + attempt  # the same photos give the same models (with threads=1)
            pycolmap.set_random_seed(seed)
            mapper.random_seed = mapper.mapper.random_seed = mapper.triangulation.random_seed = seed
            folder = work / "sparse" / f"attempt{attempt}"
            folder.mkdir(parents=True)

            def registered(count=1):
                bar.update(min(count, bar.total - bar.n))
            recs = pycolmap.incremental_mapping(db, images_dir, folder, mapper,
                                                initial_image_pair_callback=lambda: registered(2),
                                                next_image_callback=registered)
            recs = [r for r in recs.values() if r.num_reg_images() > 0]
            if recs:
                rec = max(recs, key=lambda r: r.num_reg_images())
                if best is None or _better(rec, best):
                    best, models = rec, len(recs)
            spent += time.perf_counter() - start
        bar.n = best.num_reg_images() if best is not None else 0  # it ends at the kept model's photos
        bar.set_postfix_str("", refresh=True)
    seconds["mapping"] = spent
    return best, models, verified


@contextlib.contextmanager
def _named_plainly(pycolmap, db: Path, plain: dict[str, str]):
    """COLMAP reads its pair list (pairs.txt) split at spaces, a line starting with '#' a comment:
    while matching, the database's images bear the ``plain`` names (``IMG 0001.jpg`` matched
    nothing), and their own come back after, for mapping and the model."""
    def rename(mapping):
        database = pycolmap.Database.open(str(db))
        try:
            for image in database.read_all_images():
                if image.name in mapping:
                    image.name = mapping[image.name]
                    database.update_image(image)
        finally:
            database.close()

    rename(plain)
    try:
        yield
    finally:
        rename({v: k for k, v in plain.items()})


def _better(rec, than) -> bool:
    """More photos registered, then the lower mean reprojection error: a wrong model COLMAP
    settles into fits its points worse (the cow capture: 0.32 and 0.71 px for the two wrong
    models of 6 seeds, 0.26-0.29 px for the right ones)."""
    if rec.num_reg_images() != than.num_reg_images():
        return rec.num_reg_images() > than.num_reg_images()
    return rec.compute_mean_reprojection_error() < than.compute_mean_reprojection_error()


def _verified_pairs(pycolmap, db: Path) -> int:
    database = pycolmap.Database.open(str(db))
    try:
        _, geometries = database.read_two_view_geometries()
        return sum(1 for g in geometries if len(g.inlier_matches) >= MIN_INLIERS)
    finally:
        database.close()
