// Storage element types of checkpoint tensors and their conversions to f32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace flashneox {

// Quantized weights, never a checkpoint dtype: I8 with per-output-channel
// scales; Q4 and Q4G128 4-bit with an f16 scale per 32 or 128 inputs
// (packed_linear_q4.cc), which have no element size.
enum class DType { F32, F16, BF16, I8, Q4, Q4G128 };

size_t dtype_size(DType dtype);  // throws for Q4 and Q4G128
const char* dtype_name(DType dtype);
// Parses a safetensors dtype string ("F32", "F16", "BF16"); throws on others.
DType parse_safetensors_dtype(const std::string& name);

inline float bf16_to_f32(uint16_t bits) {
  uint32_t widened = static_cast<uint32_t>(bits) << 16;
  float out;
  std::memcpy(&out, &widened, sizeof(out));
  return out;
}

inline uint16_t f32_to_bf16(float value) {  // round to nearest even
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float f16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float value);

// Widens `count` elements of `dtype` at `src` (any alignment) into `dst`.
void convert_to_f32(DType dtype, const void* src, float* dst, size_t count);

}  // namespace flashneox
