"""Saying how long a step will take on a CPU: the catalogue's timed figures scaled to the size, guidance, batch and
cores asked for, in the Image tab's note and progress text and in one line before a long run at the terminal;
nothing for a model without a timed figure (a person's own files, the tests' tiny models) or on a GPU."""

from __future__ import annotations

import re
import shutil
from types import SimpleNamespace

import pytest

from studio.backends.diffusion import DiffusionBackend, step_time
from studio.backends.diffusion.step_time import duration, estimate, passes_per_picture
from studio.catalog import FLUX_STEP, SD35_MEDIUM_STEP, SD_UNET_STEP, load_catalog
from studio.runtime import ModelCache
from tests.tiny_families import build_tiny_flux

SCHNELL = "black-forest-labs/FLUX.1-schnell"
DEV = "black-forest-labs/FLUX.1-dev"
MEDIUM = "stabilityai/stable-diffusion-3.5-medium"
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def backend(tmp_path_factory) -> DiffusionBackend:
    """The catalogue alone, on the CPU, nothing downloaded."""
    return DiffusionBackend(ModelCache(64), load_catalog(None), device="cpu", offline=True)


def test_the_figures_are_the_benchmarks_own_at_their_own_size_guidance_and_cores():
    """At the size, passes and cores it was timed at, a figure comes back as the benchmark printed it."""
    assert estimate(FLUX_STEP, 512, 512, 4, 1, 2).seconds == pytest.approx(140.0)
    assert estimate(SD35_MEDIUM_STEP, 512, 512, 40, 2, 2).seconds == pytest.approx(59.4)
    assert estimate(SD_UNET_STEP, 512, 512, 1, 1, 2).seconds == pytest.approx(5.30)
    assert "flow_step.py" in FLUX_STEP.source and "extrapolated" in FLUX_STEP.what and FLUX_STEP.bf16


def test_a_step_scales_with_pixels_passes_pictures_and_cores_and_the_total_with_steps_and_batches():
    one = estimate(FLUX_STEP, 512, 512, 4, 1, 2)
    assert estimate(FLUX_STEP, 1024, 1024, 4, 1, 2).seconds == pytest.approx(4 * one.seconds)  # 4x the pixels
    assert estimate(FLUX_STEP, 1024, 512, 4, 1, 2).seconds == pytest.approx(2 * one.seconds)
    assert estimate(FLUX_STEP, 512, 512, 4, 1, 8).seconds == pytest.approx(one.seconds / 4)  # 4x the cores
    assert estimate(FLUX_STEP, 512, 512, 4, 1, 1).seconds == pytest.approx(2 * one.seconds)
    assert estimate(FLUX_STEP, 512, 512, 4, 2, 2).seconds == pytest.approx(2 * one.seconds)  # CFG's two passes
    assert estimate(FLUX_STEP, 512, 512, 4, 1, 2, pictures=3).seconds == pytest.approx(3 * one.seconds)
    assert one.total == pytest.approx(4 * 140.0)
    assert estimate(FLUX_STEP, 512, 512, 28, 1, 2, batches=2).total == pytest.approx(2 * 28 * 140.0)
    # Timed with CFG (batch 2): a guidance-free step of the same model is half of it.
    assert estimate(SD35_MEDIUM_STEP, 512, 512, 4, 1, 2).seconds == pytest.approx(59.4 / 2)
    with pytest.raises(ValueError):
        estimate(FLUX_STEP, 0, 512, 4, 1, 2)


def test_guidance_doubles_the_passes_only_where_it_is_classifier_free():
    assert passes_per_picture("cfg", 7.0) == 2
    assert passes_per_picture("cfg", 1.0) == 1  # diffusers runs CFG only above 1
    assert passes_per_picture("distilled", 3.5) == 1  # FLUX.1-dev: an input of the model, one pass
    assert passes_per_picture("none", 0.0) == 1


def test_durations_read_as_a_person_says_them():
    assert [duration(s) for s in (4.24, 59.4, 140, 560, 3920, 5400)] == ["4.2 s", "59 s", "2.3 min", "9.3 min",
                                                                        "65 min", "1.5 h"]


def test_the_sentence_says_it_is_an_estimate_and_where_it_was_timed():
    told = estimate(FLUX_STEP, 512, 512, 4, 1, 2)
    text = told.sentence()
    assert text.startswith("Estimate: on this CPU a step takes about 2.3 min at 512×512, so 4 steps ≈ 9.3 min.")
    assert "2-core AMD EPYC" in text and "benchmarks/flow_step.py" in text and "this machine's 2 cores" in text
    assert "no native bf16" not in text
    assert "no native bf16" in estimate(FLUX_STEP, 512, 512, 4, 1, 2, native_bf16=False).sentence()
    assert "no native bf16" not in estimate(SD_UNET_STEP, 512, 512, 4, 1, 2, native_bf16=False).sentence()  # fp32
    batched = estimate(FLUX_STEP, 512, 512, 4, 1, 2, pictures=2, batches=3).sentence()
    assert "for 2 pictures at once" in batched and "3 batches ≈ 56 min" in batched


def test_the_backend_scales_each_catalogue_models_figure_to_this_machines_threads(backend):
    import torch

    threads = torch.get_num_threads()
    schnell = backend.step_estimate(SCHNELL, 512, 512, 4, 0.0)
    assert schnell.seconds == pytest.approx(140.0 * 2 / threads) and schnell.threads == threads
    # FLUX.1-dev's distilled guidance is one pass: the same step as schnell's; its 28 steps 7x the time.
    assert backend.step_estimate(DEV, 512, 512, 28, 3.5).total == pytest.approx(7 * schnell.total)
    # SD 3.5 Medium was timed with guidance (two passes); guidance 1 or less runs one.
    assert backend.step_estimate(MEDIUM, 512, 512, 40, 4.5).seconds == pytest.approx(59.4 * 2 / threads)
    assert backend.step_estimate(MEDIUM, 512, 512, 40, 1.0).seconds == pytest.approx(59.4 / threads)
    # SD 1.5 at its CFG 7 runs SD-Turbo's UNet step twice; the GGUF quantisations carry FLUX's figure, said so.
    assert backend.step_estimate(SD15, 512, 512, 25, 7.0).seconds == pytest.approx(2 * 5.30 * 2 / threads)
    gguf = backend.step_estimate("flux1-schnell-gguf-Q4_K_S", 512, 512, 4, 0.0)
    assert gguf.seconds == pytest.approx(schnell.seconds) and "dequantises" in gguf.sentence()
    # No figure timed for SDXL: nothing is said rather than a guess.
    assert backend.step_estimate("stabilityai/sdxl-turbo", 512, 512, 1, 0.0) is None


def test_nothing_is_said_on_a_gpu_or_for_a_persons_own_model(backend, tmp_path, tiny_sd_path, monkeypatch):
    models = tmp_path / "models.toml"
    models.write_text(f'[[model]]\nid = "tiny"\nfamily = "diffusers"\ntasks = ["txt2img"]\npath = "{tiny_sd_path}"\n',
                      encoding="utf-8")
    own = DiffusionBackend(ModelCache(64), load_catalog(models), device="cpu", offline=True)
    assert own.step_estimate("tiny", 512, 512, 25, 7.0) is None  # its size is not known: no figure fits it
    monkeypatch.setattr(DiffusionBackend, "device", property(lambda self: "cuda"))
    assert backend.step_estimate(SCHNELL, 512, 512, 4, 0.0) is None  # timed on a CPU only


# -- the Image tab ----------------------------------------------------------------------------------

def test_the_image_tabs_note_follows_a_flow_model_and_its_size(backend):
    from studio.ui import image_family

    studio = SimpleNamespace(image=backend)  # all the handlers read
    threads = backend.step_estimate(SCHNELL, 512, 512, 4, 0.0).threads
    small = image_family.step_note(studio, SCHNELL, 512, 512, 4, 0, 1, 1)
    big = image_family.step_note(studio, SCHNELL, 1024, 1024, 4, 0, 1, 1)
    assert small["visible"] is True and big["visible"] is True
    assert small["value"].startswith(f"**Estimate: on this CPU a step takes about {duration(140.0 * 2 / threads)} "
                                     f"at 512×512, so 4 steps ≈ {duration(4 * 140.0 * 2 / threads)}.** Based on")
    assert f"about {duration(4 * 140.0 * 2 / threads)} at 1024×1024" in big["value"]
    medium = image_family.step_note(studio, MEDIUM, 1024, 1024, 40, 4.5, 1, 1)["value"]
    assert "SD 3.5 Medium's whole transformer" in medium and "40 steps" in medium
    # A model without a figure, a name not in the catalogue and a field the run will refuse: the note hides.
    for values in (("stabilityai/sdxl-turbo", 512, 512, 1, 0), ("nope", 512, 512, 4, 0), (SCHNELL, None, 512, 4, 0),
                   (SCHNELL, 512, 512, "x", 0)):
        assert image_family.step_note(studio, *values) == {"__type__": "update", "value": "", "visible": False}
    # The run's progress text carries the step's estimate.
    label = image_family.step_label(studio, "Text to image: step", SCHNELL, 512, 512, 4, 0.0)
    assert label == f"Text to image: step (about {duration(140.0 * 2 / threads)} each on this CPU, an estimate)"
    assert image_family.step_label(studio, "Text to image: step", "nope", 512, 512, 4, 0.0) == "Text to image: step"
    # With --ray the steps run on the cluster's machines: this CPU's estimate would mislead, so none.
    remote = SimpleNamespace(image=backend, cluster=object())
    assert image_family.step_note(remote, SCHNELL, 512, 512, 4, 0, 1, 1)["visible"] is False
    assert image_family.step_label(remote, "Text to image: step", SCHNELL, 512, 512, 4, 0.0) == "Text to image: step"


# -- the terminal -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def schnell_here(tmp_path_factory):
    """A tiny FLUX pipeline where the Hugging Face cache keeps FLUX.1-schnell: the catalogue's model (and its
    timed figure) with weights that run in a moment."""
    root = tmp_path_factory.mktemp("schnell-here")
    cache = root / "hf" / "hub"
    repo = cache / ("models--" + SCHNELL.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copytree(build_tiny_flux(root / "tiny"), repo / "snapshots" / COMMIT)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
        yield root


def test_the_terminal_says_a_long_cpu_runs_step_time_in_one_line_before_it(schnell_here, tmp_path, capsys,
                                                                           monkeypatch):
    import torch

    from studio.cli.main import main

    common = ["--data-dir", str(tmp_path / "data"), "--offline", "image", "a red cat", "--model", SCHNELL,
              "--seed", "7", "--decoder", "full", "--no-gallery"]
    code = main([*common, "--steps", "4", "--size", "256x256", "--out", str(tmp_path / "a.png")])
    err = capsys.readouterr().err
    assert code == 0, err
    step = 140.0 / 4 * 2 / torch.get_num_threads()  # a quarter of 512 px's pixels
    said = [line for line in err.splitlines() if "Estimate" in line]
    assert len(said) == 1 and said[0].startswith(
        f"note: Estimate: on this CPU a step takes about {duration(step)} at 256×256, so 4 steps ≈ "
        f"{duration(4 * step)}."), err
    assert "benchmarks/flow_step.py" in said[0]
    # A hires fix's second pass is said too: its steps at the bigger size.
    code = main([*common, "--steps", "1", "--size", "256x256", "--hires", "2", "--hires-steps", "2",
                 "--hires-upscaler", "Lanczos", "--out", str(tmp_path / "h.png")])
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if "Estimate" in line]
    assert code == 0 and len(said) == 1, err
    assert said[0].endswith(f"The hires fix's 2 more step(s) at 512×512 add about {duration(2 * 4 * step)}."), err
    # A run shorter than the bar is not worth a line (the bar raised past this run's 4 steps).
    monkeypatch.setattr(step_time, "WORTH_SAYING_SECONDS", 4 * step + 1)
    code = main([*common, "--steps", "4", "--size", "256x256", "--out", str(tmp_path / "b.png")])
    assert code == 0 and "Estimate" not in capsys.readouterr().err


def test_a_refused_run_says_only_its_error(schnell_here, tmp_path, capsys):
    from studio.cli.main import main

    code = main(["--data-dir", str(tmp_path / "data"), "--offline", "image", "a red cat", "--model", SCHNELL,
                 "--steps", "4", "--size", "264x256", "--out", str(tmp_path / "a.png")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Estimate" not in err, err
    assert re.search(r"multiple of 16", err), err


def test_no_estimate_for_the_tests_tiny_models_at_the_terminal(tmp_path, tiny_sd_path, capsys):
    from studio.cli.main import main

    models = tmp_path / "models.toml"
    models.write_text(f'[[model]]\nid = "tiny"\nfamily = "diffusers"\ntasks = ["txt2img"]\npath = "{tiny_sd_path}"\n',
                      encoding="utf-8")
    code = main(["--data-dir", str(tmp_path / "data"), "--models-file", str(models), "--offline", "image", "a cat",
                 "--model", "tiny", "--steps", "40", "--guidance", "7", "--size", "64x64", "--decoder", "full",
                 "--no-gallery", "--out", str(tmp_path / "a.png")])
    err = capsys.readouterr().err
    assert code == 0 and "Estimate" not in err, err
