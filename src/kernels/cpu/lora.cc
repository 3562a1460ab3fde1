// Segmented LoRA on the CPU. The shrink x · Aᵀ gives `rank` numbers per row
// (a few dozen), so the work is two thin products per row: `rank` dot
// products over the input, then `rank` scaled rows of Bᵀ added into the
// output (B is kept transposed, [rank, out], so that is a contiguous axpy).
// f16 A and B are widened a row at a time into a per-thread scratch row.
// Rows run in parallel when there are enough of them, otherwise the output
// columns do. Every row takes one fixed code path, so a sequence gets the same
// bits alone or beside others.

#include <algorithm>
#include <vector>

#include "core/isa.h"
#include "core/parallel.h"
#include "kernels/cpu/cpu_kernels.h"

namespace flashneox::cpu {

namespace {

FLASHNEOX_LOOP_BODY float dot_body(const float* x, const float* w, int64_t n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t k = 0; k < n; ++k) sum += x[k] * w[k];
  return sum;
}
FLASHNEOX_PER_ISA(float, dot, (const float* x, const float* w, int64_t n), (x, w, n))

FLASHNEOX_LOOP_BODY void axpy_body(float c, const float* w, float* y, int64_t n) {
#pragma omp simd
  for (int64_t o = 0; o < n; ++o) y[o] += c * w[o];
}
FLASHNEOX_PER_ISA(void, axpy, (float c, const float* w, float* y, int64_t n), (c, w, y, n))

// Elements [from, to) of row j of a [rows, cols] matrix of the segment's
// dtype, as f32: in place, or widened from f16 into `scratch`.
const float* row_f32(const LoraSegment& seg, const void* m, int64_t cols, int j, int64_t from, int64_t to,
                     float* scratch) {
  const int64_t offset = static_cast<int64_t>(j) * cols + from;
  if (seg.dtype == DType::F32) return static_cast<const float*>(m) + offset;
  widen_f16(static_cast<const uint16_t*>(m) + offset, scratch, to - from);
  return scratch;
}

// s[j] = x · A[j]   (A: [rank, in])
void shrink(const LoraSegment& seg, const float* x, int64_t in, float* s, float* scratch) {
  for (int j = 0; j < seg.rank; ++j) s[j] = dot(x, row_f32(seg, seg.a, in, j, 0, in, scratch), in);
}

// y[o] += Σ_j (scale · s[j]) · Bt[j, o]   for o in [from, to)   (Bt: [rank, out])
void expand(const LoraSegment& seg, const float* s, float* y, int64_t out, int64_t from, int64_t to,
            float* scratch) {
  if (from >= to) return;
  for (int j = 0; j < seg.rank; ++j)
    axpy(seg.scale * s[j], row_f32(seg, seg.b, out, j, from, to, scratch), y + from, to - from);
}

}  // namespace

void lora_add(const float* x, int64_t in, const LoraSegment* segments, int count, float* y, int64_t out) {
  int64_t rows = 0;
  int max_rank = 0;
  for (int i = 0; i < count; ++i) {
    rows += segments[i].end - segments[i].begin;
    max_rank = std::max(max_rank, segments[i].rank);
  }
  if (rows == 0) return;
  const size_t scratch_size = static_cast<size_t>(std::max(in, out));
  if (rows >= num_threads()) {
    std::vector<std::pair<int, int64_t>> work;  // (segment, row)
    work.reserve(static_cast<size_t>(rows));
    for (int i = 0; i < count; ++i)
      for (int64_t r = segments[i].begin; r < segments[i].end; ++r) work.emplace_back(i, r);
    parallel_for_cost(static_cast<int64_t>(work.size()), (in + out) * max_rank, [&](int64_t begin, int64_t end) {
      std::vector<float> s(static_cast<size_t>(max_rank)), scratch(scratch_size);
      for (int64_t w = begin; w < end; ++w) {
        const LoraSegment& seg = segments[work[static_cast<size_t>(w)].first];
        const int64_t r = work[static_cast<size_t>(w)].second;
        shrink(seg, x + r * in, in, s.data(), scratch.data());
        expand(seg, s.data(), y + r * out, out, 0, out, scratch.data());
      }
    });
    return;
  }
  // Few rows (decode): each row's shrink, then its output columns in parallel,
  // in 16-float groups so the vector code is the same for any split.
  std::vector<float> s(static_cast<size_t>(max_rank)), scratch(scratch_size);
  const int64_t groups = (out + 15) / 16;
  for (int i = 0; i < count; ++i) {
    const LoraSegment& seg = segments[i];
    for (int64_t r = seg.begin; r < seg.end; ++r) {
      shrink(seg, x + r * in, in, s.data(), scratch.data());
      float* yr = y + r * out;
      parallel_for_cost(groups, 16 * static_cast<int64_t>(seg.rank), [&](int64_t begin, int64_t end) {
        thread_local std::vector<float> own;  // expand widens f16 weights into it
        if (own.size() < scratch_size) own.resize(scratch_size);
        expand(seg, s.data(), yr, out, std::min(out, begin * 16), std::min(out, end * 16), own.data());
      });
    }
  }
}

}  // namespace flashneox::cpu
