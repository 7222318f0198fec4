"""Reading a JSON body sent by any client: typed fields with one-sentence refusals.

Clients send what they send (strings for numbers, nulls, nested junk). Every field is read by name
with its type and range, so a bad value is named in the answer instead of failing deep inside.
Fields nobody reads are ignored, as AUTOMATIC1111 and OpenAI servers ignore them.
"""

from __future__ import annotations

import json
import math
from typing import Any

from studio.errors import InputError

MAX_BODY_BYTES = 64 * 1024 * 1024  # base64 pictures are large; anything bigger is not a picture request


def parse_body(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object, or InputError saying what is wrong with it."""
    if len(raw) > MAX_BODY_BYTES:
        raise InputError(f"The request body is {len(raw) / 2**20:.0f} MB; the limit is {MAX_BODY_BYTES // 2**20} MB.")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(f"The request body is not valid JSON ({str(exc).splitlines()[0][:120]}).") from None
    if not isinstance(body, dict):
        raise InputError(f"The request body must be a JSON object, not a {type(body).__name__}.")
    return body


class Fields:
    """Typed access to a JSON object's fields; `None` and absent both mean 'use the default'."""

    def __init__(self, body: dict[str, Any]):
        self.body = body

    def present(self, name: str) -> bool:
        return self.body.get(name) is not None

    def raw(self, name: str, default: Any = None) -> Any:
        value = self.body.get(name)
        return default if value is None else value

    def text(self, name: str, default: str = "", max_chars: int = 100_000) -> str:
        value = self.body.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise InputError(f"'{name}' must be a string, not {_shown(value)}.")
        if len(value) > max_chars:
            raise InputError(f"'{name}' is {len(value):,} characters long; the limit is {max_chars:,}.")
        return value

    def whole(self, name: str, default: int | None, low: int | None = None, high: int | None = None) -> int | None:
        value = self.body.get(name)
        if value is None:
            return default
        number = _number(name, value)
        if not float(number).is_integer():
            raise InputError(f"'{name}' must be a whole number, not {_shown(value)}.")
        number = int(number)
        _check_range(name, number, low, high)
        return number

    def real(self, name: str, default: float, low: float | None = None, high: float | None = None) -> float:
        value = self.body.get(name)
        if value is None:
            return default
        number = float(_number(name, value))
        _check_range(name, number, low, high)
        return number

    def flag(self, name: str, default: bool) -> bool:
        value = self.body.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
            return value.strip().lower() in ("true", "1")
        raise InputError(f"'{name}' must be true or false, not {_shown(value)}.")

    def strings(self, name: str, max_items: int, max_chars: int) -> tuple[str, ...]:
        """A string or a list of strings (OpenAI's `stop` takes either)."""
        value = self.body.get(name)
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise InputError(f"'{name}' must be a string or a list of strings, not {_shown(value)}.")
        if len(items) > max_items:
            raise InputError(f"'{name}' takes at most {max_items} strings, not {len(items)}.")
        for item in items:
            if not item or len(item) > max_chars:
                raise InputError(f"Each of '{name}' needs 1 to {max_chars} characters.")
        return tuple(items)

    def mapping(self, name: str) -> dict[str, Any]:
        value = self.body.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise InputError(f"'{name}' must be a JSON object, not {_shown(value)}.")
        return value


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise InputError(f"'{name}' must be a number, not {_shown(value)}.")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise InputError(f"'{name}' must be a number, not {_shown(value)}.") from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"'{name}' must be a number, not {_shown(value)}.")
    return value


def _check_range(name: str, number: float, low: float | None, high: float | None) -> None:
    if (low is not None and number < low) or (high is not None and number > high):
        if low is not None and high is not None:
            allowed = f"from {low:g} to {high:g}"
        else:
            allowed = f"at least {low:g}" if low is not None else f"at most {high:g}"
        raise InputError(f"'{name}' must be {allowed}, not {number:g}.")


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:40] + "…"
