// libFuzzer target: any bytes as a safetensors file (header and data), and as
// a model.safetensors.index.json. Every input either loads or throws Error:
// never a crash, an out-of-bounds read or a hang.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "io/checkpoint.h"

namespace {

// The input as a file the loader opens by path (an anonymous memory file).
std::string as_file(const uint8_t* data, size_t size) {
  static int fd = -1;
  if (fd >= 0) close(fd);
  fd = memfd_create("fuzz.safetensors", 0);
  if (fd < 0 || write(fd, data, size) != static_cast<ssize_t>(size)) std::abort();
  return "/proc/self/fd/" + std::to_string(fd);
}

const std::string& index_dir() {
  static const std::string dir = [] {
    const std::string d = std::filesystem::temp_directory_path() / ("fuzz-index-" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool index = data[0] & 1;
  ++data;
  --size;
  try {
    if (!index) {
      const flashneox::Checkpoint ckpt = flashneox::Checkpoint::from_file(as_file(data, size));
      for (const std::string& name : ckpt.names()) {
        const flashneox::TensorView& v = ckpt.view(name);
        // Every byte a view claims must be readable.
        unsigned char sum = 0;
        for (size_t i = 0; i < v.nbytes; i += 4096) sum ^= static_cast<const unsigned char*>(v.data)[i];
        if (v.nbytes) sum ^= static_cast<const unsigned char*>(v.data)[v.nbytes - 1];
        static volatile unsigned char sink;
        sink = sum;
      }
    } else {
      std::ofstream(index_dir() + "/model.safetensors.index.json", std::ios::binary)
          .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
      flashneox::Checkpoint ckpt(index_dir());
    }
  } catch (const flashneox::Error&) {
  }
  return 0;
}
