// Builds a ForwardBatch from per-sequence steps: the slots of new tokens
// follow from each sequence's block table and how much of it is cached.
#pragma once

#include <cstdint>
#include <vector>

#include "model/forward_batch.h"

namespace flashneox {

struct SequenceStep {
  const int32_t* tokens = nullptr;     // the new tokens
  int count = 0;
  int cached = 0;                      // tokens of this sequence already in the cache
  const std::vector<int32_t>* blocks = nullptr;  // block table, long enough for cached + count
  bool keep_all_rows = false;          // logits for every new token, not only the last
  const LoraAdapter* adapter = nullptr;  // the sequence's LoRA adapter, if any
};

// prefill: several tokens per sequence (cu_seqlen_prefill set); otherwise a
// decode step, where each step must bring exactly one token.
ForwardBatch make_batch(const std::vector<SequenceStep>& steps, int block_size, bool prefill);

// Blocks needed to hold `tokens` tokens.
inline int blocks_for(int tokens, int block_size) {
  return (tokens + block_size - 1) / block_size;
}

}  // namespace flashneox
