"""The Gallery tab: everything the studio made, newest first; open, re-run or delete."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio.history import GalleryItem
from studio.services import Studio
from studio.ui.common import api_doc, download_button, servable, user_errors

ALL_TASKS = "All"
PAGE_SIZE = 120
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif"}
VIDEO_SUFFIXES = {".mp4", ".webm"}
AUDIO_SUFFIXES = {".wav", ".mp3", ".ogg", ".flac"}
TEXT_SUFFIXES = {".txt", ".md", ".abc"}
# Stills only: a GIF here is an animation (walks), whose first frame alone would be upscaled.
UPSCALABLE_SUFFIXES = IMAGE_SUFFIXES - {".gif"}


@dataclass
class GalleryTab:
    refresh: gr.Button
    grid: gr.Gallery
    filter: gr.Dropdown
    ids: gr.State
    selected: gr.Number
    send_to_upscale: gr.Button  # app.py sends the opened picture to the Upscale tab
    list_outputs: list
    list_fn: object


def _kind(item: GalleryItem) -> str:
    """The task, and for a walk kept as a video, that it moves: its thumbnail is one still frame, alike
    to a picture's of the same task (pattern pictures and pattern walks are both 'patterns')."""
    return f"{item.task} · animation" if item.file.suffix.lower() in VIDEO_SUFFIXES else item.task


def _caption(item: GalleryItem) -> str:
    return f"#{item.id} · {_kind(item)} · {item.created_text}"


def _details(item: GalleryItem) -> str:
    lines = [f"### #{item.id} · {_kind(item)}", f"**Model:** `{item.model}`  ", f"**Made:** {item.created_text}  "]
    if item.seed is not None:
        lines.append(f"**Seed:** {item.seed}  ")
    lines.append(f"**File:** `{item.file.name}`")
    return "\n".join(lines)


def picture_to_upscale(studio: Studio, item_id: float | None) -> str:
    """The file of an opened gallery picture, for the Upscale tab (a PNG keeps its `parameters` there)."""
    if item_id is None:
        raise gr.Error("Open an item first.")
    item = studio.gallery.get(int(item_id))
    if item.file.suffix.lower() not in UPSCALABLE_SUFFIXES:
        raise gr.Error(f"Only pictures can be upscaled: #{item.id} is {_kind(item)} ({item.file.suffix}).")
    return servable(item.file)


def build(studio: Studio) -> GalleryTab:
    with gr.Row():
        task_filter = gr.Dropdown(
            [ALL_TASKS, *studio.gallery.tasks()],
            value=ALL_TASKS,
            label="Show",
            scale=3,
            allow_custom_value=True,  # tasks appear as things are made; the list refreshes with the grid
            elem_id="gallery-filter",
        )
        refresh = gr.Button("Refresh", scale=1, elem_id="gallery-refresh")
    grid = gr.Gallery(
        label="Everything made here, newest first",
        columns=6,
        height=420,
        allow_preview=False,
        elem_id="gallery-grid",
        elem_classes=["thumb-grid"],
    )
    ids = gr.State([])
    selected = gr.Number(value=None, precision=0, visible=False, label="item_id")  # also the API's way to name an item
    with gr.Row(equal_height=False):
        with gr.Column():
            opened = gr.Image(label="Opened", type="filepath", interactive=False, height=420,
                              elem_id="gallery-opened")
            opened_video = gr.Video(label="Opened", interactive=False, visible=False, loop=True,
                                    elem_id="gallery-opened-video")
            opened_audio = gr.Audio(label="Opened", type="filepath", interactive=False, visible=False)
            opened_text = gr.Textbox(label="Opened", interactive=False, visible=False, lines=12)
        with gr.Column():
            details = gr.Markdown("Click an item to open it.", elem_id="gallery-details")
            params = gr.JSON(label="Parameters", open=True)
            with gr.Row():
                rerun = gr.Button("Re-run with these parameters", variant="primary")
                send_to_upscale = gr.Button("Upscale", elem_id="gallery-send-to-upscale")
                delete = gr.Button("Delete", variant="stop", elem_id="gallery-delete")
            # Deleting cannot be undone, so it asks first.
            with gr.Group(visible=False, elem_classes=["gallery-confirm"]) as confirm:
                confirm_text = gr.Markdown(elem_id="gallery-confirm-text", padding=True)
                with gr.Row():
                    confirm_yes = gr.Button("Yes, delete it", variant="stop", size="sm", elem_id="gallery-delete-yes")
                    confirm_no = gr.Button("Keep it", size="sm", elem_id="gallery-delete-no")
            download = download_button("Download file", "Nothing to download yet: open an item first.",
                                       elem_id="gallery-download")

    @user_errors
    @api_doc(
        "List what the studio made, newest first.",
        task=f"'{ALL_TASKS}', or one task such as txt2img, style, text, melody, patterns",
        returns="thumbnails captioned '#id · task · time' ('#id · task · animation · time' for walks), "
                "the task filter with the tasks there are",
    )
    def gallery_list(task: str | None):
        task_value = None if task in (None, ALL_TASKS) else task
        items = studio.gallery.list(task=task_value, limit=PAGE_SIZE)
        choices = [ALL_TASKS] + studio.gallery.tasks()
        return (
            [(servable(item.preview), _caption(item)) for item in items],
            [item.id for item in items],
            gr.Dropdown(choices=choices, value=task if task in choices else ALL_TASKS),
        )

    list_outputs = [grid, ids, task_filter]
    refresh.click(gallery_list, task_filter, list_outputs, api_name="gallery_list")
    task_filter.input(gallery_list, task_filter, list_outputs, api_visibility="private")

    views = [opened, opened_video, opened_audio, opened_text]

    def show(item: GalleryItem | None) -> tuple:
        """Values for (item id, the four views, details, parameters, download) of one item, or of none."""
        if item is None:
            return (None, None, gr.Video(value=None, visible=False), gr.Audio(value=None, visible=False),
                    gr.Textbox(value="", visible=False), "Click an item to open it.", None,
                    gr.DownloadButton(value=None))
        kind = item.file.suffix.lower()
        is_video, is_audio, is_text = kind in VIDEO_SUFFIXES, kind in AUDIO_SUFFIXES, kind in TEXT_SUFFIXES
        picture = item.file if kind in IMAGE_SUFFIXES else item.preview
        # A melody's item is its MIDI; its rendered WAV lies beside it, so it can be heard here too.
        sound = item.file if is_audio else item.file.with_suffix(".wav")
        is_audio = is_audio or (kind in {".mid", ".midi"} and sound.is_file())
        return (
            item.id,
            servable(picture),
            gr.Video(value=servable(item.file) if is_video else None, visible=is_video),
            gr.Audio(value=servable(sound) if is_audio else None, visible=is_audio),
            gr.Textbox(value=item.file.read_text(errors="replace") if is_text else "", visible=is_text),
            _details(item),
            item.params,
            gr.DownloadButton(value=servable(item.file)),
        )

    shown = [selected, *views, details, params, download]

    @user_errors
    def open_item(item_ids, evt: gr.SelectData):
        return show(studio.gallery.get(item_ids[evt.index]))

    grid.select(open_item, ids, shown, api_visibility="private")
    grid.select(lambda: gr.Group(visible=False), None, confirm, api_visibility="private")  # another item: ask anew

    @user_errors
    @api_doc(
        "Make a gallery item again with its recorded parameters and inputs; the new result is listed too.",
        item_id="the item's number (#id in the list's captions)",
        task="the list's filter to refresh afterwards, as for /gallery_list",
        returns="the new item's id, its views, details, parameters and file, then the refreshed list",
    )
    def gallery_rerun(item_id: float | None, task: str | None):
        if item_id is None:
            raise gr.Error("Open an item first.")
        new = studio.rerun(int(item_id))
        gr.Info(f"Made #{new.id} with the same parameters.")
        return (*show(new), *gallery_list(task))

    rerun.click(
        gallery_rerun,
        [selected, task_filter],
        [*shown, *list_outputs],
        api_name="gallery_rerun",
        concurrency_id="heavy",
    )

    @user_errors
    @api_doc(
        "Delete a gallery item and its files.",
        item_id="the item's number (#id in the list's captions)",
        task="the list's filter to refresh afterwards, as for /gallery_list",
        returns="empty views, then the refreshed list",
    )
    def gallery_delete(item_id: float | None, task: str | None):
        if item_id is None:
            raise gr.Error("Open an item first.")
        studio.gallery.delete(int(item_id))
        gr.Info(f"Deleted #{item_id}.")
        return (*show(None), *gallery_list(task))

    def ask_to_delete(item_id: float | None):
        if item_id is None:
            raise gr.Error("Open an item first.")
        item = studio.gallery.get(int(item_id))
        text = f"**Delete #{item.id} ({_kind(item)}) and its files for good?** This cannot be undone."
        return gr.Group(visible=True), text

    delete.click(user_errors(ask_to_delete), selected, [confirm, confirm_text], api_visibility="private")
    confirm_no.click(lambda: gr.Group(visible=False), None, confirm, api_visibility="private")
    confirm_yes.click(
        gallery_delete,
        [selected, task_filter],
        [*shown, *list_outputs],
        api_name="gallery_delete",
    ).then(lambda: gr.Group(visible=False), None, confirm, api_visibility="private")
    return GalleryTab(refresh=refresh, grid=grid, filter=task_filter, ids=ids, selected=selected,
                      send_to_upscale=send_to_upscale, list_outputs=list_outputs, list_fn=gallery_list)

