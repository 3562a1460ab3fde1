// A read-only memory mapping of a whole file (weights are used in place).
#pragma once

#include <cstddef>
#include <string>

namespace flashneox {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws Error naming the path
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const unsigned char* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Tells the kernel the pages wholly inside [p, p + n) are not needed any
  // more (after their contents were copied into a packed layout), so they
  // leave this process's resident memory. Reading them again still works.
  void drop_pages(const void* p, size_t n) const;

 private:
  std::string path_;
  const unsigned char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace flashneox
