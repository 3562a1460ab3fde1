#include "model/forward_workspace.h"

namespace flashneox {

namespace {
// Uninitialised on purpose: `new float[n]` leaves the pages untouched.
std::unique_ptr<float[]> buffer(int64_t floats) { return std::unique_ptr<float[]>(new float[static_cast<size_t>(floats)]); }
}  // namespace

void ForwardWorkspace::reserve(const ModelConfig& c, int64_t tokens) {
  if (tokens <= tokens_ && c.hidden_size == hidden_ && c.intermediate_size == intermediate_) return;
  if (tokens < tokens_) tokens = tokens_;
  const int64_t h = tokens * c.hidden_size;
  x_ = buffer(h);
  normed_ = buffer(h);
  normed_mlp_ = buffer(h);
  qkv_ = buffer(3 * h);
  q_ = buffer(h);
  attn_ = buffer(h);
  attn_out_ = buffer(h);
  mlp_out_ = buffer(h);
  mlp_hidden_ = buffer(tokens * c.intermediate_size);
  tokens_ = tokens;
  hidden_ = c.hidden_size;
  intermediate_ = c.intermediate_size;
}

size_t ForwardWorkspace::bytes() const {
  return static_cast<size_t>(tokens_ * (10 * hidden_ + intermediate_)) * sizeof(float);
}

}  // namespace flashneox
