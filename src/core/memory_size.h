// Sizes from the command line ("512MiB", "1500MB", "4096") and the machine's
// available memory.
#pragma once

#include <cstddef>
#include <string>

namespace flashneox {

// A byte count with an optional unit: B, KiB/K, MiB/M, GiB/G, KB, MB, GB.
// Throws Error naming `what` on junk, zero, or a size past 2^62.
size_t parse_byte_size(const std::string& text, const std::string& what);
// As parse_byte_size, or a fraction of the available memory such as "0.2".
size_t parse_memory_budget(const std::string& text);
size_t available_memory_bytes();

}  // namespace flashneox
