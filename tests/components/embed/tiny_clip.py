"""Tiny, randomly initialised CLIP / SigLIP directories (save_pretrained) that load offline, for plumbing tests.

Random weights prove the plumbing (loading, shapes, block names, which vectors are compared), never quality.
The tokenizer is a word-level ``tokenizers`` tokenizer with <s> ... </s> around each text (CLIP pools at </s>).
"""
from __future__ import annotations

from pathlib import Path

WORDS = ("a video frame of red is the dominant colour picture green blue text on screen moving object cuts label "
         "positive negative when small details logo brief flash are or crimson backgrounds large objects").split()
SPECIALS = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3}
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


def _tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = dict(SPECIALS)
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", model_max_length=16), len(vocab)


def _text_config(vocab_size: int) -> dict:
    return dict(TINY, vocab_size=vocab_size, max_position_embeddings=16, pad_token_id=0, bos_token_id=2, eos_token_id=3)


def save_tiny_clip(directory: Path, *, seed: int = 0, vit_b32: bool = False) -> Path:
    """A CLIPModel (hidden 32, 2 layers, 32 px images, projection 16) + tokenizer + image processor in ``directory``.

    ``vit_b32``: the shape of OpenAI's ViT-B/32 instead (transformers' CLIPConfig defaults: 224 px, patch 32,
    vision 768 x 12 layers, text 512 x 12 layers, projection 512), still random: for speed benchmarks only.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tokenizer, vocab_size = _tokenizer()
    torch.manual_seed(seed)
    if vit_b32:
        text = dict(vocab_size=vocab_size, pad_token_id=0, bos_token_id=2, eos_token_id=3)
        config, size = CLIPConfig(text_config=text), 224
    else:
        config, size = CLIPConfig(text_config=_text_config(vocab_size), projection_dim=16,
                                  vision_config=dict(TINY, image_size=32, patch_size=8)), 32
    CLIPModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    processor.save_pretrained(directory)
    return directory


def save_tiny_siglip(directory: Path, *, seed: int = 0) -> Path:
    """A SiglipModel (hidden 32, 2 layers, 32 px images) + tokenizer + image processor in ``directory``."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    tokenizer, vocab_size = _tokenizer()
    torch.manual_seed(seed)
    config = SiglipConfig(text_config=_text_config(vocab_size), vision_config=dict(TINY, image_size=32, patch_size=8))
    SiglipModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(directory)
    return directory


def populate_hf_cache(cache: Path, repo_id: str, model_dir: Path, *, commit: str = "0" * 40) -> Path:
    """Lay ``model_dir`` out as the Hugging Face hub cache does (models--ORG--NAME/snapshots/<commit>, refs/main)."""
    import shutil

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    shutil.copytree(model_dir, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot
