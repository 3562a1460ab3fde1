// y = x · W^T + b. The model's matrices are always panel-packed by
// prepare_weight (packed_linear.cc); linear_reference is the plain twin the
// tests hold every packed kernel against, for either layout.
#include <vector>

#include "core/error.h"
#include "kernels/cpu/cpu_kernels.h"

namespace flashneox::cpu {

void linear(const float* x, int64_t m, const WeightMatrix& w, const float* bias, float* y,
            const Epilogue& epilogue) {
  if (w.layout != WeightLayout::Panels32)
    throw Error("internal error: the CPU backend computes with weights packed by prepare_weight");
  packed_linear(x, m, w, bias, y, epilogue);
}

void linear_reference(const float* x, int64_t m, const WeightMatrix& w, const float* bias,
                      float* y) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  const bool q4 = w.dtype == DType::Q4 || w.dtype == DType::Q4G128;
  const size_t elem = q4 ? 0 : dtype_size(w.dtype);
  for (int64_t col = 0; col < w.rows; ++col) {
    if (w.layout == WeightLayout::Panels32 && w.dtype == DType::I8) {
      for (int64_t i = 0; i < w.cols; ++i) row[i] = packed_int8_weight(w, col, i);
    } else if (w.layout == WeightLayout::Panels32 && (w.dtype == DType::Q4 || w.dtype == DType::Q4G128)) {
      for (int64_t i = 0; i < w.cols; ++i) row[i] = packed_q4_weight(w, col, i);
    } else if (w.layout == WeightLayout::Panels32) {  // gather the column out of its panel
      const int64_t p = col / 32, c = col % 32;
      for (int64_t i = 0; i < w.cols; ++i)
        convert_to_f32(w.dtype, static_cast<const unsigned char*>(w.data) + ((p * w.cols + i) * 32 + c) * elem,
                       &row[i], 1);
      if (w.scales)
        for (float& v : row) v *= w.scales[col];
    } else {
      convert_to_f32(w.dtype, static_cast<const unsigned char*>(w.data) + col * w.cols * elem,
                     row.data(), row.size());
    }
    for (int64_t r = 0; r < m; ++r) {
      double sum = bias ? bias[col] : 0.0;
      for (int64_t i = 0; i < w.cols; ++i) sum += static_cast<double>(x[r * w.cols + i]) * row[i];
      y[r * w.rows + col] = static_cast<float>(sum);
    }
  }
}

}  // namespace flashneox::cpu
