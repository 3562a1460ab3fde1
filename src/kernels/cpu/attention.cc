// Attention over the paged KV cache. Prefill: flash-style, a tile of query
// rows against tiles of keys gathered through the block table, with an online
// softmax so no [q, k] score matrix is ever materialised. Decode: the same
// tile walk with a single query row per (sequence, head).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/isa_clones.h"
#include "core/parallel.h"
#include "kernels/cpu/cpu_kernels.h"

namespace flashneox::cpu {

namespace {

constexpr int kQueryTile = 16;
constexpr int kKeyTile = 32;

inline int64_t slot_of(const AttentionParams& p, int seq, int pos) {
  const int32_t block = p.block_tables[static_cast<int64_t>(seq) * p.max_blocks_per_seq +
                                       pos / p.block_size];
  return static_cast<int64_t>(block) * p.block_size + pos % p.block_size;
}

// Elements [offset, offset + n) of a cache slot's row as f32: in place for
// an f32 cache, widened into `buf` for an f16 one.
inline const float* cache_row(const AttentionParams& p, const void* cache, int64_t slot, int64_t offset,
                              int64_t n, float* buf) {
  const int64_t at = slot * p.heads * p.head_size + offset;
  if (p.kv_dtype == DType::F32) return static_cast<const float*>(cache) + at;
  widen_f16(static_cast<const uint16_t*>(cache) + at, buf, n);
  return buf;
}

// Query rows [j0, j1) of sequence `seq`, head `head`. Cloned per instruction
// set: the dot products and the V accumulation vectorise to the widest one.
FLASHNEOX_ISA_CLONES void attend_rows(const AttentionParams& p, int seq, int head, int j0, int j1) {
  const int d = p.head_size;
  const int64_t row_stride = static_cast<int64_t>(p.heads) * d;
  const int q_len = p.cu_q[seq + 1] - p.cu_q[seq];
  const int start = p.context_lens[seq] - q_len;  // absolute position of query row 0
  const int rows = j1 - j0;
  const int last_key = start + j1 - 1;

  float m[kQueryTile];
  float l[kQueryTile];
  float acc[kQueryTile][256];  // head_size <= 256 (checked by the model)
  const float* q[kQueryTile];
  for (int r = 0; r < rows; ++r) {
    m[r] = -std::numeric_limits<float>::infinity();
    l[r] = 0.0f;
    std::fill(acc[r], acc[r] + d, 0.0f);
    q[r] = p.q + (p.cu_q[seq] + j0 + r) * row_stride + head * d;
  }
  const float* v_ptr[kKeyTile];
  alignas(64) float kt[256 * kKeyTile];  // the key tile transposed: [head_size][kKeyTile]
  alignas(64) float k_buf[256];
  alignas(64) float v_buf[kKeyTile * 256];  // widened V rows of an f16 cache
  alignas(64) float score[kKeyTile];
  for (int k0 = 0; k0 <= last_key; k0 += kKeyTile) {
    const int k1 = std::min(last_key + 1, k0 + kKeyTile);
    const int tile = k1 - k0;
    // Scores as an outer product (a query element times 32 keys at once)
    // instead of 32 dot products with horizontal sums.
    for (int c = 0; c < kKeyTile; ++c) {
      if (c < tile) {
        const int64_t slot = slot_of(p, seq, k0 + c);
        const float* k = cache_row(p, p.k_cache, slot, static_cast<int64_t>(head) * d, d, k_buf);
        v_ptr[c] = cache_row(p, p.v_cache, slot, static_cast<int64_t>(head) * d, d, v_buf + c * 256);
        for (int i = 0; i < d; ++i) kt[i * kKeyTile + c] = k[i];
      } else {
        for (int i = 0; i < d; ++i) kt[i * kKeyTile + c] = 0.0f;
      }
    }
    for (int r = 0; r < rows; ++r) {
      const int visible_end = std::min(k1, start + j0 + r + 1);  // causal
      if (visible_end <= k0) continue;
      const int count = visible_end - k0;
      for (int c = 0; c < kKeyTile; ++c) score[c] = 0.0f;
      for (int i = 0; i < d; ++i) {
        const float qv = q[r][i];
        const float* krow = kt + i * kKeyTile;
#pragma omp simd aligned(krow, score : 64)
        for (int c = 0; c < kKeyTile; ++c) score[c] += qv * krow[c];
      }
      float tile_max = -std::numeric_limits<float>::infinity();
      for (int c = 0; c < count; ++c) {
        score[c] *= p.scale;
        tile_max = std::max(tile_max, score[c]);
      }
      const float new_max = std::max(m[r], tile_max);
      const float correction = std::exp(m[r] - new_max);
      float sum = 0.0f;
      float* a = acc[r];
      if (correction != 1.0f) {
#pragma omp simd
        for (int i = 0; i < d; ++i) a[i] *= correction;
      }
      for (int c = 0; c < count; ++c) {
        const float weight = std::exp(score[c] - new_max);
        sum += weight;
        const float* v = v_ptr[c];
#pragma omp simd
        for (int i = 0; i < d; ++i) a[i] += weight * v[i];
      }
      l[r] = l[r] * correction + sum;
      m[r] = new_max;
    }
  }
  for (int r = 0; r < rows; ++r) {
    float* out = p.out + (p.cu_q[seq] + j0 + r) * row_stride + head * d;
    const float inv = 1.0f / l[r];
    for (int i = 0; i < d; ++i) out[i] = acc[r][i] * inv;
  }
}

struct WorkItem {
  int seq, head, j0, j1;
};

}  // namespace

namespace {

// Decode: one query per sequence. A work item takes one sequence and a group
// of its heads and walks the keys once, reading each key's K and V rows for
// all its heads contiguously (the cache stores a token's heads side by side),
// which is what keeps this memory-bound loop near the bandwidth.
FLASHNEOX_ISA_CLONES void attend_one_query(
    const AttentionParams& p, int seq, int h0, int h1, float* scratch) {
  const int d = p.head_size;
  const int heads = h1 - h0;
  const int64_t row_stride = static_cast<int64_t>(p.heads) * d;
  const int q_len = p.cu_q[seq + 1] - p.cu_q[seq];
  const int keys = p.context_lens[seq];
  const float* q = p.q + (p.cu_q[seq] + q_len - 1) * row_stride + h0 * d;
  float* acc = scratch;                              // [heads, d]
  float* m = acc + heads * d;                        // [heads]
  float* l = m + heads;                              // [heads]
  float* score = l + heads;                          // [heads, kKeyTile]
  float* k_buf = score + heads * kKeyTile;           // [kKeyTile, heads, d] widened f16 rows
  float* v_buf = k_buf + heads * d * kKeyTile;       // [heads, d]
  float* kt = v_buf + heads * d;                     // [heads, d, kKeyTile] the key tile transposed
  for (int h = 0; h < heads; ++h) {
    m[h] = -std::numeric_limits<float>::infinity();
    l[h] = 0.0f;
  }
  std::fill(acc, acc + heads * d, 0.0f);
  int64_t slots[kKeyTile];
  for (int k0 = 0; k0 < keys; k0 += kKeyTile) {
    const int count = std::min(kKeyTile, keys - k0);
    for (int c = 0; c < count; ++c) slots[c] = slot_of(p, seq, k0 + c);
    // Scores exactly as attend_rows computes them (the key tile transposed,
    // an outer product over the head's elements), so that a token gives the
    // same bits whether it is decoded or recomputed in a prefill.
    const float* krows[kKeyTile];
    for (int c = 0; c < count; ++c)
      krows[c] = cache_row(p, p.k_cache, slots[c], static_cast<int64_t>(h0) * d, heads * d,
                           k_buf + static_cast<int64_t>(c) * heads * d);
    for (int e = 0; e < heads * d; ++e) {  // write the transposed tile contiguously
      float* dst = kt + static_cast<int64_t>(e) * kKeyTile;
      for (int c = 0; c < count; ++c) dst[c] = krows[c][e];
      for (int c = count; c < kKeyTile; ++c) dst[c] = 0.0f;
    }
    for (int h = 0; h < heads; ++h) {
      float* sc = score + h * kKeyTile;
      for (int c = 0; c < kKeyTile; ++c) sc[c] = 0.0f;
      for (int i = 0; i < d; ++i) {
        const float qv = q[h * d + i];
        const float* krow = kt + (h * d + i) * kKeyTile;
#pragma omp simd
        for (int c = 0; c < kKeyTile; ++c) sc[c] += qv * krow[c];
      }
      for (int c = 0; c < count; ++c) sc[c] *= p.scale;
    }
    for (int h = 0; h < heads; ++h) {
      float* sc = score + h * kKeyTile;
      float tile_max = sc[0];
      for (int c = 1; c < count; ++c) tile_max = std::max(tile_max, sc[c]);
      const float new_max = std::max(m[h], tile_max);
      const float correction = std::exp(m[h] - new_max);
      float sum = 0.0f;
      for (int c = 0; c < count; ++c) sum += (sc[c] = std::exp(sc[c] - new_max));
      l[h] = l[h] * correction + sum;
      m[h] = new_max;
      if (correction != 1.0f) {
        float* a = acc + h * d;
#pragma omp simd
        for (int i = 0; i < d; ++i) a[i] *= correction;
      }
    }
    for (int c = 0; c < count; ++c) {
      const float* vrow = cache_row(p, p.v_cache, slots[c], static_cast<int64_t>(h0) * d, heads * d, v_buf);
      for (int h = 0; h < heads; ++h) {
        const float w = score[h * kKeyTile + c];
        float* a = acc + h * d;
        const float* v = vrow + h * d;
#pragma omp simd
        for (int i = 0; i < d; ++i) a[i] += w * v[i];
      }
    }
  }
  float* out = p.out + (p.cu_q[seq] + q_len - 1) * row_stride + h0 * d;
  for (int h = 0; h < heads; ++h) {
    const float inv = 1.0f / l[h];
    for (int i = 0; i < d; ++i) out[h * d + i] = acc[h * d + i] * inv;
  }
}

void decode_sequences(const AttentionParams& p, const std::vector<int>& seqs) {
  // Split heads into groups only as far as needed to give every thread work.
  const int n = static_cast<int>(seqs.size());
  const int groups = std::min(p.heads, std::max(1, (num_threads() + n - 1) / std::max(n, 1)));
  const int64_t items = static_cast<int64_t>(n) * groups;
  int64_t keys = 0;
  for (int s : seqs) keys += p.context_lens[s];
  const int64_t per_item = 2 * keys / std::max(n, 1) * p.head_size * p.heads / groups;
  parallel_for_cost(items, per_item, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scratch;
    const size_t need = static_cast<size_t>(p.heads) * (2 * p.head_size + 2 + kKeyTile) +
                        2 * static_cast<size_t>(p.heads) * p.head_size * kKeyTile;
    if (scratch.size() < need) scratch.resize(need);
    for (int64_t i = begin; i < end; ++i) {
      const int seq = seqs[static_cast<size_t>(i / groups)];
      const int g = static_cast<int>(i % groups);
      attend_one_query(p, seq, g * p.heads / groups, (g + 1) * p.heads / groups, scratch.data());
    }
  });
}

}  // namespace

void decode_attention(const AttentionParams& p) {
  std::vector<int> seqs(static_cast<size_t>(p.num_seqs));
  for (int s = 0; s < p.num_seqs; ++s) seqs[s] = s;
  decode_sequences(p, seqs);
}

void prefill_attention(const AttentionParams& p) {
  // A sequence that brings one token (a decode riding along in a prefill
  // step) goes through the decode kernel, so its result never depends on
  // whether a prefill shares its step.
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
    for (int64_t i = begin; i < end; ++i)
      attend_rows(p, items[i].seq, items[i].head, items[i].j0, items[i].j1);
  });
  if (!single.empty()) decode_sequences(p, single);
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
        std::vector<float> k_buf(static_cast<size_t>(d)), v_buf(static_cast<size_t>(d));
        for (int k = 0; k < keys; ++k) {
          const float* kp = cache_row(p, p.k_cache, slot_of(p, s, k), static_cast<int64_t>(h) * d, d, k_buf.data());
          double dotv = 0.0;
          for (int i = 0; i < d; ++i) dotv += static_cast<double>(q[i]) * kp[i];
          scores[k] = dotv * p.scale;
          max_score = std::max(max_score, scores[k]);
        }
        double total = 0.0;
        for (double& v : scores) total += (v = std::exp(v - max_score));
        float* out = p.out + (p.cu_q[s] + j) * row_stride + h * d;
        std::vector<double> sum(static_cast<size_t>(d), 0.0);
        for (int k = 0; k < keys; ++k) {
          const float* vp = cache_row(p, p.v_cache, slot_of(p, s, k), static_cast<int64_t>(h) * d, d, v_buf.data());
          for (int i = 0; i < d; ++i) sum[i] += scores[k] * vp[i];
        }
        for (int i = 0; i < d; ++i) out[i] = static_cast<float>(sum[i] / total);
      }
  }
}

}  // namespace flashneox::cpu
