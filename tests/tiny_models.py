"""Tiny random-weight models built from configs with local tokenizers, saved with save_pretrained.

They are loaded by autolabel through exactly the code path a hub id takes (AutoProcessor / Auto*Model
.from_pretrained on a directory). Built the way transformers tests its own models; see
../shared/recipes for the gotchas (Grounding DINO special-token ids, decoder_layers >= 2).
"""

from __future__ import annotations

import os
from pathlib import Path

GDINO_WORDS = ["a", "an", "the", "cat", "dog", "person", "car", "red", "blue", "green", "box", "ball", "traffic",
               "light", "bird", "tree", "##s", "of", "and", ",", "!", "square", "circle", "truck", "pickup"]


def build_tiny_gdino(out: str | Path) -> Path:
    import torch
    from transformers import (BertTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoImageProcessor, GroundingDinoProcessor, SwinConfig)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = [f"[unused{i}]" for i in range(1100)]
    vocab[0], vocab[100], vocab[101], vocab[102], vocab[103] = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
    vocab[1012], vocab[1029] = ".", "?"  # Grounding DINO hard-codes these ids to split phrases
    for i, w in enumerate(GDINO_WORDS):
        vocab[1040 + i] = w
    vocab_file = out / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(vocab=str(vocab_file), do_lower_case=True)  # v5: vocab=, not vocab_file=
    processor = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(
        size={"shortest_edge": 200, "longest_edge": 333}), tokenizer=tokenizer)
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=7,
                                   out_indices=[2, 3, 4]),
        text_config=dict(model_type="bert", vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32, max_position_embeddings=256),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=30, encoder_n_points=2, decoder_n_points=2,
        max_text_len=256,
    )
    torch.manual_seed(0)
    GroundingDinoForObjectDetection(config).eval().save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny_sam2(out: str | Path) -> Path:
    import torch
    from transformers import (Sam2Config, Sam2HieraDetConfig, Sam2ImageProcessor, Sam2MaskDecoderConfig, Sam2Model,
                              Sam2Processor, Sam2PromptEncoderConfig, Sam2VisionConfig)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    h = 32
    config = Sam2Config(
        vision_config=Sam2VisionConfig(
            backbone_config=Sam2HieraDetConfig(hidden_size=12, embed_dim_per_stage=[12, 24, 48, 96],
                                               num_attention_heads_per_stage=[1, 1, 1, 1],
                                               blocks_per_stage=[1, 1, 2, 1], global_attention_blocks=[3]),
            backbone_channel_list=[96, 48, 24, 12], fpn_hidden_size=h),
        prompt_encoder_config=Sam2PromptEncoderConfig(hidden_size=h, mask_input_channels=8),
        mask_decoder_config=Sam2MaskDecoderConfig(hidden_size=h, mlp_dim=64, num_attention_heads=4,
                                                  iou_head_hidden_dim=32),
    )
    torch.manual_seed(0)
    Sam2Model(config).eval().save_pretrained(out)
    Sam2Processor(image_processor=Sam2ImageProcessor()).save_pretrained(out)
    return out


def build_tiny_sam(out: str | Path) -> Path:
    import torch
    from transformers import (SamConfig, SamImageProcessor, SamMaskDecoderConfig, SamModel, SamProcessor,
                              SamPromptEncoderConfig, SamVisionConfig)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    h = 32
    config = SamConfig(
        vision_config=SamVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, output_channels=h,
                                      global_attn_indexes=[1], mlp_dim=64, num_pos_feats=h // 2),
        prompt_encoder_config=SamPromptEncoderConfig(hidden_size=h, mask_input_channels=8),
        mask_decoder_config=SamMaskDecoderConfig(hidden_size=h, mlp_dim=64, num_attention_heads=4,
                                                 iou_head_hidden_dim=32),
    )
    torch.manual_seed(0)
    SamModel(config).eval().save_pretrained(out)
    SamProcessor(image_processor=SamImageProcessor()).save_pretrained(out)
    return out


if __name__ == "__main__":  # python -m tests.tiny_models OUTDIR
    import sys

    root = Path(sys.argv[1] if len(sys.argv) > 1 else "models/tiny")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(build_tiny_gdino(root / "gdino"), build_tiny_sam2(root / "sam2"), build_tiny_sam(root / "sam"))
