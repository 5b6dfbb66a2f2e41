"""Shared fixtures of the behaviour tests: tests that fail when the product chooses worse, not
only when it crashes. Each test's docstring names the planted bugs it was checked against."""

from __future__ import annotations

import pytest

import slimforge


@pytest.fixture(scope="session")
def digits():
    return slimforge.load_dataset("digits")
