"""The studio as the UI, the CLI and the API all see it: settings, catalogue, model cache, gallery
and backends wired together once, and one method per task, each handed to its service
(image, style, upscale, text, music, walks, rerun)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from studio.backends.diffusion import DiffusionBackend, ImageRequest
from studio.backends.diffusion.controlnet import folder_entries as controlnet_folder_entries
from studio.backends.diffusion.walks import DiffusionWalks, MorphRequest, PromptWalkRequest
from studio.backends.language import TextBackend, TextRequest, TextResult, TextUpdate
from studio.backends.melody import MelodyBackend, MelodyRequest
from studio.backends.melody_walk import MelodyWalkBackend, MelodyWalkRequest
from studio.backends.musicgen import MusicBackend, MusicRequest
from studio.backends.patterns import PatternBackend, PatternRequest
from studio.backends.style_walk import StyleWalkRequest
from studio.backends.stylize import StyleBackend, StyleRequest, StyleResult
from studio.backends.upscale import UpscaleBackend, UpscaleRequest
from studio.backends.video_style import VideoStyler, VideoStyleRequest
from studio.catalog import Catalog, load_catalog
from studio.history import Gallery, GalleryItem
from studio.media.images import LoadedImage, open_image
from studio.media.melody_tokens import Melody
from studio.media.video import VideoInfo
from studio.runtime import NEVER_CANCELLED, CancelToken, HeavyLane, ModelCache, ProgressCallback, no_progress
from studio.services.image import ImageOutcome, ImageService
from studio.services.models import ModelManager
from studio.services.music import (
    AnalysisOutcome,
    MelodyOutcome,
    MusicOutcome,
    MusicService,
    Primer,
    WalkOutcome,
)
from studio.services.rerun import Rerunner
from studio.services.style import StyleOutcome, StyleService
from studio.services.text import TextService
from studio.services.upscale import UpscaleOutcome, UpscaleService
from studio.services.video_style import VideoStyleOutcome, VideoStyleService
from studio.services.walks import FramesOutcome, WalkService
from studio.settings import Settings

log = logging.getLogger(__name__)


class Studio:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.catalog: Catalog = load_catalog(settings.models_file, settings.checkpoint_folders)
        for reason in self.catalog.skipped:  # files in the model folders the studio will not offer
            log.warning("not listed: %s", reason)
        # ControlNets kept in <data dir>/models/controlnet and in --models-from installations' ControlNet folders.
        found, skipped = controlnet_folder_entries(settings.controlnet_folders,
                                                   {entry.id for entry in self.catalog.entries()})
        for entry in found:
            self.catalog.add(entry)
        for reason in skipped:
            log.warning("not listed: %s", reason)
        self.cache = ModelCache(settings.model_memory_budget_mb)
        self.gallery = Gallery(settings.data_dir)
        # Model work from the page and from the HTTP APIs waits in this one line.
        self.heavy = HeavyLane(settings.heavy_concurrency)
        # The backends, one per model family.
        self.style = StyleBackend(self.cache, settings.device)
        self.text = TextBackend(self.cache, self.catalog, device=settings.device, offline=settings.offline)
        self.melody = MelodyBackend(self.cache, settings.device)
        self.melody_walks = MelodyWalkBackend(self.cache)
        self.music = MusicBackend(self.cache, self.catalog, device=settings.device, offline=settings.offline)
        self.upscaler = UpscaleBackend(self.cache, settings.device, settings.upscaler_folders)
        self.image = DiffusionBackend(
            self.cache,
            self.catalog,
            settings.device,
            settings.offline,
            openvino_dir=settings.cache_dir / "openvino" if settings.openvino else None,
            lora_dirs=settings.lora_folders,
            embedding_dirs=settings.embedding_folders,
            # A hires fix may upscale with Real-ESRGAN or the user's upscalers, by name.
            upscale_picture=self.upscaler.picture,
            upscaler_names=self.upscaler.hires_names,
        )
        self.image_walks = DiffusionWalks(self.image)
        self.models = ModelManager(settings, self.catalog, self.cache)
        self.patterns = PatternBackend(settings.max_pattern_side, settings.max_walk_frames)
        # With --ray, the model families run on Ray Serve: proxies take the backends' places before the
        # services are built, so every service, tab and command calls the same methods as in-process.
        self.cluster = None
        if settings.ray_address:
            from studio.cluster.client import attach

            self.cluster = attach(self, settings)
        # The services, one per task group.
        self.image_service = ImageService(settings, self.gallery, self.image)
        self.style_service = StyleService(settings, self.gallery, self.style)
        self.video_style_service = VideoStyleService(settings, self.gallery, VideoStyler(self.style))
        self.text_service = TextService(settings, self.gallery, self.catalog, self.text)
        self.music_service = MusicService(settings, self.gallery, self.melody, self.melody_walks, self.music)
        self.walk_service = WalkService(settings, self.gallery, self.image_walks, self.patterns, self.style)
        self.upscale_service = UpscaleService(settings, self.gallery, self.upscaler)
        self.rerunner = Rerunner(self.image_service, self.style_service, self.text_service, self.music_service,
                                 self.walk_service, self.upscale_service, self.video_style_service)

    def open_image(self, source: str | os.PathLike | bytes) -> LoadedImage:
        return open_image(source, self.settings.max_input_pixels)

    # -- images ---------------------------------------------------------------------------

    def generate_image(self, request: ImageRequest, image: LoadedImage | None = None,
                       mask: LoadedImage | None = None, **kwargs: Any) -> ImageOutcome:
        return self.image_service.generate(request, image, mask, **kwargs)

    # -- style transfer -------------------------------------------------------------------

    def control_map(self, picture: LoadedImage, control_type: str, size: tuple[int, int],
                    threshold_a: float | None = None,
                    threshold_b: float | None = None) -> tuple[Image.Image, str | None]:
        """A ControlNet's map of the picture at the working size (its type's settings, None for the
        defaults), and a note when the picture was fitted."""
        return self.image.control_map(picture.rgb, control_type, size, threshold_a, threshold_b)

    def stylize(self, photo: LoadedImage, request: StyleRequest, style_image: LoadedImage | None = None,
                **kwargs: Any) -> StyleOutcome:
        return self.style_service.stylize(photo, request, style_image, **kwargs)

    def keep_style(self, photo: LoadedImage, result: StyleResult, style_image: LoadedImage | None = None,
                   owner: str | None = None) -> GalleryItem:
        return self.style_service.keep(photo, result, style_image, owner)

    # -- upscaling ------------------------------------------------------------------------

    def upscale(self, photo: LoadedImage, request: UpscaleRequest, *, parameters: str | None = None,
                **kwargs: Any) -> UpscaleOutcome:
        """Enlarge a picture; `parameters` is the source PNG's own `parameters` text, kept above ours."""
        return self.upscale_service.upscale(photo, request, parameters=parameters, **kwargs)

    def upscaler_choices(self) -> list[tuple[str, str]]:
        """(label, id) of every upscaler: the built-in Real-ESRGAN models, then the users' files."""
        return self.upscaler.choices()

    # -- video style ----------------------------------------------------------------------

    def probe_video(self, clip: str | os.PathLike) -> VideoInfo:
        """What a clip is, from its headers; refused beyond the operator's video limits before decoding."""
        return self.video_style_service.probe(Path(clip))

    def restyle_video(self, clip: str | os.PathLike, request: VideoStyleRequest,
                      style_image: LoadedImage | None = None, **kwargs: Any) -> VideoStyleOutcome:
        """A whole clip restyled without flicker, its soundtrack kept; see VideoStyleService.restyle."""
        return self.video_style_service.restyle(Path(clip), request, style_image, **kwargs)

    # -- text -----------------------------------------------------------------------------

    def stream_text(self, request: TextRequest, *, cancel: CancelToken = NEVER_CANCELLED) -> Iterator[TextUpdate]:
        return self.text_service.stream(request, cancel=cancel)

    def keep_text(self, result: TextResult, owner: str | None = None) -> GalleryItem:
        return self.text_service.keep(result, owner)

    # -- walks and patterns ---------------------------------------------------------------

    def keep_animation(self, frames: list, **kwargs: Any) -> GalleryItem:
        return self.walk_service.keep_animation(frames, **kwargs)

    def make_patterns(self, request: PatternRequest, **kwargs: Any) -> FramesOutcome:
        return self.walk_service.make_patterns(request, **kwargs)

    def style_walk(self, photo: LoadedImage, request: StyleWalkRequest,
                   style_images: list[LoadedImage] | None = None, **kwargs: Any) -> FramesOutcome:
        return self.walk_service.style_walk(photo, request, style_images, **kwargs)

    def prompt_walk(self, request: PromptWalkRequest, *, audio: Path | None = None, **kwargs: Any) -> FramesOutcome:
        return self.walk_service.prompt_walk(request, audio=audio, **kwargs)

    def image_morph(self, first: LoadedImage, second: LoadedImage, request: MorphRequest,
                    **kwargs: Any) -> FramesOutcome:
        return self.walk_service.image_morph(first, second, request, **kwargs)

    # -- music ----------------------------------------------------------------------------

    def read_primer(self, kind: str, source: str | os.PathLike, meter: str | None = "4/4") -> Primer:
        return self.music_service.read_primer(kind, source, meter)

    def compose(self, request: MelodyRequest, primer: Melody | None = None, *, owner: str | None = None,
                progress: ProgressCallback = no_progress, cancel: CancelToken = NEVER_CANCELLED) -> MelodyOutcome:
        return self.music_service.compose(request, primer, owner=owner, progress=progress, cancel=cancel)

    def melody_walk(self, a: Melody, b: Melody, request: MelodyWalkRequest, **kwargs: Any) -> WalkOutcome:
        return self.music_service.melody_walk(a, b, request, **kwargs)

    def make_music(self, request: MusicRequest, melody_path: str | os.PathLike | None = None,
                   **kwargs: Any) -> MusicOutcome:
        return self.music_service.make_music(request, melody_path, **kwargs)

    def analyse_audio(self, path: str | os.PathLike) -> AnalysisOutcome:
        return self.music_service.analyse_audio(path)

    # -- the gallery's re-run -------------------------------------------------------------

    def rerun(self, item_id: int, owner: str | None = None) -> GalleryItem:
        """Run a gallery item's task again with its recorded parameters; the new result is listed too."""
        return self.rerunner.rerun(item_id, owner)
