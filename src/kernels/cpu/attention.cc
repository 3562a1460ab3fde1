// Attention over the paged KV cache. Prefill: flash-style, a tile of query
// rows against tiles of keys gathered through the block table, with an online
// softmax so no [q, k] score matrix is ever materialised. Decode: the same
// tile walk with a single query row per (sequence, head).
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "core/isa.h"
#include "core/parallel.h"
#include "kernels/cpu/cpu_kernels.h"

// Attention over the paged KV cache, flash style: no [q, k] score matrix is
// ever materialised; an online softmax walks the keys block by block, reading
// K and V straight from the cache (f16 widened in registers).
//
// The cache stores a block's keys transposed, [heads][head_size][block_size],
// so sixteen keys' scores are sixteen lanes of one FMA chain (no horizontal
// sums, no transposing; blocks of other than a multiple of 16 keys are
// gathered into 16-key tiles); values stay [block_size][heads][head_size].
//
// Decode: a work item is one sequence, a group of its heads and one
// partition of its keys (flash-decoding), so even one long sequence keeps
// every thread busy; the partitions' partial softmaxes are merged afterwards.
// Prefill: a work item is one sequence, one head and a tile of query rows.
// Both give the same bits for a token (attention_kernel.inc says how).
// GCC 12 reports false positives inside its own AVX-512 conversion intrinsics
// (and on the score tile, whose valid part is always written first).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/lanes16.h"

namespace flashneox::cpu {

namespace {

constexpr int kQueryTile = 16;
constexpr int kPartitionKeys = 256;  // keys per flash-decoding partition, a multiple of 16

// Keys [k0, k0 + valid) of heads [h0, h1) as [head][i][16], zero-padded:
// the tile layout for blocks that do not hold whole 16-key tiles.
template <class T>
void gather_keys(const AttentionParams& p, const int32_t* table, int k0, int valid, int h0, int h1, T* out) {
  const int d = p.head_size, bs = p.block_size;
  const T* k_cache = static_cast<const T*>(p.k_cache);
  for (int h = h0; h < h1; ++h) {
    T* dst = out + static_cast<int64_t>(h - h0) * d * 16;
    for (int c = 0; c < 16; ++c) {
      if (c >= valid) {
        for (int i = 0; i < d; ++i) dst[i * 16 + c] = T{};
        continue;
      }
      const int pos = k0 + c;
      const T* src = k_cache + static_cast<int64_t>(table[pos / bs]) * bs * p.heads * d +
                     static_cast<int64_t>(h) * d * bs + pos % bs;
      for (int i = 0; i < d; ++i) dst[i * 16 + c] = src[static_cast<int64_t>(i) * bs];
    }
  }
}

// One query row's online-softmax state for one head, in a float array:
// running max, 16 lanes of the denominator, the unnormalised output (head
// size rounded up to 16).
struct RowState {
  float* m;
  float* l;
  float* acc;
};
inline int state_floats(int d) { return 1 + 16 + (d + 15) / 16 * 16; }
inline RowState state_at(float* base, int index, int stride) {
  float* s = base + static_cast<int64_t>(index) * stride;
  return {s, s + 1, s + 17};
}
inline void reset_state(RowState st, int d) {
  *st.m = -std::numeric_limits<float>::infinity();
  std::fill(st.l, st.l + 16, 0.0f);
  std::fill(st.acc, st.acc + (d + 15) / 16 * 16, 0.0f);
}
// out = acc / l, the denominator's lanes added by halving.
inline void finish_state(RowState st, int d, float* out) {
  float l[16];
  std::memcpy(l, st.l, sizeof l);
  for (int width = 8; width >= 1; width /= 2)
    for (int j = 0; j < width; ++j) l[j] += l[j + width];
  const float inv = 1.0f / l[0];
  for (int i = 0; i < d; ++i) out[i] = st.acc[i] * inv;
}

}  // namespace

// The same kernels for each instruction set.
namespace scalar {
using L = ScalarLanes;
#include "kernels/cpu/attention_kernel.inc"
}  // namespace scalar
#if FLASHNEOX_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace avx2 {
using L = Avx2Lanes;
#include "kernels/cpu/attention_kernel.inc"
}  // namespace avx2
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f")
namespace avx512 {
using L = Avx512Lanes;
#include "kernels/cpu/attention_kernel.inc"
}  // namespace avx512
#pragma GCC pop_options
#endif

namespace {

struct AttentionKernels {
  void (*decode_f32)(const AttentionParams&, int, int, int, int, float*);
  void (*decode_f16)(const AttentionParams&, int, int, int, int, float*);
  void (*prefill_f32)(const AttentionParams&, int, int, int, int);
  void (*prefill_f16)(const AttentionParams&, int, int, int, int);
};

AttentionKernels kernels_for(Isa isa) {
#if FLASHNEOX_X86
  if (isa == Isa::Avx512)
    return {avx512::decode_partition<float>, avx512::decode_partition<uint16_t>, avx512::prefill_rows<float>,
            avx512::prefill_rows<uint16_t>};
  if (isa == Isa::Avx2)
    return {avx2::decode_partition<float>, avx2::decode_partition<uint16_t>, avx2::prefill_rows<float>,
            avx2::prefill_rows<uint16_t>};
#endif
  (void)isa;
  return {scalar::decode_partition<float>, scalar::decode_partition<uint16_t>, scalar::prefill_rows<float>,
          scalar::prefill_rows<uint16_t>};
}

void check_params(const AttentionParams& p) {
  if (p.block_size < 1) throw Error("attention: block size " + std::to_string(p.block_size) + " is not positive");
  if (p.kv_dtype != DType::F32 && p.kv_dtype != DType::F16)
    throw Error(std::string("attention: unsupported KV cache dtype ") + dtype_name(p.kv_dtype));
}

struct DecodeItem {
  int seq, h0, h1, part;
  int64_t state_offset;  // of the sequence's partial states, or -1 when it has one partition
};

void decode_sequences(const AttentionParams& p, const std::vector<int>& seqs) {
  check_params(p);
  const AttentionKernels k = kernels_for(active_isa());
  const auto decode = p.kv_dtype == DType::F16 ? k.decode_f16 : k.decode_f32;
  const int d = p.head_size, stride = state_floats(d);
  // Partial states of sequences with more than one partition: [part][head] each.
  std::vector<int64_t> state_offset(seqs.size(), -1);
  int64_t state_count = 0, total_parts = 0;
  std::vector<int> parts(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    parts[i] = std::max(1, (p.context_lens[seqs[i]] + kPartitionKeys - 1) / kPartitionKeys);
    total_parts += parts[i];
    if (parts[i] > 1) {
      state_offset[i] = state_count;
      state_count += static_cast<int64_t>(parts[i]) * p.heads;
    }
  }
  // Split heads into groups only as far as needed to give every thread work.
  const int threads = num_threads();
  const int groups = threads == 1 ? 1
                                  : static_cast<int>(std::min<int64_t>(
                                        p.heads, std::max<int64_t>(1, (2 * threads + total_parts - 1) / total_parts)));
  std::vector<DecodeItem> items;
  items.reserve(static_cast<size_t>(total_parts * groups));
  for (size_t i = 0; i < seqs.size(); ++i)
    for (int part = 0; part < parts[i]; ++part)
      for (int g = 0; g < groups; ++g)
        items.push_back({seqs[i], g * p.heads / groups, (g + 1) * p.heads / groups, part, state_offset[i]});
  // Every partial state is reset by its item before use: grown, never zero-filled.
  thread_local std::unique_ptr<float[]> states_buffer;
  thread_local size_t states_size = 0;
  const size_t states_needed = static_cast<size_t>(state_count * stride);
  if (states_size < states_needed) {
    states_buffer.reset(new float[states_needed]);
    states_size = states_needed;
  }
  float* const states = states_buffer.get();
  const int64_t row = static_cast<int64_t>(p.heads) * d;
  const int64_t cost = static_cast<int64_t>(kPartitionKeys) * 4 * d * p.heads / groups;
  parallel_for_cost(static_cast<int64_t>(items.size()), cost, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> local;
    for (int64_t i = begin; i < end; ++i) {
      const DecodeItem& it = items[static_cast<size_t>(i)];
      if (it.state_offset >= 0) {  // a partial state, merged below
        decode(p, it.seq, it.h0, it.h1, it.part,
               states + (it.state_offset + static_cast<int64_t>(it.part) * p.heads + it.h0) * stride);
        continue;
      }
      const size_t need = static_cast<size_t>(it.h1 - it.h0) * static_cast<size_t>(stride);
      if (local.size() < need) local.resize(need);
      decode(p, it.seq, it.h0, it.h1, it.part, local.data());
      float* out = p.out + (p.cu_q[it.seq + 1] - 1) * row;
      for (int h = it.h0; h < it.h1; ++h) finish_state(state_at(local.data(), h - it.h0, stride), d, out + h * d);
    }
  });
  if (state_count == 0) return;
  // Merge each long sequence's partitions, first to last.
  const int64_t heads = p.heads;
  parallel_for_cost(static_cast<int64_t>(seqs.size()) * heads, 4 * d, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const size_t s = static_cast<size_t>(i / heads);
      const int h = static_cast<int>(i % heads);
      if (state_offset[s] < 0) continue;
      float* base = states + state_offset[s] * stride;
      const RowState total = state_at(base, h, stride);
      for (int part = 1; part < parts[s]; ++part) {
        const RowState next = state_at(base, part * p.heads + h, stride);
        switch (active_isa()) {
#if FLASHNEOX_X86
          case Isa::Avx512: avx512::merge_state(total, next, d); break;
          case Isa::Avx2: avx2::merge_state(total, next, d); break;
#endif
          default: scalar::merge_state(total, next, d); break;
        }
      }
      finish_state(total, d, p.out + (p.cu_q[seqs[s] + 1] - 1) * row + h * d);
    }
  });
}

struct WorkItem {
  int seq, head, j0, j1;
};

}  // namespace

void decode_attention(const AttentionParams& p) {
  std::vector<int> seqs(static_cast<size_t>(p.num_seqs));
  for (int s = 0; s < p.num_seqs; ++s) seqs[s] = s;
  decode_sequences(p, seqs);
}

void prefill_attention(const AttentionParams& p) {
  check_params(p);
  const AttentionKernels k = kernels_for(active_isa());
  const auto prefill = p.kv_dtype == DType::F16 ? k.prefill_f16 : k.prefill_f32;
  // A sequence that brings one token (a decode riding along in a prefill
  // step) goes through the decode kernel: the same bits, read faster.
  std::vector<WorkItem> items;
  std::vector<int> single;
  for (int s = 0; s < p.num_seqs; ++s) {
    const int q_len = p.cu_q[s + 1] - p.cu_q[s];
    if (q_len == 1) {
      single.push_back(s);
      continue;
    }
    for (int h = 0; h < p.heads; ++h)
      for (int j = 0; j < q_len; j += kQueryTile)
        items.push_back({s, h, j, std::min(q_len, j + kQueryTile)});
  }
  int64_t total_cost = 0;  // query rows x keys x head size, summed over items
  for (const WorkItem& w : items)
    total_cost += static_cast<int64_t>(w.j1 - w.j0) *
                  (p.context_lens[w.seq] - (p.cu_q[w.seq + 1] - p.cu_q[w.seq]) + w.j1) * p.head_size;
  const int64_t per_item = items.empty() ? 1 : total_cost / static_cast<int64_t>(items.size()) * 2;
  parallel_for_cost(static_cast<int64_t>(items.size()), per_item, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) prefill(p, items[i].seq, items[i].head, items[i].j0, items[i].j1);
  });
  if (!single.empty()) decode_sequences(p, single);
}

namespace {

// Element `i` of head `h` of a cached token, whatever the cache's dtype.
float cached(const AttentionParams& p, const void* cache, int64_t index) {
  return p.kv_dtype == DType::F16 ? f16_to_f32(static_cast<const uint16_t*>(cache)[index])
                                  : static_cast<const float*>(cache)[index];
}

int64_t block_of(const AttentionParams& p, int seq, int pos) {
  return p.block_tables[static_cast<int64_t>(seq) * p.max_blocks_per_seq + pos / p.block_size];
}

}  // namespace

int64_t key_cache_index(int64_t block, int offset, int head, int i, int heads, int head_size, int block_size) {
  return ((block * heads + head) * head_size + i) * block_size + offset;
}

int64_t value_cache_index(int64_t block, int offset, int head, int i, int heads, int head_size, int block_size) {
  return ((block * block_size + offset) * heads + head) * head_size + i;
}

void attention_reference(const AttentionParams& p) {
  const int d = p.head_size;
  const int64_t row_stride = static_cast<int64_t>(p.heads) * d;
  for (int s = 0; s < p.num_seqs; ++s) {
    const int q_len = p.cu_q[s + 1] - p.cu_q[s];
    const int start = p.context_lens[s] - q_len;
    for (int j = 0; j < q_len; ++j)
      for (int h = 0; h < p.heads; ++h) {
        const float* q = p.q + (p.cu_q[s] + j) * row_stride + h * d;
        const int keys = start + j + 1;
        std::vector<double> scores(static_cast<size_t>(keys));
        double max_score = -1e300;
        for (int k = 0; k < keys; ++k) {
          const int64_t block = block_of(p, s, k);
          double dotv = 0.0;
          for (int i = 0; i < d; ++i)
            dotv += static_cast<double>(q[i]) *
                    cached(p, p.k_cache, key_cache_index(block, k % p.block_size, h, i, p.heads, d, p.block_size));
          scores[k] = dotv * p.scale;
          max_score = std::max(max_score, scores[k]);
        }
        double total = 0.0;
        for (double& v : scores) total += (v = std::exp(v - max_score));
        float* out = p.out + (p.cu_q[s] + j) * row_stride + h * d;
        std::vector<double> sum(static_cast<size_t>(d), 0.0);
        for (int k = 0; k < keys; ++k) {
          const int64_t block = block_of(p, s, k);
          for (int i = 0; i < d; ++i)
            sum[i] += scores[k] *
                      cached(p, p.v_cache, value_cache_index(block, k % p.block_size, h, i, p.heads, d, p.block_size));
        }
        for (int i = 0; i < d; ++i) out[i] = static_cast<float>(sum[i] / total);
      }
  }
}

}  // namespace flashneox::cpu
