"""Tabs whose capability has not arrived yet: they say so plainly and fake nothing."""

from __future__ import annotations

import gradio as gr

PLANS = {
    "Music": "Melodies from the studio's own model (MIDI, audio, piano roll) and text-to-music with MusicGen.",
}


def build(name: str) -> None:
    gr.Markdown(
        f"**Not available yet.** This tab will offer: {PLANS[name]}\n\n"
        "Until then, the **Image**, **Style**, **Text**, **Interpolate** and **Gallery** tabs work in full.",
        elem_classes=["upcoming"],
    )


def build_prompt_inbox(tab: str) -> gr.Textbox:
    """Where 'Send to ... tab' puts a text (song lyrics) until the tab can use it."""
    return gr.Textbox(label=f"Text sent here from another tab, for the {tab} tab", lines=4, interactive=True)
