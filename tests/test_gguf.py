"""GGUF-quantised FLUX transformers: a tiny FLUX.1-schnell transformer written as a Q8_0 GGUF file by the
tests (the `gguf` package), found through a models file and dropped in `<data dir>/models/unet`, loaded by
the studio's own code with its base model's text encoders and VAE, and generating nearly the unquantised
picture; the memory check counting quantised bytes; the CUDA offload decision on made-up memory figures.

Key layout: the file keeps diffusers' own tensor names. diffusers loads those as they are (it converts only
a file whose names differ from the model's), while its conversion from Black Forest Labs' original names
(city96's files) splits each single block's fused projection at FLUX.1's real widths (3072 and 12288 rows),
so a tiny model cannot be written in that layout; the original names are still checked here for what the
studio reads from a header (the family and the base model), on a header-sized file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.backends.diffusion import DiffusionBackend, ImageRequest, families, memory
from studio.backends.diffusion.flow_files import base_model
from studio.catalog import load_catalog, path_entry
from studio.errors import StudioError
from studio.model_folders import FLUX, gguf_header, inspect_checkpoint, read_tool_folders
from studio.runtime import ModelCache
from studio.settings import Settings
from tests.tiny_families import build_tiny_flux

BASE_ID, GGUF_ID, SCHNELL = "tiny-flux-schnell", "tiny-flux-q8", "black-forest-labs/FLUX.1-schnell"
TASKS = '["txt2img", "img2img", "inpaint", "restyle"]'
# Measured on the tiny FLUX at 256 px, 1 step, seeds 7-10, against the unquantised transformer: 48.5-48.7 dB
# in bf16 (CPUs with native bf16, like this one) and 57.3-57.4 dB in fp32 (Q8_0 keeps 8 bits per weight with
# one scale per 32-weight block, so each layer's output moves by well under 1%), while another seed's picture
# scores 14.5-14.7 dB. 40 dB (an RMS error of 2.5 of 255 levels) leaves 8 dB of room below the bf16 figure and
# still fails any picture that is not the same one, slightly rounded.
MIN_PSNR_DB = 40.0


def write_gguf(state: dict, path: Path) -> Path:
    """The transformer's tensors as a GGUF file: Q8_0 for each 2-D weight whose rows are whole 32-weight
    blocks, F32 for the rest (biases, norms), as city96's Q8_0 files store them."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch="flux")
    for name, tensor in state.items():
        array = tensor.float().numpy()
        if array.ndim == 2 and array.shape[1] % 32 == 0:
            quantised = gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, quantised, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(name, array.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    from safetensors.torch import load_file

    root = tmp_path_factory.mktemp("gguf")
    base = build_tiny_flux(root / "schnell")
    state = load_file(str(base / "transformer" / "diffusion_pytorch_model.safetensors"))
    return {"base": base, "gguf": write_gguf(state, root / "tiny-flux-Q8_0.gguf")}


def models_file(folder: Path, entries: dict[str, dict[str, str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = ""
    for model_id, fields in entries.items():
        text += f'[[model]]\nid = "{model_id}"\nfamily = "diffusers"\ntasks = {TASKS}\n'
        text += "".join(f'{key} = "{value}"\n' for key, value in fields.items()) + "\n"
    (folder / "models.toml").write_text(text, encoding="utf-8")
    return folder / "models.toml"


@pytest.fixture(scope="module")
def backend(files, tmp_path_factory) -> DiffusionBackend:
    """A models file naming the base model's folder and the GGUF file with that base."""
    models = models_file(tmp_path_factory.mktemp("gguf-models"), {
        BASE_ID: {"path": str(files["base"])},
        GGUF_ID: {"path": str(files["gguf"]), "base": BASE_ID, "name": "Tiny FLUX Q8_0"},
    })
    return DiffusionBackend(ModelCache(4096), load_catalog(models), device="cpu", offline=True)


def flux(model: str, **fields) -> ImageRequest:
    base = {"prompt": "a red cat", "model": model, "steps": 1, "guidance": 0.0, "width": 256, "height": 256,
            "seed": 7, "decoder": "full"}
    return ImageRequest(**{**base, **fields})


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def psnr(a: Image.Image, b: Image.Image) -> float:
    mse = float(np.mean((pixels(a) - pixels(b)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_the_written_file_is_a_quantised_flux_transformer(files):
    header = gguf_header(files["gguf"])
    kinds = {info["dtype"] for info in header.values()}
    assert kinds == {"Q8_0", "F32"}
    weight = header["transformer_blocks.0.attn.to_q.weight"]
    assert weight["shape"] == [32, 32] and weight["bytes"] == 32 * 34  # 32 rows of one 34-byte Q8_0 block
    found = inspect_checkpoint(files["gguf"])
    assert (found.family, found.problem) == (FLUX, None)


def test_a_q8_transformer_makes_nearly_the_unquantised_picture(backend, seed=7):
    quantised = backend.generate(flux(GGUF_ID, seed=seed)).images[0]
    full = backend.generate(flux(BASE_ID, seed=seed)).images[0]
    other = backend.generate(flux(BASE_ID, seed=seed + 100)).images[0]
    assert not np.array_equal(pixels(quantised), pixels(full))  # it really ran on the rounded weights
    assert psnr(quantised, full) > MIN_PSNR_DB
    assert psnr(other, full) < MIN_PSNR_DB - 10  # the bar tells pictures apart


def test_an_sd3_transformer_in_gguf_runs_the_same_way(tmp_path):
    """SD 3.x transformers load from GGUF through the same code (diffusers' SD3 single-file loader). The tiny
    MMDiT is 16 wide, so only its 32-wide layers are whole Q8_0 blocks; measured 44-45 dB in bf16."""
    from safetensors.torch import load_file

    from tests.tiny_families import build_tiny_sd3

    base = build_tiny_sd3(tmp_path / "sd3")
    state = load_file(str(base / "transformer" / "diffusion_pytorch_model.safetensors"))
    quantised_file = write_gguf(state, tmp_path / "tiny-sd3-Q8_0.gguf")
    assert sum(info["dtype"] == "Q8_0" for info in gguf_header(quantised_file).values()) >= 4
    models = models_file(tmp_path, {"sd3": {"path": str(base)}, "sd3-q8": {"path": str(quantised_file), "base": "sd3"}})
    sd3 = DiffusionBackend(ModelCache(4096), load_catalog(models), device="cpu", offline=True)

    def request(model: str, seed: int = 7) -> ImageRequest:
        return ImageRequest(prompt="a red cat", model=model, steps=2, guidance=2.0, width=64, height=64, seed=seed,
                            decoder="full")

    quantised, full = sd3.generate(request("sd3-q8")).images[0], sd3.generate(request("sd3")).images[0]
    assert not np.array_equal(pixels(quantised), pixels(full))
    assert psnr(quantised, full) > MIN_PSNR_DB
    assert psnr(sd3.generate(request("sd3", seed=107)).images[0], full) < MIN_PSNR_DB - 10


def test_the_transformer_stays_quantised_and_the_record_names_the_file_and_its_hash(backend, files):
    loaded = backend.load(GGUF_ID)
    weight = loaded.pipe.transformer.transformer_blocks[0].attn.to_q.weight
    assert type(weight).__name__ == "GGUFParameter" and weight.quant_type.name == "Q8_0"
    assert loaded.pipe.text_encoder_2 is not None and loaded.pipe.vae is not None  # from the base folder
    record = backend.generate(flux(GGUF_ID)).params[0]
    digest = hashlib.sha256(files["gguf"].read_bytes()).hexdigest()[:10]
    assert record["model_revision"] == f"file:tiny-flux-Q8_0.gguf sha256:{digest}"
    assert record["family"] == FLUX and record["model"] == GGUF_ID


def test_a_file_dropped_in_models_unet_runs_with_the_base_its_tensors_name(files, backend, tmp_path):
    """No entry for the file: found in <data dir>/models/unet, a schnell transformer (no guidance input), so
    it runs with FLUX.1-schnell, here a local copy of that catalogue model."""
    settings = Settings(data_dir=tmp_path / "data")
    unet = tmp_path / "data" / "models" / "unet"
    unet.mkdir(parents=True)
    (unet / "flux-q8.gguf").write_bytes(files["gguf"].read_bytes())
    models = models_file(tmp_path / "catalogue", {SCHNELL: {"path": str(files["base"])}})
    catalog = load_catalog(models, settings.checkpoint_folders)
    entry = catalog.get("flux-q8")
    assert entry.name == "flux-q8 (FLUX)" and entry.path == unet / "flux-q8.gguf"
    dropped = DiffusionBackend(ModelCache(4096), catalog, device="cpu", offline=True)
    assert dropped.native_size("flux-q8") == families.FLOW_NATIVE_SIZE  # told before loading: FLUX's 1024 px
    picture = dropped.generate(flux("flux-q8")).images[0]
    assert np.array_equal(pixels(picture), pixels(backend.generate(flux(GGUF_ID)).images[0]))
    # The Image tab fits it as FLUX.1-schnell from the file's tensors: 4 steps, no guidance, no negative prompt.
    fitted = dropped.model_defaults("flux-q8")
    assert (fitted.family.name, fitted.steps, fitted.guidance) == (families.FLUX, 4, 0.0)
    assert not fitted.family.negative_prompt


def test_comfyuis_unet_and_diffusion_models_folders_are_read_in_place(files, tmp_path):
    root = tmp_path / "ComfyUI"
    for folder in ("models/checkpoints", "models/loras", "models/unet", "models/diffusion_models"):
        (root / folder).mkdir(parents=True)
    (root / "models/unet/flux1-schnell-Q8_0.gguf").write_bytes(files["gguf"].read_bytes())
    (root / "models/diffusion_models/notes.gguf").write_bytes(b"GGUF but not really")
    folders = read_tool_folders(root)
    assert set(folders.of("checkpoints")) == {root / "models/checkpoints", root / "models/unet",
                                              root / "models/diffusion_models"}
    catalog = load_catalog(None, folders.of("checkpoints"))
    assert catalog.get("flux1-schnell-Q8_0").path == root / "models/unet/flux1-schnell-Q8_0.gguf"
    assert len(catalog.skipped) == 1 and "notes.gguf is not a readable .gguf file" in catalog.skipped[0]


@pytest.mark.parametrize("damage", ["junk", "cut"])
def test_a_corrupt_gguf_is_refused_in_one_sentence(files, tmp_path, damage):
    broken = tmp_path / "broken.gguf"
    data = files["gguf"].read_bytes()
    broken.write_bytes(b"not a gguf file at all" * 10 if damage == "junk" else data[: len(data) // 3])
    models = models_file(tmp_path, {"broken": {"path": str(broken), "base": BASE_ID},
                                    BASE_ID: {"path": str(files["base"])}})
    studio_backend = DiffusionBackend(ModelCache(4096), load_catalog(models), device="cpu", offline=True)
    with pytest.raises(StudioError) as refused:
        studio_backend.generate(flux("broken"))
    message = str(refused.value)
    assert "broken.gguf is not a FLUX or SD 3.x transformer in GGUF" in message and "\n" not in message
    assert studio_backend.cache.keys() == []


def test_a_gguf_without_its_base_model_is_refused_in_one_sentence(files, tmp_path):
    models = models_file(tmp_path, {"alone": {"path": str(files["gguf"])},
                                    "wrong-base": {"path": str(files["gguf"]), "base": "no-such-model"}})
    alone = DiffusionBackend(ModelCache(4096), load_catalog(models), device="cpu", offline=True)
    for model_id, base in (("alone", SCHNELL), ("wrong-base", "no-such-model")):
        with pytest.raises(StudioError) as refused:
            alone.generate(flux(model_id))
        message = str(refused.value)
        assert message.startswith("tiny-flux-Q8_0.gguf holds only a FLUX transformer; its text encoders and VAE "
                                  f"come from {base}, which is not on this machine.")
        assert "\n" not in message


def test_the_memory_check_counts_quantised_bytes_so_q8_fits_where_the_full_model_does_not(files, tmp_path):
    from studio.backends.diffusion.pipelines import compute_dtype

    transformer = [files["base"] / "transformer" / "diffusion_pytorch_model.safetensors"]
    whole = memory.weight_files(files["base"], None)
    header = gguf_header(files["gguf"])
    stored = sum(info["bytes"] if info["dtype"] == "Q8_0" else 0 for info in header.values())
    floats = sum(int(np.prod(info["shape"])) for info in header.values() if info["dtype"] == "F32")
    # Quantised blocks keep their bytes in any compute dtype; the F32 rest is loaded in the compute dtype.
    assert memory.needed_mb([files["gguf"]], 4) == pytest.approx((stored + 4 * floats) * memory.OVERHEAD / 2**20)
    assert memory.needed_mb([files["gguf"]], 4) < memory.needed_mb(transformer, 4) / 3
    models = models_file(tmp_path, {BASE_ID: {"path": str(files["base"])},
                                    GGUF_ID: {"path": str(files["gguf"]), "base": BASE_ID}})
    small = DiffusionBackend(ModelCache(4096), load_catalog(models), device="cpu", offline=True)
    from studio.backends.diffusion.flow_files import base_parts

    parts = base_parts(small.catalog.get(GGUF_ID), files["gguf"], small._downloaded_folder)
    assert {f.parent.name for f in parts} == {"text_encoder", "text_encoder_2", "vae"}
    dtype = compute_dtype("cpu")  # bf16 on CPUs with native bf16, else fp32: the dtype the check counts in
    quantised_need = memory.needed_mb([files["gguf"], *parts], dtype.itemsize)
    full_need = memory.needed_mb(whole, dtype.itemsize)
    assert quantised_need < full_need
    small.free_memory_mb = lambda: (quantised_need + full_need) / 2
    with pytest.raises(StudioError) as refused:
        small.generate(flux(BASE_ID))
    assert "needs about" in str(refused.value)
    assert small.generate(flux(GGUF_ID)).images[0].size == (256, 256)
    assert memory.check_fits("q8", [files["gguf"], *parts], dtype, small.free_memory_mb).placement == memory.WHOLE


def test_a_cuda_gpu_too_small_offloads_to_ram_and_a_cpu_keeps_its_rule(files):
    import torch

    files_ = [files["gguf"]]
    need = memory.needed_mb(files_, 2)
    big, small = (lambda: need * 10), (lambda: need / 2)
    assert memory.check_fits("m", files_, torch.float16, big, "cuda", big).placement == memory.WHOLE
    offloaded = memory.check_fits("m", files_, torch.float16, big, "cuda", small)
    assert offloaded.placement == memory.OFFLOAD and offloaded.need_mb == pytest.approx(need)
    assert "model CPU offload" in offloaded.note("m") and memory.Fit(need).note("m") == ""
    with pytest.raises(StudioError) as refused:
        memory.check_fits("m", files_, torch.float16, small, "cuda", small)
    assert "too little even to offload" in str(refused.value) and "\n" not in str(refused.value)
    # A CPU run never looks at a GPU figure: RAM alone decides, as before.
    assert memory.check_fits("m", files_, torch.float32, big, "cpu", small).placement == memory.WHOLE
    with pytest.raises(StudioError):
        memory.check_fits("m", files_, torch.float32, small, "cpu", big)


def test_an_offloaded_model_runs_through_diffusers_offload_and_says_so(files, tmp_path, monkeypatch):
    """No GPU here: a backend placed on 'cuda' by made-up figures calls enable_model_cpu_offload instead of
    moving the pipeline, and each result's notes say so."""
    from diffusers import FluxPipeline

    models = models_file(tmp_path, {BASE_ID: {"path": str(files["base"])},
                                    GGUF_ID: {"path": str(files["gguf"]), "base": BASE_ID}})
    offloading = DiffusionBackend(ModelCache(4096), load_catalog(models), device="cpu", offline=True)
    offloading.free_gpu_mb = lambda: 0.01
    offloaded: list[str] = []
    monkeypatch.setattr(FluxPipeline, "enable_model_cpu_offload",
                        lambda self, device=None, **_: offloaded.append(str(device)))
    import torch

    fit = memory.check_fits("Tiny", [files["gguf"]], torch.float32, offloading.free_memory_mb, "cuda",
                            offloading.free_gpu_mb)
    model, _size = offloading._load_from(offloading.catalog.get(GGUF_ID), files["gguf"], torch.float32, "cpu",
                                         fit=fit)
    assert offloaded == ["cpu"] and "model CPU offload" in model.placement_note


def test_the_catalogue_offers_city96s_schnell_quantisations_with_their_base():
    from studio import hub
    from studio.errors import ModelUnavailable

    catalog = load_catalog(None)
    q4, q8 = catalog.get("flux1-schnell-gguf-Q4_K_S"), catalog.get("flux1-schnell-gguf-Q8_0")
    for entry, name in ((q4, "flux1-schnell-Q4_K_S.gguf"), (q8, "flux1-schnell-Q8_0.gguf")):
        assert entry.repo == "city96/FLUX.1-schnell-gguf" and entry.files == (name,)
        assert entry.base == SCHNELL and entry.licence == "Apache-2.0" and entry.commercial_use
    assert q4.size_mb < q8.size_mb < catalog.get(SCHNELL).size_mb / 2
    # Before it is downloaded, the Image tab already fits it as schnell.
    fitted = DiffusionBackend(ModelCache(64), catalog, device="cpu", offline=True).model_defaults(q4.id)
    assert (fitted.family.name, fitted.steps, fitted.guidance, fitted.size) == (families.FLUX, 4, 0.0, 1024)
    with pytest.raises(ModelUnavailable) as missing:
        hub.locate(q4, offline=True)
    assert "python -m studio download flux1-schnell-gguf-Q4_K_S" in str(missing.value)


def test_the_catalogue_offers_city96s_dev_quantisations_with_devs_licence_and_settings():
    from studio import hub
    from studio.errors import ModelUnavailable

    dev = "black-forest-labs/FLUX.1-dev"
    catalog = load_catalog(None)
    q4, q8 = catalog.get("flux1-dev-gguf-Q4_K_S"), catalog.get("flux1-dev-gguf-Q8_0")
    for entry, name in ((q4, "flux1-dev-Q4_K_S.gguf"), (q8, "flux1-dev-Q8_0.gguf")):
        assert entry.repo == "city96/FLUX.1-dev-gguf" and entry.files == (name,) and entry.base == dev
        # [dev]'s non-commercial licence goes with its quantisations, said as for [dev] itself.
        assert entry.licence == catalog.get(dev).licence == "FLUX.1 [dev] Non-Commercial License"
        assert not entry.commercial_use and "gated" in entry.description
    assert q4.size_mb < q8.size_mb < catalog.get(dev).size_mb / 2
    assert (q4.size_mb, q8.size_mb) == (6810, 12700)  # city96's listed sizes: 6.81 GB and 12.7 GB
    # Before it is downloaded, the Image tab fits it as [dev]: 28 steps at distilled guidance 3.5.
    fitted = DiffusionBackend(ModelCache(64), catalog, device="cpu", offline=True).model_defaults(q8.id)
    assert (fitted.family.name, fitted.family.guidance, fitted.steps, fitted.guidance, fitted.size) == (
        families.FLUX, "distilled", 28, 3.5, 1024)
    with pytest.raises(ModelUnavailable) as missing:
        hub.locate(q8, offline=True)
    assert "python -m studio download flux1-dev-gguf-Q8_0" in str(missing.value)


def test_original_layout_names_are_told_apart_from_the_header(tmp_path):
    """city96's files keep Black Forest Labs' names: FLUX, and dev (a guidance input) or schnell."""
    import gguf

    for name, guidance in (("schnell", False), ("dev", True)):
        writer = gguf.GGUFWriter(str(tmp_path / f"{name}.gguf"), arch="flux")
        names = ["double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight", "img_in.weight"]
        for tensor in names + (["guidance_in.in_layer.weight"] if guidance else []):
            writer.add_tensor(tensor, np.zeros((4, 32), dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        header = gguf_header(tmp_path / f"{name}.gguf")
        assert inspect_checkpoint(tmp_path / f"{name}.gguf").family == FLUX
        assert base_model(header, FLUX) == ("black-forest-labs/FLUX.1-dev" if guidance else SCHNELL)


def test_a_gguf_llm_in_the_unet_folder_is_not_offered(tmp_path):
    import gguf

    writer = gguf.GGUFWriter(str(tmp_path / "smollm.gguf"), arch="llama")
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((4, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    found = inspect_checkpoint(tmp_path / "smollm.gguf")
    assert found.problem == "smollm.gguf is not a FLUX or SD 3.x transformer (the only GGUF image models the studio " \
                            "loads)"
    with pytest.raises(StudioError):
        path_entry(tmp_path / "smollm.gguf", set())


def test_the_terminal_runs_a_gguf_file_with_a_base_model(files, tmp_path, capsys):
    from studio.cli.main import main

    models = models_file(tmp_path / "catalogue", {BASE_ID: {"path": str(files["base"])}})
    common = ["--data-dir", str(tmp_path / "data"), "--models-file", str(models), "--offline"]
    options = ["--seed", "7", "--steps", "1", "--size", "256x256", "--decoder", "full", "--no-gallery"]
    out = tmp_path / "q8.png"
    code = main([*common, "image", "a red cat", *options, "--model", str(files["gguf"]), "--base-model", BASE_ID,
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert np.asarray(Image.open(out)).shape == (256, 256, 3)
    capsys.readouterr()
    for args, words in ((("--model", str(files["gguf"])), "come from black-forest-labs/FLUX.1-schnell"),
                        (("--model", str(files["gguf"]), "--base-model", "nope"), "--base-model nope: not in"),
                        (("--model", BASE_ID, "--base-model", BASE_ID), "goes with a transformer file")):
        code = main([*common, "image", "a red cat", *options, *args, "--out", str(tmp_path / "x.png")])
        error = capsys.readouterr().err
        assert code == 2 and words in error, error
        assert len(error.strip().splitlines()) == 1 and "Traceback" not in error
