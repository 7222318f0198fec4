"""The Models tab: every model the studio knows, what is on this machine, downloads with a
progress bar in the page (bytes, speed, time left) and Stop, and deleting what is not needed.

On a hosted studio the list is shown and nothing can be changed: models are the operator's."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from studio.errors import Cancelled
from studio.runtime import CancelToken
from studio.services import Studio
from studio.services.models import ModelRow, size_text
from studio.ui.common import StopButtons, api_doc, user_errors

COLUMNS = ["Model", "Id", "Tasks", "Size", "Licence", "State", "On disk"]


@dataclass
class ModelsTab:
    table: gr.Dataframe
    usage: gr.Markdown

    def refresh(self, studio: Studio):
        """The list as it stands now (a model may have been fetched from another tab or a terminal)."""
        return table_rows(studio.models.rows()), usage_text(studio)


def table_rows(rows: list[ModelRow]) -> list[list[str]]:
    def licence(row: ModelRow) -> str:
        return row.entry.licence + ("" if row.entry.commercial_use else " (non-commercial)")

    return [[row.entry.name, row.entry.id, ", ".join(row.entry.tasks), row.entry.size_text(), licence(row),
             row.state, size_text(row.disk_bytes) if row.disk_bytes else ""] for row in rows]


def usage_text(studio: Studio) -> str:
    from studio import hub

    return (f"Model cache: **{size_text(studio.models.cache_bytes())}** in `{hub.cache_folder()}` · "
            f"{size_text(studio.models.free_bytes())} free on that disk. Downloads resume where a stopped or broken "
            f"one ended.")


def downloadable(studio: Studio) -> list[tuple[str, str]]:
    return [(f"{e.name} ({e.size_text()})", e.id) for e in studio.catalog.entries() if e.source == "download"]


class DownloadMeter:
    """Bytes, speed and time left, for the progress bar's words."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.first_bytes: int | None = None

    def words(self, done: int, total: int) -> str:
        if self.first_bytes is None:  # a resumed download starts with the bytes it already had
            self.first_bytes = done
            self.started = time.monotonic()
        elapsed = max(time.monotonic() - self.started, 1e-3)
        speed = (done - self.first_bytes) / elapsed
        text = f"{size_text(done)} of {size_text(total)}"
        if speed > 0:
            left = (total - done) / speed
            text += f" · {size_text(speed)}/s · {left / 60:.0f} min left" if left >= 90 else f" · {size_text(speed)}/s · {left:.0f} s left"
        return text


def download_in_page(studio: Studio, entries: list, progress: gr.Progress, token: CancelToken) -> Path:
    """Download each entry with the page's progress bar. The hub client reports from its own worker
    threads, which gr.Progress cannot reach, so the bytes are handed over and shown from this one."""
    seen: dict[str, Any] = {}
    where: Path | None = None
    for entry in entries:
        meter = DownloadMeter()
        seen.clear()
        progress(0, desc=f"Checking {entry.name} and the free disk space")
        worker = ThreadPoolExecutor(1)
        job = worker.submit(studio.models.download, entry.id, lambda done, total: seen.update(bytes=(done, total)),
                            token)
        worker.shutdown(wait=False)
        try:
            while not job.done():
                time.sleep(0.25)
                if "bytes" in seen:
                    done, total = seen["bytes"]
                    progress((done, max(total, 1)), desc=f"{entry.name}: {meter.words(done, total)}", unit="bytes")
        finally:
            if not job.done():  # the page went away or Stop: end the download at its next read
                token.cancel()
        where = job.result()
    assert where is not None
    return where


def build(studio: Studio, stops: StopButtons) -> ModelsTab:
    hosted = studio.settings.hosted
    gr.Markdown("Every model the studio can use. Built-in models work offline; the others are downloaded "
                "once into the model cache." + (" On this shared demo, models are the operator's to change."
                                                 if hosted else ""))
    usage = gr.Markdown(usage_text(studio), elem_id="models-usage")
    table = gr.Dataframe(table_rows(studio.models.rows()), headers=COLUMNS, interactive=False, wrap=True,
                         elem_id="models-table")
    with gr.Row(visible=not hosted):
        choice = gr.Dropdown(downloadable(studio), label="Model", scale=3, elem_id="models-choice")
        download = gr.Button("Download", variant="primary", scale=1, elem_id="models-download")
        stop = gr.Button("Stop", variant="stop", scale=1, elem_id="models-stop")
        delete = gr.Button("Delete", scale=1, elem_id="models-delete")
    with gr.Row(visible=False) as confirm_row:
        confirm_text = gr.Markdown()
        confirm = gr.Button("Delete it", variant="stop", size="sm", elem_id="models-delete-confirm")
        keep = gr.Button("Keep it", size="sm")
    status = gr.Markdown(elem_id="models-status")

    def refreshed(message: str):
        return table_rows(studio.models.rows()), usage_text(studio), message

    @user_errors
    @api_doc("Download a catalogue model from the hub (resumes a stopped download).",
             model_id="a catalogue id of a hub model, e.g. stabilityai/sd-turbo",
             returns="the model list, the cache's disk use, a summary")
    def download_model(model_id: str | None, request: gr.Request, progress=gr.Progress()):
        if not model_id:
            raise gr.Error("Choose a model to download.")
        token = stops.start(request)
        entry = studio.catalog.get(model_id)
        decoder = studio.image.decoder_to_fetch_with(entry)  # small, so its bar comes first
        try:
            where = download_in_page(studio, [decoder, entry] if decoder else [entry], progress, token)
        except Cancelled:
            gr.Info("Download stopped. Download again to resume it.")
            return refreshed(f"Stopped downloading {entry.name}; what arrived is kept, and Download resumes.")
        return refreshed(f"**{entry.name}** is ready, in `{where}`.")

    event = download.click(download_model, choice, [table, usage, status], api_name="models_download",
                           concurrency_id="downloads", concurrency_limit=1)

    def stop_download(request: gr.Request) -> None:
        stops.stop(request)

    stop.click(stop_download, None, None, cancels=[event], api_visibility="private")

    @user_errors
    @api_doc("Delete a downloaded model's files from the model cache.",
             model_id="a catalogue id of a downloaded hub model",
             returns="the model list, the cache's disk use, a summary")
    def delete_model(model_id: str | None):
        if not model_id:
            raise gr.Error("Choose a model to delete.")
        freed = studio.models.delete(model_id)
        gr.Info(f"Deleted; {size_text(freed)} freed.")
        return refreshed(f"Deleted **{studio.catalog.get(model_id).name}**: {size_text(freed)} freed.")

    def ask(model_id: str | None):
        if not model_id:
            raise gr.Error("Choose a model to delete.")
        row = studio.models.row(studio.catalog.get(model_id))
        if not row.disk_bytes:
            raise gr.Error(f"'{row.entry.name}' is not downloaded; there is nothing to delete.")
        return gr.Row(visible=True), f"Delete **{row.entry.name}**? That frees {size_text(row.disk_bytes)}."

    delete.click(user_errors(ask), choice, [confirm_row, confirm_text], api_visibility="private")
    confirm.click(delete_model, choice, [table, usage, status], api_name="models_delete").then(
        lambda: gr.Row(visible=False), None, confirm_row, api_visibility="private")
    keep.click(lambda: gr.Row(visible=False), None, confirm_row, api_visibility="private")
    return ModelsTab(table=table, usage=usage)

