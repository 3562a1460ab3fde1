#!/usr/bin/env python3
"""Speculative decoding (prompt lookup, and the draft model of
tests/data/draft-shakespeare) against plain decoding on the bundled model,
batch 1, greedy: the four reference prompts and a prompt that quotes a
long passage and starts it again (where lookup should shine); and, where few
guesses can hold, the first reference prompt sampled at temperature 1.5
(seeded, so the text is the same either way). Runs
`flashneox generate` plain, with --speculate N and with --draft-model
alternately, so all see the same machine, and reports median decode
tokens/s, the ratios to plain (above 1: speculation is faster) and the
guesses accepted. The texts must be identical (checked).

    python3 bench/speculation.py [--speculate 4] [--rounds 5] [--new 128] [--threads 2] [--draft DIR]
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


def run(name, prompt, mode, args):
    sampling = ["--temperature", "1.5", "--seed", "1"] if name.startswith("sampled") else ["--temperature", "0"]
    speculation = {"plain": ["--speculate", "0"], "lookup": ["--speculate", str(args.speculate)],
                   "draft": ["--draft-model", args.draft, "--speculate", str(args.speculate)]}[mode]
    cmd = [BINARY, "generate", "--model", MODEL, "--prompt", prompt, *sampling, "--ignore-eos",
           "--max-new-tokens", str(args.new), "--threads", str(args.threads), *speculation]
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
    ap.add_argument("--draft", default=os.path.join(ROOT, "tests", "data", "draft-shakespeare"))
    args = ap.parse_args()
    modes = ["plain", "lookup"] + (["draft"] if os.path.isdir(args.draft) else [])
    print(f"bundled model, batch 1, {args.new} new tokens, {args.threads} threads, --speculate {args.speculate}, "
          f"median of {args.rounds} alternating rounds; guesses accepted of proposed")
    print(f"{'prompt':<13} {'plain tok/s':>11} {'lookup':>8} {'ratio':>6} {'accepted':>9}"
          + (f" {'draft':>8} {'ratio':>6} {'accepted':>9}" if "draft" in modes else ""))
    for name, prompt in prompts():
        rates = {m: [] for m in modes}
        acc = {}
        texts = set()
        for _ in range(args.rounds):
            for m in modes:
                text, rate, accepted, proposed = run(name, prompt, m, args)
                rates[m].append(rate)
                texts.add(text)
                acc[m] = f"{accepted}/{proposed}"
        if len(texts) != 1:
            sys.exit(f"{name}: speculation changed the text")
        plain = statistics.median(rates["plain"])
        line = f"{name:<13} {plain:11.1f}"
        for m in modes[1:]:
            med = statistics.median(rates[m])
            line += f" {med:8.1f} {med / plain:6.2f} {acc[m]:>9}"
        print(line)


if __name__ == "__main__":
    sys.exit(main())
