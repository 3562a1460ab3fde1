// CPU kernels behind the Backend seam. Each SIMD kernel has a plain scalar
// twin (the *_reference functions) that tests compare it against.
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace flashneox::cpu {

// Which instruction set the hot kernels use; FLASHNEOX_ISA=scalar|avx2|avx512
// forces a lower one so every path can be tested on one machine.
enum class Isa { Scalar, Avx2, Avx512 };
Isa active_isa();
Isa supported_isa();         // the best this CPU (and FLASHNEOX_ISA) allows
void limit_isa(Isa isa);     // tests: use at most this ISA from now on
const char* isa_name(Isa isa);

// Weights must be packed (WeightLayout::Panels32, see prepare_weight).
void linear(const float* x, int64_t m, const WeightMatrix& w, const float* bias, float* y);
// Panel packing (WeightLayout::Panels32) for F32/F16/BF16: `out` holds
// packed_panels(rows) * cols * 32 elements of `dtype`.
int64_t packed_panels(int64_t rows);
void pack_weight(const WeightMatrix& w, DType dtype, void* out);
void packed_linear(const float* x, int64_t m, const WeightMatrix& w, const float* bias, float* y);
// int8 (W8A8, VNNI) panels: [cols / 4][32][4] per panel, with scales and column sums.
int64_t packed_int8_bytes(int64_t rows, int64_t cols);
void pack_weight_int8(const WeightMatrix& w, void* out, float* scales, int32_t* column_sums);
void packed_linear_int8(const float* x, int64_t m, const WeightMatrix& w, const float* bias, float* y);
float packed_int8_weight(const WeightMatrix& w, int64_t row, int64_t col);  // dequantized, for tests
void linear_reference(const float* x, int64_t m, const WeightMatrix& w, const float* bias,
                      float* y);

void embed(const WeightMatrix& embedding, const int32_t* ids, int64_t tokens, float* out);
void layer_norm(const float* x, int64_t m, int64_t n, const float* gamma, const float* beta,
                float eps, float* y);
void activation(float* x, int64_t count, Activation kind);
void add(float* x, const float* a, const float* b, int64_t count);

void rotary_and_cache(const float* qkv, int64_t tokens, int heads, int head_size,
                      int rotary_dims, const float* cos, const float* sin, const int64_t* slots,
                      float* q_out, void* k_cache, void* v_cache, DType kv_dtype);

// Vector f16 <-> f32 for KV rows (F16C / AVX-512 where the CPU has them).
void widen_f16(const uint16_t* src, float* dst, int64_t n);
void narrow_f16(const float* src, uint16_t* dst, int64_t n);

void prefill_attention(const AttentionParams& p);
void decode_attention(const AttentionParams& p);

// Segmented LoRA: y[r] += scale · (x[r] · Aᵀ) · Bᵀ per segment (backend.h).
void lora_add(const float* x, int64_t in, const LoraSegment* segments, int count, float* y, int64_t out);
// Plain softmax(q K^T) V, one query at a time: the reference for both.
void attention_reference(const AttentionParams& p);

}  // namespace flashneox::cpu
