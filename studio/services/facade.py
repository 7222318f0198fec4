"""The studio as the UI, the CLI and the API all see it: settings, catalogue, model cache,
gallery and backends wired together once, plus the steps every task shares
(open the inputs, run the backend, keep the result and what is needed to re-run it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from studio import limits, music_service
from studio.backends.diffusion import DiffusionBackend, ImageRequest
from studio.backends.diffusion_walk import Keyframe, MorphRequest, PromptWalkRequest, image_morph, prompt_walk
from studio.backends.language import TextBackend, TextRequest, TextResult, TextUpdate, document
from studio.backends.melody import MelodyBackend, MelodyRequest
from studio.backends.melody_walk import MelodyWalkBackend, MelodyWalkRequest
from studio.backends.musicgen import MusicBackend, MusicRequest
from studio.backends.patterns import PatternBackend, PatternRequest
from studio.backends.style_walk import StyleWalkRequest, style_walk
from studio.backends.stylize import StyleBackend, StyleRequest, StyleResult
from studio.catalog import Catalog, load_catalog
from studio.errors import StudioError
from studio.history import Gallery, GalleryItem
from studio.images import ImageOutcome, generate_image, rerun_image
from studio.media.animation import write_gif, write_mp4
from studio.media.audio_pacing import load_audio, percussive_pacing, position_to_segment
from studio.media.images import LoadedImage, open_image
from studio.media.melody_tokens import Melody
from studio.runtime import NEVER_CANCELLED, CancelToken, ModelCache, ProgressCallback, no_progress
from studio.settings import Settings

IMAGE_TASKS = ("txt2img", "img2img", "inpaint", "outpaint", "restyle")


@dataclass
class StyleOutcome:
    result: StyleResult
    item: GalleryItem | None
    notes: list[str]


@dataclass
class FramesOutcome:
    """A still or an animation: its frames, where it was kept, and whether Stop cut it short."""

    frames: list
    params: dict[str, Any]
    seconds: float
    item: GalleryItem | None
    stopped: bool = False
    notes: list[str] = field(default_factory=list)


class Studio:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.catalog: Catalog = load_catalog(settings.models_file)
        self.cache = ModelCache(settings.model_memory_budget_mb)
        self.gallery = Gallery(settings.data_dir)
        self.style = StyleBackend(self.cache, settings.device)
        self.text = TextBackend(self.cache, self.catalog, device=settings.device, offline=settings.offline)
        self.melody = MelodyBackend(self.cache, settings.device)
        self.melody_walks = MelodyWalkBackend(self.cache)
        self.music = MusicBackend(self.cache, self.catalog, device=settings.device, offline=settings.offline)
        self.image = DiffusionBackend(
            self.cache,
            self.catalog,
            settings.device,
            settings.offline,
            openvino_dir=settings.cache_dir / "openvino" if settings.openvino else None,
        )
        self.patterns = PatternBackend(settings.max_pattern_side, settings.max_walk_frames)

    def open_image(self, source: str | os.PathLike | bytes) -> LoadedImage:
        return open_image(source, self.settings.max_input_pixels)

    # -- style transfer -------------------------------------------------------------------

    def stylize(
        self,
        photo: LoadedImage,
        request: StyleRequest,
        style_image: LoadedImage | None = None,
        *,
        keep: bool = True,
        owner: str | None = None,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> StyleOutcome:
        result = self.style.stylize(
            photo,
            request,
            style_image,
            max_side=self.settings.max_output_side,
            progress=progress,
            cancel=cancel,
        )
        notes = list(photo.notes) + ([f"Style image: {n}" for n in style_image.notes] if style_image else [])
        item = self.keep_style(photo, result, style_image, owner=owner) if keep else None
        return StyleOutcome(result, item, notes)

    def keep_style(
        self,
        photo: LoadedImage,
        result: StyleResult,
        style_image: LoadedImage | None = None,
        owner: str | None = None,
    ) -> GalleryItem:
        """List a style result in the gallery together with the inputs needed to re-run it."""
        params = dict(result.params)
        params["input"] = self.gallery.keep_input(photo.original)
        if style_image is not None:
            params["style_image"] = self.gallery.keep_input(style_image.original)
        params["seconds"] = round(result.seconds, 3)
        return self.gallery.add_image(result.image, task="style", model=params["model"], params=params, owner=owner)

    # -- text -----------------------------------------------------------------------------

    def stream_text(self, request: TextRequest, *, cancel: CancelToken = NEVER_CANCELLED) -> Iterator[TextUpdate]:
        """The reply as it grows, within the operator's token limit."""
        limits.check_text(request, self.settings)
        return self.text.stream(request, cancel=cancel)

    def keep_text(self, result: TextResult, owner: str | None = None) -> GalleryItem:
        """List a written piece (the whole text, or the conversation) with everything needed to re-run it."""
        from studio.media.text_card import text_card

        suffix, contents = document(result)
        params = dict(result.params)
        params.update(
            prompt_tokens=result.prompt_tokens,
            new_tokens=result.new_tokens,
            tokens_per_second=round(result.tokens_per_second, 1),
            seconds=round(result.seconds, 3),
            finish=result.finish,
        )
        entry = self.catalog.get(params["model"])
        title = f"{'Written' if params['mode'] == 'write' else 'Chat'} · {entry.name}"
        return self.gallery.add_file(
            lambda path: path.write_text(contents, encoding="utf-8"),
            suffix=suffix,
            preview=text_card(title, result.text),
            task="text",
            model=params["model"],
            params=params,
            seed=params["seed"],
            owner=owner,
        )

    # -- images: generate, inpaint, outpaint, restyle (studio/images.py) ------------------

    def generate_image(self, request: ImageRequest, image: LoadedImage | None = None,
                       mask: LoadedImage | None = None, **kwargs: Any) -> ImageOutcome:
        return generate_image(self, request, image, mask, **kwargs)
    # -- walks and patterns ---------------------------------------------------------------

    def keep_animation(
        self,
        frames: list,
        *,
        task: str,
        model: str,
        params: dict[str, Any],
        fps: float,
        owner: str | None = None,
        audio: Path | None = None,
    ) -> GalleryItem:
        """An MP4 for the gallery (plays everywhere, with the soundtrack if any) and a looping GIF beside it."""
        return self.gallery.add_file(
            lambda path: write_mp4(frames, path, fps, audio=audio),
            suffix=".mp4",
            siblings={".gif": lambda path: write_gif(frames, path, fps)},
            preview=frames[0],
            task=task,
            model=model,
            params=params,
            owner=owner,
        )

    def make_patterns(
        self,
        request: PatternRequest,
        *,
        keep: bool = True,
        owner: str | None = None,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> FramesOutcome:
        result = self.patterns.render(request, progress=progress, cancel=cancel)
        params = dict(result.params, seconds=round(result.seconds, 3))
        item = None
        if keep and request.walk_to is None:
            item = self.gallery.add_image(result.frames[0], task="patterns", model=params["model"], params=params,
                                          seed=request.seed, owner=owner)
        elif keep:
            params["frames_made"] = len(result.frames)
            item = self.keep_animation(result.frames, task="patterns", model=params["model"], params=params,
                                       fps=PATTERN_WALK_FPS, owner=owner)
        return FramesOutcome(result.frames, params, result.seconds, item, result.stopped)

    def style_walk(
        self,
        photo: LoadedImage,
        request: StyleWalkRequest,
        style_images: list[LoadedImage] | None = None,
        *,
        keep: bool = True,
        owner: str | None = None,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> FramesOutcome:
        style_images = style_images or []
        result = style_walk(
            self.style,
            photo,
            request,
            style_images,
            max_side=self.settings.max_output_side,
            max_frames=self.settings.max_walk_frames,
            progress=progress,
            cancel=cancel,
        )
        params = dict(result.params, seconds=round(result.seconds, 3), frames_made=len(result.frames))
        notes = list(photo.notes)
        item = None
        if keep:
            params["input"] = self.gallery.keep_input(photo.original)
            params["style_images"] = [self.gallery.keep_input(image.original) for image in style_images]
            item = self.keep_animation(result.frames, task="style-walk", model=params["model"], params=params,
                                       fps=request.fps, owner=owner)
        return FramesOutcome(result.frames, params, result.seconds, item, result.stopped, notes)
    # -- diffusion walks (studio/backends/diffusion_walk.py) ---------------------------

    def prompt_walk(
        self,
        request: PromptWalkRequest,
        *,
        audio: Path | None = None,
        owner: str | None = None,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> FramesOutcome:
        """A prompt/seed walk, kept as MP4 + GIF; with `audio`, paced by its beat and carrying it."""
        limits.check_image(request.settings, self.settings)
        positions = None
        fps = request.fps
        if audio is not None:
            samples, rate = load_audio(audio, self.settings.max_audio_seconds)
            frames = (len(request.keyframes) - 1) * (request.frames_between + 1) + 1
            pacing = percussive_pacing(samples, rate, frames)
            positions = [position_to_segment(float(p), len(request.keyframes)) for p in pacing.positions]
            fps = pacing.fps
        result = prompt_walk(self.image, request, positions=positions, max_side=self.settings.max_output_side,
                             max_frames=self.settings.max_walk_frames, progress=progress, cancel=cancel)
        params = dict(result.params, fps=round(fps, 4), seconds=round(result.seconds, 3),
                      frames_made=len(result.frames))
        if audio is not None:
            params["audio"] = self.gallery.keep_input_file(audio)
        item = self.keep_animation(result.frames, task="image-walk", model=params["model"], params=params, fps=fps,
                                   owner=owner, audio=audio if not result.stopped else None)
        return FramesOutcome(result.frames, params, result.seconds, item, result.stopped)

    def image_morph(
        self,
        first: LoadedImage,
        second: LoadedImage,
        request: MorphRequest,
        *,
        owner: str | None = None,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> FramesOutcome:
        result = image_morph(self.image, first.rgb, second.rgb, request, max_side=self.settings.max_output_side,
                             max_frames=self.settings.max_walk_frames, progress=progress, cancel=cancel)
        params = dict(result.params, seconds=round(result.seconds, 3), frames_made=len(result.frames),
                      inputs=[self.gallery.keep_input(first.original), self.gallery.keep_input(second.original)])
        item = self.keep_animation(result.frames, task="image-morph", model=params["model"], params=params,
                                   fps=request.fps, owner=owner)
        notes = list(params.get("notes", [])) + list(first.notes) + list(second.notes)
        return FramesOutcome(result.frames, params, result.seconds, item, result.stopped, notes)

    # -- music (studio/music_service.py) ------------------------------------------------

    def read_primer(self, kind: str, source: str | os.PathLike, meter: str = "4/4") -> music_service.Primer:
        return music_service.read_primer(kind, source, meter=meter, max_audio_seconds=self.settings.max_audio_seconds)

    def compose(
        self,
        request: MelodyRequest,
        primer: Melody | None = None,
        *,
        owner: str | None = None,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> music_service.MelodyOutcome:
        """A melody (or a continuation of `primer`), kept in the gallery as .mid + .wav + .png + .abc."""
        result = self.melody.generate(request, primer, progress=progress, cancel=cancel)
        return music_service.keep_melody(self.gallery, result, owner)

    def melody_walk(
        self,
        a: Melody,
        b: Melody,
        request: MelodyWalkRequest,
        *,
        owner: str | None = None,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> music_service.WalkOutcome:
        """A walk from melody A to melody B through the melody VAE, kept as .mid + .wav + piano roll."""
        result = self.melody_walks.walk(a, b, request, max_seconds=self.settings.max_audio_seconds,
                                        progress=progress, cancel=cancel)
        return music_service.keep_melody_walk(self.gallery, result, owner)

    def make_music(
        self,
        request: MusicRequest,
        melody_path: str | os.PathLike | None = None,
        *,
        owner: str | None = None,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> music_service.MusicOutcome:
        """Text to music (following a recorded melody where the model can), kept in the gallery."""
        limits.check_music(request, self.settings)
        melody = music_service.read_audio(melody_path, self.settings.max_audio_seconds) if melody_path else None
        result = self.music.generate(request, melody, progress=progress, cancel=cancel)
        return music_service.keep_music(self.gallery, result, owner, melody_path)

    def analyse_audio(self, path: str | os.PathLike) -> music_service.AnalysisOutcome:
        return music_service.analyse_file(path, self.settings.max_audio_seconds)

    # -- the gallery's re-run -------------------------------------------------------------

    def rerun(self, item_id: int, owner: str | None = None) -> GalleryItem:
        """Run a gallery item's task again with its recorded parameters; the new result is listed too."""
        item = self.gallery.get(item_id)
        if item.task == "style":
            return self._rerun_style(item, owner)
        if item.task == "melody":
            request, primer = music_service.melody_request_from(item.params)
            return self.compose(request, primer, owner=owner).item
        if item.task == "melody-walk":
            walk, a, b = music_service.walk_request_from(item.params)
            return self.melody_walk(a, b, walk, owner=owner).item
        if item.task == "music":
            melody = self.gallery.input_path(item.params["melody_input"]) if item.params.get("melody_input") else None
            return self.make_music(music_service.music_request_from(item.params), melody, owner=owner).item
        if item.task == "text":
            return self.keep_text(self.text.generate(TextRequest.from_params(item.params)), owner)
        if item.task in IMAGE_TASKS:
            return rerun_image(self, item, owner)
        if item.task == "patterns":
            request = PatternRequest(**_known(PatternRequest, item.params))
            return self._kept(self.make_patterns(request, owner=owner))
        if item.task == "style-walk":
            photo = self.open_image(self.gallery.input_path(item.params["input"]))
            images = [self.open_image(self.gallery.input_path(ref)) for ref in item.params.get("style_images", [])]
            fields_ = _known(StyleWalkRequest, item.params)
            fields_["styles"] = tuple(fields_.get("styles", ()))
            return self._kept(self.style_walk(photo, StyleWalkRequest(**fields_), images, owner=owner))
        if item.task == "image-walk":
            params = item.params
            keys = tuple(Keyframe(k["prompt"], int(k["seed"])) for k in params["keyframes"])
            settings = ImageRequest(prompt=keys[0].prompt, **_known(ImageRequest, {
                k: v for k, v in params.items() if k not in ("prompt", "seed", "task")}))
            walk = PromptWalkRequest(keyframes=keys, frames_between=int(params["frames_between"]), settings=settings,
                                     fps=float(params["fps"]), batch=int(params.get("batch", 4)))
            audio = self.gallery.input_path(params["audio"]) if params.get("audio") else None
            return self._kept(self.prompt_walk(walk, audio=audio, owner=owner))
        if item.task == "image-morph":
            first, second = (self.open_image(self.gallery.input_path(ref)) for ref in item.params["inputs"])
            return self._kept(self.image_morph(first, second, MorphRequest(**_known(MorphRequest, item.params)),
                                               owner=owner))
        raise StudioError(f"Items of the task '{item.task}' cannot be re-run from the gallery.")

    def _rerun_style(self, item: GalleryItem, owner: str | None) -> GalleryItem:
        params: dict[str, Any] = item.params
        photo = self.open_image(self.gallery.input_path(params["input"]))
        style_image = None
        if params.get("style_image"):
            style_image = self.open_image(self.gallery.input_path(params["style_image"]))
        request = StyleRequest(**_known(StyleRequest, params))
        return self._kept(self.stylize(photo, request, style_image, owner=owner))

    @staticmethod
    def _kept(outcome: StyleOutcome | FramesOutcome) -> GalleryItem:
        if outcome.item is None:
            raise StudioError("The re-run made nothing to keep.")
        return outcome.item


PATTERN_WALK_FPS = 24


def _known(request_type: type, params: dict[str, Any]) -> dict[str, Any]:
    """The recorded parameters that are fields of `request_type` (records also hold other facts)."""
    names = {f.name for f in fields(request_type)}
    return {k: v for k, v in params.items() if k in names}
