"""Tiny random-weight Depth Anything and ViTPose models with their image processors, saved as the hub
repositories are (config.json, preprocessor_config.json, model.safetensors), and a Hugging Face cache
holding them under the catalogue's repository names."""

from __future__ import annotations

import shutil
from pathlib import Path

COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def build_tiny_depth_anything(target: Path, seed: int = 0) -> Path:
    """Depth Anything (a DINOv2 backbone, its DPT-like neck and head) a few kilobytes big, 56 px input."""
    import torch
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    torch.manual_seed(seed)
    backbone = Dinov2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                            patch_size=14, image_size=56, out_features=["stage1", "stage2"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16, neck_hidden_sizes=[8, 16],
                                 reassemble_factors=[2, 1], fusion_hidden_size=8, head_hidden_size=8)
    model = DepthAnythingForDepthEstimation(config)
    with torch.no_grad():  # initialised this small, the neck and head give a flat depth: strong enough to vary
        for layer in [*model.neck.modules(), *model.head.modules()]:
            if isinstance(layer, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
                layer.weight.normal_(0.0, 0.5)
        model.head.conv3.bias.fill_(1.0)  # the head ends in a ReLU: lifted, its output is not all zeros
    model.save_pretrained(target, safe_serialization=True)
    # As the real model's processor: keep the aspect, sides a multiple of the patch size.
    DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      do_pad=False, resample=3).save_pretrained(target)
    return target


def build_tiny_vitpose(target: Path, seed: int = 0) -> Path:
    """ViTPose (a ViT backbone and the simple heatmap decoder) for the 17 COCO keypoints, 64x48 px input."""
    import torch
    from transformers import (
        VitPoseBackboneConfig,
        VitPoseConfig,
        VitPoseForPoseEstimation,
        VitPoseImageProcessor,
    )

    torch.manual_seed(seed)
    backbone = VitPoseBackboneConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2,
                                     image_size=[64, 48], patch_size=[16, 16], out_indices=[2],
                                     out_features=["stage2"])
    config = VitPoseConfig(backbone_config=backbone, num_labels=17)
    VitPoseForPoseEstimation(config).save_pretrained(target, safe_serialization=True)
    VitPoseImageProcessor(size={"height": 64, "width": 48}).save_pretrained(target)
    return target


def hub_snapshot(hub: Path, repo: str, folder: Path) -> Path:
    """`folder`'s files where huggingface_hub keeps `repo`: models--owner--name/{refs/main, snapshots/<commit>}."""
    repo_dir = hub / ("models--" + repo.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    snapshot = repo_dir / "snapshots" / COMMIT
    shutil.copytree(folder, snapshot, dirs_exist_ok=True)
    return snapshot
