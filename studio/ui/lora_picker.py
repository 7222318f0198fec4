"""The Image tab's LoRA picker: the LoRA files of the studio's folders, each with its preview and
trigger words; picking one writes `<lora:NAME:1>` into the prompt, its slider rewrites that weight.

Visitors only ever send names, which are matched against the files found; no path from the page is
used (hosted visitors pick from the operator's folders and upload nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio.backends.diffusion.lora_tags import append_words, insert_lora, lora_weight, reweight_lora
from studio.backends.diffusion.loras import LoraCard, lora_cards
from studio.errors import InputError
from studio.services import Studio
from studio.ui.common import servable, user_errors

MAX_WEIGHT = 2.0


@dataclass
class LoraPicker:
    choice: gr.Dropdown
    previews: gr.Gallery
    note: gr.Markdown
    weight: gr.Slider
    triggers: gr.Markdown
    add_triggers: gr.Button
    refresh: gr.Button

    @property
    def listing_outputs(self) -> list:
        return [self.choice, self.previews, self.note]


def listing(studio: Studio) -> tuple[list[str], list[tuple[str, str]], str]:
    """(names, (preview picture, name) for those with one, a line on where they come from)."""
    cards = lora_cards(studio.image.loras)
    names = [card.name for card in cards]
    previews = [(servable(card.preview), card.name) for card in cards if card.preview is not None]
    if studio.settings.hosted:
        where = "the studio's LoRA folders"
    else:
        where = ", ".join(f"`{folder}`" for folder in studio.image.loras.folders)
    if not cards:
        if studio.settings.hosted:
            return names, previews, "No LoRAs have been installed on this studio."
        return names, previews, (f"No LoRA files yet. Put LoRA `.safetensors` files (a `NAME.preview.png` beside "
                                 f"one shows here) in {where}, then press Refresh.")
    return names, previews, f"{len(cards)} LoRA(s) from {where}. Pick one to add `<lora:NAME:1>` to the prompt."


def card_named(studio: Studio, name: str | None) -> LoraCard | None:
    """The LoRA of that name among those found; a name is only ever compared, never made a path."""
    if not isinstance(name, str) or not name:
        return None
    return next((card for card in lora_cards(studio.image.loras) if card.name == name), None)


def describe_triggers(card: LoraCard) -> str:
    if not card.trigger_words:
        return f"**{card.name}**: its file names no trigger words."
    return f"**{card.name}** trigger words: " + ", ".join(card.trigger_words)


def listing_update(studio: Studio) -> tuple[Any, Any, str]:
    names, previews, note = listing(studio)
    return gr.Dropdown(choices=names, value=None), previews, note


def build(studio: Studio, prompt: gr.Textbox) -> LoraPicker:
    names, previews, note = listing(studio)
    with gr.Accordion("LoRAs", open=False, elem_id="image-loras"):
        note_box = gr.Markdown(note, elem_id="image-lora-note")
        with gr.Row():
            choice = gr.Dropdown(names, value=None, label="LoRA", filterable=True, scale=3,
                                 info="type to search; picking one adds its tag to the prompt",
                                 elem_id="image-lora-choice")
            weight = gr.Slider(0, MAX_WEIGHT, value=1, step=0.05, label="Weight of the picked LoRA", scale=2,
                               elem_id="image-lora-weight")
        with gr.Row():
            triggers = gr.Markdown(elem_id="image-lora-triggers")
            add_triggers = gr.Button("Add trigger words to the prompt", size="sm", visible=False,
                                     elem_id="image-lora-add-triggers")
            refresh = gr.Button("Refresh", size="sm", elem_id="image-lora-refresh")
        gallery = gr.Gallery(previews, label="Previews (click one to pick it)", columns=6, height=200,
                             allow_preview=False, elem_id="image-lora-previews")
    picker = LoraPicker(choice, gallery, note_box, weight, triggers, add_triggers, refresh)

    @user_errors
    def lora_pick(name: str | None, prompt_text: str | None):
        card = card_named(studio, name)
        if card is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        text = prompt_text or ""
        present = lora_weight(text, card.name)
        if present is None:
            text = insert_lora(text, card.name, 1.0)
        shown = min(max(present if present is not None else 1.0, 0.0), MAX_WEIGHT)
        return text, shown, describe_triggers(card), gr.Button(visible=bool(card.trigger_words))

    @user_errors
    def lora_reweight(name: str | None, value: float, prompt_text: str | None):
        card = card_named(studio, name)
        if card is None:
            raise InputError("Pick a LoRA first; the slider sets the weight of the one picked.")
        return reweight_lora(prompt_text or "", card.name, float(value))

    @user_errors
    def lora_add_triggers(name: str | None, prompt_text: str | None):
        card = card_named(studio, name)
        if card is None:
            return gr.skip()
        return append_words(prompt_text or "", list(card.trigger_words))

    def lora_from_preview(evt: gr.SelectData):
        caption = (evt.value or {}).get("caption") if isinstance(evt.value, dict) else None
        return caption if isinstance(caption, str) else gr.skip()

    choice.change(lora_pick, [choice, prompt], [prompt, weight, triggers, add_triggers], api_visibility="private")
    weight.input(lora_reweight, [choice, weight, prompt], prompt, api_visibility="private")
    add_triggers.click(lora_add_triggers, [choice, prompt], prompt, api_visibility="private")
    gallery.select(lora_from_preview, None, choice, api_visibility="private")
    refresh.click(lambda: listing_update(studio), None, picker.listing_outputs, api_visibility="private")
    return picker
