#!/usr/bin/env python3
"""Writes tests/data/fixtures/<model>/hidden_states.safetensors for the
neox-parallel and neox-sequential fixtures: transformers' GPTNeoXForCausalLM
with output_hidden_states=True on each reference prompt, as
`hidden_states.<i>` [layers + 1, len, hidden] (float32) beside `ids.<i>`.
Needs torch, transformers and safetensors; only this script does.

Run: python scripts/make-hidden-states-reference.py  (from the repository root)
"""
import json

import torch
from safetensors.torch import save_file
from transformers import GPTNeoXForCausalLM

for name in ("neox-parallel", "neox-sequential"):
    folder = f"tests/data/fixtures/{name}"
    model = GPTNeoXForCausalLM.from_pretrained(folder, torch_dtype=torch.float32, attn_implementation="eager").eval()
    prompts = json.load(open(f"{folder}/reference.json"))["prompts"]
    tensors = {}
    with torch.no_grad():
        for i, ids in enumerate(prompts):
            out = model(torch.tensor([ids]), output_hidden_states=True)
            tensors[f"hidden_states.{i}"] = torch.stack([h[0] for h in out.hidden_states]).contiguous()
            tensors[f"ids.{i}"] = torch.tensor(ids, dtype=torch.int32)
    save_file(tensors, f"{folder}/hidden_states.safetensors",
              metadata={"source": "transformers GPTNeoXForCausalLM, output_hidden_states=True"})
    print(name, {k: list(v.shape) for k, v in tensors.items() if k.startswith("hidden")})
