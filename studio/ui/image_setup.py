"""The Image tab's first-visit notice: which model is missing, how to get it, and what works already.

Without a diffusion model every button of the Image tab (and the walks built on it) ends in an error,
so the tab says so up front instead, and leads to what needs no download.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio.backends.diffusion import DEFAULT_MODEL
from studio.services import Studio

# Every task whose model list the Image tab offers.
IMAGE_TASKS = ("txt2img", "img2img", "inpaint")


@dataclass
class SetupNotice:
    box: gr.Column
    text: gr.Markdown
    to_patterns: gr.Button
    to_style: gr.Button


def image_model_present(studio: Studio) -> bool:
    """True once any model the Image tab can use is on this machine (nothing is downloaded to find out)."""
    ids = {entry.id for task in IMAGE_TASKS for entry in studio.image.image_entries(task)}
    return any(studio.image.is_available(model_id) for model_id in ids)


def notice_text(studio: Studio) -> str:
    """What is missing (the default model, its size and licence) and the two ways to get it."""
    entry = studio.catalog.get(DEFAULT_MODEL)
    use = "not for commercial use" if not entry.commercial_use else "commercial use allowed"
    return (
        f"### No image model on this machine yet\n"
        f"Generate, image to image, inpaint, outpaint, diffusion restyle, prompt walks and image morphs need "
        f"**{entry.name}** ({entry.size_text()} download; licence: {entry.licence}, {use}).\n\n"
        f"- **Get it** where there is internet: `python -m studio download {entry.id}`, then reload this page.\n"
        f"- **Or use a copy you have**: add an entry with `path = \"/folder/of/the/model\"` to your models file "
        f"(`--models-file` or `STUDIO_MODELS_FILE`) and restart the studio.\n\n"
        f"**Works now, with no download:** abstract patterns drawn by seeded random networks, and the Style "
        f"tab's 26 built-in styles."
    )


def build(studio: Studio) -> SetupNotice:
    """The notice, laid out where it is called; shown only while no image model is on this machine."""
    # A Column carries the id: Gradio 6 repeats a Group's elem_id on an inner element.
    with gr.Column(visible=not image_model_present(studio), elem_id="image-setup") as box, gr.Group():
        text = gr.Markdown(notice_text(studio), elem_id="image-setup-text", padding=True)
        with gr.Row():
            to_patterns = gr.Button("Draw abstract patterns (no download)", size="sm", variant="primary",
                                    elem_id="image-setup-patterns")
            to_style = gr.Button("Open the Style tab (no download)", size="sm", elem_id="image-setup-style")
    return SetupNotice(box=box, text=text, to_patterns=to_patterns, to_style=to_style)


def refresh(studio: Studio) -> gr.Column:
    """On each page load: a model fetched (or pointed at) since the studio started hides the notice."""
    return gr.Column(visible=not image_model_present(studio))
