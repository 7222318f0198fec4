"""The studio's melody VAE (PyTorch), in the spirit of MusicVAE's two-bar melody model.

A segment (two bars, or one long bar; see studio/media/melody_grid.py) is one class per
sixteenth: a pitch, HOLD or REST. The encoder, a bidirectional GRU, reads it into a Gaussian
latent (mean and log-variance); the decoder, a GRU conditioned on the latent at every step,
writes it back one sixteenth at a time. Decoding is greedy (argmax), so one latent always
gives the same melody, and never offers HOLD where nothing sounds: its output is a canonical
grid, whose bars are complete by construction.

Training lives in training/train_melody_vae.py; the weights ship as safetensors + config.json.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from studio.media import melody_grid as grid
from studio.media.melody_tokens import METERS


@dataclass(frozen=True)
class VAEConfig:
    classes: int = grid.CLASSES
    steps: int = grid.SEGMENT_STEPS
    meters: int = len(METERS)
    latent: int = 64
    embed: int = 32
    encoder_hidden: int = 128
    decoder_hidden: int = 192
    decoder_layers: int = 1
    # The grid this model was trained on: a loaded model refuses a different one.
    lowest_pitch: int = grid.LOWEST
    highest_pitch: int = grid.HIGHEST
    step_ticks: int = grid.STEP_TICKS

    @staticmethod
    def load(path: Path) -> VAEConfig:
        return VAEConfig(**json.loads(Path(path).read_text()))

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1) + "\n")

    def matches_grid(self) -> bool:
        return (self.classes, self.steps, self.lowest_pitch, self.highest_pitch, self.step_ticks) == (
            grid.CLASSES, grid.SEGMENT_STEPS, grid.LOWEST, grid.HIGHEST, grid.STEP_TICKS)


class MelodyVAE(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = c = config
        self.class_embed = nn.Embedding(c.classes, c.embed)
        self.meter_embed = nn.Embedding(c.meters, c.embed)
        self.position_embed = nn.Embedding(c.steps, c.embed)
        self.encoder = nn.GRU(c.embed, c.encoder_hidden, batch_first=True, bidirectional=True)
        self.to_latent = nn.Linear(2 * c.encoder_hidden, 2 * c.latent)
        self.to_state = nn.Linear(c.latent, c.decoder_layers * c.decoder_hidden)
        self.decoder = nn.GRU(c.embed + c.latent, c.decoder_hidden, num_layers=c.decoder_layers, batch_first=True)
        self.to_classes = nn.Linear(c.decoder_hidden, c.classes)

    def _context(self, meters: torch.Tensor) -> torch.Tensor:
        """Metre and position, added to every step's input: [B, T, E]."""
        positions = torch.arange(self.config.steps, device=meters.device)
        return self.meter_embed(meters)[:, None, :] + self.position_embed(positions)[None, :, :]

    def encode(self, classes: torch.Tensor, meters: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Segments [B, T] -> (mean, log-variance), each [B, latent]."""
        x = self.class_embed(classes) + self._context(meters)
        _, final = self.encoder(x)  # [2, B, H]: the forward and backward summaries
        stats = self.to_latent(torch.cat([final[0], final[1]], dim=-1))
        mean, log_var = stats.chunk(2, dim=-1)
        return mean, log_var.clamp(-12.0, 6.0)

    def _initial_state(self, z: torch.Tensor) -> torch.Tensor:
        c = self.config
        return torch.tanh(self.to_state(z)).view(z.shape[0], c.decoder_layers, c.decoder_hidden).transpose(0, 1)

    @staticmethod
    def previous_classes(classes: torch.Tensor, sounding: torch.Tensor) -> torch.Tensor:
        """The decoder's input at each step: the class before it (HOLD or REST before step 0,
        telling it whether a note is sounding into the segment)."""
        first = torch.where(sounding, grid.HOLD, grid.REST).to(classes.dtype)[:, None]
        return torch.cat([first, classes[:, :-1]], dim=1)

    def decode_logits(self, z: torch.Tensor, meters: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits [B, T, classes], given each step's previous class."""
        x = self.class_embed(previous) + self._context(meters)
        x = torch.cat([x, z[:, None, :].expand(-1, x.shape[1], -1)], dim=-1)
        out, _ = self.decoder(x, self._initial_state(z))
        return self.to_classes(out)

    @torch.no_grad()
    def greedy(self, z: torch.Tensor, meters: torch.Tensor, lengths: torch.Tensor, sounding: torch.Tensor) -> torch.Tensor:
        """The likeliest class at each step in turn, [B, T]; PAD after each segment's length.
        HOLD is offered only while a note sounds, so the output is canonical."""
        batch, steps = z.shape[0], self.config.steps
        context = self._context(meters)
        state = self._initial_state(z)
        previous = torch.where(sounding, grid.HOLD, grid.REST).long()
        now_sounding = sounding.clone()
        out = torch.full((batch, steps), grid.PAD, dtype=torch.long)
        for t in range(steps):
            x = torch.cat([self.class_embed(previous) + context[:, t], z], dim=-1)[:, None, :]
            y, state = self.decoder(x, state)
            logits = self.to_classes(y[:, 0]).float()
            logits[:, grid.PAD] = float("-inf")
            logits[:, grid.HOLD] = torch.where(now_sounding, logits[:, grid.HOLD], torch.tensor(float("-inf")))
            chosen = logits.argmax(dim=-1)
            active = t < lengths
            chosen = torch.where(active, chosen, torch.full_like(chosen, grid.PAD))
            out[:, t] = chosen
            now_sounding = torch.where(active, chosen != grid.REST, now_sounding)
            previous = torch.where(active, chosen, previous)
        return out


def load_vae(folder: Path) -> MelodyVAE:
    """The shipped VAE from `folder` (config.json + model.safetensors), ready for inference on the CPU."""
    from safetensors.torch import load_file

    config = VAEConfig.load(folder / "config.json")
    model = MelodyVAE(config)
    model.load_state_dict(load_file(folder / "model.safetensors", device="cpu"))
    model.eval()
    return model
