// Per-request generation parameters, named as TGI's /generate names them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace flashneox {

class Grammar;

constexpr int kMaxSpeculate = 16;  // most tokens proposed per step

struct SamplingParams {
  bool do_sample = false;
  std::optional<double> temperature;   // > 0; 0 means greedy
  std::optional<int> top_k;            // > 0
  std::optional<double> top_p;         // (0, 1]
  std::optional<double> typical_p;     // (0, 1]
  std::optional<double> repetition_penalty;  // > 0; 1 is none
  double frequency_penalty = 0.0;      // [-2, 2], OpenAI semantics
  double presence_penalty = 0.0;       // [-2, 2]
  std::optional<uint64_t> seed;
  int max_new_tokens = 20;             // >= 1
  std::vector<std::string> stop;       // stop sequences, matched on text
  bool ignore_eos_token = false;
  int top_n_tokens = 0;                // alternatives reported per token, [0, 10]
  bool decoder_input_details = false;  // log-probabilities of the prompt tokens
  // The chosen token's log-probability is reported. Off, greedy decoding
  // skips a pass over the vocabulary per token and reports 0 (sampling gets
  // it for free; top_n_tokens > 0 computes it anyway).
  bool logprobs = true;
  // Speculative decoding: tokens proposed per step (by prompt lookup) and
  // verified in one forward; 0 turns it off, none takes the engine's default.
  // Outputs are the same with it or without it.
  std::optional<int> speculate;
  // Constrained decoding: only tokens that keep the text inside the grammar,
  // and EOS once it is complete. Shared by copies; used by the engine thread.
  std::shared_ptr<Grammar> grammar;

  // True when tokens are drawn at random rather than taken greedily.
  bool sampling() const;
  // Throws Error naming the first out-of-range parameter.
  void validate() const;
};

}  // namespace flashneox
