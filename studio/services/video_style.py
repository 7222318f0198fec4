"""Video restyling as a task: check the clip from its headers, restyle it, keep the MP4 (and a GIF on
request) in the gallery with its parameters and inputs, so the gallery can re-run it."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from studio import limits
from studio.backends.video_style import VideoStyler, VideoStyleRequest, VideoStyleResult
from studio.history import Gallery, GalleryItem
from studio.media import video
from studio.media.images import LoadedImage
from studio.runtime import NEVER_CANCELLED, CancelToken, ProgressCallback, no_progress
from studio.settings import Settings

TASK = "style-video"


@dataclass
class VideoStyleOutcome:
    result: VideoStyleResult
    item: GalleryItem | None
    video: Path  # the MP4 to show: the gallery's file, or the copy asked for
    gif: Path | None
    info: video.VideoInfo
    notes: list[str] = field(default_factory=list)


class VideoStyleService:
    def __init__(self, settings: Settings, gallery: Gallery, styler: VideoStyler):
        self.settings = settings
        self.gallery = gallery
        self.styler = styler

    def probe(self, clip: str | Path) -> video.VideoInfo:
        """What the clip is, refused beyond the operator's limits before any decoding."""
        return video.probe(Path(clip), limits.video_limits(self.settings))

    def restyle(
        self,
        clip: str | Path,
        request: VideoStyleRequest,
        style_image: LoadedImage | None = None,
        *,
        keep: bool = True,
        save_to: Path | None = None,
        owner: str | None = None,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> VideoStyleOutcome:
        """Restyle `clip`; kept in the gallery (`keep`) and/or copied to `save_to` (an .mp4 path; the GIF
        goes beside it). After Stop, the part made so far is kept the same way, as a clip of its own."""
        clip = Path(clip)
        request.validate(self.settings.max_output_side)
        info = self.probe(clip)
        self.settings.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="style-video-", dir=self.settings.cache_dir) as work:
            work_dir = Path(work)
            result = self.styler.restyle(clip, info, request, style_image, work_dir,
                                         max_side=self.settings.max_output_side, progress=progress, cancel=cancel)
            gif = work_dir / "restyled.gif" if request.gif else None
            if gif is not None:
                video.write_gif_from_clip(result.path, gif)
            item = self._keep(clip, result, style_image, gif, owner) if keep else None
            shown, shown_gif = (item.file, self.gallery.companion(item, ".gif")) if item else (None, None)
            if save_to is not None or item is None:
                target = save_to or self.settings.cache_dir / "unsaved-video.mp4"
                shutil.copyfile(result.path, target)
                if gif is not None:
                    shutil.copyfile(gif, target.with_suffix(".gif"))
                shown, shown_gif = (shown or target), (shown_gif or (target.with_suffix(".gif") if gif else None))
            result.path = shown
        return VideoStyleOutcome(result=result, item=item, video=shown, gif=shown_gif, info=info,
                                 notes=_notes(info, result))

    def _keep(self, clip: Path, result: VideoStyleResult, style_image: LoadedImage | None, gif: Path | None,
              owner: str | None) -> GalleryItem:
        params = dict(result.params)
        params["input"] = self.gallery.keep_input_file(clip)
        if style_image is not None:
            params["style_image"] = self.gallery.keep_input(style_image.original)
        params["seconds"] = round(result.seconds, 3)
        siblings = {".gif": lambda path: shutil.copyfile(gif, path)} if gif is not None else None
        return self.gallery.add_file(
            lambda path: shutil.copyfile(result.path, path),
            suffix=".mp4", siblings=siblings, preview=result.preview, task=TASK, model=params["model"],
            params=params, owner=owner,
        )


def _notes(info: video.VideoInfo, result: VideoStyleResult) -> list[str]:
    notes = []
    if info.rotation:
        notes.append(f"The clip is stored turned by {info.rotation}°; it was restyled upright.")
    if info.has_alpha:
        notes.append("The clip has transparent parts; MP4 has no transparency, so they were put on white.")
    if result.cuts:
        notes.append(f"{len(result.cuts)} scene cut(s) found; the blend started afresh at each.")
    if not result.stopped and result.frames < result.total - 2:  # a frame or two: estimated counts differ
        notes.append(f"Only {result.frames} of the {result.total} frames the file announces could be decoded; "
                     "it is damaged or cut short, so the restyled clip ends there.")
    if result.stopped:
        notes.append(f"Stopped after {result.frames} of {result.total} frames; that part is kept as a clip of its own.")
    return notes
