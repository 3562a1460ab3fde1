#include "model/forward_workspace.h"

#include <utility>

namespace flashneox {

void ForwardWorkspace::reserve(const ModelConfig& c, int64_t tokens) {
  if (tokens <= tokens_ && c.hidden_size == hidden_ && c.intermediate_size == intermediate_) return;
  if (tokens < tokens_) tokens = tokens_;
  const int64_t h = tokens * c.hidden_size;
  // Each array starts on a cache line.
  const auto lines = [](int64_t floats) { return (floats + 15) / 16 * 16; };
  const int64_t total = 7 * lines(h) + lines(3 * h) + lines(tokens * c.intermediate_size);
  buffer_ = LargeBuffer(static_cast<size_t>(total) * sizeof(float), "the forward pass's activations");
  float* at = static_cast<float*>(buffer_.data());
  const auto take = [&](int64_t floats) { return std::exchange(at, at + lines(floats)); };
  x_ = take(h);
  normed_ = take(h);
  normed_mlp_ = take(h);
  qkv_ = take(3 * h);
  q_ = take(h);
  attn_ = take(h);
  attn_out_ = take(h);
  mlp_out_ = take(h);
  mlp_hidden_ = take(tokens * c.intermediate_size);
  tokens_ = tokens;
  hidden_ = c.hidden_size;
  intermediate_ = c.intermediate_size;
}

size_t ForwardWorkspace::bytes() const { return buffer_.size(); }

}  // namespace flashneox
