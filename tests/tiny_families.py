"""Tiny random-weight Stable Diffusion 3 and FLUX.1 pipelines, saved as their hub repositories are.

Their real classes with small configs: CLIP text encoders from the same tiny vocabulary as the SD
stand-ins, a tiny T5 encoder with a local tokenizer, a rectified-flow transformer and a 16-channel
AutoencoderKL with the real 8x downscale. Weights are random but seeded, so every build is the same.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.tiny_models import _clip_vocab_and_merges, _seed, _t5_tokenizer


def _clip_tokenizer(folder: Path, pad: str = "<|endoftext|>"):
    from transformers import CLIPTokenizer

    vocab, merges = _clip_vocab_and_merges()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    return CLIPTokenizer.from_pretrained(folder, model_max_length=77, pad_token=pad)


def _clip_config(tokenizer, hidden: int = 32):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, projection_dim=hidden,
        num_hidden_layers=1, num_attention_heads=4, max_position_embeddings=77, hidden_act="gelu",
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )


def _t5_encoder(tokenizer, d_model: int = 32):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_kv=8, d_ff=2 * d_model, num_layers=1, num_heads=4,
        relative_attention_num_buckets=8, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    ))


def _flow_vae(scaling_factor: float, shift_factor: float):
    """A tiny 16-channel AutoencoderKL, as SD3's and FLUX's (no quant convs, a shift and a scale)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=8, latent_channels=16,
        sample_size=64, scaling_factor=scaling_factor, shift_factor=shift_factor,
        use_quant_conv=False, use_post_quant_conv=False,
    )


def build_tiny_sd3(path: Path) -> Path:
    """Save a tiny ``StableDiffusion3Pipeline`` laid out like ``stabilityai/stable-diffusion-3.5-medium``:
    two projecting CLIP encoders and a T5 encoder, an MMDiT transformer trained at 64 px here."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    path = Path(path)
    _seed()
    tokenizer = _clip_tokenizer(path / "tokenizer")
    tokenizer_2 = _clip_tokenizer(path / "tokenizer_2", pad="!")
    tokenizer_3 = _t5_tokenizer()
    transformer = SD3Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=16, out_channels=16, num_layers=2, attention_head_dim=8,
        num_attention_heads=2, joint_attention_dim=32, caption_projection_dim=16, pooled_projection_dim=64,
        pos_embed_max_size=16,
    )
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
        vae=_flow_vae(scaling_factor=1.5305, shift_factor=0.0609),
        text_encoder=CLIPTextModelWithProjection(_clip_config(tokenizer)),
        tokenizer=tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(_clip_config(tokenizer_2)),
        tokenizer_2=tokenizer_2,
        text_encoder_3=_t5_encoder(tokenizer_3),
        tokenizer_3=tokenizer_3,
    )
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def build_tiny_flux(path: Path, guidance_embeds: bool = False) -> Path:
    """Save a tiny ``FluxPipeline`` laid out like ``black-forest-labs/FLUX.1-schnell`` (no guidance input,
    a fixed shift), or with `guidance_embeds` like FLUX.1-dev (distilled guidance, resolution-dependent shift)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    path = Path(path)
    _seed()
    tokenizer = _clip_tokenizer(path / "tokenizer")
    tokenizer_2 = _t5_tokenizer()
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=guidance_embeds,
        axes_dims_rope=(4, 4, 8),
    )
    if guidance_embeds:
        scheduler = FlowMatchEulerDiscreteScheduler(
            num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
            base_image_seq_len=256, max_image_seq_len=4096,
        )
    else:
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    pipe = FluxPipeline(
        transformer=transformer,
        scheduler=scheduler,
        vae=_flow_vae(scaling_factor=0.3611, shift_factor=0.1159),
        text_encoder=CLIPTextModel(_clip_config(tokenizer)),
        tokenizer=tokenizer,
        text_encoder_2=_t5_encoder(tokenizer_2),
        tokenizer_2=tokenizer_2,
    )
    pipe.save_pretrained(path, safe_serialization=True)
    return path
