"""Errors the studio shows to people, as opposed to bugs.

A StudioError's message is written for the person at the screen: the UI shows it
in an alert and the CLI prints it as one line.
"""

from __future__ import annotations


class StudioError(Exception):
    """Something the user can act on: bad input, a missing model, a full disk."""


class InputError(StudioError):
    """The user's input cannot be used as given."""


class ModelUnavailable(StudioError):
    """A model is not on this machine and cannot be fetched now."""


class Cancelled(Exception):
    """The user pressed Stop; long work ends at its next step."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 300 characters), or its kind when it has none."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
