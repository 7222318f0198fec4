"""A models file that puts the tiny SD pipeline and tiny TAESD into the catalogue as local entries,
so tests load them through the studio's real loading code."""

from __future__ import annotations

from pathlib import Path

TINY_SD = "tiny-sd"
TINY_TAESD = "tiny-taesd"


def write_models_file(folder: Path, sd_path: Path, taesd_path: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "models.toml"
    path.write_text(
        f'[[model]]\nid = "{TINY_SD}"\nname = "Tiny SD"\nfamily = "diffusers"\n'
        f'tasks = ["txt2img", "img2img", "inpaint", "restyle"]\npath = "{sd_path}"\n\n'
        f'[[model]]\nid = "{TINY_TAESD}"\nname = "Tiny TAESD"\nfamily = "diffusers"\ntasks = ["decode"]\n'
        f'path = "{taesd_path}"\n',
        encoding="utf-8",
    )
    return path


TINY_CONTROLNET = "tiny-controlnet"
TINY_CONTROLNET_2 = "tiny-controlnet-2"
TINY_CONTROLNET_FILE = "tiny-controlnet-file"
TINY_SDXL_CONTROLNET = "tiny-sdxl-controlnet"


def build_tiny_controlnet(pipeline_path: Path, target: Path, seed: int = 0) -> Path:
    """A ControlNet made from a tiny pipeline's UNet (`ControlNetModel.from_unet`), laid out like
    lllyasviel/control_v11p_sd15_canny. from_unet starts its output convolutions at zero (a ControlNet
    that does nothing until trained); here they get small random weights, so it steers."""
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(pipeline_path / "unet", use_safetensors=True)
    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16, 16, 16))
    zero_started = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                    controlnet.controlnet_cond_embedding.conv_out]
    with torch.no_grad():
        for layer in zero_started:
            layer.weight.normal_(0.0, 0.3)
            layer.bias.zero_()  # what it adds comes from the map, not from a constant
        # The map's embedding strong enough that different maps make clearly different pictures.
        for layer in controlnet.controlnet_cond_embedding.modules():
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.mul_(4.0)
    controlnet.save_pretrained(target, safe_serialization=True)
    return target


def controlnet_models_entries(entries: dict[str, Path]) -> str:
    """[[model]] tables for ControlNets by id -> folder or file."""
    return "".join(
        f'\n[[model]]\nid = "{model_id}"\nname = "{model_id}"\nfamily = "diffusers"\ntasks = ["controlnet"]\n'
        f'path = "{path}"\n'
        for model_id, path in entries.items()
    )
