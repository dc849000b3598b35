"""Helpers for tests that pin an error's whole message, word for word."""

import re

import pytest


def raises_exactly(error: type[BaseException], message: str):
    """pytest.raises for an error whose whole message is `message`."""
    return pytest.raises(error, match=f"^{re.escape(message)}$")


def message_of(error: type[BaseException], make) -> str:
    """The message of the `error` that calling `make()` raises (it must raise one)."""
    with pytest.raises(error) as raised:
        make()
    return str(raised.value)
