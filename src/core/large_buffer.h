// Memory for the big, long-lived arrays every token streams through: packed
// weights, the KV cache and the forward pass's activations. Each buffer is its
// own anonymous mapping, zeroed lazily by the kernel (a large KV budget costs
// memory only as blocks are first used), aligned to 2 MiB and marked for
// transparent huge pages. With 4 KiB pages a decode step's stream of weights
// and cache stalls at every page (the hardware prefetchers stop at page
// boundaries, and each page needs its own TLB entry): a Pythia-160M token
// crosses ~75,000 of them. README ("Memory and dtypes") has the measurements.
#pragma once

#include <cstddef>

namespace flashneox {

class LargeBuffer {
 public:
  LargeBuffer() = default;
  // `bytes` zeroed bytes; throws Error saying how much could not be had,
  // and for what (`purpose`, e.g. "packed weights").
  LargeBuffer(size_t bytes, const char* purpose);
  ~LargeBuffer();
  LargeBuffer(LargeBuffer&& other) noexcept;
  LargeBuffer& operator=(LargeBuffer&& other) noexcept;
  LargeBuffer(const LargeBuffer&) = delete;
  LargeBuffer& operator=(const LargeBuffer&) = delete;

  void* data() const { return data_; }
  size_t size() const { return size_; }

  static constexpr size_t kHugePage = size_t{2} << 20;

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;  // the mapping's length (size rounded up to whole pages)
};

}  // namespace flashneox
