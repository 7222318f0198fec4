"""Walks and patterns as tasks: CPPN patterns and pattern walks, style walks, prompt/seed walks
(paced by a song's beat when one is given) and image morphs, kept as MP4 + GIF."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio import limits
from studio.backends.diffusion.walks import DiffusionWalks, MorphRequest, PromptWalkRequest
from studio.backends.patterns import PatternBackend, PatternRequest
from studio.backends.style_walk import StyleWalkRequest, style_walk
from studio.backends.stylize import StyleBackend
from studio.history import Gallery, GalleryItem
from studio.media.animation import write_gif, write_mp4
from studio.media.audio_pacing import load_audio, percussive_pacing, position_to_segment
from studio.media.images import LoadedImage
from studio.runtime import NEVER_CANCELLED, CancelToken, ProgressCallback, no_progress
from studio.settings import Settings

PATTERN_WALK_FPS = 24


@dataclass
class FramesOutcome:
    """A still or an animation: its frames, where it was kept, and whether Stop cut it short."""

    frames: list
    params: dict[str, Any]
    seconds: float
    item: GalleryItem | None
    stopped: bool = False
    notes: list[str] = field(default_factory=list)


class WalkService:
    def __init__(
        self,
        settings: Settings,
        gallery: Gallery,
        diffusion: DiffusionWalks,
        patterns: PatternBackend,
        style: StyleBackend,
    ):
        self.settings = settings
        self.gallery = gallery
        self.diffusion = diffusion
        self.patterns = patterns
        self.style = style

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
        result = self.diffusion.prompt_walk(request, positions=positions, max_side=self.settings.max_output_side,
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
        result = self.diffusion.image_morph(first.rgb, second.rgb, request, max_side=self.settings.max_output_side,
                             max_frames=self.settings.max_walk_frames, progress=progress, cancel=cancel)
        params = dict(result.params, seconds=round(result.seconds, 3), frames_made=len(result.frames),
                      inputs=[self.gallery.keep_input(first.original), self.gallery.keep_input(second.original)])
        item = self.keep_animation(result.frames, task="image-morph", model=params["model"], params=params,
                                   fps=request.fps, owner=owner)
        notes = list(params.get("notes", [])) + list(first.notes) + list(second.notes)
        return FramesOutcome(result.frames, params, result.seconds, item, result.stopped, notes)
