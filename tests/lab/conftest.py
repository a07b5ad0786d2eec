"""Lab fixtures: the real Fashion-MNIST files, a model cache shared by the figure tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wobbledetect.lab.datasets import FASHION_MNIST_FILES

#: ``../shared/data`` beside the clone (where CI has it), unless WOBBLEDETECT_DATA says otherwise.
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir():
    """The folder holding ``fashion-mnist/`` with the four original files; skip without it."""
    base = Path(os.environ.get("WOBBLEDETECT_DATA") or SHARED_DATA)
    if not all((base / "fashion-mnist" / name).is_file() for name in FASHION_MNIST_FILES):
        pytest.skip(f"the original Fashion-MNIST files are not in {base / 'fashion-mnist'} "
                    "(CI has them in ../shared/data; set WOBBLEDETECT_DATA elsewhere)")
    return base


@pytest.fixture(scope="session")
def lab_cache(tmp_path_factory):
    """One cache directory for the whole session: figures share their trained nets."""
    return tmp_path_factory.mktemp("wobbledetect-cache")
