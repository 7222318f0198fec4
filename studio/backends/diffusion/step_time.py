"""How long a sampler step will take on this CPU, said before a run: a model's step as a benchmark timed it
on the real-size architecture (its catalogue entry's `CpuStep`), scaled to the size, guidance, batch and
core count asked for. An estimate, and said as one: where and how the figure was got goes with it.

The model, deliberately rough:
- pixels: a denoiser's work grows with its latent pixels (tokens), so the step scales with width x height.
  Attention grows faster than that, so far above the timed size (512 px) it runs somewhat longer;
- passes: classifier-free guidance above 1 sends the prompt and the negative prompt through the denoiser
  together, twice the work of a guidance-free or distilled-guidance step; each picture of a batch is one more;
- cores: the work is shared among torch's threads, so the step scales with timed cores / cores here. More
  cores rarely help that fully (memory bandwidth), so on a bigger machine this is the hopeful end.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.catalog import CpuStep

# Below this a run is quick enough that the terminal need not be told beforehand.
WORTH_SAYING_SECONDS = 30.0


@dataclass(frozen=True)
class StepEstimate:
    figure: CpuStep
    width: int
    height: int
    steps: int
    seconds: float  # one step of one batch (all its pictures and guidance passes)
    pictures: int  # per batch (batch size)
    batches: int  # batch count
    threads: int  # torch's threads here
    caveat: str = ""  # what makes this machine slower than the scaling says

    @property
    def total(self) -> float:
        """All the steps of all the batches (loading, text encoders and decoding not counted)."""
        return self.seconds * self.steps * self.batches

    def headline(self) -> str:
        """How long a step and the run's steps will take, in plain words."""
        many = f" for {self.pictures} pictures at once" if self.pictures > 1 else ""
        text = (f"Estimate: on this CPU a step takes about {duration(self.seconds)} at {self.width}×{self.height}"
                f"{many}, so {self.steps} step{'s' if self.steps != 1 else ''} ≈ "
                f"{duration(self.seconds * self.steps)}")
        if self.batches > 1:
            text += f" and {self.batches} batches ≈ {duration(self.total)}"
        return text + "."

    def basis(self) -> str:
        """Where the figure comes from and how it was scaled (and what may make this machine slower)."""
        figure = self.figure
        text = (f"Based on {figure.what}, timed on {figure.cpu} at {figure.size}×{figure.size} ({figure.source}), "
                f"scaled to this size and this machine's {self.threads} core{'s' if self.threads != 1 else ''}.")
        return f"{text} {self.caveat}" if self.caveat else text

    def sentence(self) -> str:
        return f"{self.headline()} {self.basis()}"


def passes_per_picture(guidance_kind: str, guidance: float) -> int:
    """2 where classifier-free guidance runs (diffusers: guidance above 1 on a CFG model), else 1."""
    return 2 if guidance_kind == "cfg" and guidance > 1 else 1


def estimate(figure: CpuStep, width: int, height: int, steps: int, passes: int, threads: int, pictures: int = 1,
             batches: int = 1, native_bf16: bool = True) -> StepEstimate:
    """`figure` scaled to a step at width x height with `passes` denoiser passes per picture, `pictures` a
    batch, on `threads` cores (see the module's words on how rough this is)."""
    if min(width, height, steps, passes, threads, pictures, batches) < 1:
        raise ValueError("sizes, steps, passes, threads, pictures and batches must be at least 1")
    per_pass = figure.seconds / figure.passes
    pixels = (width * height) / (figure.size * figure.size)
    seconds = per_pass * passes * pictures * pixels * figure.threads / threads
    # Without native bf16 the studio computes in fp32 (compute_dtype): more bytes per step than was timed.
    caveat = ("This CPU has no native bf16, so the studio computes in fp32 here: expect it slower."
              if figure.bf16 and not native_bf16 else "")
    return StepEstimate(figure, width, height, steps, seconds, pictures, batches, threads, caveat)


def duration(seconds: float) -> str:
    """A duration as a person says it: 4.2 s, 59 s, 2.3 min, 40 min, 1.5 h."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 10:
        return f"{minutes:.1f} min"
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h"


def torch_threads() -> int:
    """The threads torch shares a step among here (by default this machine's physical cores)."""
    import torch

    return max(1, torch.get_num_threads())
