#!/usr/bin/env python3
"""flashneox's tokenizer against Hugging Face `tokenizers`, one thread each,
side by side in one run, on Tiny Shakespeare and on a mixed-script text.

    python3 bench/tokenizer_compare.py [--rounds 5]

Needs `tokenizers` (bench/requirements.txt; `make bench-tokenizer` sets up a
virtual environment for it) and a built `build/bench/tokenizer_bench`.
Rounds alternate A B A B; each reports the best of several encodes, and the
table shows the median over rounds and the ratio flashneox / HF.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers loads
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER = os.path.join(ROOT, "tests/data/gpt-neox-20b-tokenizer.json")


def mixed_script_text(target_bytes=1_000_000):
    with open(os.path.join(ROOT, "tests/data/fixtures/tokenizer-cases.json"), encoding="utf-8") as f:
        cases = [c["text"] for c in json.load(f)["cases"]]
    piece = "\n".join(cases) + "\n"
    return (piece * (target_bytes // len(piece.encode()) + 1))[: target_bytes // 2 * 2]


def hf_encode(tok, text, repeats):
    tok.encode(text)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        n = len(tok.encode(text).ids)
        best = min(best, time.perf_counter() - start)
    return best, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bench", default=os.path.join(ROOT, "build/bench/tokenizer_bench"))
    args = ap.parse_args()
    hf = Tokenizer.from_file(TOKENIZER)
    with tempfile.TemporaryDirectory() as tmp:
        mixed = os.path.join(tmp, "mixed.txt")
        with open(mixed, "w", encoding="utf-8", newline="") as f:
            f.write(mixed_script_text())
        inputs = {"tinyshakespeare": os.path.join(ROOT, "tests/data/tinyshakespeare.txt"), "mixed-script": mixed}
        print(f"{'text':<16} {'MB':>6} {'HF MB/s':>9} {'ours MB/s':>10} {'ours tok/s':>12} {'ratio':>7}")
        for name, path in inputs.items():
            with open(path, encoding="utf-8", newline="") as f:
                text = f.read()
            ours, theirs, ratios = [], [], []
            for _ in range(args.rounds):
                out = subprocess.run([args.bench, TOKENIZER, path, str(args.repeats)], check=True,
                                     capture_output=True, text=True).stdout
                mine = json.loads(out)
                secs, n = hf_encode(hf, text, args.repeats)
                if n != mine["tokens"]:
                    sys.exit(f"{name}: token counts differ (HF {n}, flashneox {mine['tokens']})")
                ours.append(mine["mb_per_s"])
                theirs.append(mine["bytes"] / secs / 1e6)
                ratios.append(ours[-1] / theirs[-1])
            mb = mine["bytes"] / 1e6
            tps = statistics.median(ours) * 1e6 / mine["bytes"] * mine["tokens"]
            print(f"{name:<16} {mb:6.2f} {statistics.median(theirs):9.2f} {statistics.median(ours):10.2f} "
                  f"{tps:12.0f} {statistics.median(ratios):6.2f}x")


if __name__ == "__main__":
    main()
