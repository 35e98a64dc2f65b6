"""Fixtures of the storage suite; `storage` itself is in tests/conftest.py."""

from __future__ import annotations

import pytest

from pbt_service.store.sql_storage import SqlStorage
from tests.store.store_driver import StoreDriver


@pytest.fixture
def driver(storage: SqlStorage) -> StoreDriver:
    """A StoreDriver on each backend in turn."""
    return StoreDriver(storage)
