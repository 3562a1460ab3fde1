// Fused: split GPT-NeoX's interleaved qkv, rotate q and k, write k and v to the
// cache (reshape_and_cache) in one pass over the projection output.
#include <cstring>
#include <vector>

#include "core/parallel.h"
#include "kernels/cpu/cpu_kernels.h"

namespace flashneox::cpu {

namespace {
// NeoX "rotate half": u' = u*cos + [-u2, u1]*sin over the first `rotary` dims.
inline void rotate(const float* src, float* dst, int head_size, int rotary, const float* cos,
                   const float* sin) {
  const int half = rotary / 2;
  for (int i = 0; i < half; ++i) {
    const float a = src[i];
    const float b = src[i + half];
    dst[i] = a * cos[i] - b * sin[i];
    dst[i + half] = b * cos[i] + a * sin[i];
  }
  if (head_size > rotary)
    std::memcpy(dst + rotary, src + rotary, sizeof(float) * (head_size - rotary));
}
}  // namespace

void rotary_and_cache(const float* qkv, int64_t tokens, int heads, int head_size,
                      int rotary_dims, const float* cos, const float* sin, const int64_t* slots,
                      float* q_out, void* k_cache, void* v_cache, DType kv_dtype, int block_size) {
  const int64_t row = static_cast<int64_t>(heads) * head_size;
  const int half = rotary_dims / 2;
  const bool f16 = kv_dtype == DType::F16;
  parallel_for_cost(tokens, 3 * row, [&](int64_t begin, int64_t end) {
    std::vector<float> k_row(static_cast<size_t>(row));
    std::vector<uint16_t> k_half(f16 ? static_cast<size_t>(row) : 0);
    for (int64_t t = begin; t < end; ++t) {
      const float* c = cos + t * half;
      const float* s = sin + t * half;
      const int64_t block = slots[t] / block_size;
      const int offset = static_cast<int>(slots[t] % block_size);
      // V goes to the cache as a row; K is built as a row, then scattered to
      // its column of the block ([heads][head_size][block_size]).
      float* v_dst = f16 ? nullptr : static_cast<float*>(v_cache) + slots[t] * row;
      for (int h = 0; h < heads; ++h) {
        const float* src = qkv + (t * heads + h) * 3 * head_size;  // [q | k | v] per head
        rotate(src, q_out + t * row + h * head_size, head_size, rotary_dims, c, s);
        rotate(src + head_size, k_row.data() + h * head_size, head_size, rotary_dims, c, s);
        if (f16)
          narrow_f16(src + 2 * head_size, static_cast<uint16_t*>(v_cache) + slots[t] * row + h * head_size,
                     head_size);
        else
          std::memcpy(v_dst + h * head_size, src + 2 * head_size, sizeof(float) * head_size);
      }
      const int64_t column = block * row * block_size + offset;  // element (0, 0) of this key
      if (f16) {
        narrow_f16(k_row.data(), k_half.data(), row);
        uint16_t* k = static_cast<uint16_t*>(k_cache) + column;
        for (int64_t e = 0; e < row; ++e) k[e * block_size] = k_half[static_cast<size_t>(e)];
      } else {
        float* k = static_cast<float*>(k_cache) + column;
        for (int64_t e = 0; e < row; ++e) k[e * block_size] = k_row[static_cast<size_t>(e)];
      }
    }
  });
}

}  // namespace flashneox::cpu
