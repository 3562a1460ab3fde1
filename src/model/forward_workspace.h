// The activations of one forward step: the residual stream, layer-norm
// output, fused qkv, attention and MLP buffers. Sized once for the largest
// step an engine runs and reused, so a step neither allocates nor zero-fills
// (every buffer is fully written before it is read). One LargeBuffer holds
// them all (huge pages, as the weights); pages are touched only as steps that
// large arrive.
#pragma once

#include <cstddef>
#include <cstdint>
#include "core/large_buffer.h"
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

  float* x() { return x_; }                  // [tokens, hidden] residual stream
  float* normed() { return normed_; }        // [tokens, hidden] layer-norm output
  float* normed_mlp() { return normed_mlp_; }  // [tokens, hidden] the MLP's norm (parallel residual)
  float* qkv() { return qkv_; }              // [tokens, 3 * hidden]
  float* q() { return q_; }                  // [tokens, hidden] rotated queries
  float* attn() { return attn_; }            // [tokens, hidden] attention output
  float* attn_out() { return attn_out_; }    // [tokens, hidden] after the dense projection
  float* mlp_out() { return mlp_out_; }      // [tokens, hidden]
  float* mlp_hidden() { return mlp_hidden_; }  // [tokens, intermediate]

 private:
  int64_t tokens_ = 0, hidden_ = 0, intermediate_ = 0;
  LargeBuffer buffer_;
  float *x_ = nullptr, *normed_ = nullptr, *normed_mlp_ = nullptr, *qkv_ = nullptr, *q_ = nullptr, *attn_ = nullptr,
        *attn_out_ = nullptr, *mlp_out_ = nullptr, *mlp_hidden_ = nullptr;
};

}  // namespace flashneox
