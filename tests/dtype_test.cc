#include <gtest/gtest.h>

#include <cmath>

#include "core/dtype.h"
#include "core/error.h"

namespace flashneox {
namespace {

TEST(DType, F16RoundTripsEveryFiniteValue) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const uint16_t h = static_cast<uint16_t>(bits);
    if ((h & 0x7c00) == 0x7c00) continue;  // inf / NaN checked below
    const float f = f16_to_f32(h);
    EXPECT_EQ(f32_to_f16(f), h) << "bits " << bits;
  }
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
}

TEST(DType, KnownValues) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // rounds to infinity
}

TEST(DType, ParsesSafetensorsNames) {
  EXPECT_EQ(parse_safetensors_dtype("F32"), DType::F32);
  EXPECT_EQ(parse_safetensors_dtype("BF16"), DType::BF16);
  EXPECT_THROW(parse_safetensors_dtype("I8"), Error);
}

}  // namespace
}  // namespace flashneox
