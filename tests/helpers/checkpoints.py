"""Tiny model checkpoints for tests and benchmarks, made here and loaded offline.

- ``export_scorer``: the local teacher's frames + text scorer as TorchScript and ONNX (``scorer.pt``, ``scorer.onnx``).
- ``distill_student``: a student distilled on ``factories.write_synthetic`` data (the bulk scorer's model).
- ``save_tiny_clip`` / ``save_tiny_siglip`` / ``populate_hf_cache``: random CLIP / SigLIP directories
  (save_pretrained) and a Hugging Face hub cache layout. Random weights prove the plumbing (loading, shapes, block
  names, which vectors are compared), never quality. The tokenizer is a word-level ``tokenizers`` tokenizer with
  <s> ... </s> around each text (CLIP pools at </s>).
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import factories

SCORER_FRAMES = (8, 3, 64, 64)  # the local teacher's frames input per video: [T, 3, S, S]
SCORER_TEXT_DIM = 384  # MiniLM text vector


def export_scorer(folder: Path, *, seed: int = 0) -> tuple[Path, Path]:
    """A tiny scorer (8x8 patches -> Linear 192->32 -> GELU MLP -> mean pool, + text Linear -> logit [B]).

    Inputs: frames float32 [B, 8, 3, 64, 64] in [0, 1], text float32 [B, 384]. The red channel's mean minus the
    others' (x 8) is added to the logit, so red videos score high. Written as ``scorer.pt`` (TorchScript) and
    ``scorer.onnx`` (dynamic batch axis) into ``folder``; returns both paths.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class Scorer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(192, 32)
            self.mlp = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
            self.text = nn.Linear(SCORER_TEXT_DIM, 32)
            self.head = nn.Linear(64, 1)

        def forward(self, frames, text):
            b, t, c, h, w = frames.shape
            x = frames.reshape(b, t, c, h // 8, 8, w // 8, 8).permute(0, 1, 3, 5, 2, 4, 6)
            x = self.embed(x.reshape(b, t * (h // 8) * (w // 8), c * 64))
            x = (x + self.mlp(x)).mean(1)
            # frames carry the signal (x 4): the red channel's mean decides most of the logit
            red = frames[:, :, 0].mean((1, 2, 3)) - frames[:, :, 1:].mean((1, 2, 3, 4))
            return self.head(torch.cat([x, self.text(text)], -1)).squeeze(-1) + 8.0 * red

    folder.mkdir(parents=True, exist_ok=True)
    model = Scorer().eval()
    example = (torch.rand(2, *SCORER_FRAMES), torch.randn(2, SCORER_TEXT_DIM))
    script = folder / "scorer.pt"
    torch.jit.trace(model, example).save(str(script))
    onnx = folder / "scorer.onnx"
    torch.onnx.export(
        model,
        example,
        str(onnx),
        input_names=["frames", "text"],
        output_names=["logit"],
        dynamic_axes={"frames": {0: "batch"}, "text": {0: "batch"}, "logit": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    return script, onnx


def distill_student(
    root: Path, *, n: int = 300, dimension: int = 16, max_epochs: int = 30, hidden_units: int = 16
) -> dict:
    """Distil a student on ``n`` synthetic videos (``factories.write_synthetic``) into ``root / "model"``.

    Returns write_synthetic's dict plus ``model`` (the model folder) and ``root``. Takes a few seconds on 2 cores.
    """
    from silverset.components.distill import train
    from silverset.components.distill.student import StudentOptions

    data = factories.write_synthetic(root, n=n, dimension=dimension)
    train.run(
        embeddings=data["embeddings"],
        labels=data["labels"],
        attribute_spec=factories.SPEC,
        out_dir=str(root / "model"),
        options=StudentOptions(max_epochs=max_epochs, hidden_units=hidden_units),
        measure_latency=False,
    )
    return {**data, "model": str(root / "model"), "root": root}


WORDS = (
    "a video frame of red is the dominant colour picture green blue text on screen moving object cuts label "
    "positive negative when small details logo brief flash are or crimson backgrounds large objects"
).split()
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
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        model_max_length=16,
    ), len(vocab)


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
        config, size = (
            CLIPConfig(
                text_config=_text_config(vocab_size),
                projection_dim=16,
                vision_config=dict(TINY, image_size=32, patch_size=8),
            ),
            32,
        )
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
