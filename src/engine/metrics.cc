#include "engine/metrics.h"

#include <cstdio>

namespace flashneox {

void Histogram::observe(double value) {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::render(const std::string& name, const std::string& help, std::string& out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cumulative = 0;
  char line[256];
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    std::snprintf(line, sizeof(line), "%s_bucket{le=\"%g\"} %llu\n", name.c_str(), bounds_[i],
                  static_cast<unsigned long long>(cumulative));
    out += line;
  }
  std::snprintf(line, sizeof(line), "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n",
                name.c_str(), static_cast<unsigned long long>(count_), name.c_str(), sum_,
                name.c_str(), static_cast<unsigned long long>(count_));
  out += line;
}

namespace {
std::vector<double> latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}
}  // namespace

EngineMetrics::EngineMetrics()
    : time_to_first_token(latency_buckets()),
      inter_token_latency(latency_buckets()),
      end_to_end_latency(latency_buckets()),
      batch_size({1, 2, 4, 8, 16, 32, 64, 128, 256}) {}

void EngineMetrics::count_request(const std::string& outcome, uint64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  requests_[outcome] += n;
}

void EngineMetrics::count_tokens(uint64_t generated, uint64_t prompt) {
  std::lock_guard<std::mutex> lock(mutex_);
  generated_tokens_ += generated;
  prompt_tokens_ += prompt;
}

void EngineMetrics::count_prefix_lookup(uint64_t prompt, uint64_t hit) {
  std::lock_guard<std::mutex> lock(mutex_);
  prefix_lookup_tokens_ += prompt;
  prefix_hit_tokens_ += hit;
}

uint64_t EngineMetrics::prefix_lookup_tokens() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return prefix_lookup_tokens_;
}

uint64_t EngineMetrics::prefix_hit_tokens() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return prefix_hit_tokens_;
}

void EngineMetrics::count_speculation(uint64_t proposed, uint64_t accepted) {
  std::lock_guard<std::mutex> lock(mutex_);
  speculated_tokens_ += proposed;
  accepted_speculated_tokens_ += accepted;
}

uint64_t EngineMetrics::speculated_tokens() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return speculated_tokens_;
}

uint64_t EngineMetrics::accepted_speculated_tokens() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return accepted_speculated_tokens_;
}

std::map<std::string, uint64_t> EngineMetrics::requests_by_outcome() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_;
}

uint64_t EngineMetrics::generated_tokens() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return generated_tokens_;
}

uint64_t EngineMetrics::prompt_tokens() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return prompt_tokens_;
}

}  // namespace flashneox
