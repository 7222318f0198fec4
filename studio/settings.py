"""One Settings object for the whole studio: command-line flags, STUDIO_* env vars, limits, paths.

Precedence: an explicit flag beats its STUDIO_* variable, which beats the default.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

DEVICES = ("auto", "cpu", "cuda", "mps")


class SettingsError(ValueError):
    """A flag or STUDIO_* variable has a value the studio cannot use."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    auth: str | None = None  # "USER:PASS"
    offline: bool = False
    data_dir: Path = Path("studio-data")
    models_file: Path | None = None
    device: str = "auto"

    # Limits, enforced by the backends and the UI alike.
    max_input_pixels: int = 50_000_000  # refuse uploads above this before decoding them
    max_upload_mb: int = 50
    max_output_side: int = 2048  # longest side of a stylised result or a walk's frames
    max_pattern_side: int = 4096  # patterns render at any size; this caps memory and time
    max_walk_frames: int = 240
    max_audio_seconds: int = 600  # songs, hums, melodies: longer files are refused from their header
    model_memory_budget_mb: int = 8192  # runtime cache evicts least-recently-used models above this

    @property
    def auth_pair(self) -> tuple[str, str] | None:
        if not self.auth:
            return None
        user, _, password = self.auth.partition(":")
        return user, password

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"

    @property
    def inputs_dir(self) -> Path:
        return self.data_dir / "inputs"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "gallery.sqlite3"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"


_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off", ""}


def _env_name(field_name: str) -> str:
    return "STUDIO_" + field_name.upper()


def _coerce(name: str, kind: type, raw: str) -> object:
    try:
        if kind is bool:
            low = raw.strip().lower()
            if low in _BOOL_TRUE:
                return True
            if low in _BOOL_FALSE:
                return False
            raise ValueError(raw)
        if kind is int:
            return int(raw)
        if kind is Path:
            return Path(raw).expanduser()
        return raw
    except ValueError:
        raise SettingsError(f"{_env_name(name)}={raw!r} is not a valid {kind.__name__}") from None


_FIELD_TYPES: dict[str, type] = {
    "host": str,
    "port": int,
    "share": bool,
    "auth": str,
    "offline": bool,
    "data_dir": Path,
    "models_file": Path,
    "device": str,
    "max_input_pixels": int,
    "max_upload_mb": int,
    "max_output_side": int,
    "max_pattern_side": int,
    "max_walk_frames": int,
    "max_audio_seconds": int,
    "model_memory_budget_mb": int,
}


def from_env(environ: dict[str, str] | None = None, base: Settings | None = None) -> Settings:
    """Settings from STUDIO_* variables on top of `base` (defaults if None)."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name, kind in _FIELD_TYPES.items():
        raw = environ.get(_env_name(name))
        if raw is not None:
            values[name] = _coerce(name, kind, raw)
    return validate(replace(base or Settings(), **values))


def validate(settings: Settings) -> Settings:
    if settings.device not in DEVICES:
        raise SettingsError(f"device must be one of {', '.join(DEVICES)}, got {settings.device!r}")
    if not 0 < settings.port < 65536:
        raise SettingsError(f"port must be 1-65535, got {settings.port}")
    if settings.auth is not None and (":" not in settings.auth or settings.auth.startswith(":")):
        raise SettingsError("auth must look like USER:PASS")
    for name in ("max_input_pixels", "max_upload_mb", "max_output_side", "max_pattern_side", "max_walk_frames",
                 "max_audio_seconds", "model_memory_budget_mb"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be positive")
    return settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The server flags; each defaults to None so that env vars show through."""
    parser.add_argument("--host", help="address to listen on (STUDIO_HOST; default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (STUDIO_PORT; default 7860)")
    parser.add_argument(
        "--share", action="store_const", const=True, help="also serve through a public Gradio link (STUDIO_SHARE)"
    )
    parser.add_argument("--auth", metavar="USER:PASS", help="require this login for every page and API call (STUDIO_AUTH)")
    parser.add_argument(
        "--offline",
        action="store_const",
        const=True,
        help="never contact the model hub; use built-in and already-downloaded models only (STUDIO_OFFLINE)",
    )
    parser.add_argument(
        "--data-dir", type=Path, help="where the gallery and outputs live (STUDIO_DATA_DIR; default ./studio-data)"
    )
    parser.add_argument("--models-file", type=Path, help="a TOML file of extra catalogue entries (STUDIO_MODELS_FILE)")
    parser.add_argument("--device", choices=DEVICES, help="where models run (STUDIO_DEVICE; default auto)")


def from_args(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    """Defaults, then STUDIO_* env, then any flag given on the command line."""
    settings = from_env(environ)
    given = {
        f.name: getattr(args, f.name)
        for f in fields(Settings)
        if f.name in _FIELD_TYPES and getattr(args, f.name, None) is not None
    }
    return validate(replace(settings, **given))
