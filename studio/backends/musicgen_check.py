"""How close a faster MusicGen path stays to the float32 one: the guided logits of the first audio frames.

Both models read the same token history (sampled by the float32 model from the prompt), so the figures
measure the arithmetic alone, not two runs drifting apart once one token differs. Used by
benchmarks/musicgen_speed.py and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Agreement:
    steps: int
    cosine_min: float  # over every (step, codebook) logit vector
    cosine_mean: float
    top1: float  # share of (step, codebook) pairs whose most likely code is the same

    def line(self) -> str:
        return (f"first {self.steps} steps vs float32: cosine min {self.cosine_min:.4f} mean {self.cosine_mean:.4f}, "
                f"top-1 agreement {self.top1:.1%}")


def history(exact, inputs, steps: int, guidance: float, seed: int = 0):
    """The decoder's input ids (codebooks, steps + 1, delay pattern applied) of a seeded sampled run."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    class Keep(LogitsProcessor):
        ids = None

        def __call__(self, input_ids, scores):
            Keep.ids = input_ids
            return scores

    torch.manual_seed(seed)
    exact.generate(**inputs, do_sample=True, guidance_scale=guidance, max_new_tokens=steps + 1,
                   logits_processor=LogitsProcessorList([Keep()]))
    _, mask = exact.decoder.build_delay_pattern_mask(Keep.ids[:, :1], exact.generation_config.pad_token_id,
                                                     max_length=Keep.ids.shape[-1])
    return exact.decoder.apply_delay_pattern_mask(Keep.ids, mask)


def guided_logits(model, inputs, ids, guidance: float):
    """Logits (codebooks * positions, vocab) after classifier-free guidance, one forward over `ids`."""
    import torch

    text = model.text_encoder(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    states = text.last_hidden_state
    encoded = torch.cat([states, torch.zeros_like(states)])
    mask = torch.cat([inputs["attention_mask"], torch.zeros_like(inputs["attention_mask"])])
    logits = model(encoder_outputs=(encoded,), attention_mask=mask, decoder_input_ids=ids.repeat(2, 1)).logits
    cond, uncond = logits.float().split(ids.shape[0])
    return (uncond + (cond - uncond) * guidance).reshape(-1, logits.shape[-1])


def agreement(exact, fast, processor, prompt: str, steps: int = 16, guidance: float = 3.0) -> Agreement:
    """`fast`'s guided logits against `exact`'s over the first `steps` frames of one prompt."""
    import torch

    inputs = processor(text=[prompt], padding=True, return_tensors="pt")
    with torch.inference_mode():
        ids = history(exact, inputs, steps, guidance)
        a = guided_logits(exact, inputs, ids, guidance)
        b = guided_logits(fast, inputs, ids, guidance)
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    top1 = (a.argmax(-1) == b.argmax(-1)).float().mean()
    return Agreement(steps, float(cosine.min()), float(cosine.mean()), float(top1))
