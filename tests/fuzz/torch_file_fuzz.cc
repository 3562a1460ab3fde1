// libFuzzer target: any bytes as a torch.save checkpoint (zip archive and the
// pickle inside). Every input either loads or throws Error: never a crash, an
// out-of-bounds read, a hang, or anything called.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "io/torch_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static int fd = -1;
  if (fd >= 0) close(fd);
  fd = memfd_create("fuzz.bin", 0);
  if (fd < 0 || write(fd, data, size) != static_cast<ssize_t>(size)) std::abort();
  try {
    const flashneox::TorchFile file("/proc/self/fd/" + std::to_string(fd));
    for (const auto& [name, v] : file.tensors()) {
      // Every byte a view claims must be readable.
      unsigned char sum = 0;
      for (size_t i = 0; i < v.nbytes; i += 4096) sum ^= static_cast<const unsigned char*>(v.data)[i];
      if (v.nbytes) sum ^= static_cast<const unsigned char*>(v.data)[v.nbytes - 1];
      static volatile unsigned char sink;
      sink = sum;
    }
  } catch (const flashneox::Error&) {
  }
  return 0;
}
