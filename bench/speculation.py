#!/usr/bin/env python3
"""Speculative decoding (prompt lookup) against plain decoding on the bundled
model, batch 1, greedy: the four reference prompts and a prompt that quotes a
long passage and starts it again (where lookup should shine); and, where few
guesses can hold, the first reference prompt sampled at temperature 1.5
(seeded, so the text is the same either way). Runs
`flashneox generate` with --speculate 0 and --speculate N alternately, so
both see the same machine, and reports median decode tokens/s, their ratio
(above 1: speculation is faster) and the share of guesses accepted. The
texts must be identical (checked).

    python3 bench/speculation.py [--speculate 4] [--rounds 5] [--new 128] [--threads 2]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "build", "flashneox")
MODEL = os.path.join(ROOT, "models", "neox-shakespeare")
SUMMARY = re.compile(r"\[(\d+) prompt tokens, (\d+) generated, .*?, ([\d.]+) tokens/s.*?"
                     r"(?:speculation: (\d+) of (\d+) guesses accepted)?\]")


def prompts():
    ref = json.load(open(os.path.join(MODEL, "reference.json"), encoding="utf-8"))
    out = [(f"reference {i + 1}", g["prompt"]) for i, g in enumerate(ref["greedy"])]
    text = open(os.path.join(ROOT, "tests", "data", "tinyshakespeare.txt"), encoding="utf-8").read()
    passage = text[2000:3400]
    out.append(("quoting", passage + "\n\n" + passage[:120]))
    out.append(("sampled T1.5", ref["greedy"][0]["prompt"]))
    return out


def run(name, prompt, speculate, args):
    sampling = ["--temperature", "1.5", "--seed", "1"] if name.startswith("sampled") else ["--temperature", "0"]
    cmd = [BINARY, "generate", "--model", MODEL, "--prompt", prompt, *sampling, "--ignore-eos",
           "--max-new-tokens", str(args.new), "--threads", str(args.threads), "--speculate", str(speculate)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    m = SUMMARY.search(done.stderr)
    if not m:
        sys.exit(f"no summary in: {done.stderr[-400:]}")
    accepted, proposed = int(m.group(4) or 0), int(m.group(5) or 0)
    return done.stdout, float(m.group(3)), accepted, proposed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--speculate", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    print(f"bundled model, batch 1, {args.new} new tokens, {args.threads} threads, --speculate "
          f"{args.speculate} vs 0, median of {args.rounds} alternating rounds")
    print(f"{'prompt':<13} {'plain tok/s':>11} {'speculative':>11} {'ratio':>6} {'accepted':>9}")
    for name, prompt in prompts():
        plain, fast, acc = [], [], []
        texts = set()
        for _ in range(args.rounds):
            text, rate, _, _ = run(name, prompt, 0, args)
            plain.append(rate)
            texts.add(text)
            text, rate, accepted, proposed = run(name, prompt, args.speculate, args)
            fast.append(rate)
            texts.add(text)
            acc.append((accepted, proposed))
        if len(texts) != 1:
            sys.exit(f"{name}: speculation changed the text")
        a, p = acc[0]
        print(f"{name:<13} {statistics.median(plain):11.1f} {statistics.median(fast):11.1f} "
              f"{statistics.median(fast) / statistics.median(plain):6.2f} {a:>4}/{p:<4}")


if __name__ == "__main__":
    sys.exit(main())
