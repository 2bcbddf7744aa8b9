"""Tiny random-weight models built from configs with local tokenizers, saved with save_pretrained.

They are loaded by autolabel through exactly the code path a hub id takes (AutoProcessor / Auto*Model
.from_pretrained on a directory). Built the way transformers tests its own models; see
../shared/recipes for the gotchas (Grounding DINO special-token ids, decoder_layers >= 2).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures"  # hub files (see fixtures/README.md)


def build_tiny_gdino(out: str | Path, mm: bool = False, real_sizes: bool = False) -> Path:
    """Grounding DINO, or with `mm` MM-Grounding-DINO (the class LLMDet checkpoints load into): random
    weights and small dims, with the hub's own tokenizer and preprocessor config (tests/fixtures). The
    processor's 800/1333 resize is shrunk to 200/333 for speed unless `real_sizes`."""
    import torch
    from transformers import (
        AutoTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        MMGroundingDinoConfig,
        MMGroundingDinoForObjectDetection,
        SwinConfig,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hub = FIXTURES / "grounding-dino-tiny"
    tokenizer = AutoTokenizer.from_pretrained(str(hub))  # the real WordPiece vocabulary (30,522 tokens)
    image_processor = GroundingDinoImageProcessor.from_pretrained(str(hub))
    if not real_sizes:
        image_processor = GroundingDinoImageProcessor.from_pretrained(
            str(hub), size={"shortest_edge": 200, "longest_edge": 333}
        )
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    vocab = list(range(len(tokenizer)))
    config_cls, model_cls = (
        (MMGroundingDinoConfig, MMGroundingDinoForObjectDetection)
        if mm
        else (GroundingDinoConfig, GroundingDinoForObjectDetection)
    )
    config = config_cls(
        backbone_config=SwinConfig(
            embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=7, out_indices=[2, 3, 4]
        ),
        text_config=dict(
            model_type="bert",
            vocab_size=len(vocab),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=256,
        ),
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_queries=30,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=256,
    )
    torch.manual_seed(0)
    model_cls(config).eval().save_pretrained(out)
    processor.save_pretrained(out)
    return out


def tiny_hiera(**extra: Any) -> Any:
    """The tiny Hiera backbone of the SAM 2 fixtures (image and video)."""
    from transformers import Sam2HieraDetConfig

    return Sam2HieraDetConfig(
        hidden_size=12,
        embed_dim_per_stage=[12, 24, 48, 96],
        num_attention_heads_per_stage=[1, 1, 1, 1],
        blocks_per_stage=[1, 1, 2, 1],
        global_attention_blocks=[3],
        **extra,
    )


def build_tiny_sam2(out: str | Path) -> Path:
    import torch
    from transformers import (
        Sam2Config,
        Sam2ImageProcessor,
        Sam2MaskDecoderConfig,
        Sam2Model,
        Sam2Processor,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    h = 32
    config = Sam2Config(
        vision_config=Sam2VisionConfig(
            backbone_config=tiny_hiera(),
            backbone_channel_list=[96, 48, 24, 12],
            fpn_hidden_size=h,
        ),
        prompt_encoder_config=Sam2PromptEncoderConfig(hidden_size=h, mask_input_channels=8),
        mask_decoder_config=Sam2MaskDecoderConfig(
            hidden_size=h, mlp_dim=64, num_attention_heads=4, iou_head_hidden_dim=32
        ),
    )
    torch.manual_seed(0)
    Sam2Model(config).eval().save_pretrained(out)
    Sam2Processor(image_processor=Sam2ImageProcessor()).save_pretrained(out)
    return out


def build_tiny_sam(out: str | Path) -> Path:
    import torch
    from transformers import (
        SamConfig,
        SamImageProcessor,
        SamMaskDecoderConfig,
        SamModel,
        SamProcessor,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    h = 32
    config = SamConfig(
        vision_config=SamVisionConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            output_channels=h,
            global_attn_indexes=[1],
            mlp_dim=64,
            num_pos_feats=h // 2,
        ),
        prompt_encoder_config=SamPromptEncoderConfig(hidden_size=h, mask_input_channels=8),
        mask_decoder_config=SamMaskDecoderConfig(
            hidden_size=h, mlp_dim=64, num_attention_heads=4, iou_head_hidden_dim=32
        ),
    )
    torch.manual_seed(0)
    SamModel(config).eval().save_pretrained(out)
    SamProcessor(image_processor=SamImageProcessor()).save_pretrained(out)
    return out


def _bytes_to_unicode() -> list[str]:  # GPT-2 / BART byte-level alphabet
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def build_tiny_florence2(out: str | Path) -> Path:
    """Tiny DaViT + BART Florence-2 with a hand-written byte-level BPE tokenizer (577 image tokens)."""
    import json

    import torch
    from transformers import (
        BartConfig,
        BartTokenizer,
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
        Florence2VisionConfig,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in _bytes_to_unicode():
        vocab.setdefault(ch, len(vocab))
    merges = [("c", "a"), ("ca", "t"), ("Ġ", "cat"), ("o", "g"), ("d", "og"), ("Ġ", "dog")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab["<mask>"] = len(vocab)
    (out / "vocab.json").write_text(json.dumps(vocab))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    tokenizer = BartTokenizer(vocab=str(out / "vocab.json"), merges=str(out / "merges.txt"), image_token="<image>")
    task_tokens = [
        "<od>",
        "</od>",
        "<ocr>",
        "</ocr>",
        "<cap>",
        "</cap>",
        "<ncap>",
        "</ncap>",
        "<dcap>",
        "</dcap>",
        "<grounding>",
        "</grounding>",
        "<seg>",
        "</seg>",
        "<sep>",
        "<region_cap>",
        "</region_cap>",
        "<proposal>",
        "</proposal>",
        "<poly>",
        "</poly>",
        "<and>",
    ]
    tokenizer.add_special_tokens(
        {"extra_special_tokens": task_tokens + [f"<loc_{i}>" for i in range(1000)] + ["<image>"]}
    )
    image_processor = CLIPImageProcessor(
        do_resize=True,
        size={"height": 768, "width": 768},
        resample=3,
        do_center_crop=False,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    image_processor.image_seq_length = 577  # (768/32)^2 + 1: must match the vision tower
    post = {
        "ocr": {"pattern": r"(.+?)<loc_(\d+)>" * 1, "area_threshold": 0.0},
        "phrase_grounding": {"banned_grounding_tokens": ["the image"]},
        "pure_text": {},
        "description_with_bboxes": {},
        "description_with_polygons": {},
        "polygons": {},
        "bboxes": {},
        "description_with_bboxes_or_polygons": {},
    }
    processor = Florence2Processor(image_processor=image_processor, tokenizer=tokenizer, post_processor_config=post)
    d = 32
    config = Florence2Config(
        vision_config=Florence2VisionConfig(
            depths=[1, 1, 1, 1],
            embed_dim=[8, 16, 32, 64],
            num_heads=[1, 1, 2, 2],
            num_groups=[1, 1, 2, 2],
            projection_dim=d,
            drop_path_rate=0.0,
        ),
        text_config=BartConfig(
            vocab_size=len(tokenizer),
            d_model=d,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_position_embeddings=1024,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            decoder_start_token_id=2,
        ),
        image_token_id=tokenizer.image_token_id,
    )
    torch.manual_seed(0)
    Florence2ForConditionalGeneration(config).eval().save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny_sam3(out: str | Path) -> Path:
    """Tiny SAM 3 with a hand-written CLIP BPE tokenizer (1008×1008 input, like facebook/sam3)."""
    import json

    import torch
    from transformers import CLIPTokenizer, Sam3ImageProcessor, Sam3Model, Sam3Processor
    from transformers.models.sam3.configuration_sam3 import (
        Sam3Config,
        Sam3DETRDecoderConfig,
        Sam3DETREncoderConfig,
        Sam3GeometryEncoderConfig,
        Sam3MaskDecoderConfig,
        Sam3VisionConfig,
        Sam3ViTConfig,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    alphabet = _bytes_to_unicode()
    vocab: dict[str, int] = {}
    for t in alphabet + [c + "</w>" for c in alphabet]:
        vocab.setdefault(t, len(vocab))
    merges = [("c", "a"), ("ca", "t</w>"), ("d", "o"), ("do", "g</w>")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (out / "vocab.json").write_text(json.dumps(vocab))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    tokenizer = CLIPTokenizer(vocab=str(out / "vocab.json"), merges=str(out / "merges.txt"))
    processor = Sam3Processor(image_processor=Sam3ImageProcessor(), tokenizer=tokenizer)
    d = 32
    config = Sam3Config(
        vision_config=Sam3VisionConfig(
            backbone_config=Sam3ViTConfig(
                hidden_size=d,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                window_size=24,
                global_attn_indexes=[1],
            ),
            fpn_hidden_size=d,
        ),
        text_config=dict(
            model_type="clip_text_model",
            vocab_size=len(vocab),
            hidden_size=d,
            intermediate_size=64,
            projection_dim=d,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=32,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        ),
        geometry_encoder_config=Sam3GeometryEncoderConfig(
            hidden_size=d, num_layers=1, num_attention_heads=2, intermediate_size=64
        ),
        detr_encoder_config=Sam3DETREncoderConfig(
            hidden_size=d, num_layers=1, num_attention_heads=2, intermediate_size=64
        ),
        detr_decoder_config=Sam3DETRDecoderConfig(
            hidden_size=d, num_layers=1, num_queries=20, num_attention_heads=2, intermediate_size=64
        ),
        mask_decoder_config=Sam3MaskDecoderConfig(hidden_size=d, num_attention_heads=2),
    )
    torch.manual_seed(0)
    Sam3Model(config).eval().save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny_owlv2(out: str | Path) -> Path:
    """Tiny OWLv2 with the real CLIP BPE tokenizer (tests/fixtures/clip-bpe), 64×64 input, random weights."""
    import shutil

    import torch
    from transformers import CLIPTokenizer, Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(FIXTURES / "clip-bpe" / name, out / name)
    tokenizer = CLIPTokenizer(vocab=str(out / "vocab.json"), merges=str(out / "merges.txt"), model_max_length=16)
    processor = Owlv2Processor(
        image_processor=Owlv2ImageProcessor(size={"height": 64, "width": 64}), tokenizer=tokenizer
    )
    config = Owlv2Config(
        text_config=dict(
            vocab_size=49408,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=16,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=0,
        ),
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=64,
            patch_size=16,
        ),
        projection_dim=16,
    )
    torch.manual_seed(0)
    Owlv2ForObjectDetection(config).eval().save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny_sam_hq(out: str | Path) -> Path:
    import torch
    from transformers import SamHQConfig, SamHQModel, SamHQProcessor, SamImageProcessor
    from transformers.models.sam_hq.configuration_sam_hq import (
        SamHQMaskDecoderConfig,
        SamHQPromptEncoderConfig,
        SamHQVisionConfig,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    h = 32
    config = SamHQConfig(
        vision_config=SamHQVisionConfig(
            hidden_size=h,
            output_channels=h,
            num_hidden_layers=2,
            num_attention_heads=2,
            mlp_dim=64,
            global_attn_indexes=[1],
            window_size=4,
            num_pos_feats=h // 2,
        ),
        prompt_encoder_config=SamHQPromptEncoderConfig(hidden_size=h, mask_input_channels=8),
        mask_decoder_config=SamHQMaskDecoderConfig(
            hidden_size=h, mlp_dim=64, num_attention_heads=4, iou_head_hidden_dim=32, vit_dim=h
        ),
    )
    torch.manual_seed(0)
    SamHQModel(config).eval().save_pretrained(out)
    SamHQProcessor(image_processor=SamImageProcessor()).save_pretrained(out)
    return out


if __name__ == "__main__":  # python -m tests.tiny_models OUTDIR
    import sys

    root = Path(sys.argv[1] if len(sys.argv) > 1 else "models/tiny")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(build_tiny_gdino(root / "gdino"), build_tiny_sam2(root / "sam2"), build_tiny_sam(root / "sam"))


def tiny_sam2_video(S: int = 256) -> tuple[Any, Any]:
    """A tiny random-weight Sam2VideoModel (streaming, `S` px) and its processor, in memory."""
    import torch
    from transformers import (
        Sam2ImageProcessor,
        Sam2VideoConfig,
        Sam2VideoModel,
        Sam2VideoProcessor,
        Sam2VisionConfig,
    )
    from transformers.models.sam2_video.configuration_sam2_video import (
        Sam2VideoMaskDecoderConfig,
        Sam2VideoPromptEncoderConfig,
    )
    from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor

    h = 128  # > 64: the memory encoder's 64 output channels are hard-coded in places
    backbone = tiny_hiera(image_size=[S, S])
    cfg = Sam2VideoConfig(
        vision_config=Sam2VisionConfig(
            backbone_config=backbone,
            backbone_channel_list=[96, 48, 24, 12],
            fpn_hidden_size=h,
            backbone_feature_sizes=[[S // 4, S // 4], [S // 8, S // 8], [S // 16, S // 16]],
        ),
        prompt_encoder_config=Sam2VideoPromptEncoderConfig(hidden_size=h, image_size=S, mask_input_channels=8),
        mask_decoder_config=Sam2VideoMaskDecoderConfig(
            hidden_size=h, mlp_dim=256, num_attention_heads=4, iou_head_hidden_dim=32
        ),
        image_size=S,
        memory_attention_hidden_size=h,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=256,
        memory_attention_rope_feat_sizes=[S // 16, S // 16],
        memory_encoder_hidden_size=h,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=h,
        memory_fuser_embed_dim=h,
        memory_fuser_intermediate_dim=256,
        memory_fuser_num_layers=1,
    )
    torch.manual_seed(0)
    model = Sam2VideoModel(cfg).eval()
    processor = Sam2VideoProcessor(
        image_processor=Sam2ImageProcessor(size={"height": S, "width": S}),
        video_processor=Sam2VideoVideoProcessor(size={"height": S, "width": S}),
    )
    return model, processor


def build_tiny_sam2_video(path: Path) -> Path:
    """`tiny_sam2_video` saved as a model directory (config, weights, processor): what `tracker: sam2`
    loads as the segmenter's model (its image part loads as a Sam2Model too, as hub SAM 2 checkpoints do)."""
    model, processor = tiny_sam2_video()
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def build_tiny_sam3_video(path: Path, sam3_dir: Path | None = None) -> Path:
    """A tiny random-weight Sam3VideoModel (224 px: 16×16 patches of 14) saved with its Sam3VideoProcessor.
    Its detector is the tiny SAM 3 (`build_tiny_sam3`, widened to 128 where the tracker's memory needs more
    than 64), its tracker a SAM 2-style one at 128; detection thresholds are lowered and the object score
    head biased so that random weights still start and keep objects (what the tests follow)."""
    import json

    import torch
    from transformers import AutoProcessor, Sam2VideoVideoProcessor, Sam3VideoConfig, Sam3VideoModel
    from transformers.models.sam3 import Sam3ImageProcessor
    from transformers.models.sam3_video.processing_sam3_video import Sam3VideoProcessor

    sam3_dir = sam3_dir or build_tiny_sam3(Path(path).parent / "sam3-for-video")
    image_size, patch, wide = 224, 14, 128
    n = image_size // patch
    backbone = {
        "model_type": "sam3_vit_model",
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "image_size": image_size,
        "patch_size": patch,
        "window_size": 8,
        "global_attn_indexes": [1],
        "pretrain_image_size": image_size,
    }
    vision = {
        "model_type": "sam3_vision_model",
        "backbone_config": backbone,
        "fpn_hidden_size": wide,
        "backbone_feature_sizes": [[4 * n, 4 * n], [2 * n, 2 * n], [n, n]],
    }
    det = json.loads((Path(sam3_dir) / "config.json").read_text())
    det["vision_config"] = {
        **det["vision_config"],
        **vision,
        "backbone_config": {**det["vision_config"]["backbone_config"], **backbone},
    }
    for key in ("geometry_encoder_config", "detr_encoder_config", "detr_decoder_config", "mask_decoder_config"):
        det[key] = {**det[key], "hidden_size": wide}
    tracker = {
        "vision_config": vision,
        "prompt_encoder_config": {"hidden_size": wide, "image_size": image_size, "patch_size": patch},
        "mask_decoder_config": {"hidden_size": wide, "num_attention_heads": 2},
        "memory_attention_rope_feat_sizes": [n, n],
        "memory_encoder_output_channels": 64,
        "image_size": image_size,
        "memory_attention_hidden_size": wide,
        "memory_encoder_hidden_size": wide,
        "mask_downsampler_embed_dim": wide,
        "memory_fuser_embed_dim": wide,
        "memory_fuser_intermediate_dim": 256,
        "memory_attention_feed_forward_hidden_size": 256,
        "memory_attention_num_layers": 1,
    }
    config = Sam3VideoConfig(
        detector_config=det,
        tracker_config=tracker,
        low_res_mask_size=4 * n,
        score_threshold_detection=0.01,
        new_det_thresh=0.01,
        det_nms_thresh=0.9,
        max_num_objects=6,
        hotstart_delay=0,
    )
    torch.manual_seed(0)
    model = Sam3VideoModel(config).eval()
    with torch.no_grad():  # random weights: say every object is present, so its mask is the decoder's
        model.tracker_model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(8.0)
    tokenizer = AutoProcessor.from_pretrained(sam3_dir).tokenizer
    size = {"height": image_size, "width": image_size}
    processor = Sam3VideoProcessor(
        image_processor=Sam3ImageProcessor(size=size),
        video_processor=Sam2VideoVideoProcessor(size=size),
        tokenizer=tokenizer,
        target_size=image_size,
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return Path(path)


def build_tiny_smolvlm(path: Path) -> Path:
    """A tiny random-weight SmolVLM (the default verifier's family): a word-level tokenizer holding SmolVLM's
    special tokens and a chat template of its shape, 64 px images, one layer each. Saved with its processor."""
    import torch
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import (
        PreTrainedTokenizerFast,
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    special = [
        "<|im_start|>",
        "<end_of_utterance>",
        "<image>",
        "<fake_token_around_image>",
        "<global-img>",
        "<|endoftext|>",
    ]
    words = ["<unk>", *special, "User", "Assistant", ":", "Is", "this", "a", "an", "cat", "dog", "?", "Answer"]
    words += ["yes", "no", "Yes", "No", "or", ".", "there", "in", "picture", "the"]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"[?.:]"), behavior="isolated")]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<|endoftext|>",
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        additional_special_tokens=special,
    )
    chat = (
        "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{{':'}}"
        "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
        "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
        "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
    )
    size = {"longest_edge": 64}
    images = SmolVLMImageProcessor(do_image_splitting=False, size=size, max_image_size=size)
    processor = SmolVLMProcessor(
        image_processor=images,
        tokenizer=tokenizer,
        video_processor=SmolVLMVideoProcessor(),
        image_seq_len=4,  # (64 / 16)² patches ÷ scale_factor²
        chat_template=chat,
    )
    config = SmolVLMConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 16,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "pad_token_id": vocab["<|endoftext|>"],
            "max_position_embeddings": 256,
        },
        scale_factor=2,
        image_token_id=vocab["<image>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    torch.manual_seed(0)
    SmolVLMForConditionalGeneration(config).eval().save_pretrained(path)
    processor.save_pretrained(path)
    return Path(path)
