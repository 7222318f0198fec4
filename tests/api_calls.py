"""Raw HTTP calls to the running studio's API, the way any script (or a hostile visitor) can make them:
POST /gradio_api/call/<endpoint> with JSON, then read the result as server-sent events.

gradio_client hides what travels on the wire (status codes, the error text, a missing message);
the fault, security and fuzz tests need exactly that.
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# Generous: a call that takes longer than this on a busy 2-core box is a hang, not slowness.
CALL_TIMEOUT_S = 180
# What the studio says when something unexpected (a bug) escapes a handler: see studio/ui/common.py.
UNEXPECTED = "Something went wrong"


@dataclass
class Outcome:
    """How one call ended: the HTTP status of the request, the last event and its data."""

    status: int
    event: str | None  # "complete", "error", or None when the call was refused before it ran
    data: Any
    raw: str

    @property
    def message(self) -> str | None:
        """The error text a person would see, or None."""
        if self.event == "error":
            if isinstance(self.data, dict):
                return self.data.get("error") or self.data.get("message")
            return None if self.data is None else str(self.data)
        return None


def file_data(path: str | None, **extra: Any) -> dict[str, Any]:
    """A Gradio FileData payload naming `path` (what a client sends for a file input)."""
    return {"path": path, "meta": {"_type": "gradio.FileData"}, **extra}


def upload(base_url: str, path: Path, *, name: str | None = None, client: httpx.Client | None = None) -> dict:
    """Upload a file the way the page does; returns the FileData to pass to an endpoint."""
    name = name or path.name
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    http = client or httpx
    response = http.post(f"{base_url}gradio_api/upload", files={"files": (name, path.read_bytes(), kind)},
                         timeout=60)
    response.raise_for_status()
    return file_data(response.json()[0], orig_name=name)


def call(base_url: str, endpoint: str, data: list, *, client: httpx.Client | None = None,
         timeout: float = CALL_TIMEOUT_S) -> Outcome:
    """Run `endpoint` with `data` and wait for its final event."""
    http = client or httpx.Client()
    try:
        # Python's json writes NaN and Infinity as bare words, as any careless or hostile client can.
        body = json.dumps({"data": data})
        started = http.post(f"{base_url}gradio_api/call/{endpoint}", content=body,
                            headers={"content-type": "application/json"}, timeout=timeout)
        if started.status_code != 200:
            return Outcome(started.status_code, None, _json_or_text(started.text), started.text)
        event_id = started.json()["event_id"]
        with http.stream("GET", f"{base_url}gradio_api/call/{endpoint}/{event_id}", timeout=timeout) as stream:
            text = "".join(stream.iter_text())
            status = stream.status_code
    finally:
        if client is None:
            http.close()
    event, payload = None, None
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if lines.get("event") in ("complete", "error"):
            event, payload = lines["event"], _json_or_text(lines.get("data", "null"))
    return Outcome(status, event, payload, text)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
