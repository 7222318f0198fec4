"""AUTOMATIC1111's API (`/sdapi/v1/...`), as SillyTavern, Open WebUI, Krita and Photoshop plug-ins,
Discord bots and the `webuiapi` package call it.

Requests and answers keep its shapes: pictures as base64 PNGs carrying the `parameters` chunk, an
`info` JSON string, its option names and sampler names. What the studio cannot honour (hires fix,
face restoration, scripts, ...) is named in `info["studio_not_honoured"]`; unknown fields are ignored.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from PIL import ImageOps
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from studio import __version__, limits
from studio.api.controlnet_units import units_from_script
from studio.api.fields import Fields, parse_body
from studio.api.gate import ApiError, Caller, ClientGone, Gate, as_api_error
from studio.api.jobs import Job, Jobs
from studio.api.pictures import (
    decode_base64,
    encode_base64,
    open_sent_picture,
    png_bytes,
    result_png,
    text_chunks,
)
from studio.backends.diffusion import (
    FULL_VAE,
    MAX_SEED,
    SAMPLERS,
    ImageRequest,
    a1111_parameters,
)
from studio.backends.diffusion.hires import DEFAULT_UPSCALER, LATENT_UPSCALERS
from studio.backends.diffusion.loras import file_header, file_metadata
from studio.errors import Cancelled, InputError, StudioError
from studio.media.images import LoadedImage
from studio.media.png_info import A1111_KEY, parse_a1111_parameters
from studio.services.image import ImageOutcome

MAX_OPTION_SETS = 10_000
AUTOMATIC_VAE, NO_VAE = "Automatic", "None"  # AUTOMATIC1111's two `sd_vae` values that name no file
SCHEDULERS = (("automatic", "Automatic"), ("karras", "Karras"))
# AUTOMATIC1111's img2img fill modes, by number.
FILLS = {0: "fill", 1: "original", 2: "latent noise", 3: "latent nothing"}
RESIZE_MODES = {0: "just resize", 1: "crop and resize", 2: "resize and fill", 3: "just resize (latent upscale)"}
# Fields that change the picture in AUTOMATIC1111 and that the studio does not offer, with the value
# meaning "off": anything else is named as not honoured.
UNOFFERED = {
    "restore_faces": False,
    "tiling": False,
    "styles": [],
    "subseed_strength": 0,
    "script_name": "",
    "initial_noise_multiplier": 1,
}


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


class A1111Api:
    def __init__(self, gate: Gate):
        self.gate = gate
        self.studio = gate.studio
        self.jobs = Jobs()
        # Per address in hosted mode (the oldest forgotten past MAX_OPTION_SETS); one set locally.
        self._options: OrderedDict[str | None, dict[str, str]] = OrderedDict()

    def routes(self) -> list[Route]:
        get, post = ["GET"], ["POST"]
        table = [
            ("/txt2img", self.txt2img, post),
            ("/img2img", self.img2img, post),
            ("/sd-models", self.sd_models, get),
            ("/samplers", self.samplers, get),
            ("/schedulers", self.schedulers, get),
            ("/options", self.get_options, get),
            ("/options", self.set_options, post),
            ("/progress", self.progress, get),
            ("/interrupt", self.interrupt, post),
            ("/skip", self.interrupt, post),
            ("/png-info", self.png_info, post),
            ("/loras", self.loras, get),
            ("/refresh-loras", self.nothing, post),
            ("/embeddings", self.embeddings, get),
            ("/upscalers", self.upscalers, get),
            ("/latent-upscale-modes", self.latent_upscale_modes, get),
            ("/scripts", self.scripts, get),
            ("/sd-vae", self.sd_vae, get),
            ("/refresh-checkpoints", self.nothing, post),
            ("/cmd-flags", self.cmd_flags, get),
        ]
        return [Route(path, self._guarded(handler), methods=methods, name=f"a1111{path}-{methods[0]}")
                for path, handler, methods in table]

    def _guarded(self, handler):
        async def endpoint(request: Request) -> Response:
            try:
                self.gate.check_login(request)
                return await handler(request)
            except ClientGone:
                return Response(status_code=499)
            except Exception as exc:  # every failure answers in AUTOMATIC1111's error shape
                error = as_api_error(exc)
                return _json({"error": error.code, "detail": error.message, "body": "", "errors": error.message},
                             error.status)

        return endpoint

    async def _body(self, request: Request) -> Fields:
        return Fields(parse_body(await request.body()))

    # -- models and options -----------------------------------------------------------------

    def _models(self) -> list[str]:
        return [entry.id for entry in self.studio.image.image_entries("txt2img")]

    def _scope(self, caller: Caller) -> str | None:
        return caller.address if self.studio.settings.hosted else None

    def checkpoint(self, caller: Caller) -> str:
        return self._options.get(self._scope(caller), {}).get("sd_model_checkpoint") \
            or self.studio.image_service.default_model()

    def decoder(self, caller: Caller) -> str:
        """The `sd_vae` option as the studio's decoder: Automatic is the Image tab's fast decoder, None the
        model's own VAE."""
        chosen = self._options.get(self._scope(caller), {}).get("sd_vae", AUTOMATIC_VAE)
        if chosen == AUTOMATIC_VAE:
            return self.studio.image_service.default_decoder()
        return FULL_VAE if chosen == NO_VAE else chosen

    def resolve_vae(self, name: Any) -> str:
        decoders = [entry.id for entry in self.studio.image.decoder_entries()]
        if name in (AUTOMATIC_VAE, NO_VAE, *decoders):
            return name
        raise ApiError(404, f"There is no VAE '{name!s:.100}' here; choose {AUTOMATIC_VAE} (the fast decoder), "
                            f"{NO_VAE} (the model's own VAE) or one of /sdapi/v1/sd-vae.", "vae_not_found")

    def resolve_model(self, name: Any) -> str:
        """A checkpoint title as clients send it (`id`, `id [hash]`, any case) as a catalogue id."""
        if not isinstance(name, str) or not name.strip():
            raise InputError("'sd_model_checkpoint' must name a model from /sdapi/v1/sd-models.")
        wanted = name.strip()
        if wanted.endswith("]") and " [" in wanted:
            wanted = wanted[: wanted.rindex(" [")]
        models = self._models()
        for model in models:
            if wanted == model or wanted.lower() == model.lower():
                return model
        raise ApiError(404, f"There is no image model '{name!s:.100}' here; /sdapi/v1/sd-models lists the "
                            f"{len(models)} there are.", "model_not_found")

    async def sd_models(self, request: Request) -> Response:
        # As AUTOMATIC1111 lists the checkpoints in its folder: the models on this machine.
        entries = [e for e in self.studio.image.image_entries("txt2img") if self.studio.image.is_available(e.id)]
        return _json([{"title": e.id, "model_name": e.id, "hash": None, "sha256": None, "filename": e.id,
                       "config": None} for e in entries])

    async def samplers(self, request: Request) -> Response:
        return _json([{"name": name, "aliases": [], "options": {}} for name in SAMPLERS])

    async def schedulers(self, request: Request) -> Response:
        return _json([{"name": name, "label": label, "aliases": None, "default_rho": -1, "need_inner_model": False}
                      for name, label in SCHEDULERS])

    async def get_options(self, request: Request) -> Response:
        caller = self.gate.caller(request)
        chosen_vae = self._options.get(self._scope(caller), {}).get("sd_vae", AUTOMATIC_VAE)
        return _json({"sd_model_checkpoint": self.checkpoint(caller), "sd_checkpoint_hash": None,
                      "samples_format": "png", "sd_vae": chosen_vae, "CLIP_stop_at_last_layers": 1,
                      "samples_save": True, "img2img_fix_steps": False})

    async def set_options(self, request: Request) -> Response:
        fields = await self._body(request)
        changes = {}
        if fields.present("sd_model_checkpoint"):
            changes["sd_model_checkpoint"] = self.resolve_model(fields.raw("sd_model_checkpoint"))
        if fields.present("sd_vae"):
            changes["sd_vae"] = self.resolve_vae(fields.raw("sd_vae"))
        scope = self._scope(self.gate.caller(request))
        self._options.setdefault(scope, {}).update(changes)
        self._options.move_to_end(scope)
        while len(self._options) > MAX_OPTION_SETS:
            self._options.popitem(last=False)
        return _json(None)

    async def sd_vae(self, request: Request) -> Response:
        return _json([{"model_name": entry.id, "filename": entry.id} for entry in self.studio.image.decoder_entries()])

    async def loras(self, request: Request) -> Response:
        """The LoRA files `<lora:NAME:WEIGHT>` can use, as AUTOMATIC1111 lists them (hosted: no paths)."""
        hosted = self.studio.settings.hosted
        listed = []
        for name, path in self.studio.image.loras.files().items():
            listed.append({"name": name, "alias": name, "path": path.name if hosted else str(path),
                           "metadata": file_metadata(path)})
        return _json(listed)

    async def latent_upscale_modes(self, request: Request) -> Response:
        """The hires fix's latent upscalers, by the names `hr_upscaler` takes."""
        return _json([{"name": name} for name in LATENT_UPSCALERS])

    async def upscalers(self, request: Request) -> Response:
        """The upscaler models a hires fix (`hr_upscaler`) can name, as AUTOMATIC1111 lists them."""
        return _json([{"name": name, "model_name": name, "model_path": None, "model_url": None, "scale": 4}
                      for name in self.studio.upscaler.hires_names()])

    async def embeddings(self, request: Request) -> Response:
        """The embeddings a prompt can name, as AUTOMATIC1111 lists them (vector count and size from the
        file's header)."""
        loaded = {}
        for name, path in self.studio.image.embeddings.files().items():
            shapes = [v.get("shape") for k, v in file_header(path).items() if k != "__metadata__" and isinstance(v, dict)]
            shape = shapes[0] if len(shapes) == 1 and isinstance(shapes[0], list) and len(shapes[0]) == 2 else None
            loaded[name] = {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None,
                            "shape": shape[1] if shape else None, "vectors": shape[0] if shape else None}
        return _json({"loaded": loaded, "skipped": {}})

    async def scripts(self, request: Request) -> Response:
        return _json({"txt2img": [], "img2img": []})

    async def nothing(self, request: Request) -> Response:
        return _json(None)

    async def cmd_flags(self, request: Request) -> Response:
        return _json({"api": True, "nowebui": False})

    # -- progress -----------------------------------------------------------------------------

    async def progress(self, request: Request) -> Response:
        caller = self.gate.caller(request)
        job, count = self.jobs.current(self._scope(caller))
        skip_image = request.query_params.get("skip_current_image", "false").lower() == "true"
        if job is None:
            return _json({"progress": 0.0, "eta_relative": 0.0, "state": _state(None, 0), "current_image": None,
                          "textinfo": None})
        image = None
        if job.preview is not None and not skip_image:
            image = encode_base64(png_bytes(job.preview, {}))
        return _json({"progress": round(job.fraction, 4), "eta_relative": round(job.eta_seconds(), 2),
                      "state": _state(job, count), "current_image": image,
                      "textinfo": "Waiting for a free slot" if job.started is None else None})

    async def interrupt(self, request: Request) -> Response:
        self.jobs.interrupt(self._scope(self.gate.caller(request)))
        return _json(None)

    # -- pictures -----------------------------------------------------------------------------

    async def png_info(self, request: Request) -> Response:
        fields = await self._body(request)
        data = decode_base64(fields.raw("image"), "image")
        open_sent_picture(self.studio, fields.raw("image"), "image")  # refuses what is not a picture, or too large
        chunks = text_chunks(data)
        text = chunks.pop(A1111_KEY, "")
        return _json({"info": text, "items": chunks, "parameters": parse_a1111_parameters(text) if text else {}})

    async def txt2img(self, request: Request) -> Response:
        return await self._generate(request, "txt2img")

    async def img2img(self, request: Request) -> Response:
        return await self._generate(request, "img2img")

    async def _generate(self, request: Request, endpoint: str) -> Response:
        fields = await self._body(request)
        caller = self.gate.caller(request)
        unhonoured: list[str] = []
        image_request, image, mask, controls = self._request(fields, endpoint, caller, unhonoured)
        keep = fields.flag("save_images", True) and not fields.flag("do_not_save_samples", False)
        send_images = fields.flag("send_images", True)
        limits.check_image(image_request, self.studio.settings)  # refused requests count no start
        self.gate.count_start(caller)
        job = self.jobs.start(self._scope(caller) or caller.address)

        def work(cancel) -> ImageOutcome:
            return self.studio.generate_image(image_request, image, mask, keep=keep, owner=caller.owner,
                                              progress=job.report, cancel=cancel, controls=controls)

        try:
            outcome = await self.gate.run_heavy(request, work, cancel=job.cancel)
        except Cancelled:
            return _json(self._interrupted(job, image_request, fields, unhonoured, send_images))
        finally:
            self.jobs.finish(job)
        items = outcome.items or [None] * len(outcome.result.images)
        images = [encode_base64(result_png(picture, record, item)) if send_images else None
                  for picture, record, item in zip(outcome.result.images, outcome.result.params, items, strict=True)]
        info = _info(image_request, outcome.result.params, unhonoured, outcome.notes,
                     [item.id for item in outcome.items])
        return _json({"images": [i for i in images if i is not None], "parameters": _echo(fields.body),
                      "info": json.dumps(info)})

    def _interrupted(self, job: Job, image_request: ImageRequest, fields: Fields, unhonoured: list[str],
                     send_images: bool) -> dict[str, Any]:
        """Stopped by /interrupt: AUTOMATIC1111 answers with the picture as far as it got; here that is the
        last live preview, and nothing is kept."""
        note = (f"Interrupted after step {job.done} of {job.total}: the picture is the live preview at that "
                "step, not a finished one, and it was not kept." if job.preview is not None
                else f"Interrupted after step {job.done} of {job.total or image_request.steps}; nothing was made.")
        images = []
        if job.preview is not None and send_images:
            preview = job.preview.resize((image_request.width, image_request.height))
            images.append(encode_base64(png_bytes(preview, {})))
        record = {**_base_info(image_request), "studio_interrupted": True, "studio_steps_done": job.done,
                  "studio_not_honoured": unhonoured, "studio_notes": [note]}
        return {"images": images, "parameters": _echo(fields.body), "info": json.dumps(record)}

    def _request(self, fields: Fields, endpoint: str, caller: Caller,
                 unhonoured: list[str]) -> tuple[ImageRequest, LoadedImage | None, LoadedImage | None,
                                                 list[LoadedImage | None]]:
        """The studio's request for an AUTOMATIC1111 payload, noting what it cannot honour; with the
        ControlNet extension's units, each one's picture."""
        overrides = fields.mapping("override_settings")
        model = (self.resolve_model(overrides["sd_model_checkpoint"]) if overrides.get("sd_model_checkpoint")
                 else self.checkpoint(caller))
        unhonoured += [f"override_settings.{key}" for key in overrides if key != "sd_model_checkpoint"]
        for name, off in UNOFFERED.items():
            if fields.present(name) and fields.raw(name) != off:
                unhonoured.append(name)
        scripts = fields.mapping("alwayson_scripts")
        unhonoured += [f"alwayson_scripts.{name}" for name, value in scripts.items()
                       if _script_on(value) and name.lower() != "controlnet"]
        script = next((value for name, value in scripts.items() if name.lower() == "controlnet"), None)
        controlnets, controls = units_from_script(self.studio, script, unhonoured)
        seed = fields.whole("seed", -1, -1, MAX_SEED)
        values: dict[str, Any] = dict(
            prompt=fields.text("prompt", "", 100_000),
            negative_prompt=fields.text("negative_prompt", "", 100_000),
            model=model,
            decoder=self.decoder(caller),
            steps=fields.whole("steps", 20, 1, 10_000),
            guidance=fields.real("cfg_scale", 7.0, 0, 1_000),
            width=fields.whole("width", 512, 1, 100_000),
            height=fields.whole("height", 512, 1, 100_000),
            seed=None if seed == -1 else seed,
            sampler=self._sampler(fields, unhonoured),
            batch_size=fields.whole("batch_size", 1, 1, 10_000),
            batch_count=fields.whole("n_iter", 1, 1, 10_000),
            controlnets=controlnets,
        )
        values.update(self._flow_fields(fields, model, values["guidance"], unhonoured))
        image = mask = None
        if endpoint == "txt2img" and fields.flag("enable_hr", False):
            values.update(hires_fields(fields, unhonoured))
        if endpoint == "img2img":
            pictures = fields.raw("init_images")
            if not isinstance(pictures, list) or not pictures:
                raise InputError("img2img needs 'init_images': a list with one base64 picture.")
            if len(pictures) > 1:
                unhonoured.append("init_images[1:]")
            image = open_sent_picture(self.studio, pictures[0], "init_images[0]")
            values["strength"] = fields.real("denoising_strength", 0.75, 0, 1)
            if values["strength"] == 0:
                raise InputError("'denoising_strength' must be above 0: at 0 nothing would change.")
            resize = fields.whole("resize_mode", 0, 0, 3)
            if resize != 1 and image.rgb.width * values["height"] != image.rgb.height * values["width"]:
                unhonoured.append(f"resize_mode={resize} ({RESIZE_MODES[resize]}; the studio crops and resizes)")
            values["mode"] = "img2img"
            if fields.present("mask"):
                mask = open_sent_picture(self.studio, fields.raw("mask"), "mask")
                if fields.whole("inpainting_mask_invert", 0, 0, 1):
                    mask = replace(mask, rgb=ImageOps.invert(mask.rgb.convert("RGB")), alpha=None)
                fill = fields.whole("inpainting_fill", 1, 0, 3)
                if fill != 1:
                    unhonoured.append(f"inpainting_fill={fill} ({FILLS[fill]}; the masked area starts from the "
                                      "original picture)")
                values.update(mode="inpaint", mask_blur=fields.whole("mask_blur", 4, 0, 64),
                              only_masked=fields.flag("inpaint_full_res", True),
                              padding=fields.whole("inpaint_full_res_padding", 32, 0, 512))
        return ImageRequest(**values), image, mask, controls

    def _flow_fields(self, fields: Fields, model: str, cfg_scale: float, unhonoured: list[str]) -> dict[str, Any]:
        """SD 3.x and FLUX.1 settings: Forge's `distilled_cfg_scale` (FLUX.1 [dev]'s guidance, where its
        `cfg_scale` is a true CFG the studio does not offer), and the studio's own `shift` and
        `max_sequence_length` (the Image tab's fields). Each is noted as not honoured on a model without it."""
        try:
            family = self.studio.image.model_defaults(model).family
        except StudioError:
            family = None  # a model the run itself will refuse, in its own words
        values: dict[str, Any] = {}
        if fields.present("distilled_cfg_scale"):
            distilled = fields.real("distilled_cfg_scale", 3.5, 0, 1_000)
            if family is not None and family.guidance == "distilled":
                values["guidance"] = distilled
                if fields.present("cfg_scale") and cfg_scale != 1:
                    unhonoured.append(f"cfg_scale={cfg_scale:g} ({family.name} takes distilled_cfg_scale; "
                                      "true CFG is not offered)")
            else:
                unhonoured.append("distilled_cfg_scale")
        for name, read in (("shift", lambda: fields.real("shift", 0.0, 0, 1_000)),
                           ("max_sequence_length", lambda: fields.whole("max_sequence_length", 0, 0, 100_000))):
            if not fields.present(name):
                continue
            if family is not None and family.flow:
                values[name] = read()
            else:
                unhonoured.append(name)
        return values

    def _sampler(self, fields: Fields, unhonoured: list[str]) -> str:
        name = fields.text("sampler_name", "", 200) or fields.text("sampler_index", "", 200) or "Euler"
        scheduler = fields.text("scheduler", "automatic", 200).strip().lower()
        if scheduler == "karras" and f"{name} Karras" in SAMPLERS:
            name = f"{name} Karras"
        elif scheduler not in ("", "automatic") and not name.endswith(" Karras"):
            unhonoured.append(f"scheduler={scheduler}")
        if name not in SAMPLERS:
            raise ApiError(404, f"The sampler '{name[:60]}' is not offered here; /sdapi/v1/samplers lists "
                                f"{', '.join(SAMPLERS)}.", "sampler_not_found")
        return name


def hires_fields(fields: Fields, unhonoured: list[str]) -> dict[str, Any]:
    """AUTOMATIC1111's hires fix fields (its defaults where left out); the request checks the values."""
    for name, off in (("hr_checkpoint_name", None),
                      ("hr_sampler_name", None), ("hr_scheduler", None), ("hr_prompt", ""),
                      ("hr_negative_prompt", "")):
        if fields.present(name) and fields.raw(name) not in (off, None, "", "Use same checkpoint",
                                                              "Use same sampler"):
            unhonoured.append(name)
    return dict(hires_scale=fields.real("hr_scale", 2.0, 0, 1_000),
                hires_upscaler=fields.text("hr_upscaler", "", 200) or DEFAULT_UPSCALER,
                hires_steps=fields.whole("hr_second_pass_steps", 0, 0, 10_000),
                hires_strength=fields.real("denoising_strength", 0.75, 0, 1),
                hires_resize_x=fields.whole("hr_resize_x", 0, 0, 16_384),
                hires_resize_y=fields.whole("hr_resize_y", 0, 0, 16_384))


def _script_on(value: Any) -> bool:
    """An always-on script counts as asked for when it has arguments that do not just switch it off."""
    args = value.get("args") if isinstance(value, dict) else None
    if not args:
        return False
    first = args[0]
    return not (first is False or (isinstance(first, dict) and first.get("enabled") is False))


def _state(job: Job | None, count: int) -> dict[str, Any]:
    return {"skipped": False, "interrupted": bool(job and job.cancel.cancelled), "job": f"job {job.id}" if job else "",
            "job_count": count, "job_timestamp": time.strftime("%Y%m%d%H%M%S", time.localtime(job.queued))
            if job else "0", "job_no": 0, "sampling_step": job.done if job else 0,
            "sampling_steps": job.total if job else 0}


def _echo(body: dict[str, Any]) -> dict[str, Any]:
    """The request as AUTOMATIC1111 echoes it, without the pictures sent in."""
    return {k: v for k, v in body.items() if k not in ("init_images", "mask")}


def _base_info(request: ImageRequest) -> dict[str, Any]:
    return {"prompt": request.prompt, "negative_prompt": request.negative_prompt, "sd_model_name": request.model,
            "sampler_name": request.sampler, "cfg_scale": request.guidance, "steps": request.steps,
            "width": request.width, "height": request.height, "batch_size": request.batch_size,
            "version": f"creative-studio {__version__}"}


def _info(request: ImageRequest, records: list[dict[str, Any]], unhonoured: list[str], notes: list[str],
          gallery_ids: list[int]) -> dict[str, Any]:
    seeds = [record["seed"] for record in records]
    first = records[0]
    return {
        **_base_info(request),
        "all_prompts": [request.prompt] * len(records),
        "all_negative_prompts": [request.negative_prompt] * len(records),
        "seed": seeds[0], "all_seeds": seeds, "subseed": -1, "all_subseeds": [-1] * len(records),
        "subseed_strength": 0, "width": first["result_width"], "height": first["result_height"],
        "restore_faces": False, "face_restoration_model": None, "sd_model_hash": None,
        "sd_vae_name": first.get("decoder"), "seed_resize_from_w": -1, "seed_resize_from_h": -1,
        "denoising_strength": first.get("strength", first.get("hires_strength", 0)), "extra_generation_params": {},
        "index_of_first_image": 0, "infotexts": [a1111_parameters(record) for record in records],
        "styles": [], "job_timestamp": time.strftime("%Y%m%d%H%M%S"), "clip_skip": 1,
        "is_using_inpainting_conditioning": False,
        "studio_not_honoured": unhonoured, "studio_notes": notes, "studio_gallery_ids": gallery_ids,
    }
