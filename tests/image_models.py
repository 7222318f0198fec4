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
