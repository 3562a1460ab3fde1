// The one seam between the model and the hardware. The model's forward is
// written once against this interface; each backend (CPU now, CUDA next)
// implements every op. Pointers are in the backend's memory; shapes are
// written on every argument as [dim, dim, ...] row-major.
#pragma once

#include <cstdint>
#include <memory>

#include "core/dtype.h"
#include "io/model_config.h"

namespace flashneox {

enum class WeightLayout {
  RowMajor,  // [rows, cols], as checkpoints store it
  Panels32,  // [ceil(rows / 32), cols, 32]: 32 output features side by side per input
             // feature (zero-padded), the layout the CPU GEMM streams
};

// A weight matrix used as y = x · W^T.
struct WeightMatrix {
  DType dtype = DType::F32;
  const void* data = nullptr;  // see layout
  int64_t rows = 0;            // output features
  int64_t cols = 0;            // input features
  WeightLayout layout = WeightLayout::RowMajor;
  const float* scales = nullptr;         // I8 only: [rows] per-output-channel scale
  const int32_t* column_sums = nullptr;  // I8 only: [rows] sum of each row's int8 weights
  int64_t bytes = 0;                     // storage, once prepare_weight packed it
};

// Everything attention needs about one forward's sequences and the paged cache.
// Query token j (0-based among sequence s's new tokens) sits at absolute
// position context_lens[s] - q_len(s) + j and sees keys at positions <= that.
struct AttentionParams {
  const float* q = nullptr;            // [num_tokens, heads, head_size], rotary applied
  float* out = nullptr;                // [num_tokens, heads, head_size]
  const void* k_cache = nullptr;       // [num_blocks, heads, head_size, block_size] of kv_dtype
  const void* v_cache = nullptr;       // [num_blocks, block_size, heads, head_size] of kv_dtype
  DType kv_dtype = DType::F32;         // F32 or F16
  int heads = 0;
  int head_size = 0;
  int block_size = 0;
  float scale = 1.0f;                  // 1 / sqrt(head_size)
  int num_seqs = 0;
  const int32_t* cu_q = nullptr;       // [num_seqs + 1] offsets of each sequence's queries
  const int32_t* context_lens = nullptr;  // [num_seqs] cached + new tokens
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]
  int max_blocks_per_seq = 0;
};

// Rows of one projection's input that share a LoRA adapter: their outputs
// get scale · (x · Aᵀ) · Bᵀ added (segmented low-rank products, LoRAX's SGMV
// idea on the CPU). Segments never overlap.
struct LoraSegment {
  int64_t begin = 0, end = 0;  // rows [begin, end) of x and y
  const void* a = nullptr;     // [rank, in]   lora_A
  const void* b = nullptr;     // [rank, out]  lora_B transposed
  int rank = 0;
  float scale = 0.0f;
  DType dtype = DType::F32;    // of a and b: F32 or F16
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // Converts a row-major checkpoint matrix into the layout and dtype this
  // backend computes fastest with (`dtype` F32, F16, BF16, I8 with
  // per-channel scales, or Q4/Q4G128 with a scale per group of inputs). The
  // backend owns the new storage.
  virtual WeightMatrix prepare_weight(const WeightMatrix& w, DType dtype) = 0;

  // out[t, :] = embedding[ids[t], :] as f32.     embedding: [vocab, hidden], row-major
  virtual void embed(const WeightMatrix& embedding, const int32_t* ids, int64_t tokens,
                     float* out /* [tokens, hidden] */) = 0;

  // y[m, n] = x[m, :] · W[n, :] + bias[n]   (bias may be null)
  virtual void linear(const float* x /* [m, k] */, int64_t m, const WeightMatrix& w,
                      const float* bias /* [n] */, float* y /* [m, n] */) = 0;

  // y = act(x · Wᵀ + bias): linear with the activation applied as the
  // outputs are written (one pass over y fewer). Same bits as the two ops.
  virtual void linear_activation(const float* x /* [m, k] */, int64_t m, const WeightMatrix& w,
                                 const float* bias /* [n] */, Activation kind, float* y /* [m, n] */) {
    linear(x, m, w, bias, y);
    activation(y, m * w.rows, kind);
  }

  // y = (x - mean) / sqrt(var + eps) * gamma + beta, per row of width n.
  virtual void layer_norm(const float* x /* [m, n] */, int64_t m, int64_t n,
                          const float* gamma /* [n] */, const float* beta /* [n] */, float eps,
                          float* y /* [m, n] */) = 0;

  // The residual add and the layer norms that read its result, in one pass
  // over x: x += a (+ b) when a is not null, then first.y = layer_norm(x)
  // and, when second.y is not null, second.y = layer_norm(x) with its own
  // gamma and beta. Same bits as add and layer_norm one after the other.
  struct Norm {
    const float* gamma = nullptr;  // [n]
    const float* beta = nullptr;   // [n]
    float* y = nullptr;            // [m, n]
  };
  virtual void add_norms(float* x /* [m, n] */, const float* a, const float* b, int64_t m, int64_t n, float eps,
                         const Norm& first, const Norm& second) {
    if (a) add(x, a, b, m * n);
    layer_norm(x, m, n, first.gamma, first.beta, eps, first.y);
    if (second.y) layer_norm(x, m, n, second.gamma, second.beta, eps, second.y);
  }

  // In place over count elements.
  virtual void activation(float* x, int64_t count, Activation kind) = 0;

  // x[i] += a[i] (+ b[i] when b is not null).
  virtual void add(float* x, const float* a, const float* b, int64_t count) = 0;

  // Splits the fused qkv projection ([tokens, heads, 3, head_size] as GPT-NeoX
  // lays it out), rotates the first rotary_dims of q and k ("rotate half"),
  // writes q to q_out and k, v into the cache at each token's slot
  // (block * block_size + offset; layouts as in AttentionParams).
  // cos/sin: [tokens, rotary_dims / 2], precomputed per token position.
  virtual void rotary_and_cache(const float* qkv, int64_t tokens, int heads, int head_size,
                                int rotary_dims, const float* cos, const float* sin,
                                const int64_t* slots /* [tokens] */, float* q_out,
                                void* k_cache, void* v_cache, DType kv_dtype, int block_size) = 0;

  // Tiled online-softmax attention of several new tokens per sequence over
  // the cached prefix plus themselves (causal).
  virtual void prefill_attention(const AttentionParams& params) = 0;
  // One query per sequence, reading K/V through the block table.
  virtual void decode_attention(const AttentionParams& params) = 0;

  // y[r, :] += seg.scale · (x[r, :] · seg.aᵀ) · seg.bᵀ for every row r of
  // every segment. A row's result does not depend on the other rows.
  virtual void lora_add(const float* x /* [m, in] */, int64_t in, const LoraSegment* segments,
                        int count, float* y /* [m, out] */, int64_t out) = 0;
};

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace flashneox
