"""Fixtures for the store tests."""
import pytest

from engine.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "store"))
    yield s
    s.close()
