"""The Image tab: text-to-image, image-to-image, inpainting and outpainting, with live previews."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from studio.backends.diffusion import (
    DEFAULT_DECODER,
    DEFAULT_MODEL,
    DEFAULT_SAMPLER,
    DEFAULT_SPEED,
    FULL_VAE,
    LCM_GUIDANCE,
    LCM_SAMPLER,
    LCM_STEPS,
    MAX_BATCH_COUNT,
    MAX_BATCH_SIZE,
    MAX_EXTEND,
    SAMPLERS,
    SPEEDS,
    ImageRequest,
    fields_from_parameters,
    fit_size,
    steps_for_strength,
)
from studio.backends.diffusion.hires import DEFAULT_STRENGTH, DEFAULT_UPSCALER, MAX_SCALE
from studio.backends.patterns import MAX_SEED as MAX_PATTERN_SEED
from studio.backends.patterns import PALETTES, PatternRequest
from studio.errors import InputError
from studio.media.images import LoadedImage
from studio.media.png_info import read_a1111_parameters
from studio.runtime import CancelToken
from studio.services import Studio
from studio.services.image import ImageOutcome, mask_from_layers
from studio.ui import controlnet_panel, image_family, image_setup, lora_picker
from studio.ui.common import StopButtons, UploadedImageEditor, api_doc, image_upload, servable, user_errors
from studio.ui.controlnet_panel import CONTROL_SETTINGS, MORE_SETTINGS, takes_more_units, units_of
from studio.ui.image_family import FLOW_SETTINGS, flow_fields

MODE_LABELS = {"txt2img": "Text to image", "img2img": "Image to image", "inpaint": "Inpaint", "outpaint": "Outpaint"}

# What the API page and MCP tools say about the settings every image endpoint takes first.
IMAGE_SETTINGS = {
    "model": f"catalogue id of the image model, e.g. {DEFAULT_MODEL} (`python -m studio models` lists them)",
    "decoder": f"catalogue id of the fast decoder, e.g. {DEFAULT_DECODER}, or '{FULL_VAE}' for the model's own VAE",
    "prompt": "what the picture should show",
    "negative_prompt": "what it should not show (acts only with guidance above 1)",
    "sampler": f"one of {', '.join(SAMPLERS)} (SD 3.x and FLUX: Euler only)",
    "steps": "denoising steps, 1-50 (SD-Turbo: 1-4)",
    "guidance": "CFG scale, 0-15 (SD-Turbo and FLUX.1-schnell: 0; FLUX.1-dev: its distilled guidance, about 3.5)",
    "width": "px, a multiple of 8: the size the model works at",
    "height": "px, a multiple of 8: the size the model works at",
    "random_seed": "true: draw a new seed (the one used comes back); false: use seed",
    "seed": "the seed when random_seed is false; picture n of a batch uses seed + n",
    "batch_count": f"batches made one after another, 1-{MAX_BATCH_COUNT}",
    "batch_size": f"pictures made together in each batch, 1-{MAX_BATCH_SIZE}",
    "fast_lcm": f"true: an SD 1.5 or SDXL model in few steps with its LCM-LoRA (sampler {LCM_SAMPLER}, "
                f"{LCM_STEPS} steps, guidance {LCM_GUIDANCE:g}); false by default",
    "speed": "exact (default): the model's own weights; fastest: on a CPU with OpenVINO, the UNet's weights "
             "compressed to int8: quicker and lighter, the picture differs slightly (the result's note says which ran)",
}
SPEED_INFO = "fastest: int8 weights on OpenVINO (CPU): quicker and lighter; pictures differ slightly from exact"
# The hires fix, as AUTOMATIC1111's txt2img has it (text to image only).
HIRES_SETTINGS = {
    "hires": "true: hires fix: make the picture at width x height, upscale it, then redraw it bigger",
    "hires_scale": f"upscale by, 1-{MAX_SCALE:g}",
    "hires_upscaler": "Latent (and its variants), Lanczos, Nearest, or an upscaler model's name",
    "hires_steps": "steps of the second pass; 0: as many as the first",
    "hires_strength": "0-1: the second pass's denoising strength (0 with Lanczos: upscaled only)",
}
HIRES_RESIZE_SETTINGS = {
    "hires_resize_x": "px, a multiple of 8: the hires fix's width instead of hires_scale (0: by the scale; "
                      "one side 0 keeps the aspect)",
    "hires_resize_y": "px, a multiple of 8: the hires fix's height (both given: upscaled to cover, centre-cropped)",
}
IMAGE_RETURNS = "the live preview (empty at the end), the pictures with captions, a summary, the seed used"


@dataclass
class ImageTab:
    prompt: gr.Textbox
    results: gr.Gallery
    selected: gr.Number
    img2img_input: gr.Image
    modes: gr.Tabs
    send_to_style: gr.Button
    send_to_upscale: gr.Button
    setup: image_setup.SetupNotice
    load_fn: Callable[[], tuple]  # run on each page load, into load_outputs
    load_outputs: list


def model_choices(studio: Studio) -> tuple[list[tuple[str, str]], str]:
    """(label, id) for every image model, those on this machine marked; and the one to start with."""
    entries = {e.id: e for task in ("txt2img", "img2img", "inpaint") for e in studio.image.image_entries(task)}
    choices, present = [], []
    for entry in entries.values():
        here = studio.image.is_available(entry.id)
        present += [entry.id] if here else []
        where = "on this machine" if here else f"download {entry.size_text()}"
        flag = ", non-commercial" if not entry.commercial_use else ""
        choices.append((f"{entry.name} ({where}{flag})", entry.id))
    default = DEFAULT_MODEL if DEFAULT_MODEL in present else (present[0] if present else DEFAULT_MODEL)
    return choices, default


def decoder_choices(studio: Studio) -> tuple[list[tuple[str, str]], str]:
    choices = [(f"{e.name}", e.id) for e in studio.image.decoder_entries()]
    choices.append(("Full VAE (slower, finest detail)", FULL_VAE))
    return choices, studio.image_service.default_decoder()


def stream_run(work: Callable, token: CancelToken, progress: gr.Progress, label: str) -> Iterator[tuple[str, Any]]:
    """Run `work(progress_callback, stage_callback)` in a worker thread; yield ("preview", image) as steps
    finish and ("done", result) at the end. A stage (a model's one-off preparation) is announced once
    and shown in the progress bar under its own words. Closing the generator (Stop) cancels the work
    at its next step."""
    events: queue.Queue = queue.Queue()

    def report(done: int, total: int, preview: Any | None = None) -> None:
        events.put(("step", (done, total, preview)))

    def stage(text: str, done: int, total: int) -> None:
        events.put(("stage", (text, done, total)))

    def target() -> None:
        try:
            events.put(("done", work(report, stage)))
        except BaseException as exc:  # handed to the request's thread, which explains it
            events.put(("error", exc))

    announced: set[str] = set()
    worker = threading.Thread(target=target, name="image-run", daemon=True)
    worker.start()
    try:
        while True:
            kind, payload = events.get()
            if kind == "step":
                done, total, preview = payload
                progress((done, max(total, 1)), desc=label)
                if preview is not None:
                    yield "preview", preview
            elif kind == "stage":
                text, done, total = payload
                if text not in announced:
                    announced.add(text)
                    gr.Info(text)
                progress((done, max(total, 1)), desc=text)
            elif kind == "done":
                yield "done", payload
                return
            else:
                raise payload
    finally:
        if worker.is_alive():
            token.cancel()


def build(studio: Studio, stops: StopButtons) -> ImageTab:
    limit = studio.settings.max_output_side
    max_steps = min(50, studio.settings.max_steps)
    models, default_model = model_choices(studio)
    decoders, default_decoder = decoder_choices(studio)
    start = image_family.defaults_for(studio, default_model)  # the form starts with the default model's settings
    native = min(start.size, limit) if start else studio.image.native_size(default_model)
    setup = image_setup.build(studio, stops)
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            with gr.Row():
                model = gr.Dropdown(models, value=default_model, label="Model", scale=3, elem_id="image-model",
                                    info=image_family.PICK_INFO)
                decoder = gr.Dropdown(decoders, value=default_decoder, label="Decoder", scale=2,
                                      info="TAESD and its kin (TAESDXL, TAESD3, TAEF1) decode 12-27x faster than the "
                                           "full VAE; the one that fits the model runs")
            prompt = gr.Textbox(label="Prompt", lines=3, placeholder="a lighthouse on a cliff at dusk, oil painting",
                                elem_id="image-prompt")
            loras = lora_picker.build(studio, prompt)
            negative = gr.Textbox(value="", label="Negative prompt", lines=1, placeholder="blurry, low quality",
                                  info="acts only with guidance above 1", elem_id="image-negative")
            with gr.Tabs(selected="txt2img", elem_id="image-modes") as modes:
                with gr.Tab(MODE_LABELS["txt2img"], id="txt2img"):
                    hires_inputs, hires_resize = _hires_fix(studio)
                    run_txt2img = gr.Button("Generate", variant="primary", elem_id="image-run-txt2img")
                with gr.Tab(MODE_LABELS["img2img"], id="img2img"):
                    init_image = image_upload(label="Input picture", height=280, elem_id="image-img2img-input")
                    strength = gr.Slider(0.05, 1, value=0.5, step=0.05, label="Strength",
                                         info="how far to move from the input; steps x strength must be at least 1")
                    run_img2img = gr.Button("Generate", variant="primary", elem_id="image-run-img2img")
                with gr.Tab(MODE_LABELS["inpaint"], id="inpaint"):
                    editor = UploadedImageEditor(
                        label="Picture: paint over what to change",
                        type="filepath",
                        format="png",
                        image_mode="RGBA",
                        sources=["upload", "clipboard"],
                        brush=gr.Brush(colors=["#ffffff"], color_mode="fixed", default_size=32),
                        layers=False,
                        transforms=(),
                        height=380,
                        elem_id="image-inpaint-editor",
                    )
                    with gr.Accordion("Or upload a mask (white = repaint)", open=False):
                        mask_upload = image_upload(label="Mask", height=200, elem_id="image-inpaint-mask")
                    with gr.Row():
                        mask_blur = gr.Slider(0, 64, value=4, step=1, label="Mask blur (px)")
                        padding = gr.Slider(0, 256, value=32, step=4, label="Padding around the mask (px)")
                    with gr.Row():
                        only_masked = gr.Checkbox(value=True, label="Only the masked area, at full resolution",
                                                  info="everything outside the mask stays exactly as it was")
                        inpaint_strength = gr.Slider(0.05, 1, value=1.0, step=0.05, label="Strength")
                    run_inpaint = gr.Button("Generate", variant="primary", elem_id="image-run-inpaint")
                with gr.Tab(MODE_LABELS["outpaint"], id="outpaint"):
                    outpaint_image = image_upload(label="Picture to extend", height=260, elem_id="image-outpaint-input")
                    with gr.Row():
                        sides = [gr.Slider(0, MAX_EXTEND, value=v, step=8, label=f"{name} (px)")
                                 for name, v in (("Left", 0), ("Right", 128), ("Top", 0), ("Bottom", 0))]
                    with gr.Row():
                        outpaint_blur = gr.Slider(0, 64, value=8, step=1, label="Seam blend (px)")
                        outpaint_strength = gr.Slider(0.05, 1, value=1.0, step=0.05, label="Strength")
                    run_outpaint = gr.Button("Generate", variant="primary", elem_id="image-run-outpaint")
                with gr.Tab("Abstract patterns (no download)", id="patterns"):
                    gr.Markdown("Seeded random networks draw a picture of any size with no model at all; the "
                                "width and height below apply. Walks between patterns are in the Interpolate tab.")
                    with gr.Row():
                        pattern_seed = gr.Number(value=5, precision=0, minimum=0, maximum=MAX_PATTERN_SEED,
                                                 label="Pattern seed")
                        pattern_palette = gr.Dropdown(list(PALETTES), value="network colours", label="Palette")
                        pattern_zoom = gr.Slider(0.25, 8, value=1.0, step=0.05, label="Zoom out")
                    run_patterns = gr.Button("Render pattern", variant="primary", elem_id="image-run-patterns")
            stop = gr.Button("Stop", variant="stop", elem_id="image-stop")
            with gr.Accordion("Settings", open=True):
                with gr.Row():
                    sampler = gr.Dropdown(list(start.family.samplers if start else SAMPLERS), value=DEFAULT_SAMPLER,
                                          label="Sampler")
                    steps = gr.Slider(1, max_steps, value=min(start.steps, max_steps) if start else 1, step=1,
                                      label="Steps", elem_id="image-steps")
                    guidance = gr.Slider(0, 15, value=start.guidance if start else 0.0, step=0.5,
                                         label="Guidance (CFG scale)", elem_id="image-guidance")
                flow = image_family.build(start)
                fast_lcm_switch = gr.Checkbox(value=False, label=f"Fast (LCM, {LCM_STEPS} steps)",
                                              info="SD 1.5 / SDXL models: their LCM-LoRA (downloaded on first use), "
                                                   f"the {LCM_SAMPLER} sampler, guidance {LCM_GUIDANCE:g}")
                speed = gr.Radio(list(SPEEDS), value=DEFAULT_SPEED, label="Speed", info=SPEED_INFO,
                                 elem_id="image-speed")
                with gr.Row():
                    width = gr.Slider(64, limit, value=native, step=8, label="Width", elem_id="image-width")
                    height = gr.Slider(64, limit, value=native, step=8, label="Height", elem_id="image-height")
                with gr.Row():
                    random_seed = gr.Checkbox(value=True, label="Random seed", scale=1)
                    seed = gr.Number(value=0, precision=0, label="Seed", minimum=None, scale=2, elem_id="image-seed")
                    reuse = gr.Button("Reuse last seed", scale=1, size="sm")
                with gr.Row():
                    batch_count = gr.Slider(1, min(MAX_BATCH_COUNT, studio.settings.max_images), value=1, step=1,
                                            label="Batch count")
                    batch_size = gr.Slider(1, min(MAX_BATCH_SIZE, studio.settings.max_images), value=1, step=1,
                                           label="Batch size")
                first_note = image_family.step_note(studio, default_model, native, native, start.steps if start else 1,
                                                    start.guidance if start else 0.0)
                step_estimate = gr.Markdown(first_note["value"], visible=first_note["visible"],
                                            elem_id="image-step-estimate")
            control = controlnet_panel.build(studio, width, height)
            with gr.Accordion("Load parameters from a PNG", open=False):
                params_png = image_upload(label="Drop a PNG made here or in AUTOMATIC1111", height=160,
                                          elem_id="image-params-png")
        with gr.Column(scale=6):
            preview = gr.Image(label="Live preview", type="pil", interactive=False, height=200, visible=True,
                               elem_id="image-preview")
            results = gr.Gallery(label="Results", columns=2, height=520, format="png", elem_id="image-results",
                                 buttons=["download", "fullscreen"])
            info = gr.Markdown(elem_id="image-info")
            last_seed = gr.Number(value=None, precision=0, visible=False, label="last_seed")
            selected = gr.Number(value=0, precision=0, visible=False, label="selected")
            with gr.Row():
                to_inpaint = gr.Button("Send to inpaint", size="sm")
                to_img2img = gr.Button("Use as img2img input", size="sm")
                send_to_style = gr.Button("Send to Style", size="sm")
                send_to_upscale = gr.Button("Upscale", size="sm", elem_id="image-send-to-upscale")

    common = [model, decoder, prompt, negative, sampler, steps, guidance, width, height, random_seed, seed,
              batch_count, batch_size]

    def request_of(mode: str, values: tuple, **extra: Any) -> ImageRequest:
        (model_id, decoder_id, prompt_text, negative_text, sampler_name, steps_n, guidance_v, width_v, height_v,
         use_random, seed_v, count, size) = values
        if not use_random and seed_v is None:
            raise gr.Error("Enter a seed, or tick 'Random seed'.")
        steps_n = _whole(steps_n)
        strength = extra.get("strength")
        if mode != "txt2img" and isinstance(strength, float) and 0 < strength <= 1 and isinstance(steps_n, int):
            # Image to image runs steps x strength of its steps: the tab's defaults (1 step, strength
            # 0.5) would run none, so take the fewest steps that run one, and say so.
            needed = steps_for_strength(steps_n, strength)
            if needed != steps_n and needed <= studio.settings.max_steps:
                gr.Info(f"Steps raised from {steps_n} to {needed}: at strength {strength:g}, {steps_n} step(s) "
                        "would run none.")
                steps_n = needed
        return ImageRequest(
            prompt=prompt_text or "", mode=mode, negative_prompt=negative_text or "", model=model_id,
            steps=steps_n, guidance=float(guidance_v), width=_whole(width_v), height=_whole(height_v),
            seed=None if use_random else _whole(seed_v), sampler=sampler_name, batch_size=_whole(size),
            batch_count=_whole(count), decoder=decoder_id or DEFAULT_DECODER, **extra,
        )

    def run(request: ImageRequest, image: LoadedImage | None, mask: LoadedImage | None, gr_request, progress,
            controls: list[LoadedImage | None] | None = None):
        token = stops.start(gr_request)
        label = image_family.step_label(studio, f"{MODE_LABELS[request.mode]}: step", request.model, request.width,
                                        request.height, request.steps, request.guidance, request.batch_size)

        def work(report, stage):
            return studio.generate_image(request, image, mask, progress=report, cancel=token,
                                         owner=None, preparing=stage, controls=controls or [])

        for kind, payload in stream_run(work, token, progress, label):
            if kind == "preview":
                yield payload, gr.skip(), gr.skip(), gr.skip()
            else:
                outcome: ImageOutcome = payload
                for note in outcome.notes:
                    (gr.Warning if "not on this machine" in note else gr.Info)(note)
                files = [(servable(item.file), f"#{item.id} · seed {item.seed}") for item in outcome.items]
                yield None, files, describe(studio, outcome), outcome.result.params[0]["seed"]

    outputs = [preview, results, info, last_seed]

    # The handlers' parameters are named as the API shows them; inside, they are the values sent,
    # not the components of the same names above.

    @user_errors
    @api_doc("Make pictures from a prompt (text to image), with AUTOMATIC1111's hires fix if asked.",
             returns=IMAGE_RETURNS, **IMAGE_SETTINGS, **HIRES_SETTINGS, **CONTROL_SETTINGS, **MORE_SETTINGS,
             **HIRES_RESIZE_SETTINGS, **FLOW_SETTINGS)
    @takes_more_units
    def txt2img(model: str, decoder: str, prompt: str, negative_prompt: str, sampler: str, steps: float,
                guidance: float, width: float, height: float, random_seed: bool, seed: float | None,
                batch_count: float, batch_size: float, hires: bool, hires_scale: float, hires_upscaler: str,
                hires_steps: float, hires_strength: float, fast_lcm: bool, controlnet: str, control_type: str,
                control_picture: str | None = None, control_sketch: dict | None = None,
                control_weight: float = 1.0,
                control_start: float = 0.0, control_end: float = 1.0, hires_resize_x: float = 0,
                hires_resize_y: float = 0, shift: float = 0.0, max_sequence_length: float = 0,
                speed: str = DEFAULT_SPEED, request: gr.Request = None,
                progress=gr.Progress(),  # type: ignore[assignment]
                more_controls: tuple[Any, ...] = ()):
        settings = (model, decoder, prompt, negative_prompt, sampler, steps, guidance, width, height, random_seed,
                    seed, batch_count, batch_size)
        extra = dict(hires_scale=float(hires_scale), hires_upscaler=hires_upscaler, hires_steps=_whole(hires_steps),
                     hires_strength=float(hires_strength), hires_resize_x=_whole(hires_resize_x),
                     hires_resize_y=_whole(hires_resize_y)) if hires else {}
        units, controls = units_of(studio, (controlnet, control_type, control_picture, control_sketch,
                                            control_weight, control_start, control_end), more_controls)
        yield from run(request_of("txt2img", settings, fast_lcm=bool(fast_lcm), controlnets=units, **extra,
                                  speed=speed or DEFAULT_SPEED, **flow_fields(shift, max_sequence_length)),
                       None, None, request, progress, controls)

    @user_errors
    @api_doc("Redraw a picture following a prompt (image to image).", returns=IMAGE_RETURNS, **IMAGE_SETTINGS,
             picture="the picture to start from (a file)",
             strength="0.05-1: how far to move from the picture; steps x strength must be at least 1",
             **CONTROL_SETTINGS, **MORE_SETTINGS, **FLOW_SETTINGS)
    @takes_more_units
    def img2img(model: str, decoder: str, prompt: str, negative_prompt: str, sampler: str, steps: float,
                guidance: float, width: float, height: float, random_seed: bool, seed: float | None,
                batch_count: float, batch_size: float, picture: str | None, strength: float, fast_lcm: bool,
                controlnet: str, control_type: str, control_picture: str | None = None, control_sketch: dict | None = None,
                control_weight: float = 1.0, control_start: float = 0.0, control_end: float = 1.0,
                shift: float = 0.0, max_sequence_length: float = 0, speed: str = DEFAULT_SPEED,
                request: gr.Request = None, progress=gr.Progress(),  # type: ignore[assignment]
                more_controls: tuple[Any, ...] = ()):
        if not picture:
            raise gr.Error("Upload an input picture first.")
        settings = (model, decoder, prompt, negative_prompt, sampler, steps, guidance, width, height, random_seed,
                    seed, batch_count, batch_size)
        units, controls = units_of(studio, (controlnet, control_type, control_picture, control_sketch,
                                            control_weight, control_start, control_end), more_controls)
        image_request = request_of("img2img", settings, strength=float(strength), fast_lcm=bool(fast_lcm),
                                   controlnets=units, speed=speed or DEFAULT_SPEED,
                                   **flow_fields(shift, max_sequence_length))
        yield from run(image_request, studio.open_image(picture), None, request, progress, controls)

    @user_errors
    @api_doc(
        "Repaint part of a picture: the white area of a mask, or the strokes painted over it.",
        returns=IMAGE_RETURNS, **IMAGE_SETTINGS,
        picture="the image editor's value: {'background': the picture, 'layers': painted strokes, 'composite': None}",
        mask="a mask file, white = repaint (leave empty to use the painted strokes)",
        mask_blur="0-64 px: feather the mask's edge",
        padding="0-256 px of context around the mask when only_masked is true",
        only_masked="true: work on a crop around the mask at the model's resolution; pixels outside stay as they were",
        strength="0.05-1: how far to move from the picture inside the mask",
        **CONTROL_SETTINGS, **MORE_SETTINGS, **FLOW_SETTINGS,
    )
    @takes_more_units
    def inpaint(model: str, decoder: str, prompt: str, negative_prompt: str, sampler: str, steps: float,
                guidance: float, width: float, height: float, random_seed: bool, seed: float | None,
                batch_count: float, batch_size: float, picture: dict | None, mask: str | None, mask_blur: float,
                padding: float, only_masked: bool, strength: float, fast_lcm: bool, controlnet: str,
                control_type: str, control_picture: str | None = None, control_sketch: dict | None = None,
                control_weight: float = 1.0,
                control_start: float = 0.0, control_end: float = 1.0, shift: float = 0.0,
                max_sequence_length: float = 0, speed: str = DEFAULT_SPEED,
                request: gr.Request = None, progress=gr.Progress(),  # type: ignore[assignment]
                more_controls: tuple[Any, ...] = ()):
        background = (picture or {}).get("background")
        if not background:
            raise gr.Error("Upload a picture to inpaint first.")
        loaded = studio.open_image(background)
        if mask:
            loaded_mask = studio.open_image(mask)
        else:
            layers = [Image.open(p).convert("RGBA") for p in (picture.get("layers") or []) if p]
            drawn = mask_from_layers(layers, loaded.size)
            if drawn is None:
                raise gr.Error("Paint over the area to change (or upload a mask) first.")
            loaded_mask = LoadedImage(drawn.convert("RGB"))
        settings = (model, decoder, prompt, negative_prompt, sampler, steps, guidance, width, height, random_seed,
                    seed, batch_count, batch_size)
        units, controls = units_of(studio, (controlnet, control_type, control_picture, control_sketch,
                                            control_weight, control_start, control_end), more_controls)
        image_request = request_of("inpaint", settings, strength=float(strength), mask_blur=_whole(mask_blur),
                                   padding=_whole(padding), only_masked=bool(only_masked), fast_lcm=bool(fast_lcm),
                                   controlnets=units, speed=speed or DEFAULT_SPEED,
                                   **flow_fields(shift, max_sequence_length))
        yield from run(image_request, loaded, loaded_mask, request, progress, controls)

    @user_errors
    @api_doc(
        "Extend a picture beyond its borders; the new area follows the prompt.",
        returns=IMAGE_RETURNS, **IMAGE_SETTINGS,
        picture="the picture to extend (a file)",
        extend_left=f"px to add on the left, 0-{MAX_EXTEND}",
        extend_right=f"px to add on the right, 0-{MAX_EXTEND}",
        extend_top=f"px to add at the top, 0-{MAX_EXTEND}",
        extend_bottom=f"px to add at the bottom, 0-{MAX_EXTEND}",
        mask_blur="0-64 px: how softly the new area blends into the old",
        strength="0.05-1: how far the new area may move from the repeated edge it starts from", **FLOW_SETTINGS,
    )
    def outpaint(model: str, decoder: str, prompt: str, negative_prompt: str, sampler: str, steps: float,
                 guidance: float, width: float, height: float, random_seed: bool, seed: float | None,
                 batch_count: float, batch_size: float, picture: str | None, extend_left: float,
                 extend_right: float, extend_top: float, extend_bottom: float, mask_blur: float, strength: float,
                 fast_lcm: bool, shift: float = 0.0, max_sequence_length: float = 0, speed: str = DEFAULT_SPEED,
                 request: gr.Request = None, progress=gr.Progress()):  # type: ignore[assignment]
        if not picture:
            raise gr.Error("Upload a picture to extend first.")
        settings = (model, decoder, prompt, negative_prompt, sampler, steps, guidance, width, height, random_seed,
                    seed, batch_count, batch_size)
        image_request = request_of(
            "outpaint", settings, strength=float(strength), mask_blur=_whole(mask_blur),
            extend_left=_whole(extend_left), extend_right=_whole(extend_right), extend_top=_whole(extend_top),
            extend_bottom=_whole(extend_bottom), fast_lcm=bool(fast_lcm), speed=speed or DEFAULT_SPEED,
            **flow_fields(shift, max_sequence_length),
        )
        yield from run(image_request, studio.open_image(picture), None, request, progress)

    events = [
        # The fast LCM switch comes last, so calls written before it existed still fit.
        # The ControlNet accordion's inputs come after it (outpainting has none): unit 0's first seven, and
        # after every other input, its thresholds and units 1 and 2 (`control.more`); then the flow models' two,
        # and the speed last of all.
        run_txt2img.click(txt2img, [*common, *hires_inputs, fast_lcm_switch, *control.inputs, *control.more,
                                    *hires_resize, *flow.inputs, speed], outputs, api_name="txt2img",
                          concurrency_id="heavy"),
        run_img2img.click(img2img, [*common, init_image, strength, fast_lcm_switch, *control.inputs, *control.more,
                                    *flow.inputs, speed], outputs, api_name="img2img", concurrency_id="heavy"),
        run_inpaint.click(inpaint, [*common, editor, mask_upload, mask_blur, padding, only_masked, inpaint_strength,
                                    fast_lcm_switch, *control.inputs, *control.more, *flow.inputs, speed], outputs,
                          api_name="inpaint", concurrency_id="heavy"),
        run_outpaint.click(outpaint, [*common, outpaint_image, *sides, outpaint_blur, outpaint_strength,
                                      fast_lcm_switch, *flow.inputs, speed], outputs, api_name="outpaint",
                           concurrency_id="heavy"),
    ]

    def stop_run(request: gr.Request) -> None:
        stops.stop(request)

    stop.click(stop_run, None, None, cancels=events, api_visibility="private")

    # -- seeds, sizes and parameters ------------------------------------------------------------

    # The switch sets the LCM sampler, steps and guidance together; off, the model's own come back.
    fast_lcm_switch.input(lambda on, m: (LCM_SAMPLER, LCM_STEPS, LCM_GUIDANCE) if on else
                          (DEFAULT_SAMPLER, *image_family.model_picked(studio, m, limit, max_steps)[:2]),
                          [fast_lcm_switch, model], [sampler, steps, guidance], api_visibility="private")
    reuse.click(lambda s: (s, False) if s is not None else (gr.skip(), gr.skip()), last_seed, [seed, random_seed],
                api_visibility="private")

    def size_for(picture, model_id, extra_w=0, extra_h=0):
        if not picture:
            return gr.skip(), gr.skip()
        try:
            loaded = studio.open_image(picture)
        except InputError:
            return gr.skip(), gr.skip()
        w, h = fit_size(loaded.size[0] + extra_w, loaded.size[1] + extra_h, studio.image.native_size(model_id))
        return min(w, limit), min(h, limit)

    fit_outputs = image_family.wire(studio, model, sampler, negative, guidance, steps, width, height, flow, limit,
                                    max_steps)
    image_family.wire_step_note(studio, step_estimate, model, width, height, steps, guidance, batch_size, batch_count)
    init_image.change(size_for, [init_image, model], [width, height], api_visibility="private")
    outpaint_image.change(lambda p, m, lft, r, t, b: size_for(p, m, lft + r, t + b),
                          [outpaint_image, model, *sides], [width, height], api_visibility="private")
    editor.upload(lambda e, m: size_for((e or {}).get("background"), m), [editor, model], [width, height],
                  api_visibility="private")

    parameter_outputs = [prompt, negative, model, decoder, sampler, steps, guidance, width, height, random_seed, seed,
                         strength, inpaint_strength, mask_blur, padding, only_masked, *sides, outpaint_blur,
                         *hires_inputs, *hires_resize, *flow.inputs, *control.loaded_fields, fast_lcm_switch,
                         speed, modes, info]

    @user_errors
    @api_doc(
        "Read the generation parameters a PNG carries (made here or in AUTOMATIC1111) into the form's fields.",
        png="a PNG with a 'parameters' text chunk",
        returns="prompt, negative prompt, model, decoder, sampler, steps, guidance, width, height, random seed "
                "(false), seed, strengths, mask and outpaint settings, the hires fix (on, upscale, upscaler, steps, "
                "strength, resize width, resize height), the shift and T5 prompt length (0: the model's own), "
                "ControlNet units 0-2 (model, type, weight, start, end, threshold A, threshold B), the fast LCM "
                "switch, the speed, then a note on what was loaded",
    )
    def image_read_parameters(png: str | None):
        if not png:
            return [gr.skip()] * len(parameter_outputs)
        parsed = read_a1111_parameters(png)
        if parsed is None:
            raise gr.Error("This picture carries no generation parameters (no 'parameters' text in the PNG).")
        values, notes = fields_from_parameters(parsed, studio.catalog, loras=studio.image.loras,
                                              embeddings=studio.image.embeddings)
        units, unit_notes = controlnet_panel.loaded_units(parsed, studio.catalog)
        for note in unit_notes:  # a unit whose model is not here is left empty, and said so
            gr.Warning(note)
        notes = [note for note in notes if not note.startswith("ControlNet ")]  # said in the warnings
        if units is not None:
            notes.append("Give each ControlNet unit its picture again: parameters do not carry pictures.")
        if values.get("model") not in {m for _, m in models}:
            values.pop("model", None)
        if values.get("hires_upscaler", DEFAULT_UPSCALER) not in studio.image.hires_upscalers():
            notes.append(f"The hires upscaler '{values.pop('hires_upscaler')}' is not one the studio has; "
                         "choose another.")

        def get(name):
            return values[name] if name in values else gr.skip()

        message = "Parameters loaded" + (": " + " ".join(notes) if notes else ".")
        return [
            get("prompt"), get("negative_prompt"), get("model"), get("decoder"), get("sampler"), get("steps"),
            get("guidance"), get("width"), get("height"), False if "seed" in values else gr.skip(), get("seed"),
            get("strength"), get("strength"), get("mask_blur"), get("padding"), get("only_masked"),
            *(get(f"extend_{side}") for side in ("left", "right", "top", "bottom")), get("mask_blur"),
            values.get("hires_scale", 1) > 1 or bool(values.get("hires_resize_x") or values.get("hires_resize_y")),
            get("hires_scale"), get("hires_upscaler"), get("hires_steps"), get("hires_strength"),
            get("hires_resize_x"), get("hires_resize_y"), values.get("shift", 0.0), values.get("max_sequence_length", 0),
            *(units if units is not None else [gr.skip()] * len(control.loaded_fields)),
            bool(values.get("fast_lcm", False)), values.get("speed", DEFAULT_SPEED),
            gr.Tabs(selected=values["mode"]) if "mode" in values else gr.skip(), message,
        ]

    params_png.upload(image_read_parameters, params_png, parameter_outputs, api_name="image_read_parameters")

    @user_errors
    @api_doc(
        "Draw an abstract pattern with no model (a seeded random network), kept in the gallery.",
        seed=f"which pattern, 0-{MAX_PATTERN_SEED}",
        palette=f"one of {', '.join(PALETTES)}",
        zoom="0.25-8: show more of the plane (finer structure)",
        width="px",
        height="px",
        returns="nothing for the preview, the picture, a summary, the seed",
    )
    def image_patterns(seed: float | None, palette: str, zoom: float, width: float, height: float):
        seed_n, width_n, height_n = int(seed or 0), int(width), int(height)
        outcome = studio.make_patterns(PatternRequest(seed=seed_n, width=width_n, height=height_n, palette=palette,
                                                      zoom=float(zoom)))
        assert outcome.item is not None
        text = f"Pattern {seed_n}, {width_n}x{height_n} px in {outcome.seconds:.2f} s · gallery #{outcome.item.id}"
        return None, [servable(outcome.item.file)], text, seed_n

    run_patterns.click(image_patterns, [pattern_seed, pattern_palette, pattern_zoom, width, height], outputs,
                       api_name="image_patterns", concurrency_id="heavy")

    # -- results to other places -------------------------------------------------------------

    def pick(evt: gr.SelectData) -> int:
        return evt.index

    results.select(pick, None, selected, api_visibility="private")
    to_inpaint.click(
        lambda files, index: ({"background": picked(files, index), "layers": [], "composite": picked(files, index)},
                              gr.Tabs(selected="inpaint")),
        [results, selected], [editor, modes], api_visibility="private",
    )
    to_img2img.click(lambda files, index: (picked(files, index), gr.Tabs(selected="img2img")),
                     [results, selected], [init_image, modes], api_visibility="private")
    setup.to_patterns.click(lambda: gr.Tabs(selected="patterns"), None, modes, api_visibility="private")

    def on_load() -> tuple:
        """A model fetched (or pointed at) since the studio started: hide the notice, list it as here;
        LoRA files dropped in meanwhile are listed too; the ControlNet units' settings show their defaults."""
        choices, default = model_choices(studio)
        return (image_setup.refresh(studio), gr.Dropdown(choices=choices, value=default),
                *lora_picker.listing_update(studio), *image_family.model_changed(studio, default, DEFAULT_SAMPLER),
                *control.load_values())

    return ImageTab(prompt=prompt, results=results, selected=selected, img2img_input=init_image, modes=modes,
                    send_to_style=send_to_style, send_to_upscale=send_to_upscale, setup=setup, load_fn=on_load,
                    load_outputs=[setup.box, model, *loras.listing_outputs, *fit_outputs, *control.load_outputs])


def picked(files: list | None, index: float | None) -> str:
    """The file of the chosen (or first) result."""
    if not files:
        raise gr.Error("Make a picture first.")
    chosen = files[int(index or 0)] if int(index or 0) < len(files) else files[0]
    return chosen[0] if isinstance(chosen, (tuple, list)) else chosen


def _hires_fix(studio: Studio) -> tuple[list[gr.components.Component], list[gr.components.Component]]:
    """The Hires fix accordion: [on, upscale by, upscaler, hires steps, denoising strength], and
    [resize width to, resize height to] (inputs that came later, so they go last)."""
    with gr.Accordion("Hires fix", open=False, elem_id="image-hires"):
        hires = gr.Checkbox(value=False, label="Hires fix", elem_id="image-hires-on",
                            info="make the picture at the model's size, upscale it, then redraw it bigger")
        with gr.Row():
            scale = gr.Slider(1, MAX_SCALE, value=2.0, step=0.05, label="Upscale by", elem_id="image-hires-scale")
            upscaler = gr.Dropdown(studio.image.hires_upscalers(), value=DEFAULT_UPSCALER, label="Upscaler",
                                   info="Latent: in the model's latent space (strength 0.5 or more)")
        with gr.Row():
            steps = gr.Slider(0, min(50, studio.settings.max_steps), value=0, step=1, label="Hires steps",
                              info="0: as many as the first pass")
            strength = gr.Slider(0, 1, value=DEFAULT_STRENGTH, step=0.05, label="Denoising strength",
                                 info="0 with Lanczos: upscaled only")
        with gr.Row():  # AUTOMATIC1111's "Resize width/height to", in place of "Upscale by"
            limit = studio.settings.max_output_side
            resize_x = gr.Slider(0, limit, value=0, step=8, label="Resize width to", elem_id="image-hires-resize-x",
                                 info="0: by 'Upscale by'; one side 0 keeps the aspect")
            resize_y = gr.Slider(0, limit, value=0, step=8, label="Resize height to", elem_id="image-hires-resize-y",
                                 info="both given: upscaled to cover, then centre-cropped")
    return [hires, scale, upscaler, steps, strength], [resize_x, resize_y]


def describe(studio: Studio, outcome: ImageOutcome) -> str:
    records = outcome.result.params
    first = records[0]
    seeds = f"seed {first['seed']}" if len(records) == 1 else f"seeds {first['seed']}-{records[-1]['seed']}"
    ids = ", ".join(f"#{item.id}" for item in outcome.items)
    entry = studio.catalog.get(first["model"])
    licence = "" if entry.commercial_use else f" · licence: {entry.licence} (not for commercial use)"
    speed = first.get("speed", DEFAULT_SPEED)  # which path ran: exact, or fastest (int8 weights)
    return (f"{len(records)} picture(s), {first['result_width']}x{first['result_height']} px, in "
            f"{outcome.result.seconds:.2f} s · {seeds} · speed {speed} · gallery {ids}{licence}")


def _whole(value: Any) -> int:
    """A whole number from a form field; anything else is left for the request to explain."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
