#!/usr/bin/env python3
"""Golden CLIP embeddings for mmdb's parity tests (reference: PyTorch + transformers).

Builds a randomly initialised `CLIPModel` with a fixed seed, saves it in Hugging Face layout
(config.json, model.safetensors, tokenizer.json, preprocessor_config.json), writes a few test images
and `golden.json` with the reference token ids and embeddings, and `pixels.f32` (preprocessed images)
(`get_*_features(...).pooler_output`, unnormalised).

    python3 scripts/clip_golden.py --config tiny --out fixtures/clip-tiny          # committed, < 2 MB
    python3 scripts/clip_golden.py --config tiny-gelu --out fixtures/clip-tiny-gelu  # committed
    python3 scripts/clip_golden.py --config vit-b-32 --out /tmp/clip-vit-b-32      # NOT committed

The tokenizer is CLIP's real byte-level BPE. Its merges come from `bpe_simple_vocab_16e6.txt.gz` in the
open-clip-torch wheel (`pip download open-clip-torch --no-deps`); pass the .gz with --bpe. The tiny
config keeps only the first --merges merges so the fixture stays small.
"""

import argparse
import gzip
import json
import os

import numpy as np
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

SEED = 20260428

TEXTS = [
    "a photo of a cat",
    "A dog!",
    "",
    "Hello, world... it's 3:45pm -- what's up?",
    "caf\u00e9 na\u00efve \u00fcber \u65e5\u672c\u8a9e \U0001f600 emoji",
    "  multiple   spaces\tand\nnewlines  ",
    # > 77 tokens: truncation must keep the end token.
    " ".join(f"word{i} and more text" for i in range(40)),
]


def bytes_to_unicode():
    """GPT-2 / CLIP byte to printable-unicode table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1))
    bs += list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def build_tokenizer(bpe_gz, n_merges, out):
    """CLIP's vocabulary construction (open_clip/tokenizer.py) with the first n_merges merges."""
    lines = gzip.open(bpe_gz).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]][:n_merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    tok = CLIPTokenizer(vocab={v: i for i, v in enumerate(vocab)}, merges=list(merges))
    tok.model_max_length = 77
    tok.save_pretrained(out)
    # Keep only the tokenizer files the Rust side needs.
    for f in ("vocab.json", "merges.txt", "special_tokens_map.json"):
        p = os.path.join(out, f)
        if os.path.exists(p):
            os.remove(p)
    return len(vocab)


def make_images(out_dir, big):
    """Deterministic smooth test images: odd sizes, aspect ratios, modes and formats."""
    rng = np.random.default_rng(SEED)
    os.makedirs(out_dir, exist_ok=True)
    scale = 4 if big else 1

    def smooth(w, h, c):
        low = rng.integers(0, 256, size=(max(2, h // 8), max(2, w // 8), c), dtype=np.uint8)
        chans = [np.asarray(Image.fromarray(low[:, :, i]).resize((w, h), Image.BICUBIC)) for i in range(c)]
        arr = np.stack(chans, axis=-1).astype(np.int32)
        arr += rng.integers(-12, 13, size=arr.shape)
        return np.clip(arr, 0, 255).astype(np.uint8)

    specs = [
        ("rgb_97x61.jpg", "RGB", 97, 61, dict(quality=92, subsampling=0)),
        ("rgb_61x140_420.jpg", "RGB", 61, 140, dict(quality=85, subsampling=2)),
        ("gray_83x83.jpg", "L", 83, 83, dict(quality=90)),
        ("rgb_130x49.png", "RGB", 130, 49, {}),
        ("rgba_50x77.png", "RGBA", 50, 77, {}),
        ("gray_23x31.png", "L", 23, 31, {}),
        ("gray16_40x52.png", "I;16", 40, 52, {}),
    ]
    names = []
    for name, mode, w, h, kw in specs:
        w, h = w * scale, h * scale
        if mode == "I;16":
            arr = smooth(w, h, 1)[:, :, 0].astype(np.uint16) * 2  # values up to 510: PIL clips at 255
            img = Image.fromarray(arr)
        else:
            c = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
            arr = smooth(w, h, c)
            img = Image.fromarray(arr[:, :, 0] if c == 1 else arr, mode)
        img.save(os.path.join(out_dir, name), **kw)
        names.append(name)
    return names


def model_config(kind, vocab_size):
    common = dict(hidden_act="quick_gelu", layer_norm_eps=1e-5)
    if kind == "tiny-gelu":
        # Exact GELU and a non-default LayerNorm epsilon (as LAION's checkpoints): pins that mmdb reads
        # both from config.json.
        common = dict(hidden_act="gelu", layer_norm_eps=1e-6)
    if kind.startswith("tiny"):
        text = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, max_position_embeddings=77, bos_token_id=vocab_size - 2,
                    eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1, **common)
        vision = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      image_size=48, patch_size=16, **common)
        return CLIPConfig(text_config=text, vision_config=vision, projection_dim=48), 56, 48
    # openai/clip-vit-base-patch32 (its config keeps the legacy eos_token_id=2: argmax pooling).
    text = dict(vocab_size=vocab_size, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                num_attention_heads=8, max_position_embeddings=77, bos_token_id=0, eos_token_id=2,
                pad_token_id=1, **common)
    vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                  image_size=224, patch_size=32, **common)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=512), 224, 224


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", choices=["tiny", "tiny-gelu", "vit-b-32"], default="tiny")
    ap.add_argument("--out", required=True)
    ap.add_argument("--bpe", default="/tmp/oc/open_clip/bpe_simple_vocab_16e6.txt.gz")
    ap.add_argument("--merges", type=int, default=None, help="default: 1000 for tiny, all for vit-b-32")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(SEED)

    n_merges = args.merges or (1000 if args.config.startswith("tiny") else 49152 - 256 - 2)
    vocab_size = build_tokenizer(args.bpe, n_merges, args.out)
    config, shortest, crop = model_config(args.config, vocab_size)
    model = CLIPModel(config).eval()
    if args.config.startswith("tiny"):
        # Default init leaves LayerNorms at 1/0 and biases at 0: perturb them so the test sees them.
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "norm" in name or name.endswith("bias"):
                    p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(args.out, safe_serialization=True)

    proc = CLIPImageProcessorPil(size={"shortest_edge": shortest}, crop_size={"height": crop, "width": crop})
    proc.save_pretrained(args.out)

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.out)
    enc = tok(TEXTS, padding=True, truncation=True, max_length=77, return_tensors="pt")
    img_dir = os.path.join(args.out, "images")
    names = make_images(img_dir, big=not args.config.startswith("tiny"))
    images = [Image.open(os.path.join(img_dir, n)) for n in names]
    pixels = proc(images=images, return_tensors="pt")["pixel_values"]

    with torch.no_grad():
        t = model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).pooler_output
        v = model.get_image_features(pixel_values=pixels).pooler_output

    golden = {
        "seed": SEED,
        "config": args.config,
        "texts": [
            {"text": s, "ids": [int(i) for i, m in zip(ids, mask) if m], "features": f.tolist()}
            for s, ids, mask, f in zip(TEXTS, enc["input_ids"].tolist(), enc["attention_mask"].tolist(), t)
        ],
        "images": [
            {"file": n, "pixel_sum": float(p.double().sum()), "pixel_abs_sum": float(p.double().abs().sum()),
             "features": f.tolist()}
            for n, p, f in zip(names, pixels, v)
        ],
    }
    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump(golden, f)
    # The preprocessed pixels, f32 little-endian [n, 3, crop, crop]: pins preprocessing on its own.
    pixels.numpy().astype("<f4").tofile(os.path.join(args.out, "pixels.f32"))
    print(f"wrote {args.out}: vocab {vocab_size}, {len(TEXTS)} texts, {len(names)} images")


if __name__ == "__main__":
    main()
