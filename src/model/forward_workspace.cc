#include "model/forward_workspace.h"

#include <iterator>
#include <utility>

namespace flashneox {

void ForwardWorkspace::reserve(const ModelConfig& c, int64_t tokens) {
  if (tokens <= tokens_ && c.hidden_size == hidden_ && c.intermediate_size == intermediate_) return;
  if (tokens < tokens_) tokens = tokens_;
  const int64_t h = tokens * c.hidden_size;
  float** arrays[] = {&x_, &normed_, &normed_mlp_, &qkv_, &q_, &attn_, &attn_out_, &mlp_out_, &mlp_hidden_};
  const int64_t floats[] = {h, h, h, 3 * h, h, h, h, h, tokens * c.intermediate_size};
  // Each array starts on a cache line.
  const auto lines = [](int64_t n) { return (n + 15) / 16 * 16; };
  int64_t total = 0;
  for (int64_t n : floats) total += lines(n);
  buffer_ = LargeBuffer(static_cast<size_t>(total) * sizeof(float), "the forward pass's activations");
  float* at = static_cast<float*>(buffer_.data());
  for (size_t i = 0; i < std::size(arrays); ++i) *arrays[i] = std::exchange(at, at + lines(floats[i]));
  tokens_ = tokens;
  hidden_ = c.hidden_size;
  intermediate_ = c.intermediate_size;
}

size_t ForwardWorkspace::bytes() const { return buffer_.size(); }

}  // namespace flashneox
