// The activations of one forward step: the residual stream, layer-norm
// output, fused qkv, attention and MLP buffers. Sized once for the largest
// step an engine runs and reused, so a step neither allocates nor zero-fills
// (every buffer is fully written before it is read). Pages are touched only
// as steps that large arrive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "io/model_config.h"

namespace flashneox {

class ForwardWorkspace {
 public:
  ForwardWorkspace() = default;
  ForwardWorkspace(const ModelConfig& config, int64_t tokens) { reserve(config, tokens); }

  // Room for steps of up to `tokens` tokens (grows, never shrinks).
  void reserve(const ModelConfig& config, int64_t tokens);
  int64_t capacity() const { return tokens_; }
  size_t bytes() const;

  float* x() { return x_.get(); }                  // [tokens, hidden] residual stream
  float* normed() { return normed_.get(); }        // [tokens, hidden] layer-norm output
  float* normed_mlp() { return normed_mlp_.get(); }  // [tokens, hidden] the MLP's norm (parallel residual)
  float* qkv() { return qkv_.get(); }              // [tokens, 3 * hidden]
  float* q() { return q_.get(); }                  // [tokens, hidden] rotated queries
  float* attn() { return attn_.get(); }            // [tokens, hidden] attention output
  float* attn_out() { return attn_out_.get(); }    // [tokens, hidden] after the dense projection
  float* mlp_out() { return mlp_out_.get(); }      // [tokens, hidden]
  float* mlp_hidden() { return mlp_hidden_.get(); }  // [tokens, intermediate]

 private:
  int64_t tokens_ = 0, hidden_ = 0, intermediate_ = 0;
  std::unique_ptr<float[]> x_, normed_, normed_mlp_, qkv_, q_, attn_, attn_out_, mlp_out_, mlp_hidden_;
};

}  // namespace flashneox
