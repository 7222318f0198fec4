"""One Settings object for the whole studio: command-line flags, STUDIO_* env vars, limits, paths.

Precedence: an explicit flag beats its STUDIO_* variable, which beats the default. Hosted mode
(`--hosted`, STUDIO_HOSTED=1, or running on a Hugging Face Space) swaps in stricter defaults for
the limits (HOSTED_DEFAULTS); anything set explicitly still wins.
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
    hosted: bool = False  # a demo for strangers: per-visitor galleries, rate limits, tighter limits
    mcp: bool = False  # also serve the studio's tools to MCP clients
    api: bool = False  # (or an api_key) also serve AUTOMATIC1111's /sdapi/v1 and an OpenAI-compatible /v1 on the same port
    api_key: str | None = None  # callers of those APIs must send `Authorization: Bearer <key>`
    openvino: bool = True  # run diffusion UNets and TAESD through OpenVINO on a CPU, where installed
    # Folders of LoRA .safetensors files besides <data dir>/loras (an AUTOMATIC1111 models/Lora folder works).
    lora_dirs: tuple[Path, ...] = ()
    # Folders of textual-inversion embeddings besides <data dir>/embeddings (A1111's embeddings folder works).
    embedding_dirs: tuple[Path, ...] = ()
    # Folders of upscaler .safetensors files besides <data dir>/upscalers (A1111's models/ESRGAN works).
    upscaler_dirs: tuple[Path, ...] = ()
    # AUTOMATIC1111/Forge or ComfyUI installations whose model folders are read in place.
    models_from: tuple[Path, ...] = ()
    # Run model work on Ray Serve: the head node's HOST:PORT (or ray://HOST:10001, "auto", "local").
    ray_address: str | None = None
    cluster_config: Path | None = None  # TOML: replicas, CPUs/GPUs and requests per family (studio/cluster/config.py)

    # Sharing the machine: heavy model work runs this many at a time, behind a queue of this
    # length (0 = unbounded); each visitor may start this many heavy runs a minute (0 = no limit).
    heavy_concurrency: int = 1
    max_queue: int = 0
    rate_limit_per_minute: int = 0
    # Hosted galleries are per visitor session and deleted after this many hours.
    session_max_age_hours: int = 24

    # Limits, enforced on the server whatever the sliders say.
    max_input_pixels: int = 50_000_000  # refuse uploads above this before decoding them
    max_upload_mb: int = 50
    max_output_side: int = 2048  # longest side of a stylised result or a walk's frames
    max_upscale_pixels: int = 40_000_000  # an upscaled result (e.g. 6000x6000 px; 4096x4096 is 16.8 MP)
    max_pattern_side: int = 4096  # patterns render at any size; this caps memory and time
    max_walk_frames: int = 240
    max_audio_seconds: int = 600  # songs, hums, melodies: longer files are refused from their header
    max_steps: int = 150  # diffusion steps per image
    max_images: int = 32  # images per image request (batch size x batch count)
    max_new_tokens: int = 4096  # per text reply
    max_music_seconds: int = 30  # length of generated music
    # Videos to restyle, refused from their headers before decoding (a CPU restyles a few frames a second).
    max_video_seconds: int = 600
    max_video_frames: int = 18_000  # 10 minutes at 30 fps
    max_video_side: int = 4096  # of the uploaded clip; the result's size is capped by max_output_side
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

    def tool_folders(self, kind: str) -> tuple[Path, ...]:
        """The `kind` folders ("checkpoints", "loras", ...) of every --models-from installation."""
        from studio.model_folders import ModelFolderError, read_tool_folders

        found: list[Path] = []
        for root in self.models_from:
            try:
                found += read_tool_folders(root).of(kind)
            except ModelFolderError:  # validate() said so at start; a folder removed since is skipped
                continue
        return tuple(found)

    @property
    def checkpoint_folders(self) -> tuple[Path, ...]:
        """Where single-file checkpoints are listed from: the studio's own folders (checkpoints, and unet and
        diffusion_models for transformers alone), then other tools'."""
        from studio.model_folders import OWN_CHECKPOINT_FOLDERS

        own = tuple(self.data_dir / "models" / name for name in OWN_CHECKPOINT_FOLDERS)
        return (*own, *self.tool_folders("checkpoints"))

    @property
    def lora_folders(self) -> tuple[Path, ...]:
        """Where `<lora:NAME>` is looked for: the studio's own folder first, then the operator's."""
        return (self.data_dir / "loras", *self.lora_dirs, *self.tool_folders("loras"))

    @property
    def upscaler_folders(self) -> tuple[Path, ...]:
        """Where users' upscalers are listed from: the studio's own folder first, then the operator's."""
        return (self.data_dir / "upscalers", *self.upscaler_dirs, *self.tool_folders("upscalers"))

    @property
    def controlnet_folders(self) -> tuple[Path, ...]:
        """Where ControlNets are found besides the catalogue: the data dir's, then every --models-from one."""
        return (self.data_dir / "models" / "controlnet", *self.tool_folders("controlnets"))

    @property
    def embedding_folders(self) -> tuple[Path, ...]:
        """Where an embedding named in a prompt is looked for: the studio's own folder first, then the operator's."""
        return (self.data_dir / "embeddings", *self.embedding_dirs, *self.tool_folders("embeddings"))


# What hosted mode changes when the operator has not set a value: enough for a good demo, little
# enough that one visitor cannot hold the machine for long.
HOSTED_DEFAULTS: dict[str, object] = {
    "max_queue": 16,
    "rate_limit_per_minute": 10,
    "max_input_pixels": 16_000_000,
    "max_upload_mb": 20,
    "max_output_side": 1024,
    "max_upscale_pixels": 4_194_304,
    "max_pattern_side": 2048,
    "max_walk_frames": 48,
    "max_audio_seconds": 300,
    "max_steps": 30,
    "max_images": 4,
    "max_new_tokens": 512,
    "max_music_seconds": 15,
    "max_video_seconds": 20,
    "max_video_frames": 480,
    "max_video_side": 1920,
}
POSITIVE_LIMITS = ("max_input_pixels", "max_upload_mb", "max_output_side", "max_upscale_pixels", "max_pattern_side",
                   "max_walk_frames",
                   "max_audio_seconds", "max_steps", "max_images", "max_new_tokens", "max_music_seconds",
                   "max_video_seconds", "max_video_frames", "max_video_side",
                   "model_memory_budget_mb", "heavy_concurrency", "session_max_age_hours")
COUNT_LIMITS = ("max_queue", "rate_limit_per_minute")  # 0 turns these off

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
        if kind is tuple:  # folders, os.pathsep-separated like PATH
            return tuple(Path(part).expanduser() for part in raw.split(os.pathsep) if part.strip())
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
    "hosted": bool,
    "mcp": bool,
    "api": bool,
    "api_key": str,
    "openvino": bool,
    "lora_dirs": tuple,
    "embedding_dirs": tuple,
    "upscaler_dirs": tuple,
    "models_from": tuple,
    "ray_address": str,
    "cluster_config": Path,
    "heavy_concurrency": int,
    "max_queue": int,
    "rate_limit_per_minute": int,
    "session_max_age_hours": int,
    "max_input_pixels": int,
    "max_upload_mb": int,
    "max_output_side": int,
    "max_upscale_pixels": int,
    "max_pattern_side": int,
    "max_walk_frames": int,
    "max_audio_seconds": int,
    "max_steps": int,
    "max_images": int,
    "max_new_tokens": int,
    "max_music_seconds": int,
    "max_video_seconds": int,
    "max_video_frames": int,
    "max_video_side": int,
    "model_memory_budget_mb": int,
}


def on_space(environ: dict[str, str] | None = None) -> bool:
    """Hugging Face Spaces set SPACE_ID in every Space's environment."""
    environ = os.environ if environ is None else environ
    return bool(environ.get("SPACE_ID"))


def _env_values(environ: dict[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for name, kind in _FIELD_TYPES.items():
        raw = environ.get(_env_name(name))
        if raw is not None:
            values[name] = _coerce(name, kind, raw)
    return values


def _resolve(explicit: dict[str, object], environ: dict[str, str]) -> Settings:
    """Defaults, hosted defaults where hosted, then what the operator set explicitly."""
    base: dict[str, object] = {}
    hosted = explicit.get("hosted", on_space(environ))
    if hosted:
        base.update(HOSTED_DEFAULTS, hosted=True)
    if on_space(environ):
        # A Space reaches the app through its proxy on the port Gradio is told to use.
        base.update(host="0.0.0.0", port=int(environ.get("GRADIO_SERVER_PORT", "7860")))
    return validate(replace(Settings(), **{**base, **explicit}))


def validate(settings: Settings) -> Settings:
    if settings.device not in DEVICES:
        raise SettingsError(f"device must be one of {', '.join(DEVICES)}, got {settings.device!r}")
    if not 0 < settings.port < 65536:
        raise SettingsError(f"port must be 1-65535, got {settings.port}")
    if settings.auth is not None and (":" not in settings.auth or settings.auth.startswith(":")):
        raise SettingsError("auth must look like USER:PASS")
    if settings.api_key is not None and not settings.api_key.strip():
        raise SettingsError("api_key must not be empty")
    for folder in settings.lora_dirs:
        if folder.exists() and not folder.is_dir():
            raise SettingsError(f"lora_dirs: {folder} is a file, not a folder of LoRAs")
    for folder in settings.embedding_dirs:
        if folder.exists() and not folder.is_dir():
            raise SettingsError(f"embedding_dirs: {folder} is a file, not a folder of embeddings")
    for folder in settings.upscaler_dirs:
        if folder.exists() and not folder.is_dir():
            raise SettingsError(f"upscaler_dirs: {folder} is a file, not a folder of upscalers")
    for root in settings.models_from:
        from studio.model_folders import ModelFolderError, read_tool_folders

        try:
            read_tool_folders(root)
        except ModelFolderError as exc:
            raise SettingsError(str(exc)) from None
    if settings.cluster_config is not None and settings.ray_address is None:
        raise SettingsError("cluster_config needs ray_address (--ray ADDRESS): it describes Ray Serve deployments")
    for name in POSITIVE_LIMITS:
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be positive")
    for name in COUNT_LIMITS:
        if getattr(settings, name) < 0:
            raise SettingsError(f"{name} must be 0 (off) or more")
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
    parser.add_argument(
        "--hosted",
        action="store_const",
        const=True,
        help="serve a public demo: each visitor sees only their own gallery, heavy work is queued and "
        "rate-limited, limits are tighter (STUDIO_HOSTED; on by itself on a Hugging Face Space)",
    )
    parser.add_argument(
        "--mcp", action="store_const", const=True, help="also serve the studio's tools to MCP clients (STUDIO_MCP)"
    )
    parser.add_argument(
        "--api",
        action="store_const",
        const=True,
        help="also serve AUTOMATIC1111's API (/sdapi/v1) and an OpenAI-compatible API (/v1) on the same port, "
        "for existing clients (STUDIO_API)",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="callers of those APIs must send 'Authorization: Bearer KEY' (or the --auth login) (STUDIO_API_KEY)",
    )
    parser.add_argument(
        "--no-openvino",
        dest="openvino",
        action="store_const",
        const=False,
        help="run diffusion on torch alone, not OpenVINO (STUDIO_OPENVINO=0; uses less memory, is slower on a CPU)",
    )
    parser.add_argument(
        "--ray",
        dest="ray_address",
        metavar="ADDRESS",
        help="run model work on Ray Serve: the head node's HOST:PORT, or 'local' to start Ray on this machine "
        "(STUDIO_RAY_ADDRESS; needs requirements-ray.txt)",
    )
    parser.add_argument(
        "--cluster-config",
        type=Path,
        metavar="FILE",
        help="with --ray: a TOML file of replicas, CPUs/GPUs and requests per model family (STUDIO_CLUSTER_CONFIG)",
    )
    add_network_dir_arguments(parser)
    add_upscaler_dir_argument(parser)
    add_models_from_argument(parser)


def add_models_from_argument(parser: argparse.ArgumentParser, **extra) -> None:
    """`--models-from DIR`, repeatable; shared by the server and the image commands."""
    parser.add_argument(
        "--models-from",
        dest="models_from",
        metavar="DIR",
        type=Path,
        action="append",
        help="use the checkpoints, LoRAs and embeddings of an AUTOMATIC1111/Forge or ComfyUI installation in "
        f"place; repeat for more (STUDIO_MODELS_FROM, folders separated by '{os.pathsep}')",
        **extra,
    )


def add_network_dir_arguments(parser: argparse.ArgumentParser, **extra) -> None:
    """`--lora-dir DIR` and `--embeddings-dir DIR`, each repeatable; shared by the server and the image commands."""
    parser.add_argument(
        "--lora-dir",
        dest="lora_dirs",
        metavar="DIR",
        type=Path,
        action="append",
        help="also look for <lora:NAME> files in this folder; repeat for more "
        f"(STUDIO_LORA_DIRS, folders separated by '{os.pathsep}'; <data dir>/loras is always searched)",
        **extra,
    )
    parser.add_argument(
        "--embeddings-dir",
        dest="embedding_dirs",
        metavar="DIR",
        type=Path,
        action="append",
        help="also look for textual-inversion embeddings (NAME.safetensors, called by NAME in a prompt) in this "
        f"folder; repeat for more (STUDIO_EMBEDDING_DIRS, folders separated by '{os.pathsep}'; "
        "<data dir>/embeddings is always searched)",
        **extra,
    )


def add_upscaler_dir_argument(parser: argparse.ArgumentParser, **extra) -> None:
    """`--upscalers-dir DIR`, repeatable; shared by the server and the upscale command."""
    parser.add_argument(
        "--upscalers-dir",
        dest="upscaler_dirs",
        metavar="DIR",
        type=Path,
        action="append",
        help="also list the .safetensors upscalers (any spandrel recognises) in this folder; repeat for more "
        f"(STUDIO_UPSCALER_DIRS, folders separated by '{os.pathsep}'; <data dir>/upscalers is always searched)",
        **extra,
    )


add_lora_dir_argument = add_network_dir_arguments  # the name the image commands import


def from_args(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    """Defaults, then STUDIO_* env, then any flag given on the command line."""
    environ = os.environ if environ is None else environ
    given = {
        f.name: getattr(args, f.name)
        for f in fields(Settings)
        if f.name in _FIELD_TYPES and getattr(args, f.name, None) is not None
    }
    for name in ("lora_dirs", "embedding_dirs", "upscaler_dirs", "models_from"):
        if name in given:  # argparse's append gives a list; Settings is frozen, so a tuple
            given[name] = tuple(Path(p).expanduser() for p in given[name])
    return _resolve({**_env_values(environ), **given}, environ)
