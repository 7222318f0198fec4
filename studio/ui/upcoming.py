"""Tabs whose capability has not arrived yet: they say so plainly and fake nothing."""

from __future__ import annotations

import gradio as gr

PLANS = {
    "Text": "Streaming creative writing and chat on the built-in SmolLM2 model (llama.cpp) and any GGUF or "
    "transformers model.",
    "Music": "Melodies from the studio's own model (MIDI, audio, piano roll) and text-to-music with MusicGen.",
}


def build(name: str) -> None:
    gr.Markdown(
        f"**Not available yet.** This tab will offer: {PLANS[name]}\n\n"
        "Until then, the **Image**, **Style**, **Interpolate** and **Gallery** tabs work in full.",
        elem_classes=["upcoming"],
    )

