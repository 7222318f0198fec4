"""Tabs whose capability has not arrived yet: they say so plainly and fake nothing."""

from __future__ import annotations

import gradio as gr

PLANS = {
    "Image": "Text-to-image, image-to-image, inpainting and outpainting on SD-Turbo and other diffusers models.",
    "Music": "Melodies from the studio's own model (MIDI, audio, piano roll) and text-to-music with MusicGen.",
}


def build(name: str) -> None:
    gr.Markdown(
        f"**Not available yet.** This tab will offer: {PLANS[name]}\n\n"
        "Until then, the **Style**, **Text**, **Interpolate** and **Gallery** tabs work in full.",
        elem_classes=["upcoming"],
    )


def build_image_inbox() -> gr.Image:
    """Where 'Send to Image tab' puts a picture until the Image tab can use it."""
    build("Image")
    return gr.Image(label="Picture sent here from another tab", type="filepath", interactive=False, height=360)


def build_prompt_inbox(tab: str) -> gr.Textbox:
    """Where 'Send to ... tab' puts a text (an image prompt, song lyrics) until the tab can use it."""
    return gr.Textbox(label=f"Text sent here from another tab, for the {tab} tab", lines=4, interactive=True)
