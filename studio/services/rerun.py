"""The gallery's re-run: an item's task run again with its recorded parameters and stored inputs;
the new result is listed too."""

from __future__ import annotations

from studio.backends.diffusion import ImageRequest
from studio.backends.diffusion.walks import Keyframe, MorphRequest, PromptWalkRequest
from studio.backends.language import TextRequest
from studio.backends.patterns import PatternRequest
from studio.backends.style_walk import StyleWalkRequest
from studio.backends.stylize import StyleRequest
from studio.backends.upscale import UpscaleRequest
from studio.backends.video_style import VideoStyleRequest
from studio.errors import StudioError
from studio.history import GalleryItem
from studio.services.image import ImageService
from studio.services.music import MusicService, melody_request_from, music_request_from, walk_request_from
from studio.services.records import known_fields
from studio.services.style import StyleOutcome, StyleService
from studio.services.text import TextService
from studio.services.upscale import UpscaleService
from studio.services.video_style import TASK as VIDEO_TASK
from studio.services.video_style import VideoStyleService
from studio.services.walks import FramesOutcome, WalkService

IMAGE_TASKS = ("txt2img", "img2img", "inpaint", "outpaint", "restyle")


class Rerunner:
    def __init__(
        self,
        images: ImageService,
        styles: StyleService,
        texts: TextService,
        sounds: MusicService,
        walks: WalkService,
        upscales: UpscaleService,
        videos: VideoStyleService | None = None,
    ):
        self.images = images
        self.styles = styles
        self.texts = texts
        self.sounds = sounds
        self.walks = walks
        self.upscales = upscales
        self.videos = videos
        self.gallery = images.gallery
        self.open_image = images.open_image

    def rerun(self, item_id: int, owner: str | None = None) -> GalleryItem:
        """Run a gallery item's task again with its recorded parameters; the new result is listed too."""
        item = self.gallery.get(item_id)
        params = item.params
        if item.task == "style":
            return self._rerun_style(item, owner)
        if item.task == "upscale":
            photo = self.open_image(self.gallery.input_path(params["input"]))
            request = UpscaleRequest(**known_fields(UpscaleRequest, params))
            outcome = self.upscales.upscale(photo, request, parameters=params.get("source_parameters"), owner=owner)
            assert outcome.item is not None  # keep=True always lists it
            return outcome.item
        if item.task == VIDEO_TASK and self.videos is not None:
            return self._rerun_video(item, owner)
        if item.task == "melody":
            request, primer = melody_request_from(params)
            return self.sounds.compose(request, primer, owner=owner).item
        if item.task == "melody-walk":
            walk, a, b = walk_request_from(params)
            return self.sounds.melody_walk(a, b, walk, owner=owner).item
        if item.task == "music":
            melody = self.gallery.input_path(params["melody_input"]) if params.get("melody_input") else None
            return self.sounds.make_music(music_request_from(params), melody, owner=owner).item
        if item.task == "text":
            return self.texts.keep(self.texts.backend.generate(TextRequest.from_params(params)), owner)
        if item.task in IMAGE_TASKS:
            return self.images.rerun(item, owner)
        if item.task == "patterns":
            return _kept(self.walks.make_patterns(PatternRequest(**known_fields(PatternRequest, params)), owner=owner))
        if item.task == "style-walk":
            photo = self.open_image(self.gallery.input_path(params["input"]))
            images = [self.open_image(self.gallery.input_path(ref)) for ref in params.get("style_images", [])]
            values = known_fields(StyleWalkRequest, params)
            values["styles"] = tuple(values.get("styles", ()))
            return _kept(self.walks.style_walk(photo, StyleWalkRequest(**values), images, owner=owner))
        if item.task == "image-walk":
            keys = tuple(Keyframe(k["prompt"], int(k["seed"])) for k in params["keyframes"])
            settings = ImageRequest(prompt=keys[0].prompt, **known_fields(ImageRequest, {
                k: v for k, v in params.items() if k not in ("prompt", "seed", "task")}))
            walk = PromptWalkRequest(keyframes=keys, frames_between=int(params["frames_between"]), settings=settings,
                                     fps=float(params["fps"]), batch=int(params.get("batch", 4)))
            audio = self.gallery.input_path(params["audio"]) if params.get("audio") else None
            return _kept(self.walks.prompt_walk(walk, audio=audio, owner=owner))
        if item.task == "image-morph":
            first, second = (self.open_image(self.gallery.input_path(ref)) for ref in params["inputs"])
            request = MorphRequest(**known_fields(MorphRequest, params))
            return _kept(self.walks.image_morph(first, second, request, owner=owner))
        raise StudioError(f"Items of the task '{item.task}' cannot be re-run from the gallery.")

    def _rerun_style(self, item: GalleryItem, owner: str | None) -> GalleryItem:
        params = item.params
        photo = self.open_image(self.gallery.input_path(params["input"]))
        style_image = None
        if params.get("style_image"):
            style_image = self.open_image(self.gallery.input_path(params["style_image"]))
        request = StyleRequest(**known_fields(StyleRequest, params))
        return _kept(self.styles.stylize(photo, request, style_image, owner=owner))

    def _rerun_video(self, item: GalleryItem, owner: str | None) -> GalleryItem:
        params = item.params
        clip = self.gallery.input_path(params["input"])
        style_image = None
        if params.get("style_image"):
            style_image = self.open_image(self.gallery.input_path(params["style_image"]))
        request = VideoStyleRequest(style=StyleRequest(**known_fields(StyleRequest, params)),
                                    temporal=float(params.get("temporal", 0.0)), gif=bool(params.get("gif")))
        outcome = self.videos.restyle(clip, request, style_image, owner=owner)
        if outcome.item is None:
            raise StudioError("The re-run made nothing to keep.")
        return outcome.item


def _kept(outcome: StyleOutcome | FramesOutcome) -> GalleryItem:
    if outcome.item is None:
        raise StudioError("The re-run made nothing to keep.")
    return outcome.item
