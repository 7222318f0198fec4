"""A stand-in for the model hub on 127.0.0.1, serving local folders the way the hub's API and
resolve URLs do, so the studio's real download code (huggingface_hub's snapshot_download) runs
end to end in tests without the internet. It can be told to die in the middle of a file."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"


@dataclass
class LoopbackHub:
    repos: dict[str, Path]  # repo id -> folder whose files it serves
    # Files whose transfer breaks after this many bytes (once each), as a dying server would.
    cut_after: dict[str, int] = field(default_factory=dict)
    # Slows each chunk of weights, so that a test can press Stop in the middle of a file.
    chunk_delay: float = 0.0
    chunk_bytes: int = 65536
    requests: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def files(self, repo: str) -> list[Path]:
        root = self.repos[repo]
        return sorted(p for p in root.rglob("*") if p.is_file())

    def start(self) -> LoopbackHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet: the tests read hub.requests instead
                pass

            def do_GET(self) -> None:
                ranged = self.headers.get("Range")
                hub.requests.append(f"GET {self.path}" + (f" Range: {ranged}" if ranged else ""))
                hub.answer(self, head=False)

            def do_HEAD(self) -> None:
                hub.requests.append(f"HEAD {self.path}")
                hub.answer(self, head=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # -- the hub's answers ------------------------------------------------------------------

    def answer(self, handler: BaseHTTPRequestHandler, head: bool) -> None:
        path = handler.path.split("?")[0]
        info = re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/([^/]+)", path)
        tree = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(/.*)?", path)
        resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if info and info.group(1) in self.repos:
            repo = info.group(1)
            siblings = [{"rfilename": self.name(repo, p)} for p in self.files(repo)]
            return self.send_json(handler, {"id": repo, "modelId": repo, "sha": COMMIT, "siblings": siblings})
        if tree and tree.group(1) in self.repos:
            repo = tree.group(1)
            listing = [{"type": "file", "path": self.name(repo, p), "size": p.stat().st_size,
                        "oid": hashlib.sha1(p.read_bytes()).hexdigest()} for p in self.files(repo)]
            return self.send_json(handler, listing)
        if resolve and resolve.group(1) in self.repos:
            file = self.repos[resolve.group(1)] / resolve.group(3)
            if file.is_file():
                return self.send_file(handler, file, head)
        self.send_json(handler, {"error": "Repository not found"}, status=404,
                       headers={"X-Error-Code": "RepoNotFound"})

    def name(self, repo: str, path: Path) -> str:
        return path.relative_to(self.repos[repo]).as_posix()

    def send_json(self, handler, body, status: int = 200, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def send_file(self, handler, file: Path, head: bool) -> None:
        import time

        data = file.read_bytes()
        start = 0
        ranged = re.fullmatch(r"bytes=(\d+)-", handler.headers.get("Range", ""))
        if ranged and not head:
            start = int(ranged.group(1))
        handler.send_response(206 if start else 200)
        handler.send_header("X-Repo-Commit", COMMIT)
        handler.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        handler.send_header("Content-Length", str(len(data) - start))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        if head:
            return
        cut = self.cut_after.pop(file.name, None)
        end = len(data) if cut is None else min(len(data), max(cut, start + 1))
        for offset in range(start, end, self.chunk_bytes):
            handler.wfile.write(data[offset:min(offset + self.chunk_bytes, end)])
            handler.wfile.flush()
            if self.chunk_delay and file.suffix in (".safetensors", ".gguf"):
                time.sleep(self.chunk_delay)
        if cut is not None:  # the server dies mid-file: the connection closes short of Content-Length
            handler.close_connection = True
            handler.connection.shutdown(2)
