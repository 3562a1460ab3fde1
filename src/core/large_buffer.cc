#include "core/large_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "core/error.h"

namespace flashneox {

LargeBuffer::LargeBuffer(size_t bytes, const char* purpose) : size_(bytes) {
  if (bytes == 0) return;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  mapped_ = (bytes + page - 1) / page * page;
  // Map a huge page more than asked and trim both ends, so the buffer starts
  // on a huge-page boundary (only whole aligned 2 MiB ranges become huge pages).
  const size_t padded = mapped_ >= kHugePage ? mapped_ + kHugePage : mapped_;
  void* raw = ::mmap(nullptr, padded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED)
    throw Error(concat("cannot allocate ", bytes, " bytes for ", purpose, ": ", std::strerror(errno)));
  auto begin = reinterpret_cast<uintptr_t>(raw);
  auto aligned = begin;
  if (padded > mapped_) {
    aligned = (begin + kHugePage - 1) / kHugePage * kHugePage;
    if (aligned > begin) ::munmap(raw, aligned - begin);
    const uintptr_t end = begin + padded, used_end = aligned + mapped_;
    if (end > used_end) ::munmap(reinterpret_cast<void*>(used_end), end - used_end);
  }
  data_ = reinterpret_cast<void*>(aligned);
#ifdef MADV_HUGEPAGE
  // Advice only: where huge pages are off ("never") the buffer works the same.
  if (mapped_ >= kHugePage) ::madvise(data_, mapped_, MADV_HUGEPAGE);
#endif
}

LargeBuffer::~LargeBuffer() {
  if (data_ != nullptr) ::munmap(data_, mapped_);
}

LargeBuffer::LargeBuffer(LargeBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, 0)) {}

LargeBuffer& LargeBuffer::operator=(LargeBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) ::munmap(data_, mapped_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, 0);
  }
  return *this;
}

}  // namespace flashneox
