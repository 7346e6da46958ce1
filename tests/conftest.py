from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from lxml import etree

from feedhub.storage import open_storage
from feedhub.storage.base import Storage
from tests.support_feedserver import FeedServer

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


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    """A migrated SQLite database of the test's own (test_storage's contract suite has its
    own, over SQLite and PostgreSQL)."""
    store = open_storage(f"sqlite:///{tmp_path}/feedhub.db")
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def server() -> Iterator[FeedServer]:
    """A feed server on 127.0.0.1 with no routes yet."""
    with FeedServer() as s:
        yield s


@pytest.fixture(scope="session")
def atom_schema() -> etree.RelaxNG:
    """RFC 4287's RELAX NG schema, from FEEDHUB_SCHEMAS or ../shared/schemas."""
    folder = os.environ.get("FEEDHUB_SCHEMAS")
    default = Path(__file__).resolve().parents[2] / "shared" / "schemas"
    path = Path(folder) / "atom.rng" if folder else default / "atom.rng"
    if not path.is_file():
        pytest.skip(f"RFC 4287 RELAX NG schema not found at {path} (set FEEDHUB_SCHEMAS)")
    return etree.RelaxNG(etree.parse(str(path)))


@pytest.fixture(scope="session")
def json_validator() -> jsonschema.protocols.Validator:
    """JSON Feed 1.1's schema, with format checks."""
    schema = json.loads(Path(__file__).with_name("jsonfeed-1.1.schema.json").read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@pytest.fixture(scope="module")
def artifacts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where a module's screenshots go: $FEEDHUB_ARTIFACTS/<module without test_>."""
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    root = os.environ.get("FEEDHUB_ARTIFACTS")
    if not root:
        return tmp_path_factory.mktemp(name)
    path = Path(root) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, through Playwright (skipped or failed when missing, see
    tests.support_browser.require_browser)."""
    from tests.support_browser import CHROMIUM, CHROMIUM_ARGS, require_browser

    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
