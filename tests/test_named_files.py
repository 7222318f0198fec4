"""The one folder scan LoRAs, embeddings and upscalers share: files by stem, pickles set apart."""

from __future__ import annotations

from studio.backends.named_files import scan_named_files

PICKLES = (".pt", ".pth", ".ckpt", ".bin")


def test_files_by_stem_the_first_folder_winning_and_pickles_apart(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "styles").mkdir(parents=True)
    second.mkdir()
    for path in (first / "ink.safetensors", first / "styles" / "water.SafeTensors", second / "ink.safetensors",
                 second / "oil.safetensors", second / "old.pth", first / "notes.txt", second / "ink.ckpt"):
        path.write_bytes(b"x")
    (second / "dir.safetensors").mkdir()  # a folder with a weights-like name is not a file

    usable, pickles = scan_named_files([first, tmp_path / "missing", second], ".safetensors", PICKLES)
    assert usable == {"ink": first / "ink.safetensors", "water": first / "styles" / "water.SafeTensors",
                      "oil": second / "oil.safetensors"}
    assert pickles == {"old": second / "old.pth", "ink": second / "ink.ckpt"}

    usable, pickles = scan_named_files([first, second], ".safetensors", PICKLES, skip={"ink", "old"})
    assert set(usable) == {"water", "oil"} and set(pickles) == set()
