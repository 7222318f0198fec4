"""Checkpoints, LoRAs and embeddings where artists already keep them: `<data dir>/models/checkpoints`
and AUTOMATIC1111 / ComfyUI installations read in place (`--models-from`), families told by keys."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.backends.diffusion.loras import LoraLibrary
from studio.catalog import CatalogError, load_catalog, path_entry
from studio.model_folders import (
    FLUX,
    SD1,
    SD2,
    SD3,
    SDXL,
    ModelFolderError,
    checkpoint_family,
    read_tool_folders,
    safetensors_header,
)
from studio.settings import Settings, SettingsError, from_args
from tests.image_models import TINY_SD, TINY_TAESD, write_models_file

ROOT = Path(__file__).resolve().parent.parent
UNET = "model.diffusion_model."


def write_header_only(path: Path, tensors: dict[str, list[int]], weights: bool = True) -> Path:
    """A real safetensors file with these tensor names and shapes (zeros; only the header matters here)."""
    header, offset = {}, 0
    for name, shape in tensors.items():
        size = 2 * int(np.prod(shape))
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(offset if weights else 0))
    return path


SD1_KEYS = {UNET + "input_blocks.0.0.weight": [320, 4, 3, 3],
            UNET + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [320, 768],
            "cond_stage_model.transformer.text_model.embeddings.position_ids": [1, 77]}
SD2_KEYS = {UNET + "input_blocks.0.0.weight": [320, 4, 3, 3],
            UNET + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [320, 1024],
            "cond_stage_model.model.positional_embedding": [77, 1024]}
SDXL_KEYS = {UNET + "input_blocks.0.0.weight": [320, 4, 3, 3], UNET + "label_emb.0.0.weight": [1280, 2816],
             "conditioner.embedders.1.model.positional_embedding": [77, 1280]}
SD3_KEYS = {UNET + "joint_blocks.0.x_block.attn.qkv.weight": [4608, 1536]}
FLUX_KEYS = {"double_blocks.0.img_attn.qkv.weight": [9216, 3072]}
LORA_KEYS = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": [4, 320]}
INPAINT_KEYS = {**SD1_KEYS, UNET + "input_blocks.0.0.weight": [320, 9, 3, 3]}


@pytest.mark.parametrize(("keys", "family"), [
    (SD1_KEYS, SD1), (SD2_KEYS, SD2), (SDXL_KEYS, SDXL), (SD3_KEYS, SD3), (FLUX_KEYS, FLUX), (LORA_KEYS, None),
    ({"model.diffusion_model.double_blocks.0.img_attn.qkv.weight": [9216, 3072]}, FLUX),
])
def test_a_checkpoints_family_is_told_by_its_tensor_names_not_its_file_name(tmp_path, keys, family):
    # Named like the wrong family on purpose: the name must not matter.
    path = write_header_only(tmp_path / "juggernautXL_v9_flux_sd15.safetensors", keys)
    assert checkpoint_family(safetensors_header(path)) == family


def a1111_tree(root: Path) -> Path:
    write_header_only(root / "models/Stable-diffusion/dreamshaper_8.safetensors", SD1_KEYS)
    write_header_only(root / "models/Stable-diffusion/XL/juggernaut XL v9.safetensors", SDXL_KEYS)
    write_header_only(root / "models/Stable-diffusion/sd15-inpainting.safetensors", INPAINT_KEYS)
    write_header_only(root / "models/Stable-diffusion/flux1-dev.safetensors", FLUX_KEYS)
    (root / "models/Stable-diffusion/old.ckpt").write_bytes(b"\x80\x04 a pickle that must never be opened")
    (root / "models/Stable-diffusion/broken.safetensors").write_bytes(b"\xff" * 5)
    write_header_only(root / "models/Lora/ink_wash.safetensors", LORA_KEYS)
    write_header_only(root / "embeddings/badhands.safetensors", {"emb_params": [2, 768]})
    (root / "models/VAE").mkdir(parents=True)
    return root


def comfyui_tree(root: Path) -> Path:
    write_header_only(root / "models/checkpoints/sd21.safetensors", SD2_KEYS)
    write_header_only(root / "models/checkpoints/dreamshaper_8.safetensors", SD1_KEYS)
    write_header_only(root / "models/loras/pixel_art.safetensors", LORA_KEYS)
    write_header_only(root / "models/embeddings/easynegative.safetensors", {"emb_params": [8, 768]})
    (root / "models/upscale_models").mkdir(parents=True)
    return root


def test_an_automatic1111_installation_is_read_in_place(tmp_path):
    root = a1111_tree(tmp_path / "stable-diffusion-webui")
    settings = Settings(data_dir=tmp_path / "data", models_from=(root,))
    catalog = load_catalog(None, settings.checkpoint_folders)
    found = {e.id: e for e in catalog.entries() if e.source == "local"}
    assert set(found) == {"dreamshaper_8", "flux1-dev", "juggernaut-XL-v9", "sd15-inpainting"}
    assert found["dreamshaper_8"].name == "dreamshaper_8 (SD 1.x)"
    assert found["juggernaut-XL-v9"].name == "juggernaut XL v9 (SDXL)"
    assert found["juggernaut-XL-v9"].path == root / "models/Stable-diffusion/XL/juggernaut XL v9.safetensors"
    assert "txt2img" in found["dreamshaper_8"].tasks and found["sd15-inpainting"].tasks == ("inpaint",)
    assert [e.id for e in catalog.for_task("txt2img")][-3:] == ["dreamshaper_8", "flux1-dev", "juggernaut-XL-v9"]
    assert found["flux1-dev"].name == "flux1-dev (FLUX)"  # offered: loaded with the base model's other parts
    skipped = " | ".join(catalog.skipped)
    assert "old.ckpt is a pickle checkpoint" in skipped
    assert "broken.safetensors is not a readable" in skipped
    # Its LoRAs and embeddings join the folders the prompt's <lora:NAME> and embedding names look in.
    assert LoraLibrary(settings.lora_folders).find("ink_wash") == root / "models/Lora/ink_wash.safetensors"
    assert root / "embeddings" in settings.embedding_folders
    assert settings.lora_folders[0] == tmp_path / "data" / "loras"  # the studio's own folder still comes first


def test_a_comfyui_installation_and_its_models_folder_both_work(tmp_path):
    root = comfyui_tree(tmp_path / "ComfyUI")
    for given in (root, root / "models"):
        folders = read_tool_folders(given)
        assert (folders.layout, folders.root) == ("ComfyUI", root)
        assert folders.of("upscalers") == (root / "models/upscale_models",)
        assert folders.of("controlnets") == ()
    settings = Settings(data_dir=tmp_path / "data", models_from=(root,))
    ids = {e.id: e.name for e in load_catalog(None, settings.checkpoint_folders).entries() if e.source == "local"}
    assert ids == {"sd21": "sd21 (SD 2.x)", "dreamshaper_8": "dreamshaper_8 (SD 1.x)"}
    assert root / "models/embeddings" in settings.embedding_folders


def test_two_installations_with_the_same_file_names_give_distinct_ids(tmp_path):
    a1111 = a1111_tree(tmp_path / "webui")
    comfy = comfyui_tree(tmp_path / "ComfyUI")
    own = write_header_only(tmp_path / "data/models/checkpoints/dreamshaper_8.safetensors", SD1_KEYS)
    settings = Settings(data_dir=tmp_path / "data", models_from=(a1111, comfy))
    local = [e for e in load_catalog(None, settings.checkpoint_folders).entries() if e.source == "local"]
    dreamshapers = [(e.id, e.path) for e in local if e.name.startswith("dreamshaper_8")]
    assert dreamshapers == [("dreamshaper_8", own), ("dreamshaper_8-2", a1111 / "models/Stable-diffusion/dreamshaper_8.safetensors"),
                            ("dreamshaper_8-3", comfy / "models/checkpoints/dreamshaper_8.safetensors")]


def test_a_folder_that_is_no_known_installation_is_refused_at_start(tmp_path):
    (tmp_path / "pictures").mkdir()
    with pytest.raises(SettingsError, match="looks like neither an AUTOMATIC1111/Forge installation"):
        from_args(_args(models_from=[tmp_path / "pictures"]), environ={})
    with pytest.raises(ModelFolderError, match="is not a folder"):
        read_tool_folders(tmp_path / "missing")


def test_the_environment_variable_takes_several_installations(tmp_path):
    a1111 = a1111_tree(tmp_path / "webui")
    comfy = comfyui_tree(tmp_path / "ComfyUI")
    settings = from_args(_args(), environ={"STUDIO_MODELS_FROM": f"{a1111}{os.pathsep}{comfy}"})
    assert settings.models_from == (a1111, comfy)
    assert a1111 / "models/Lora" in settings.lora_folders and comfy / "models/loras" in settings.lora_folders


def test_an_operator_path_becomes_an_entry_but_pickles_and_parts_do_not(tmp_path):
    sdxl = write_header_only(tmp_path / "my model.safetensors", SDXL_KEYS)
    entry = path_entry(sdxl, {"my-model"})
    assert (entry.id, entry.name, entry.path) == ("my-model-2", "my model (SDXL)", sdxl)
    for bad, words in [(tmp_path / "x.ckpt", "pickle"), (write_header_only(tmp_path / "l.safetensors", LORA_KEYS),
                                                          "not a whole image checkpoint"),
                       (tmp_path / "nothing-here", "does not exist"), (tmp_path, "no model_index.json")]:
        if bad.suffix == ".ckpt":
            bad.write_bytes(b"\x80\x04")
        with pytest.raises(CatalogError, match=words):
            path_entry(bad, set())


def _args(**given):
    import argparse

    return argparse.Namespace(**given)


def _cli(*args: str, data: Path, models: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, STUDIO_DATA_DIR=str(data), STUDIO_OFFLINE="1")
    if models is not None:
        env["STUDIO_MODELS_FILE"] = str(models)
    return subprocess.run([sys.executable, "-m", "studio", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_models_lists_an_installations_checkpoints_and_says_what_it_skipped(tmp_path):
    root = a1111_tree(tmp_path / "webui")
    done = _cli("--models-from", str(root), "models", data=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.splitlines()}
    assert {"dreamshaper_8", "juggernaut-XL-v9", "sd15-inpainting"} <= listed
    assert "old.ckpt is a pickle checkpoint" in done.stderr and "Traceback" not in done.stderr
    done = _cli("--models-from", str(tmp_path), "models", data=tmp_path / "data")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "looks like neither" in done.stderr


def test_the_terminal_may_name_a_model_folder_by_its_path(tmp_path, tiny_sd_path, tiny_taesd_path):
    models = write_models_file(tmp_path / "catalogue", tiny_sd_path, tiny_taesd_path)
    out = tmp_path / "by-path.png"
    common = ["--decoder", TINY_TAESD, "--seed", "5", "--steps", "1", "--size", "64x64", "--no-gallery"]
    done = _cli("image", "a red cat", "--model", str(tiny_sd_path), *common, "--out", str(out),
                data=tmp_path / "data", models=models)
    assert done.returncode == 0, done.stderr
    picture = np.asarray(Image.open(out).convert("RGB"))
    assert picture.shape == (64, 64, 3) and picture.std() > 0
    by_id = tmp_path / "by-id.png"
    done = _cli("image", "a red cat", "--model", TINY_SD, *common, "--out", str(by_id), data=tmp_path / "data",
                models=models)
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.asarray(Image.open(by_id).convert("RGB")), picture)
    for bad, words in [(str(tmp_path / "missing"), "not in the catalogue"), (str(tmp_path / "old.ckpt"), "pickle")]:
        if bad.endswith(".ckpt"):
            Path(bad).write_bytes(b"\x80\x04")
        done = _cli("image", "a cat", "--model", bad, *common, "--out", str(out), data=tmp_path / "data",
                    models=models)
        assert done.returncode == 2 and words in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_file_that_is_no_model_is_named_as_such_and_a_pickle_as_a_pickle(tmp_path):
    from studio.model_folders import inspect_checkpoint

    notes = tmp_path / "notes.txt"
    notes.write_text("not weights", encoding="utf-8")
    pickled = tmp_path / "old.pth"
    pickled.write_bytes(b"\x80\x04")
    assert inspect_checkpoint(notes).problem == ("notes.txt is not a model file; the studio loads .safetensors "
                                                 "checkpoints and .gguf transformers")
    assert "old.pth is a pickle checkpoint" in inspect_checkpoint(pickled).problem
