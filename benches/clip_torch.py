#!/usr/bin/env python3
"""PyTorch reference for benches/clip.rs: the same measurements with transformers.

    python3 benches/clip_torch.py /tmp/clip-vit-b-32 --threads 2

Model folder from `scripts/clip_golden.py --config vit-b-32`. Prints medians: images/s at batch
1/8/32 (preprocessed pixels, model only) and texts/s at batch 1.
"""

import argparse
import statistics
import time

import torch
from transformers import AutoTokenizer, CLIPModel


def median_rate(fn, n_items, seconds):
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n_items / statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = CLIPModel.from_pretrained(args.model).eval()
    tok = AutoTokenizer.from_pretrained(args.model)
    size = model.config.vision_config.image_size
    gen = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    with torch.inference_mode():
        for bs in (1, 8, 32):
            px = torch.randn(bs, 3, size, size, generator=gen)
            rate = median_rate(lambda: model.get_image_features(pixel_values=px), bs, args.seconds)
            print(f"image batch {bs}: {rate:.2f} images/s")
        ids = tok(["a photo of a cat sitting on a red sofa"], return_tensors="pt")
        rate = median_rate(lambda: model.get_text_features(**ids), 1, args.seconds / 2)
        print(f"text batch 1: {rate:.1f} texts/s ({1000 / rate:.1f} ms)")


if __name__ == "__main__":
    main()
