"""Tiny random-weight stand-ins for the hub models the studio loads.

Each builder writes a folder laid out like the real hub repository (config files, tokenizer files and
``.safetensors`` weights only), so code under test goes through the real ``from_pretrained`` path.
Tokenizers are made here from a handful of words; nothing is downloaded. Weights are random but
seeded, so every build is the same.
"""

from __future__ import annotations

import json
from pathlib import Path

# A few words the tiny tokenizers know as whole tokens; anything else falls back to smaller pieces.
_WORD_TEXT = (
    "a an the of on in with and at by to is for photo painting portrait drawing sketch cat dog horse bird "
    "astronaut riding beach mountain mountains lake forest city street night sunset sky clouds red blue "
    "green yellow watercolor oil digital art style happy sad calm tune melody piano guitar drums beat "
    "slow fast song music blurry low high quality ugly detailed hello world you are helpful assistant "
    "write short poem story about tell me system user"
)
WORDS = tuple(_WORD_TEXT.split())

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant.<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _seed(seed: int = 0) -> None:
    """Seed torch's global generator so random weights come out the same on every build."""
    import torch

    torch.manual_seed(seed)


def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for raw bytes (the GPT-2 / CLIP mapping)."""
    kept = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    kept += list(range(ord("®"), ord("ÿ") + 1))
    chars = {b: chr(b) for b in kept}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def _clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP-style byte-level BPE vocabulary: all bytes, bytes ending a word, and merges for WORDS."""
    alphabet = _byte_alphabet()
    tokens = alphabet + [c + "</w>" for c in alphabet]
    merges: list[tuple[str, str]] = []
    for word in WORDS:
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        current = symbols[0]
        for symbol in symbols[1:]:
            if (current, symbol) not in merges:
                merges.append((current, symbol))
            current += symbol
            if current not in tokens:
                tokens.append(current)
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges



def _tiny_vae(scaling_factor: float):
    """A tiny AutoencoderKL with the real one's 8x downscale and 4 latent channels."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        norm_num_groups=8,
        latent_channels=4,
        sample_size=64,
        scaling_factor=scaling_factor,
    )

def build_tiny_sd(path: Path, like_sd15: bool = False) -> Path:
    """Save a tiny ``StableDiffusionPipeline`` laid out like ``stabilityai/sd-turbo``.

    64x64 images map to 4x8x8 latents (VAE scale factor 8, like the real one); the scheduler is
    Euler with trailing timestep spacing, as sd-turbo ships it, so one step works. `like_sd15` builds
    SD 1.5's architecture instead of SD 2.x's: 1x1-convolution attention projections (no linear ones)
    and CLIP's quick-GELU text encoder.
    """
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    path = Path(path)
    _seed()
    vocab, merges = _clip_vocab_and_merges()
    # Hub layout of sd-turbo's tokenizer folder: vocab.json + merges.txt (+ tokenizer.json, written on save).
    tokenizer_dir = path / "tokenizer"
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    (tokenizer_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_text = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    (tokenizer_dir / "merges.txt").write_text(merges_text, encoding="utf-8")
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir, model_max_length=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            projection_dim=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            hidden_act="quick_gelu" if like_sd15 else "gelu",
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=32,
        attention_head_dim=8,
        use_linear_projection=not like_sd15,
    )
    vae = _tiny_vae(scaling_factor=0.18215)
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        interpolation_type="linear",
        use_karras_sigmas=False,
        timestep_spacing="trailing",
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def build_tiny_sdxl(path: Path) -> Path:
    """Save a tiny ``StableDiffusionXLPipeline`` laid out like ``stabilityai/sdxl-turbo``: two CLIP text
    encoders (the second projecting, its pooled output conditioning the UNet with the size and crop
    ids), the second tokenizer padding with "!" as SDXL's does."""
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    path = Path(path)
    _seed()
    vocab, merges = _clip_vocab_and_merges()
    tokenizers = []
    for name, pad in (("tokenizer", "<|endoftext|>"), ("tokenizer_2", "!")):
        folder = path / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
        tokenizers.append(CLIPTokenizer.from_pretrained(folder, model_max_length=77, pad_token=pad))

    def text_config(tokenizer) -> CLIPTextConfig:
        return CLIPTextConfig(
            vocab_size=len(vocab), hidden_size=32, intermediate_size=64, projection_dim=32, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=77, hidden_act="gelu",
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )

    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=64,  # both encoders' hidden states side by side
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 32,  # six size/crop ids + the pooled text embedding
    )
    vae = _tiny_vae(scaling_factor=0.13025)
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="trailing",
        steps_offset=1,
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(text_config(tokenizers[0])),
        text_encoder_2=CLIPTextModelWithProjection(text_config(tokenizers[1])),
        tokenizer=tokenizers[0],
        tokenizer_2=tokenizers[1],
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
    )
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def build_tiny_taesd(path: Path) -> Path:
    """Save a tiny ``AutoencoderTiny`` laid out like ``madebyollin/taesd`` (4 latent channels, 8x upscale)."""
    from diffusers import AutoencoderTiny

    path = Path(path)
    _seed()
    vae = AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=4,
    )
    vae.save_pretrained(path, safe_serialization=True)
    return path


def _byte_level_bpe(special_tokens: list[str], vocab_size: int):
    """Train a small byte-level BPE ``tokenizers.Tokenizer`` on sentences made of WORDS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    sentences = [" ".join(WORDS[i : i + 7]) for i in range(0, len(WORDS), 3)]
    tok.train_from_iterator(sentences * 4, trainer=trainer)
    return tok


def build_tiny_causal_lm(path: Path) -> Path:
    """Save a tiny ``LlamaForCausalLM`` with a ChatML tokenizer, laid out like SmolLM2-Instruct."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    _seed()
    backend = _byte_level_bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>"], vocab_size=400)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def _t5_tokenizer():
    """A T5-style (Unigram, ``▁`` word marker) tokenizer over single characters and WORDS."""
    from transformers import T5Tokenizer

    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    chars = [chr(c) for c in range(ord("!"), ord("~") + 1)]
    pieces += [(c, -10.0) for c in chars] + [("▁" + c, -9.0) for c in chars]
    pieces += [("▁" + word, -3.0) for word in WORDS if len(word) > 1]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=512)


def build_tiny_musicgen(path: Path) -> Path:
    """Save a tiny ``MusicgenForConditionalGeneration`` plus its ``MusicgenProcessor``.

    Same layout as ``facebook/musicgen-small``: a T5 text encoder, an EnCodec audio codec and the
    MusicGen decoder (2 codebooks of 64 codes, 8 kHz audio, 16 samples per frame).
    """
    from transformers import (
        EncodecConfig,
        EncodecFeatureExtractor,
        GenerationConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
        T5Config,
    )

    path = Path(path)
    _seed()
    tokenizer = _t5_tokenizer()
    sampling_rate = 8000
    codebook_size = 64
    num_codebooks = 2
    text_config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    audio_config = EncodecConfig(
        sampling_rate=sampling_rate,
        audio_channels=1,
        hidden_size=16,
        num_filters=4,
        num_residual_layers=1,
        upsampling_ratios=[4, 4],
        num_lstm_layers=1,
        codebook_size=codebook_size,
        # bandwidth = codebooks * frame rate * bits per code: 2 * 500 * 6 = 6 kbps.
        target_bandwidths=[6.0],
        use_causal_conv=False,
    )
    assert audio_config.num_quantizers == num_codebooks
    decoder_config = MusicgenDecoderConfig(
        vocab_size=codebook_size,
        max_position_embeddings=256,
        num_hidden_layers=2,
        ffn_dim=64,
        num_attention_heads=4,
        hidden_size=32,
        num_codebooks=num_codebooks,
        audio_channels=1,
        pad_token_id=codebook_size,
        bos_token_id=codebook_size,
    )
    config = MusicgenConfig(text_encoder=text_config, audio_encoder=audio_config, decoder=decoder_config)
    model = MusicgenForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=codebook_size,
        bos_token_id=codebook_size,
        pad_token_id=codebook_size,
        do_sample=True,
        guidance_scale=3.0,
        max_length=64,
    )
    model.save_pretrained(path, safe_serialization=True)
    feature_extractor = EncodecFeatureExtractor(
        feature_size=1, sampling_rate=sampling_rate, padding_value=0.0
    )
    MusicgenProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(path)
    return path


def build_tiny_lcm_lora(pipeline_path: Path, target: Path, seed: int = 0, rank: int = 4) -> Path:
    """A LoRA shaped like the latent-consistency LCM-LoRAs, for the tiny pipeline at `pipeline_path`: kohya
    names on the UNet alone (none on the text encoders), on every attention and feed-forward linear, the
    transformers' input/output projections (1x1 convolutions on SD 1.5, linears on SDXL) and the resnets'
    convolutions and time embeddings. Random weights, large enough to change every picture."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    unet = UNet2DConditionModel.from_pretrained(Path(pipeline_path) / "unet")
    generator = torch.Generator().manual_seed(seed)
    weights: dict[str, torch.Tensor] = {}
    for name, layer in unet.named_modules():
        if "attentions" not in name and "resnets" not in name:
            continue
        key = "lora_unet_" + name.replace(".", "_")
        if isinstance(layer, torch.nn.Linear):
            down = torch.randn(rank, layer.in_features, generator=generator)
            up = torch.randn(layer.out_features, rank, generator=generator)
        elif isinstance(layer, torch.nn.Conv2d) and layer.kernel_size in ((1, 1), (3, 3)):
            down = torch.randn(rank, layer.in_channels, *layer.kernel_size, generator=generator)
            up = torch.randn(layer.out_channels, rank, 1, 1, generator=generator)
        else:
            continue
        weights[f"{key}.lora_down.weight"] = down * 0.3
        weights[f"{key}.lora_up.weight"] = up * 0.3
        weights[f"{key}.alpha"] = torch.tensor(float(rank))
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(weights, target)
    return target
