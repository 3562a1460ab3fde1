// Opening files a user names without ever blocking on them: a FIFO, a device
// or a directory in place of a model file is refused before any read.
#pragma once

#include <cstddef>
#include <string>

namespace flashneox {

// Opens `path` read-only without blocking (O_NONBLOCK) and checks that it is
// a regular file; returns the descriptor (close it) and its size. Throws Error
// naming the path.
int open_regular_file(const std::string& path, size_t* size);

// The whole file, at most `max_bytes` (larger is an Error naming the path).
std::string read_regular_file(const std::string& path, size_t max_bytes);

}  // namespace flashneox
