// The CPU implementation of the Backend seam: a thin forwarder to the kernels.
#include <list>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/large_buffer.h"
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
    const bool q4 = dtype == DType::Q4 || dtype == DType::Q4G128;
    const size_t bytes = dtype == DType::I8 ? static_cast<size_t>(cpu::packed_int8_bytes(w.rows, w.cols))
                         : q4 ? static_cast<size_t>(cpu::packed_q4_bytes(w.rows, w.cols, cpu::q4_group_size(dtype)))
                              : static_cast<size_t>(cpu::packed_panels(w.rows) * w.cols * 32) * dtype_size(dtype);
    void* data = allocate_packed(bytes);
    out.data = data;
    out.bytes = static_cast<int64_t>(bytes);
    if (dtype == DType::I8) {  // padded to whole panels: the kernel reads 32 per panel
      const size_t padded = static_cast<size_t>(cpu::packed_panels(w.rows) * 32);
      scales_.emplace_back(padded, 1.0f);
      sums_.emplace_back(padded, 0);
      cpu::pack_weight_int8(w, data, scales_.back().data(), sums_.back().data());
      out.scales = scales_.back().data();
      out.column_sums = sums_.back().data();
      out.bytes += static_cast<int64_t>(padded * 8);
    } else if (q4) {
      cpu::pack_weight_q4(w, cpu::q4_group_size(dtype), data);
    } else {
      cpu::pack_weight(w, dtype, data);
    }
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
  void linear_activation(const float* x, int64_t m, const WeightMatrix& w, const float* bias, Activation kind,
                         float* y) override {
    cpu::linear(x, m, w, bias, y, {.activate = true, .kind = kind});
  }
  void layer_norm(const float* x, int64_t m, int64_t n, const float* gamma, const float* beta,
                  float eps, float* y) override {
    cpu::layer_norm(x, m, n, gamma, beta, eps, y);
  }
  void add_norms(float* x, const float* a, const float* b, int64_t m, int64_t n, float eps, const Norm& first,
                 const Norm& second) override {
    cpu::add_norms(x, a, b, m, n, eps, first, second);
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
                        DType kv_dtype, int block_size) override {
    cpu::rotary_and_cache(qkv, tokens, heads, head_size, rotary_dims, cos, sin, slots, q_out,
                          k_cache, v_cache, kv_dtype, block_size);
  }
  void prefill_attention(const AttentionParams& params) override {
    cpu::prefill_attention(params);
  }
  void lora_add(const float* x, int64_t in, const LoraSegment* segments, int count, float* y,
                int64_t out) override {
    cpu::lora_add(x, in, segments, count, y, out);
  }
  void decode_attention(const AttentionParams& params) override {
    cpu::decode_attention(params);
  }

 private:
  // Matrices side by side in large slabs, so small ones (Pythia-160M's
  // attention output is 1.2 MB) sit on huge pages too; one larger than a
  // slab gets its own buffer.
  static constexpr size_t kSlabBytes = size_t{32} << 20;
  void* allocate_packed(size_t bytes) {
    bytes = (bytes + 63) / 64 * 64;
    if (bytes > kSlabBytes) return storage_.emplace_back(bytes, "packed weights").data();
    if (bytes > slab_left_) {
      slab_ = static_cast<unsigned char*>(storage_.emplace_back(kSlabBytes, "packed weights").data());
      slab_left_ = kSlabBytes;
    }
    slab_left_ -= bytes;
    return std::exchange(slab_, slab_ + bytes);
  }
  std::vector<LargeBuffer> storage_;       // slabs and large matrices, packed
  unsigned char* slab_ = nullptr;          // the next free byte of the current slab
  size_t slab_left_ = 0;                   // and how many follow it
  std::list<std::vector<float>> scales_;   // int8 per-channel scales (stable addresses)
  std::list<std::vector<int32_t>> sums_;   // int8 column sums
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace flashneox
