"""Text as a task: stream a reply within the operator's limits, keep a written piece in the gallery."""

from __future__ import annotations

from collections.abc import Iterator

from studio import limits
from studio.backends.language import TextBackend, TextRequest, TextResult, TextUpdate, document
from studio.catalog import Catalog
from studio.history import Gallery, GalleryItem
from studio.media.text_card import text_card
from studio.runtime import NEVER_CANCELLED, CancelToken
from studio.settings import Settings


class TextService:
    def __init__(self, settings: Settings, gallery: Gallery, catalog: Catalog, backend: TextBackend):
        self.settings = settings
        self.gallery = gallery
        self.catalog = catalog
        self.backend = backend

    def check(self, request: TextRequest) -> None:
        """Refuse a request the operator's limits or the catalogue rule out, before any model loads."""
        limits.check_text(request, self.settings)
        self.backend.entry(request.model)

    def stream(self, request: TextRequest, *, cancel: CancelToken = NEVER_CANCELLED) -> Iterator[TextUpdate]:
        """The reply as it grows, within the operator's token limit."""
        limits.check_text(request, self.settings)
        return self.backend.stream(request, cancel=cancel)

    def keep(self, result: TextResult, owner: str | None = None) -> GalleryItem:
        """List a written piece (the whole text, or the conversation) with everything needed to re-run it."""
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
