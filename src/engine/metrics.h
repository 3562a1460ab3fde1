// Engine counters and latency histograms, rendered by the server as
// Prometheus text. Thread-safe: the engine records, any thread reads.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace flashneox {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
  void observe(double value);
  // Appends the Prometheus lines for `name` (bucket, sum, count).
  void render(const std::string& name, const std::string& help, std::string& out) const;

 private:
  mutable std::mutex mutex_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  double sum_ = 0.0;
  uint64_t count_ = 0;
};

struct EngineMetrics {
  EngineMetrics();
  Histogram time_to_first_token;  // seconds
  Histogram inter_token_latency;  // seconds
  Histogram end_to_end_latency;   // seconds
  Histogram batch_size;           // sequences per forward

  void count_request(const std::string& outcome, uint64_t n = 1);
  void count_tokens(uint64_t generated, uint64_t prompt);
  // A request admitted with `prompt` tokens, `hit` of them found in the prefix cache.
  void count_prefix_lookup(uint64_t prompt, uint64_t hit);
  // A speculative step: `proposed` tokens guessed, the first `accepted` of them right.
  void count_speculation(uint64_t proposed, uint64_t accepted);
  std::map<std::string, uint64_t> requests_by_outcome() const;
  uint64_t generated_tokens() const;
  uint64_t prompt_tokens() const;
  uint64_t prefix_lookup_tokens() const;
  uint64_t prefix_hit_tokens() const;
  uint64_t speculated_tokens() const;
  uint64_t accepted_speculated_tokens() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, uint64_t> requests_;
  uint64_t generated_tokens_ = 0, prompt_tokens_ = 0;
  uint64_t prefix_lookup_tokens_ = 0, prefix_hit_tokens_ = 0;
  uint64_t speculated_tokens_ = 0, accepted_speculated_tokens_ = 0;
};

}  // namespace flashneox
