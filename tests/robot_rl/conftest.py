"""Fixtures shared by the reward tests."""

import json

import pytest
import torch

LETTERS = "abcdefghijklmnopqrstuvwxyz"
# character-level BPE: every letter, alone and word-final, and no merges
VOCAB = (
    list(LETTERS) + [c + "</w>" for c in LETTERS] + ["<unk>", "<|startoftext|>", "<|endoftext|>"]
)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A tiny CLIP checkpoint directory as `save_pretrained` writes it, tokenizer included."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("clip")
    (d / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
    (d / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"))
    text = dict(
        vocab_size=len(VOCAB),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
        bos_token_id=len(VOCAB) - 2,
        eos_token_id=len(VOCAB) - 1,
        pad_token_id=len(VOCAB) - 1,
    )
    vision = dict(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
    )
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=32))
    out = d / "tiny-clip"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
