#!/usr/bin/env python3
"""Trains the draft model for the bundled Shakespeare model (speculative
decoding's --draft-model): a 2-layer GPT-NeoX, hidden 64, with the bundled
model's tokenizer and vocabulary, distilled from the bundled model on the
first 90% of Tiny Shakespeare's tokens (the bundled model's own training
split): its loss is the KL divergence from the bundled model's next-token
distribution, so its greedy guesses agree with the bundled model's as often
as its size allows. Writes config.json and model.safetensors (float16, tied
embeddings) to tests/data/draft-shakespeare.

Needs torch and transformers (pip install torch transformers safetensors;
only this script does) and a built flashneox (its tokenizer):

    python3 scripts/train-draft-model.py [--steps 1200] [--seed 0]
"""
import argparse
import json
import os
import subprocess
import time

import torch
import torch.nn.functional as F
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEACHER = os.path.join(ROOT, "models", "neox-shakespeare")
OUT = os.path.join(ROOT, "tests", "data", "draft-shakespeare")


def tokens():
    text = open(os.path.join(ROOT, "tests", "data", "tinyshakespeare.txt"), encoding="utf-8").read()
    done = subprocess.run([os.path.join(ROOT, "build", "flashneox"), "tokenize", "--tokenizer",
                           os.path.join(TEACHER, "tokenizer.json")],
                          input=json.dumps({"text": text}) + "\n", capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["ids"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=96)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    ids = tokens()
    train = torch.tensor(ids[: int(len(ids) * 0.9)], dtype=torch.long)
    valid = torch.tensor(ids[int(len(ids) * 0.9):], dtype=torch.long)
    print(f"{len(ids)} tokens: {len(train)} to train on, {len(valid)} held out")

    teacher = GPTNeoXForCausalLM.from_pretrained(TEACHER, torch_dtype=torch.float32).eval()
    vocab = teacher.config.vocab_size
    config = GPTNeoXConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=256, rotary_pct=0.25, max_position_embeddings=2048,
                           use_parallel_residual=True, tie_word_embeddings=True, hidden_act="gelu",
                           bos_token_id=0, eos_token_id=0, attention_bias=True)
    student = GPTNeoXForCausalLM(config)
    # A head start: the teacher's embedding projected on its 64 main directions.
    with torch.no_grad():
        emb = teacher.gpt_neox.embed_in.weight
        u, s, _ = torch.linalg.svd(emb - emb.mean(0), full_matrices=False)
        student.gpt_neox.embed_in.weight.copy_(u[:, :64] * s[:64] / s[:64].norm() * 8.0)
    opt = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)

    def batch(data, n):
        starts = torch.randint(0, len(data) - args.length - 1, (n,))
        return torch.stack([data[s: s + args.length] for s in starts])

    start = time.time()
    for step in range(1, args.steps + 1):
        x = batch(train, args.batch)
        with torch.no_grad():
            target = F.log_softmax(teacher(x).logits, dim=-1)
        logp = F.log_softmax(student(x).logits, dim=-1)
        loss = F.kl_div(logp.reshape(-1, vocab), target.reshape(-1, vocab), log_target=True, reduction="batchmean")
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps:
            with torch.no_grad():
                v = batch(valid, 16)
                agree = (student(v).logits.argmax(-1) == teacher(v).logits.argmax(-1)).float().mean().item()
            print(f"step {step}: KL {loss.item():.3f}, held-out greedy agreement {agree:.3f}, "
                  f"{time.time() - start:.0f} s", flush=True)

    os.makedirs(OUT, exist_ok=True)
    student.half().save_pretrained(OUT, safe_serialization=True)
    for extra in ("generation_config.json",):
        path = os.path.join(OUT, extra)
        if os.path.exists(path):
            os.remove(path)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
