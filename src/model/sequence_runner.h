// Runs whole sequences through the model the way a server would: a batched
// prefill (optionally in two parts, the second extending a cached prefix),
// then batched decode steps. Used by `flashneox logits`, the greedy checks
// and the parity tests.
#pragma once

#include <cstdint>
#include <vector>

#include "model/gpt_neox.h"

namespace flashneox {

struct RunOptions {
  int prefill = -1;         // tokens of each sequence in the batched prefill; -1: all
  bool prefill_half = false;  // instead: the first half (rounded up) of each sequence
  int cached_prefix = 0;    // of those, this many go in an earlier prefill first
  int block_size = 16;
  bool scatter_blocks = false;  // blocks from a shuffled pool, interleaved across sequences
  DType kv_dtype = DType::F32;
  bool keep_layer_hidden = false;  // fill SequenceResult::layer_hidden
  // Per sequence, the LoRA adapter it runs with (nullptr: none); empty: none at all.
  std::vector<const LoraAdapter*> adapters;
};

struct SequenceResult {
  std::vector<float> logits;  // [len, vocab]
  std::vector<float> hidden;  // [len, hidden]
  // With keep_layer_hidden, per layer [len, hidden]: the residual stream
  // entering it (ForwardOutput::layer_hidden).
  std::vector<std::vector<float>> layer_hidden;
};

// transformers' output_hidden_states from a run with keep_layer_hidden: the
// residual stream entering each layer, then the final norm's output,
// [layers + 1, len, hidden] flattened.
std::vector<float> all_hidden_states(const SequenceResult& result);

// Logits and final hidden states at every position of every sequence.
std::vector<SequenceResult> run_sequences(GptNeoxModel& model,
                                          const std::vector<std::vector<int32_t>>& sequences,
                                          const RunOptions& options);

// Greedy continuation of each prompt by `steps` tokens (no end-of-sequence stop).
std::vector<std::vector<int32_t>> greedy_continue(GptNeoxModel& model,
                                                  const std::vector<std::vector<int32_t>>& prompts,
                                                  int steps, const RunOptions& options);

int32_t argmax(const float* values, int64_t count);

}  // namespace flashneox
