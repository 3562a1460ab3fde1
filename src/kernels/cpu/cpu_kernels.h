// CPU kernels behind the Backend seam. Each SIMD kernel has a plain scalar
// twin (the *_reference functions) that tests compare it against.
#pragma once

#include <cstdint>

#include "core/isa.h"
#include "kernels/backend.h"

namespace flashneox::cpu {

// Which instruction set the kernels use (core/isa.h).
using ::flashneox::active_isa;
using ::flashneox::Isa;
using ::flashneox::isa_name;
using ::flashneox::limit_isa;
using ::flashneox::supported_isa;

// What a GEMM does to the outputs it has just written, in the same parallel
// task while they are still in cache: nothing, or an activation (fc_in's
// GELU). Per element, so the bits equal a separate activation pass.
struct Epilogue {
  bool activate = false;
  Activation kind = Activation::GeluErf;
  // Rows [m0, m1), columns [c0, c1) of y (row stride ldy).
  void operator()(float* y, int64_t ldy, int64_t m0, int64_t m1, int64_t c0, int64_t c1) const;
};

// Weights must be packed (WeightLayout::Panels32, see prepare_weight).
void linear(const float* x, int64_t m, const WeightMatrix& w, const float* bias, float* y,
            const Epilogue& epilogue = {});
// Panel packing (WeightLayout::Panels32) for F32/F16/BF16: `out` holds
// packed_panels(rows) * cols * 32 elements of `dtype`.
int64_t packed_panels(int64_t rows);
void pack_weight(const WeightMatrix& w, DType dtype, void* out);
void packed_linear(const float* x, int64_t m, const WeightMatrix& w, const float* bias, float* y,
                   const Epilogue& epilogue = {});
// True when the int8 and 4-bit kernels may use AVX-512 VNNI (the CPU has it and FLASHNEOX_ISA allows AVX-512).
bool has_vnni();
// int8 (W8A8, VNNI) panels: [cols / 4][32][4] per panel, with scales and column sums.
int64_t packed_int8_bytes(int64_t rows, int64_t cols);
void pack_weight_int8(const WeightMatrix& w, void* out, float* scales, int32_t* column_sums);
void packed_linear_int8(const float* x, int64_t m, const WeightMatrix& w, const float* bias, float* y,
                        const Epilogue& epilogue = {});
float packed_int8_weight(const WeightMatrix& w, int64_t row, int64_t col);  // dequantized, for tests
// 4-bit (W4A8) panels: groups of q4_group_size(dtype) inputs with an f16 scale each.
int q4_group_size(DType dtype);
int64_t packed_q4_bytes(int64_t rows, int64_t cols, int group);
void pack_weight_q4(const WeightMatrix& w, int group, void* out);
void packed_linear_q4(const float* x, int64_t m, const WeightMatrix& w, const float* bias, float* y,
                      const Epilogue& epilogue = {});
float packed_q4_weight(const WeightMatrix& w, int64_t row, int64_t col);  // dequantized, for tests
void linear_reference(const float* x, int64_t m, const WeightMatrix& w, const float* bias,
                      float* y);

void embed(const WeightMatrix& embedding, const int32_t* ids, int64_t tokens, float* out);
void layer_norm(const float* x, int64_t m, int64_t n, const float* gamma, const float* beta,
                float eps, float* y);
// x += a (+ b) when a is not null, then each norm with a y: y = layer_norm(x), row by row.
void add_norms(float* x, const float* a, const float* b, int64_t m, int64_t n, float eps, const Backend::Norm& first,
               const Backend::Norm& second);
void activation(float* x, int64_t count, Activation kind);
void add(float* x, const float* a, const float* b, int64_t count);

void rotary_and_cache(const float* qkv, int64_t tokens, int heads, int head_size,
                      int rotary_dims, const float* cos, const float* sin, const int64_t* slots,
                      float* q_out, void* k_cache, void* v_cache, DType kv_dtype, int block_size);

// Vector f16 <-> f32 for KV rows (F16C / AVX-512 where the CPU has them).
void widen_f16(const uint16_t* src, float* dst, int64_t n);
void narrow_f16(const float* src, uint16_t* dst, int64_t n);

// The paged cache's element order (backend.h): K blocks [heads][head_size][block_size]
// (keys side by side), V blocks [block_size][heads][head_size].
int64_t key_cache_index(int64_t block, int offset, int head, int i, int heads, int head_size, int block_size);
int64_t value_cache_index(int64_t block, int offset, int head, int i, int heads, int head_size, int block_size);

// Every FLASHNEOX_ISA path gives the same bits, and a token the same bits
// whether it is decoded or recomputed among a prefill's rows.
void prefill_attention(const AttentionParams& p);
void decode_attention(const AttentionParams& p);

// Segmented LoRA: y[r] += scale · (x[r] · Aᵀ) · Bᵀ per segment (backend.h).
void lora_add(const float* x, int64_t in, const LoraSegment* segments, int count, float* y, int64_t out);
// Plain softmax(q K^T) V, one query at a time: the reference for both.
void attention_reference(const AttentionParams& p);

}  // namespace flashneox::cpu
