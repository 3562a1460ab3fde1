// The entries of a zip archive (torch.save's format), read from a memory
// mapping: central directory, ZIP64 sizes and offsets, stored entries only
// (torch writes nothing compressed). Every offset and size is checked
// against the file.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/mapped_file.h"

namespace flashneox {

struct ZipEntry {
  const unsigned char* data = nullptr;  // inside the mapping
  uint64_t size = 0;
  bool stored = true;                   // false: compressed (refused by readers)
};

// Throws Error naming the file and what is wrong.
std::map<std::string, ZipEntry> read_zip_entries(const MappedFile& file);

// True when the file starts like a zip archive ("PK\3\4").
bool looks_like_zip(const MappedFile& file);

}  // namespace flashneox
