#!/usr/bin/env python3
"""Trains mmdb's bundled demo model: a tiny CLIP (transformers.CLIPModel) on the demo scenes.

Reads a COCO-captions folder written by `mmdb demo-data` (or `cargo run --example demo_data`),
trains with the CLIP paper's recipe (symmetric InfoNCE, learnable temperature, AdamW with
warmup and cosine decay, no weight decay on gains, biases and embeddings) and writes a folder
that mmdb loads exactly like real CLIP weights:

    config.json, model.safetensors     CLIPModel.save_pretrained (safetensors)
    tokenizer.json                     word-level tokenizer, see build_tokenizer()
    preprocessor_config.json           CLIPImageProcessor format (size, crop, mean, std)
    metrics.json                       val Recall@K and the run's parameters

Usage:
    python3 scripts/train_demo_clip.py --data /tmp/demo --out fixtures/models/mmdb-demo-clip \
        --steps 4000 --seed 0

Deterministic for a given seed and step count on CPU (the loss curve was identical with 1 and
2 threads).
"""

import argparse
import json
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

PAD, UNK, BOS, EOS = "<|pad|>", "<|unk|>", "<|startoftext|>", "<|endoftext|>"
# OpenAI CLIP's per-channel statistics; any fixed values work as long as mmdb reads the same file.
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="COCO-format folder (images/, annotations/)")
    p.add_argument("--out", help="output model folder (training)")
    p.add_argument("--evaluate", metavar="MODEL",
                   help="no training: print the Recall@K of a saved model on the val split of --data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--patch-size", type=int, default=16)
    p.add_argument("--vision-width", type=int, default=128)
    p.add_argument("--vision-layers", type=int, default=4)
    p.add_argument("--text-width", type=int, default=128)
    p.add_argument("--text-layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--projection-dim", type=int, default=96)
    p.add_argument("--max-length", type=int, default=32, help="text positions (tokens incl. start/end)")
    # One thread: on a shared, oversubscribed 2-core machine two OpenMP threads measured 8x slower
    # (each step waits at barriers for the descheduled thread).
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-every", type=int, default=400)
    p.add_argument("--hard-every", type=int, default=3,
                   help="every Nth batch shares one colour or shape (hard negatives); 0 disables")
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast (measured slower than float32 for this tiny model on CPU)")
    return p.parse_args()


def load_split(data, name):
    with open(os.path.join(data, "annotations", f"captions_{name}.json")) as f:
        coco = json.load(f)
    images = sorted(coco["images"], key=lambda im: im["id"])
    captions = {im["id"]: [] for im in images}
    for ann in sorted(coco["annotations"], key=lambda a: a["id"]):
        captions[ann["image_id"]].append(ann["caption"])
    return images, [captions[im["id"]] for im in images]


def build_tokenizer(train_captions, max_length):
    """Word-level tokenizer whose ids suit candle's CLIP text pooling.

    candle pools the text tower at the argmax of the token ids, so the end-of-text token has
    the highest id and padding the lowest; start-of-text is added by the post-processor like
    CLIP's `<|startoftext|> $A <|endoftext|>`.
    """
    normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    pre = pre_tokenizers.Whitespace()
    words = set()
    for caps in train_captions:
        for c in caps:
            words.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(c)))
    vocab = {PAD: 0, UNK: 1}
    for w in sorted(words):
        vocab[w] = len(vocab)
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
    )
    tok.add_special_tokens([PAD, UNK, BOS, EOS])
    tok.enable_truncation(max_length=max_length)
    tok.enable_padding(pad_id=vocab[PAD], pad_token=PAD)
    return tok, vocab


def encode_text(tok, captions, max_length):
    """[N, 5] captions -> ids [N, 5, max_length] and attention masks."""
    flat = [c for caps in captions for c in caps]
    enc = tok.encode_batch(flat)
    ids = torch.zeros(len(flat), max_length, dtype=torch.long)
    mask = torch.zeros(len(flat), max_length, dtype=torch.long)
    for i, e in enumerate(enc):
        n = sum(e.attention_mask)
        ids[i, :n] = torch.tensor(e.ids[:n])
        mask[i, :n] = 1
    per = len(captions[0])
    return ids.view(len(captions), per, max_length), mask.view(len(captions), per, max_length)


def preprocess(processor, data, images, chunk=500):
    """The exact pixel values mmdb computes: PIL bicubic shortest-side resize, centre crop, /255, mean/std."""
    out = []
    for start in range(0, len(images), chunk):
        pil = [Image.open(os.path.join(data, "images", im["file_name"])).convert("RGB")
               for im in images[start:start + chunk]]
        out.append(processor(images=pil, return_tensors="pt")["pixel_values"])
    return torch.cat(out)


def clip_loss(img, txt, logit_scale):
    img = F.normalize(img, dim=-1)
    txt = F.normalize(txt, dim=-1)
    logits = logit_scale.exp().clamp(max=100) * img @ txt.t()
    labels = torch.arange(len(img))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


@torch.no_grad()
def embed(model, pixels, ids, mask, batch=500):
    model.eval()
    img = torch.cat([model.get_image_features(pixel_values=pixels[i:i + batch]).pooler_output
                     for i in range(0, len(pixels), batch)])
    flat_ids, flat_mask = ids.flatten(0, 1), mask.flatten(0, 1)
    txt = torch.cat([model.get_text_features(input_ids=flat_ids[i:i + batch],
                                             attention_mask=flat_mask[i:i + batch]).pooler_output
                     for i in range(0, len(flat_ids), batch)])
    model.train()
    return F.normalize(img, dim=-1), F.normalize(txt, dim=-1)


def recall(img, txt, per_image, ks=(1, 5, 10)):
    """CLIP_benchmark protocol: text->image hit if the caption's image is in the top K;
    image->text hit if any of the image's captions is in the top K."""
    sim = txt @ img.t()  # [captions, images]
    caption_image = torch.arange(len(img)).repeat_interleave(per_image)
    t2i_rank = sim.argsort(dim=1, descending=True)
    i2t_rank = sim.t().argsort(dim=1, descending=True)
    out = {}
    for k in ks:
        out[f"text_to_image_R@{k}"] = (t2i_rank[:, :k] == caption_image[:, None]).any(1).float().mean().item() * 100
        hits = caption_image[i2t_rank[:, :k]] == torch.arange(len(img))[:, None]
        out[f"image_to_text_R@{k}"] = hits.any(1).float().mean().item() * 100
    return out


def attribute_match(img, txt, images, per_image):
    """For each val image's canonical caption (the first: "a small red circle on the left"),
    the share of the top-1 image whose scene has the same colour, shape, size, position and count."""
    canon = txt[::per_image]
    top = (canon @ img.t()).argmax(1)
    keys = ["colour", "shape", "size", "position", "count"]
    out = {}
    for key in keys:
        out[f"top1_same_{key}"] = np.mean([images[q]["scene"][key] == images[t]["scene"][key]
                                           for q, t in enumerate(top.tolist())]) * 100
    out["top1_same_all"] = np.mean([all(images[q]["scene"][k] == images[t]["scene"][k] for k in keys)
                                    for q, t in enumerate(top.tolist())]) * 100
    return out


def param_groups(model, weight_decay):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        # CLIP paper: no decay on gains, biases, embeddings and the temperature.
        (decay if p.ndim >= 2 and "embedding" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def evaluate(args):
    model = CLIPModel.from_pretrained(args.evaluate)
    tok = Tokenizer.from_file(os.path.join(args.evaluate, "tokenizer.json"))
    processor = CLIPImageProcessorPil.from_pretrained(args.evaluate)
    images, caps = load_split(args.data, "val")
    ids, mask = encode_text(tok, caps, model.config.text_config.max_position_embeddings)
    vi, vt = embed(model, preprocess(processor, args.data, images), ids, mask)
    metrics = recall(vi, vt, len(caps[0]))
    metrics.update(attribute_match(vi, vt, images, len(caps[0])))
    print(json.dumps({"model": args.evaluate, "data": args.data, "val_images": len(images),
                      "metrics": {k: round(v, 2) for k, v in metrics.items()}}, indent=2))


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.evaluate:
        return evaluate(args)
    if not args.out:
        raise SystemExit("--out is required for training")
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    t0 = time.time()

    train_images, train_caps = load_split(args.data, "train")
    val_images, val_caps = load_split(args.data, "val")
    per_image = len(train_caps[0])
    tok, vocab = build_tokenizer(train_caps, args.max_length)
    train_ids, train_mask = encode_text(tok, train_caps, args.max_length)
    val_ids, val_mask = encode_text(tok, val_caps, args.max_length)

    processor = CLIPImageProcessorPil(
        size={"shortest_edge": args.image_size},
        crop_size={"height": args.image_size, "width": args.image_size},
        image_mean=MEAN, image_std=STD,
    )
    train_px = preprocess(processor, args.data, train_images)
    val_px = preprocess(processor, args.data, val_images)
    print(f"data: {len(train_images)} train / {len(val_images)} val images, vocab {len(vocab)}, "
          f"preprocessed in {time.time() - t0:.0f}s", flush=True)

    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab), hidden_size=args.text_width, intermediate_size=4 * args.text_width,
            num_hidden_layers=args.text_layers, num_attention_heads=args.heads,
            max_position_embeddings=args.max_length, hidden_act="quick_gelu",
            pad_token_id=vocab[PAD], bos_token_id=vocab[BOS], eos_token_id=vocab[EOS],
            projection_dim=args.projection_dim,
        ),
        vision_config=dict(
            hidden_size=args.vision_width, intermediate_size=4 * args.vision_width,
            num_hidden_layers=args.vision_layers, num_attention_heads=args.heads,
            image_size=args.image_size, patch_size=args.patch_size, hidden_act="quick_gelu",
            projection_dim=args.projection_dim,
        ),
        projection_dim=args.projection_dim,
    )
    model = CLIPModel(config)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f}M parameters", flush=True)

    opt = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / args.warmup) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, s / args.steps))))
    gen = torch.Generator().manual_seed(args.seed)
    n = len(train_images)
    order, cursor = torch.randperm(n, generator=gen), 0
    # Colour is learnt first and alone; batches whose images all share one colour or one shape
    # leave only the other attributes to tell them apart.
    groups = {}
    for i, im in enumerate(train_images):
        for key in ("colour", "shape"):
            groups.setdefault((key, im["scene"][key]), []).append(i)
    groups = [torch.tensor(v) for _, v in sorted(groups.items()) if len(v) >= args.batch]
    t_train = time.time()
    for step in range(args.steps):
        if args.hard_every and step % args.hard_every == 1:
            group = groups[int(torch.randint(0, len(groups), (1,), generator=gen))]
            idx = group[torch.randperm(len(group), generator=gen)[:args.batch]]
        else:
            if cursor + args.batch > n:
                order, cursor = torch.randperm(n, generator=gen), 0
            idx = order[cursor:cursor + args.batch]
            cursor += args.batch
        which = torch.randint(0, per_image, (len(idx),), generator=gen)
        ids, mask = train_ids[idx, which], train_mask[idx, which]
        length = int(mask.sum(1).max())
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            img = model.get_image_features(pixel_values=train_px[idx]).pooler_output
            txt = model.get_text_features(input_ids=ids[:, :length], attention_mask=mask[:, :length]).pooler_output
        img, txt = img.float(), txt.float()
        loss = clip_loss(img, txt, model.logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 25 == 0 or step == args.steps - 1:
            rate = (step + 1) / (time.time() - t_train)
            print(f"step {step} loss {loss.item():.3f} scale {model.logit_scale.exp().item():.1f} "
                  f"lr {sched.get_last_lr()[0]:.2e} {rate:.2f} steps/s", flush=True)
        if (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
            vi, vt = embed(model, val_px, val_ids, val_mask)
            r = recall(vi, vt, per_image)
            print("  val " + " ".join(f"{k} {v:.1f}" for k, v in r.items()), flush=True)
    train_s = time.time() - t_train

    vi, vt = embed(model, val_px, val_ids, val_mask)
    metrics = recall(vi, vt, per_image)
    metrics.update(attribute_match(vi, vt, val_images, per_image))
    for k, v in metrics.items():
        print(f"{k}: {v:.2f}")

    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    processor.save_pretrained(args.out)
    # Name the standard processor class so any CLIP loader accepts the file.
    pp_path = os.path.join(args.out, "preprocessor_config.json")
    with open(pp_path) as f:
        pp = json.load(f)
    pp["image_processor_type"] = "CLIPImageProcessor"
    with open(pp_path, "w") as f:
        json.dump(pp, f, indent=2, sort_keys=True)
        f.write("\n")
    run = {k: v for k, v in vars(args).items() if k not in ("data", "out")}
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump({"val_images": len(val_images), "val_captions": len(val_images) * per_image,
                   "train_images": len(train_images), "parameters": n_params,
                   "train_seconds": round(train_s), "total_seconds": round(time.time() - t0),
                   "args": run, "metrics": {k: round(v, 2) for k, v in metrics.items()}},
                  f, indent=2)
        f.write("\n")
    print(f"saved to {args.out}; train {train_s:.0f}s, total {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
