"""Walks through a diffusion model's spaces: prompt and seed walks, audio-paced walks, image morphs.

A prompt/seed walk moves the initial noise along a great circle between keyframe seeds (slerp:
every frame's noise stays as Gaussian as a real seed's) and the text embeddings along a straight
line between keyframe prompts. Keyframe frames are made by the Image tab's own `generate` call,
so they are exactly the pictures the Image tab makes for those prompts and seeds; the frames in
between go through the UNet in batches.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from PIL import Image

from studio.backends.diffusion import DiffusionBackend, ImageRequest
from studio.backends.diffusion import embeddings as ti
from studio.backends.diffusion.embeddings import load_embeddings
from studio.backends.diffusion.families import family_of
from studio.backends.diffusion.loras import applied, load_loras, lora_tags
from studio.backends.diffusion.pipelines import networks_record
from studio.backends.diffusion.prompt_editing import prompt_schedule
from studio.backends.diffusion.prompts import walk_conditioning
from studio.backends.frames import FramesResult
from studio.errors import InputError
from studio.media.interpolation import slerp, walk_positions
from studio.runtime import NEVER_CANCELLED, CancelToken, ProgressCallback, no_progress


@dataclass(frozen=True)
class Keyframe:
    prompt: str
    seed: int


@dataclass(frozen=True)
class PromptWalkRequest:
    """The keyframes, and the Image tab settings every frame shares."""

    keyframes: tuple[Keyframe, ...]
    frames_between: int = 8
    settings: ImageRequest = field(default_factory=lambda: ImageRequest(prompt="walk"))
    fps: float = 12.0
    batch: int = 4  # in-between frames per UNet call

    def frame_request(self, key: Keyframe) -> ImageRequest:
        return replace(self.settings, prompt=key.prompt, seed=key.seed, mode="txt2img", batch_size=1, batch_count=1)

    def validate(self, max_frames: int, frames: int | None = None) -> None:
        if len(self.keyframes) < 2:
            raise InputError("A walk needs at least two keyframes (a prompt and a seed each).")
        for key in self.keyframes:
            self.frame_request(key).validate()
        if self.frames_between < 0:
            raise InputError("The number of frames between keyframes cannot be negative.")
        total = frames if frames is not None else (len(self.keyframes) - 1) * (self.frames_between + 1) + 1
        if total > max_frames:
            raise InputError(f"That walk would have {total} frames; the limit is {max_frames}.")
        if not 1 <= self.batch <= 16:
            raise InputError(f"Frames per batch must be between 1 and 16, not {self.batch}.")
        if not 1 <= self.fps <= 60:
            raise InputError(f"Frames per second must be between 1 and 60, not {self.fps}.")


def prompt_walk(
    backend: DiffusionBackend,
    request: PromptWalkRequest,
    *,
    positions: list[tuple[int, float]] | None = None,
    max_side: int = 2048,
    max_frames: int = 240,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> FramesResult:
    """Every frame of the walk; `positions` ((segment, t) per frame) paces it, evenly by default."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    request.validate(max_frames, len(positions) if positions else None)
    positions = positions or walk_positions(len(request.keyframes), request.frames_between)
    started = time.perf_counter()
    model = backend.load(request.settings.model)
    if family_of(model.pipe).flow:  # their latents and prompts are another kind (packed, T5)
        raise InputError(f"Prompt walks work with SD 1.x/2.x and SDXL models, not '{model.entry.name}' "
                         f"({family_of(model.pipe).name}).")
    base = request.frame_request(request.keyframes[0])
    prompts = [key.prompt for key in request.keyframes]
    # Key frames are Image-tab runs with their own LoRAs on; the frames between share one UNet call, so
    # every key frame must ask for the same LoRAs, or the walk's ends would not match its middle.
    edited = [p for p in (*prompts, base.negative_prompt) if len(prompt_schedule(p, base.steps_run)) > 1]
    if edited:  # the frames between blend one reading of each prompt
        raise InputError(f"Prompt walks do not take prompt editing ([from:to:when], [a|b]); '{edited[0][:60]}' "
                         "has it.")
    tag_sets = {tuple(sorted((tag.name, tag.weight) for tag in lora_tags(prompt))) for prompt in prompts}
    if len(tag_sets) > 1:
        raise InputError("Every key frame of a walk needs the same <lora:...> tags and weights: the frames "
                         "between cannot blend one set of LoRAs into another.")
    loras = load_loras(backend.loras, backend.cache, lora_tags(prompts[0], base.negative_prompt))
    embeddings = load_embeddings(backend.embeddings, backend.cache, *prompts, base.negative_prompt)
    notes: list[str] = []
    if loras and model.engine.startswith("openvino"):
        # As in the Image tab: LoRAs change torch modules, so the key frames ran on a torch UNet too.
        model = backend.load(request.settings.model, torch_unet=True)
        notes.append(f"With LoRAs the UNet ran on {model.engine} (OpenVINO runs it only without them).")
    pipe, decoder_used = backend._pipeline(model, base, notes)
    device = model.pipe.device
    dtype = model.pipe.unet.dtype
    guided = base.guidance > 1.0
    latent_shape = (1, pipe.unet.config.in_channels, base.height // pipe.vae_scale_factor,
                    base.width // pipe.vae_scale_factor)

    with torch.inference_mode():
        # The noise the pipeline itself draws for a seed: a CPU generator, the model's dtype.
        noises = [
            randn_tensor(latent_shape, generator=torch.Generator("cpu").manual_seed(key.seed),
                         device=torch.device("cpu"), dtype=dtype)
            for key in request.keyframes
        ]

    frames: list[Image.Image | None] = [None] * len(positions)
    total = len(positions)
    done = 0
    stopped = False

    def keyframe_index(segment: int, t: float) -> int | None:
        return segment if t == 0.0 else segment + 1 if t == 1.0 else None

    pending = [i for i, (s, t) in enumerate(positions) if keyframe_index(s, t) is None]
    key_frames: dict[int, Image.Image] = {}
    for i, (segment, t) in enumerate(positions):
        key = keyframe_index(segment, t)
        if key is None:
            continue
        if cancel.cancelled:
            stopped = True
            break
        if key not in key_frames:
            made = backend.generate(request.frame_request(request.keyframes[key]), max_side=max_side, cancel=cancel)
            key_frames[key] = made.images[0]
        frames[i] = key_frames[key]
        done += 1
        progress(done, total, frames[i])

    # The frames between use the modules directly: the key frames' LoRAs and embeddings go on (or stay on)
    # for them, and no other run changes the modules meanwhile.
    with model.lock, applied(pipe, loras, model.entry.name), \
            ti.applied(pipe, embeddings, model.entry.name) as spell:
        # The Image tab's own reading of each prompt (emphasis, BREAK), padded to one length to blend.
        spelled = [spell(p) for p in prompts]
        # SDXL: its pooled text embedding (with the size ids) conditions the UNet too, and is blended alike.
        embeds, pooled = walk_conditioning(pipe, spelled, spell(base.negative_prompt), guided)
        for start in range(0, len(pending), request.batch):
            if stopped or cancel.cancelled:
                stopped = True
                break
            chunk = pending[start : start + request.batch]
            latents, positive, negative, positive_pooled, negative_pooled = [], [], [], [], []
            for i in chunk:
                segment, t = positions[i]
                a, b = noises[segment], noises[segment + 1]
                mixed = slerp(a.float().numpy(), b.float().numpy(), t)
                latents.append(torch.from_numpy(np.ascontiguousarray(mixed)).to(dtype))
                (pos_a, neg_a), (pos_b, neg_b) = embeds[segment], embeds[segment + 1]
                positive.append(torch.lerp(pos_a.float(), pos_b.float(), t).to(pos_a.dtype))
                if guided:
                    negative.append(torch.lerp(neg_a.float(), neg_b.float(), t).to(neg_a.dtype))
                if pooled is not None:
                    (pool_a, neg_pool_a), (pool_b, neg_pool_b) = pooled[segment], pooled[segment + 1]
                    positive_pooled.append(torch.lerp(pool_a.float(), pool_b.float(), t).to(pool_a.dtype))
                    if guided:
                        negative_pooled.append(
                            torch.lerp(neg_pool_a.float(), neg_pool_b.float(), t).to(neg_pool_a.dtype))

            def on_step(_pipe, step: int, _timestep, tensors: dict) -> dict:
                cancel.raise_if_cancelled()
                return tensors

            kwargs: dict[str, Any] = {
                "prompt_embeds": torch.cat(positive),
                "latents": torch.cat(latents).to(device),
                "num_inference_steps": base.steps,
                "guidance_scale": base.guidance,
                "width": base.width,
                "height": base.height,
                "callback_on_step_end": on_step,
                "output_type": "pil",
            }
            if guided:
                kwargs["negative_prompt_embeds"] = torch.cat(negative)
            if positive_pooled:
                kwargs["pooled_prompt_embeds"] = torch.cat(positive_pooled)
                if guided:
                    kwargs["negative_pooled_prompt_embeds"] = torch.cat(negative_pooled)
            try:
                with torch.inference_mode():
                    images = pipe(**kwargs).images
            except Exception as exc:
                if cancel.cancelled:
                    stopped = True
                    break
                raise exc
            for i, image in zip(chunk, images, strict=True):
                frames[i] = image
                done += 1
                progress(done, total, image)

    made = _contiguous(frames)
    if not made:
        cancel.raise_if_cancelled()
        raise InputError("The walk was stopped before its first frame.")
    params = {
        "task": "image-walk",
        "model": model.entry.id,
        "model_revision": model.revision,
        "keyframes": [asdict(k) for k in request.keyframes],
        "frames_between": request.frames_between,
        "fps": request.fps,
        "batch": request.batch,
        "decoder": decoder_used,
        "frames": len(positions),
        "positions": [[s, round(t, 6)] for s, t in positions],
        **{k: v for k, v in asdict(base).items() if k not in ("prompt", "seed", "mode", "batch_size", "batch_count")},
        "notes": notes,  # as image morphs keep theirs
        **networks_record(loras, embeddings),
    }
    return FramesResult(frames=made, params=params, seconds=time.perf_counter() - started,
                        stopped=stopped or len(made) < len(frames))


def _contiguous(frames: list[Image.Image | None]) -> list[Image.Image]:
    """The frames from the start up to the first one not made (a stopped walk keeps its beginning)."""
    out = []
    for frame in frames:
        if frame is None:
            break
        out.append(frame)
    return out


@dataclass(frozen=True)
class MorphRequest:
    frames: int = 24
    size: int = 512  # longest side; the second image is fitted to the first's size
    model: str = ImageRequest(prompt="x").model
    fps: float = 12.0

    def validate(self, max_side: int, max_frames: int) -> None:
        if not 2 <= self.frames <= max_frames:
            raise InputError(f"A morph has between 2 and {max_frames} frames, not {self.frames}.")
        if not 64 <= self.size <= max_side:
            raise InputError(f"The morph size must be between 64 and {max_side} px, not {self.size}.")


def image_morph(
    backend: DiffusionBackend,
    first: Image.Image,
    second: Image.Image,
    request: MorphRequest,
    *,
    max_side: int = 2048,
    max_frames: int = 240,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> FramesResult:
    """Encode both pictures with the model's VAE, walk between the latents, decode every frame."""
    import torch

    request.validate(max_side, max_frames)
    started = time.perf_counter()
    notes = []
    model = backend.load(request.model)
    vae = model.pipe.vae
    scale = model.pipe.vae_scale_factor
    first_fit = _fit(first, request.size, scale)
    if second.size != first.size:
        notes.append(f"The second picture was {second.width}x{second.height}; it was fitted to the first's shape.")
    second_fit = _cover(second, first_fit.size)
    factor = float(getattr(vae.config, "scaling_factor", 1.0))

    def encode(picture: Image.Image):
        pixels = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
        return vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mean * factor

    frames: list[Image.Image] = []
    stopped = False
    with torch.inference_mode():
        a, b = encode(first_fit), encode(second_fit)
        for i in range(request.frames):
            if cancel.cancelled:
                stopped = True
                break
            t = i / (request.frames - 1)
            latent = torch.lerp(a.float(), b.float(), t).to(a.dtype)
            decoded = vae.decode(latent / factor).sample[0].float().clamp(-1, 1)
            frame = Image.fromarray(((decoded.permute(1, 2, 0).cpu().numpy() + 1.0) * 127.5 + 0.5).astype(np.uint8))
            frames.append(frame)
            progress(i + 1, request.frames, frame)
    if not frames:
        cancel.raise_if_cancelled()
    params = {"task": "image-morph", "model": model.entry.id, "model_revision": model.revision, **asdict(request),
              "width": first_fit.width, "height": first_fit.height, "notes": notes}
    return FramesResult(frames=frames, params=params, seconds=time.perf_counter() - started, stopped=stopped)


class DiffusionWalks:
    """Prompt walks and image morphs as methods of one object over the diffusion backend, so a Ray
    deployment can stand in for them the way it stands in for the backend (the walk needs the loaded
    pipeline, so it runs whole where the model is)."""

    def __init__(self, backend: DiffusionBackend):
        self.backend = backend

    def prompt_walk(self, request: PromptWalkRequest, **kwargs: Any) -> FramesResult:
        return prompt_walk(self.backend, request, **kwargs)

    def image_morph(self, first: Image.Image, second: Image.Image, request: MorphRequest,
                    **kwargs: Any) -> FramesResult:
        return image_morph(self.backend, first, second, request, **kwargs)


def _fit(picture: Image.Image, long_side: int, multiple: int) -> Image.Image:
    """Scale to `long_side` and round both sides to the VAE's block size."""
    scale = long_side / max(picture.size)
    width = max(multiple, round(picture.width * scale / multiple) * multiple)
    height = max(multiple, round(picture.height * scale / multiple) * multiple)
    return picture.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)


def _cover(picture: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Fill `size` keeping the aspect ratio, cropping the overflow from the centre."""
    from PIL import ImageOps

    return ImageOps.fit(picture.convert("RGB"), size, Image.Resampling.LANCZOS)


