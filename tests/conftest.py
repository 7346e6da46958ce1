from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.support_postgres"]


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared third-party corpus, or a clean skip when FEEDHUB_CORPUS is unset."""
    value = os.environ.get("FEEDHUB_CORPUS")
    if not value:
        pytest.skip("FEEDHUB_CORPUS is not set")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"FEEDHUB_CORPUS={value} is not a directory")
    return path
