"""`python -m studio image|img2img|inpaint|outpaint ...`: the Image tab from a terminal."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import replace
from functools import reduce
from pathlib import Path

from studio.backends.diffusion import (
    DEFAULT_DECODER,
    DEFAULT_MODEL,
    DEFAULT_SAMPLER,
    DEFAULT_SPEED,
    FULL_VAE,
    SAMPLERS,
    SPEEDS,
    step_time,
)
from studio.backends.diffusion.hires import BUILTIN_UPSCALERS, DEFAULT_STRENGTH, DEFAULT_UPSCALER
from studio.backends.diffusion.lora_tags import parse_lora_argument, reweight_lora
from studio.backends.diffusion.loras import LORA_SUFFIX, LoraLibrary
from studio.backends.diffusion.request import LCM_GUIDANCE, LCM_SAMPLER, LCM_STEPS
from studio.catalog import Catalog, path_entry
from studio.cli import batch as cli_batch
from studio.cli import controlnet as cli_controlnet
from studio.cli.common import StageLine
from studio.errors import InputError, StudioError
from studio.settings import Settings, add_lora_dir_argument

PNG_ONLY = "--out must be a .png file (the picture carries its parameters in it)"


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size like 512x512")
    width = int(match.group(1))
    return width, int(match.group(2) or width)


def add_parsers(commands) -> None:
    """Register the image commands on the studio's sub-command parser."""
    for name, help_text in (
        ("image", "make pictures from a prompt (text to image)"),
        ("img2img", "redraw a picture following a prompt"),
        ("inpaint", "repaint the white area of a mask"),
        ("outpaint", "extend a picture beyond its borders"),
    ):
        parser = commands.add_parser(name, help=help_text)
        if name != "image":
            parser.add_argument("input", type=Path, help="the picture to work on")
        parser.add_argument("prompt", nargs="?", help="what the picture should show (or --prompts FILE)")
        parser.add_argument("--prompts", type=Path, metavar="FILE",
                            help="a batch: one prompt per line (blank lines and # comments skipped; '-': stdin)")
        parser.add_argument("--seeds", type=cli_batch.parse_seeds, metavar="LIST",
                            help="a batch: every prompt with each of these seeds, e.g. 1-8, 3,5,9 or 1-4,10")
        if name == "inpaint":
            parser.add_argument("--mask", type=Path, required=True, help="white = repaint, black = keep")
            parser.add_argument("--only-masked", action="store_true",
                                help="work on a crop around the mask at the model's resolution")
            parser.add_argument("--padding", type=int, default=32, help="px around the mask with --only-masked")
        if name == "outpaint":
            for side in ("left", "right", "top", "bottom"):
                parser.add_argument(f"--{side}", type=int, default=0, help=f"px to add on the {side}")
        if name in ("inpaint", "outpaint"):
            parser.add_argument("--mask-blur", type=int, default=4, help="feather the mask's edge, px (default 4)")
        if name == "image":
            _add_hires_arguments(parser)
        if name != "outpaint":
            cli_controlnet.add_arguments(parser)
        if name != "image":
            parser.add_argument("--strength", type=float, default=None,
                                help="0..1: how far to move from the input (default 1 to paint, 0.5 for img2img)")
        parser.add_argument("--negative", default="", help="what the picture should not show")
        parser.add_argument("--model", default=DEFAULT_MODEL, help=f"a catalogue id (default {DEFAULT_MODEL}; see `models`), or the path of a "
                                 "diffusers model folder, a .safetensors checkpoint or a .gguf FLUX / SD 3.x transformer")
        parser.add_argument("--base-model", default=None, metavar="ID",
                            help="for a transformer file given as --model PATH: the catalogue model whose text "
                                 "encoders and VAE it runs with (default: the one its tensors suggest)")
        parser.add_argument("--seed", type=int, help="the same seed and settings give the same picture (default random)")
        parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 1; 2 for img2img)")
        parser.add_argument("--guidance", type=float, default=None,
                            help="CFG scale (default 0, right for SD-Turbo; 1 with --fast-lcm)")
        parser.add_argument("--sampler", default=None, choices=list(SAMPLERS), help=f"default {DEFAULT_SAMPLER}")
        parser.add_argument("--fast-lcm", action="store_true",
                            help=f"SD 1.5 / SDXL models in {LCM_STEPS} steps: their LCM-LoRA (downloaded on first "
                                 f"use), the {LCM_SAMPLER} sampler and guidance {LCM_GUIDANCE:g}, unless "
                                 "--steps/--guidance say otherwise")
        parser.add_argument("--speed", choices=list(SPEEDS), default=DEFAULT_SPEED,
                            help="exact (default): the model's own weights; fastest: on a CPU with OpenVINO, the "
                                 "UNet's weights compressed to int8: quicker and lighter, the picture differs slightly")
        parser.add_argument("--shift", type=float, default=0.0,
                            help="SD 3.x / FLUX: the flow sampler's timestep shift (default 0: the model's own)")
        parser.add_argument("--max-sequence-length", type=int, default=0, metavar="TOKENS",
                            help="SD 3.x / FLUX: the T5 prompt length (default 0: the model's own)")
        parser.add_argument("--size", type=_size, help="WIDTHxHEIGHT (default 512x512, or the input's shape)")
        parser.add_argument("--batch-size", type=int, default=1, help="pictures made together")
        parser.add_argument("--batch-count", type=int, default=1, help="batches made one after another")
        parser.add_argument("--decoder", default=DEFAULT_DECODER,
                            help=f"fast decoder's catalogue id, or '{FULL_VAE}' for the model's own VAE")
        parser.add_argument("--out", type=Path,
                            help="where to write the picture (.png; more pictures add -2, -3, ...; a --prompts/--seeds "
                                 "batch writes OUT-p<prompt number>-s<seed>.png beside it)")
        parser.add_argument("--out-dir", type=Path, metavar="DIR",
                            help="write into this folder (made if missing): <mode>.png, or a batch's "
                                 "<mode>-p<prompt number>-s<seed>.png")
        add_lora_dir_argument(parser)
        parser.add_argument("--lora", dest="lora_files", action="append", metavar="FILE[:WEIGHT]",
                            help="apply this LoRA .safetensors file (weight 1 unless given); repeat for more: "
                                 "its folder is searched and <lora:NAME:WEIGHT> added to the prompt")
        parser.add_argument("--json", action="store_true", help="print one JSON object describing the result")
        parser.add_argument("--no-gallery", action="store_true", help="do not list the result in the gallery")


COMMANDS = ("image", "img2img", "inpaint", "outpaint")


def _add_hires_arguments(parser: argparse.ArgumentParser) -> None:
    """AUTOMATIC1111's hires fix: the picture made at --size, upscaled, then redrawn bigger."""
    parser.add_argument("--hires", type=float, default=1.0, metavar="SCALE",
                        help="hires fix: upscale the picture this many times (up to 4) and redraw it (default 1: off)")
    parser.add_argument("--hires-strength", type=float, default=DEFAULT_STRENGTH, metavar="S",
                        help=f"0..1: how much the second pass redraws (default {DEFAULT_STRENGTH:g}; 0 with a "
                             "picture upscaler: upscaled only)")
    parser.add_argument("--hires-steps", type=int, default=0, metavar="N",
                        help="steps of the second pass (default 0: as many as --steps)")
    parser.add_argument("--hires-resize", type=_resize, default=(0, 0), metavar="WxH",
                        help="hires fix to this size instead of a scale, as AUTOMATIC1111's 'Resize width/height to' "
                             "(0 for one side keeps the aspect: 1024x0; both given: upscaled to cover, centre-cropped)")
    parser.add_argument("--hires-upscaler", default=DEFAULT_UPSCALER, metavar="ID",
                        help=f"{', '.join(BUILTIN_UPSCALERS)}, or an upscaler model's name (default {DEFAULT_UPSCALER})")


def _resize(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*", text)
    if not match or match.group(1) == match.group(2) == "0":
        raise argparse.ArgumentTypeError(f"'{text}' is not WIDTHxHEIGHT (such as 1024x768, or 1024x0 to keep the aspect)")
    return int(match.group(1)), int(match.group(2))


def run(args: argparse.Namespace, settings: Settings) -> int:
    from studio.backends.diffusion import ImageRequest
    from studio.services import Studio

    mode = "txt2img" if args.command == "image" else args.command
    batch = args.prompts is not None or args.seeds is not None
    if args.prompt is not None and args.prompts is not None:
        raise InputError("give a prompt or --prompts FILE, not both")
    if args.prompt is None and args.prompts is None:
        raise InputError("give a prompt (in quotes), or --prompts FILE with one prompt per line")
    if args.seeds is not None and (args.batch_size != 1 or args.batch_count != 1):
        raise InputError("--seeds already says which pictures to make; leave out --batch-size and --batch-count")
    if args.seeds is not None and args.seed is not None:
        raise InputError("give --seed or --seeds, not both")
    prompts = cli_batch.read_prompts(args.prompts) if args.prompts is not None else [args.prompt]
    settings, tags = _lora_files(args.lora_files or [], settings)
    prompts = [reduce(lambda text, tag: reweight_lora(text, *tag), tags, p) for p in prompts]
    out = _destination(args, mode)

    studio = Studio(settings)
    args.model = model_argument(studio.catalog, args.model, args.base_model)
    picture = studio.open_image(args.input) if mode != "txt2img" else None
    mask = studio.open_image(args.mask) if mode == "inpaint" else None
    if args.size:
        width, height = args.size
    elif picture is not None:
        basis = picture.rgb
        if mode == "outpaint":
            basis = basis.resize((basis.width + args.left + args.right, basis.height + args.top + args.bottom))
        width, height = studio.image_service.working_size(args.model, basis)
    else:
        width = height = 512
    strength = args.strength if getattr(args, "strength", None) is not None else (0.5 if mode == "img2img" else 1.0)
    steps, guidance, sampler = _sampling(args, mode)
    extra = {}
    if mode == "inpaint":
        extra.update(only_masked=args.only_masked, padding=args.padding)
    if mode == "outpaint":
        extra.update(extend_left=args.left, extend_right=args.right, extend_top=args.top, extend_bottom=args.bottom)
    if mode in ("inpaint", "outpaint"):
        extra["mask_blur"] = args.mask_blur
    if mode == "txt2img":
        extra.update(hires_scale=args.hires, hires_strength=args.hires_strength, hires_steps=args.hires_steps,
                     hires_upscaler=args.hires_upscaler, hires_resize_x=args.hires_resize[0],
                     hires_resize_y=args.hires_resize[1])
    units, controls = cli_controlnet.units(args, studio) if mode != "outpaint" else ((), [])
    base = ImageRequest(
        prompt=prompts[0], mode=mode, negative_prompt=args.negative, model=args.model, steps=steps,
        guidance=guidance, width=width, height=height, seed=args.seed, sampler=sampler, fast_lcm=args.fast_lcm, speed=args.speed,
        batch_size=args.batch_size, batch_count=args.batch_count, strength=strength, decoder=args.decoder,
        shift=args.shift, max_sequence_length=args.max_sequence_length, controlnets=units, **extra,
    )
    keep = not args.no_gallery
    _say_estimate(studio, base, runs=len(prompts) * len(args.seeds or [None]))
    if not batch:
        outcome = studio.generate_image(base, picture, mask, keep=keep, preparing=StageLine(),
                                       controls=controls)
        for note in outcome.notes:
            print(f"note: {note}", file=sys.stderr)
        paths = [out if n == 0 else out.with_name(f"{out.stem}-{n + 1}{out.suffix}")
                 for n in range(len(outcome.result.images))]
        _save(outcome, paths)
        _report(args, paths, outcome.result.params, outcome.result.seconds, [i.id for i in outcome.items])
        return 0

    # Settings every item shares are checked once (with a stand-in prompt and the largest seed), and the
    # model is loaded once: a wrong size or a missing model is one error, not one per item.
    replace(base, prompt="-", seed=max(args.seeds) if args.seeds else base.seed).validate()
    studio.image.load(args.model, stage=StageLine(), speed=args.speed)
    items = cli_batch.plan(prompts, args.seeds, args.seed)
    notes_shown: set[str] = set()

    def make(item: cli_batch.BatchItem) -> cli_batch.ItemResult:
        outcome = studio.generate_image(replace(base, prompt=item.prompt, seed=item.seed), picture, mask, keep=keep,
                                        controls=controls)
        for note in outcome.notes:
            if note not in notes_shown:  # the same note for every item is said once
                notes_shown.add(note)
                print(f"note: {note}", file=sys.stderr)
        paths = [cli_batch.output_name(out.parent, out.stem, item, record["seed"], len(prompts), out.suffix)
                 for record in outcome.result.params]
        _save(outcome, paths)
        return cli_batch.ItemResult(item, paths, outcome.result.params, [i.id for i in outcome.items])

    started = time.perf_counter()
    results = cli_batch.run_items(items, make)
    made = [r for r in results if not r.error]
    _report(args, [p for r in made for p in r.outputs], [rec for r in made for rec in r.records],
            time.perf_counter() - started, [i for r in made for i in r.gallery_ids],
            failed=[r for r in results if r.error])
    print(cli_batch.summary(results), file=sys.stderr)
    return cli_batch.EXIT_SOME_FAILED if len(made) < len(results) else 0


def _say_estimate(studio, request, runs: int = 1) -> None:
    """One line on stderr before a long CPU run of a model that is here: how long its steps will take (an
    estimate scaled from the model's timed step; studio.backends.diffusion.step_time). A request the run will
    refuse says nothing here: the run's one-line error is all that is said."""
    from studio import limits
    from studio.backends.diffusion import families

    if studio.cluster is not None:  # with --ray the steps run on the cluster's machines, not this CPU
        return
    try:
        request.validate()
        limits.check_image(request, studio.settings)
        if not studio.image.is_available(request.model):
            return
        families.check_request(studio.image.model_defaults(request.model).family, request, request.model)
        told = studio.image.step_estimate(request.model, request.width, request.height, max(1, request.steps_run),
                                          request.guidance, request.batch_size, request.batch_count * runs)
        hires = None
        if told is not None and request.hires_steps_run:
            hires = studio.image.step_estimate(request.model, *request.hires_cover, request.hires_steps_run,
                                               request.guidance, request.batch_size, request.batch_count * runs)
    except (StudioError, TypeError, ValueError):
        return
    if told is None or told.total + (hires.total if hires else 0) < step_time.WORTH_SAYING_SECONDS:
        return
    line = told.sentence()
    if hires is not None:
        line += (f" The hires fix's {hires.steps} more step(s) at {hires.width}×{hires.height} add about "
                 f"{step_time.duration(hires.total)}.")
    print(f"note: {line}", file=sys.stderr)


def _sampling(args: argparse.Namespace, mode: str) -> tuple[int, float, str]:
    """(steps, guidance, sampler): what was given, else the defaults (SD-Turbo's, or the fast LCM switch's)."""
    if args.fast_lcm:
        if args.sampler not in (None, LCM_SAMPLER):
            raise InputError(f"--fast-lcm runs the {LCM_SAMPLER} sampler; leave out --sampler {args.sampler}")
        return (args.steps if args.steps is not None else LCM_STEPS,
                args.guidance if args.guidance is not None else LCM_GUIDANCE, LCM_SAMPLER)
    steps = args.steps if args.steps is not None else (2 if mode == "img2img" else 1)
    return steps, args.guidance if args.guidance is not None else 0.0, args.sampler or DEFAULT_SAMPLER


def model_argument(catalog: Catalog, given: str, base: str | None = None) -> str:
    """`--model` as a catalogue id; a path names the operator's own folder or file, listed for this run
    (a transformer file with `base`, the catalogue model whose other parts it runs with, if given)."""
    if base is not None and base not in catalog:
        raise InputError(f"--base-model {base}: not in the catalogue (see `python -m studio models`)")
    if given in catalog:
        if base is not None:
            raise InputError("--base-model goes with a transformer file given as --model PATH, not a catalogue id")
        return given
    path = Path(given).expanduser()
    if not path.exists():
        raise InputError(f"--model {given}: not in the catalogue (see `python -m studio models`) and no such file "
                         "or folder")
    if base is not None and not path.is_file():
        raise InputError("--base-model goes with a transformer file given as --model PATH, not a model folder")
    taken = {entry.id for entry in catalog.entries()}
    return catalog.add(path_entry(path, taken, base)).id


def _lora_files(given: list[str], settings: Settings) -> tuple[Settings, list[tuple[str, float]]]:
    """`--lora FILE[:WEIGHT]`: each file's folder joins the LoRA folders for this run; the (name, weight)
    tags to write into the prompt. A LoRA of the same name found first in another folder is refused
    rather than silently applied in the file's place."""
    folders, tags = list(settings.lora_dirs), []
    for text in given:
        file, weight = parse_lora_argument(text)
        path = Path(file).expanduser()
        if path.suffix.lower() != LORA_SUFFIX:
            raise InputError(f"--lora {file}: a LoRA must be a .safetensors file (pickles are never loaded)")
        if not path.is_file():
            raise InputError(f"--lora {file}: no such file")
        if path.parent.resolve() not in {f.resolve() for f in folders}:
            folders.append(path.parent.resolve())
        tags.append((path.stem, weight))
    if not tags:
        return settings, []
    settings = replace(settings, lora_dirs=tuple(folders))
    library = LoraLibrary(settings.lora_folders)
    for text, (name, _) in zip(given, tags, strict=True):
        found = library.find(name)
        if found.resolve() != Path(parse_lora_argument(text)[0]).expanduser().resolve():
            raise InputError(f"--lora {text}: another LoRA named '{name}' comes first, {found}; rename one of them")
    return settings, tags


def _destination(args: argparse.Namespace, mode: str) -> Path:
    """Where the picture goes; in a batch, the folder and name stem every item's file is named after."""
    if args.out is not None and args.out_dir is not None:
        raise InputError("give --out or --out-dir, not both")
    if args.out_dir is not None:
        if args.out_dir.exists() and not args.out_dir.is_dir():
            raise InputError(f"--out-dir {args.out_dir} is a file, not a folder")
        try:
            args.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"could not make the folder {args.out_dir}: {exc.strerror or exc}") from None
        return args.out_dir / f"{mode}.png"
    out = args.out or Path(f"{mode}.png")
    if out.suffix.lower() != ".png":
        raise InputError(PNG_ONLY)
    if not out.parent.resolve().is_dir():
        raise InputError(f"the folder {out.parent} does not exist")
    return out


def _save(outcome, paths: list[Path]) -> None:
    """Write each picture with its parameters: the studio's record and AUTOMATIC1111's text. A picture
    kept in the gallery carries the gallery's record, which also names its stored inputs, so
    `python -m studio reproduce` finds them."""
    from studio.backends.diffusion import a1111_parameters
    from studio.media.png_info import save_png

    records = [item.params for item in outcome.items] or outcome.result.params
    for image, record, path in zip(outcome.result.images, records, paths, strict=True):
        try:
            save_png(image, path, {"studio": json.dumps(record, sort_keys=True), "parameters": a1111_parameters(record)})
        except OSError as exc:
            raise InputError(f"could not write {path}: {exc.strerror or exc}") from None


def _report(args: argparse.Namespace, paths: list[Path], records: list[dict], seconds: float,
            gallery_ids: list[int], failed: list[cli_batch.ItemResult] | None = None) -> None:
    """What was made: one JSON object, or lines for people (a single run) or for scripts (a batch)."""
    if args.json:
        report = {
            "outputs": [str(p) for p in paths],
            "parameters": records,
            "seconds": round(seconds, 3),
            "gallery_ids": gallery_ids,
        }
        if failed is not None:
            report["failed"] = [{"prompt": r.item.prompt, "prompt_number": r.item.prompt_number,
                                 "seed": r.item.seed, "error": r.error} for r in failed]
        print(json.dumps(report))
    elif failed is None:
        for path, record in zip(paths, records, strict=True):
            print(f"{path} ({record['result_width']}x{record['result_height']}, seed {record['seed']})")
        print(f"{len(paths)} picture(s) in {seconds:.2f} s")
    else:  # a batch: its progress went to stderr; stdout lists the files, one per line, for scripts
        for path in paths:
            print(path)
