// Turns one row of logits into the next token: penalties, temperature,
// top-k / top-p / typical-p filtering, then a greedy pick or a draw from the
// request's own random stream (so a seeded request is batch-independent).
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <unordered_map>
#include <vector>

#include "engine/sampling_params.h"

namespace flashneox {

struct TokenChoice {
  int32_t id = 0;
  float logprob = 0.0f;  // under the distribution the token was chosen from
  std::vector<std::pair<int32_t, float>> top;  // top_n_tokens alternatives (id, logprob)
};

// What penalties need to know about the sequence so far.
struct TokenCounts {
  std::unordered_map<int32_t, int> counts;  // prompt and generated tokens
  void add(int32_t id) { ++counts[id]; }
};

class Sampler {
 public:
  // Constrained decoding: which tokens may come next. fits() checks one
  // token (cheap); allowed() gives them all as a bitset over the vocabulary,
  // at least one set (costly the first time a grammar state is reached, so
  // asked only when the model's own choice does not fit).
  struct Constraint {
    std::function<bool(int32_t)> fits;
    std::function<const uint64_t*()> allowed;
  };
  // `logits` is modified in place (scratch). rng is the request's stream.
  // With a constraint, logprobs are still the model's (before the grammar).
  static TokenChoice choose(float* logits, int32_t vocab, const SamplingParams& params,
                            const TokenCounts& history, std::mt19937_64& rng,
                            const Constraint* constraint = nullptr);
  // log-softmax of a logits row at one index (prompt log-probabilities).
  static float logprob_of(const float* logits, int32_t vocab, int32_t id);
};

}  // namespace flashneox
