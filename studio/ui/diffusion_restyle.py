"""The Style tab's second family: restyle a photo with a diffusion model (image-to-image with a style
prompt and a strength), on the same weights as the Image tab."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio.backends.diffusion import DEFAULT_DECODER, DEFAULT_MODEL, FULL_VAE, ImageRequest, fit_size
from studio.services import Studio
from studio.ui.common import StopButtons, api_doc, progress_reporter, servable, user_errors
from studio.ui.image_tab import decoder_choices

STYLE_PROMPTS = ["watercolor painting", "oil painting, thick brush strokes", "pencil sketch", "ukiyo-e woodblock print",
                 "pixel art", "stained glass"]


@dataclass
class RestyleControls:
    model: gr.Dropdown
    decoder: gr.Dropdown
    style_prompt: gr.Dropdown
    strength: gr.Slider
    steps: gr.Slider
    random_seed: gr.Checkbox
    seed: gr.Number
    run: gr.Button
    stop: gr.Button


def build_controls(studio: Studio) -> RestyleControls:
    """The panel's inputs, laid out where it is called (the Style tab's left column)."""
    entries = studio.image.image_entries("restyle")
    present = [e.id for e in entries if studio.image.is_available(e.id)]
    choices = [(f"{e.name}{'' if e.id in present else f' (download {e.size_text()})'}", e.id) for e in entries]
    default = present[0] if present else (entries[0].id if entries else None)
    decoders, default_decoder = decoder_choices(studio)
    with gr.Accordion("Diffusion restyle: describe the style in words", open=False, elem_id="restyle-panel"):
        with gr.Row():
            model = gr.Dropdown(choices, value=default, label="Model", scale=3)
            decoder = gr.Dropdown(decoders, value=default_decoder, label="Decoder", scale=2)
        style_prompt = gr.Dropdown(STYLE_PROMPTS, value=STYLE_PROMPTS[0], allow_custom_value=True,
                                   label="Style prompt", info="pick one or write your own", elem_id="restyle-prompt")
        with gr.Row():
            strength = gr.Slider(0.1, 1, value=0.5, step=0.05, label="Strength",
                                 info="low keeps the photo, high follows the prompt")
            steps = gr.Slider(1, min(50, studio.settings.max_steps), value=2, step=1, label="Steps")
        with gr.Row():
            random_seed = gr.Checkbox(value=True, label="Random seed")
            seed = gr.Number(value=0, precision=0, label="Seed")
        with gr.Row():
            run = gr.Button("Restyle with diffusion", variant="primary", elem_id="restyle-run")
            stop = gr.Button("Stop", variant="stop")
    return RestyleControls(model, decoder, style_prompt, strength, steps, random_seed, seed, run, stop)


def wire(controls: RestyleControls, studio: Studio, stops: StopButtons, photo: gr.Image, result: gr.Image,
         info: gr.Markdown) -> None:
    c = controls

    @user_errors
    @api_doc(
        "Restyle a photo with a diffusion model: image to image with a style prompt; kept in the gallery.",
        photo="the photo to restyle (a file)",
        model=f"catalogue id of a diffusers model that can restyle, e.g. {DEFAULT_MODEL}",
        decoder=f"catalogue id of the fast decoder, e.g. {DEFAULT_DECODER}, or '{FULL_VAE}' for the model's own VAE",
        style_prompt="the style in words, e.g. 'watercolor painting'",
        strength="0.1-1: low keeps the photo, high follows the prompt",
        steps="denoising steps, 1-50; steps x strength must be at least 1",
        random_seed="true: draw a new seed (shown in the summary); false: use seed",
        seed="the seed when random_seed is false",
        returns="the result PNG, a summary with the seed",
    )
    def restyle(photo: str | None, model: str | None, decoder: str | None, style_prompt: str, strength: float,
                steps: float, random_seed: bool, seed: float | None, request: gr.Request, progress=gr.Progress()):
        if not photo:
            raise gr.Error("Upload a photo first.")
        if not model:
            raise gr.Error("No model can restyle: add a diffusers model to the catalogue.")
        if not random_seed and seed is None:
            raise gr.Error("Enter a seed, or tick 'Random seed'.")
        loaded = studio.open_image(photo)
        width, height = fit_size(*loaded.size, studio.image.native_size(model))
        image_request = ImageRequest(
            prompt=style_prompt or "", mode="img2img", model=model, steps=int(steps), guidance=0.0, width=width,
            height=height, seed=None if random_seed else int(seed), strength=float(strength),
            decoder=decoder or DEFAULT_DECODER,
        )
        outcome = studio.generate_image(image_request, loaded, task="restyle", progress=progress_reporter(
            progress, "Restyling"), cancel=stops.start(request))
        for note in outcome.notes:
            gr.Info(note)
        item = outcome.items[0]
        return servable(item.file), (f"{width}x{height} px in {outcome.result.seconds:.2f} s · seed {item.seed} · "
                                     f"gallery #{item.id}")

    event = c.run.click(
        restyle,
        [photo, c.model, c.decoder, c.style_prompt, c.strength, c.steps, c.random_seed, c.seed],
        [result, info],
        api_name="restyle",
        concurrency_id="heavy",
    )

    def stop_run(request: gr.Request) -> None:
        stops.stop(request)

    c.stop.click(stop_run, None, None, cancels=[event], api_visibility="private")
