// The CPU implementation of the Backend seam: a thin forwarder to the kernels.
#include <cstdlib>
#include <list>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/cpu_kernels.h"

namespace flashneox {

namespace {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  WeightMatrix prepare_weight(const WeightMatrix& w, DType dtype) override {
    WeightMatrix out = w;
    out.dtype = dtype;
    out.layout = WeightLayout::Panels32;
    const size_t bytes = static_cast<size_t>(cpu::packed_panels(w.rows) * w.cols * 32) * dtype_size(dtype);
    void* data = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!data) throw Error(concat("cannot allocate ", bytes, " bytes for packed weights"));
    storage_.emplace_back(data);
    float* scales = nullptr;
    if (dtype == DType::I8) {
      scales_.emplace_back(static_cast<size_t>(w.rows), 1.0f);
      scales = scales_.back().data();
    }
    cpu::pack_weight(w, dtype, data, scales);
    out.data = data;
    out.scales = scales;
    return out;
  }
  void embed(const WeightMatrix& embedding, const int32_t* ids, int64_t tokens,
             float* out) override {
    cpu::embed(embedding, ids, tokens, out);
  }
  void linear(const float* x, int64_t m, const WeightMatrix& w, const float* bias,
              float* y) override {
    cpu::linear(x, m, w, bias, y);
  }
  void layer_norm(const float* x, int64_t m, int64_t n, const float* gamma, const float* beta,
                  float eps, float* y) override {
    cpu::layer_norm(x, m, n, gamma, beta, eps, y);
  }
  void activation(float* x, int64_t count, Activation kind) override {
    cpu::activation(x, count, kind);
  }
  void add(float* x, const float* a, const float* b, int64_t count) override {
    cpu::add(x, a, b, count);
  }
  void rotary_and_cache(const float* qkv, int64_t tokens, int heads, int head_size,
                        int rotary_dims, const float* cos, const float* sin,
                        const int64_t* slots, float* q_out, void* k_cache, void* v_cache,
                        DType kv_dtype) override {
    cpu::rotary_and_cache(qkv, tokens, heads, head_size, rotary_dims, cos, sin, slots, q_out,
                          k_cache, v_cache, kv_dtype);
  }
  void prefill_attention(const AttentionParams& params) override {
    cpu::prefill_attention(params);
  }
  void decode_attention(const AttentionParams& params) override {
    cpu::decode_attention(params);
  }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::vector<std::unique_ptr<void, Free>> storage_;  // packed matrices
  std::list<std::vector<float>> scales_;              // int8 per-channel scales (stable addresses)
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace flashneox
