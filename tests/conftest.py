"""Shared fixtures: real photos, tiny random images, and files that are not images."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests never touch the user's embedding cache; subprocesses inherit this.
os.environ["FEATURIZE_CACHE_DIR"] = tempfile.mkdtemp(prefix="featurize-cache-")
# Tests go through many (backbone, input size) pairs: keep their models, as the test
# of the bound sets its own.
os.environ["FEATURIZE_MAX_MODELS"] = "64"

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "hymenoptera"
SHARED = ROOT.parent / "shared" / "datasets" / "hymenoptera"


needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="no headless Chromium (apt-get install chromium; .ci/run installs it)",
)


def rendered(page) -> str:
    """The DOM of the HTML file ``page`` once headless Chromium has loaded it, with
    the title set to how many of its images decoded ("loaded N of M")."""
    html = page.read_text().replace(
        "</body>",
        "<script>window.onload=()=>{document.title='loaded '+[...document.images]"
        ".filter(i=>i.naturalWidth>0).length+' of '+document.images.length}"
        "</script></body>",
    )
    page.write_text(html)
    return subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip


def keras_backend() -> str:
    import keras

    return keras.backend.backend()


def pytest_collection_modifyitems(config, items):
    """On other backends, leave out the variants marked ``tf_only``: the backend
    subset checks each code path once there, not every backbone of a family."""
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        return
    kept = [item for item in items if item.get_closest_marker("tf_only") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(
            items=[item for item in items if item not in kept]
        )
        items[:] = kept


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real RGB photos: scikit-image's and scikit-learn's bundled samples."""
    from skimage import data as skdata
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    return {
        "chelsea": skdata.chelsea(),
        "coffee": skdata.coffee(),
        "astronaut": skdata.astronaut(),
        "rocket": skdata.rocket(),
        "china": china,
        "flower": flower,
    }


@pytest.fixture(scope="module")
def image_files(tmp_path_factory, photos) -> dict[str, Path]:
    """Good and bad image files on disk, by kind."""
    folder = tmp_path_factory.mktemp("images")
    chelsea = Image.fromarray(photos["chelsea"])
    files = {}

    def save(name, image, **kwargs):
        path = folder / name
        image.save(path, **kwargs)
        files[name.split(".")[0]] = path

    save("rgb.jpg", chelsea, quality=90)
    save("png.png", chelsea)
    save("grey.png", chelsea.convert("L"))
    save("palette.gif", chelsea.convert("P"))
    save("rgba.png", chelsea.convert("RGBA"))
    save("cmyk.jpg", chelsea.convert("CMYK"))
    sixteen = (np.asarray(chelsea.convert("L"), np.uint16) * 257).astype(np.uint16)
    save("sixteen.png", Image.fromarray(sixteen))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    save("exif.jpg", chelsea, exif=exif, quality=95)

    (folder / "empty.jpg").write_bytes(b"")
    files["empty"] = folder / "empty.jpg"
    (folder / "text.jpg").write_text("this is not an image\n")
    files["text"] = folder / "text.jpg"
    full = (folder / "rgb.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(full[: len(full) // 2])
    files["truncated"] = folder / "truncated.jpg"
    corrupt = bytearray(full)
    corrupt[600:4000] = os.urandom(3400)
    (folder / "corrupt.jpg").write_bytes(bytes(corrupt))
    files["corrupt"] = folder / "corrupt.jpg"
    (folder / "a_directory.jpg").mkdir()
    files["directory"] = folder / "a_directory.jpg"
    files["missing"] = folder / "missing.jpg"
    Image.fromarray(np.zeros((4, 4), np.float32)).save(folder / "float.tif")
    files["float"] = folder / "float.tif"
    return files


@pytest.fixture
def scratch_registry():
    """Backbones registered by a test are gone after it."""
    from featurize._backbones import registry as _backbones

    saved = dict(_backbones._REGISTRY)
    yield
    _backbones._REGISTRY.clear()
    _backbones._REGISTRY.update(saved)


@pytest.fixture(scope="session")
def tiny_images() -> np.ndarray:
    """Three random 40x56 RGB images."""
    return np.random.default_rng(0).integers(0, 256, (3, 40, 56, 3), dtype=np.uint8)


def stored_entries(cache_dir) -> int:
    """Entries in a cache another process may be writing (0 while it starts)."""
    from featurize import EmbeddingCache

    try:
        return int(EmbeddingCache(cache_dir).info()["entries"].sum())
    except Exception:  # not created yet, or locked for a moment
        return 0


def kill_once_writing(process, cache_dir, rng, timeout: float = 180) -> bool:
    """SIGKILL ``process`` at a random moment after it stored something new.

    Returns whether it was killed (False if it finished first).
    """
    import signal
    import time

    before = stored_entries(cache_dir)
    deadline = time.monotonic() + timeout
    while process.poll() is None and stored_entries(cache_dir) <= before:
        if time.monotonic() > deadline:
            raise AssertionError("the process stored nothing in time")
        time.sleep(0.1)
    time.sleep(float(rng.uniform(0.0, 1.5)))
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True
