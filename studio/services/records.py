"""Recorded parameters back into requests: a gallery record holds every request field plus other
facts (timings, revisions, stored inputs), so only the fields a request type knows are passed on."""

from __future__ import annotations

from dataclasses import fields
from typing import Any


def known_fields(request_type: type, params: dict[str, Any]) -> dict[str, Any]:
    """The recorded parameters that are fields of the dataclass `request_type`."""
    names = {f.name for f in fields(request_type)}
    return {k: v for k, v in params.items() if k in names}
