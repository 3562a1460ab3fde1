#include "io/zip_archive.h"

#include <cstring>

#include "core/error.h"

namespace flashneox {

namespace {

uint64_t le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

bool looks_like_zip(const MappedFile& file) {
  return file.size() >= 4 && std::memcmp(file.data(), "PK\x03\x04", 4) == 0;
}

std::map<std::string, ZipEntry> read_zip_entries(const MappedFile& file) {
  const unsigned char* base = file.data();
  const uint64_t size = file.size();
  auto fail = [&](const std::string& why) { return Error(concat(file.path(), ": not a readable zip archive: ", why)); };
  // The end-of-central-directory record: 22 bytes plus a comment of up to 64 KiB, at the end.
  if (size < 22) throw fail("too short");
  uint64_t eocd = UINT64_MAX;
  for (uint64_t back = 22; back <= size && back <= 22 + 65535; ++back)
    if (le(base + size - back, 4) == 0x06054b50) {
      eocd = size - back;
      break;
    }
  if (eocd == UINT64_MAX) throw fail("no end-of-central-directory record (the file is truncated)");
  uint64_t entries = le(base + eocd + 10, 2);
  uint64_t cd_size = le(base + eocd + 12, 4);
  uint64_t cd_offset = le(base + eocd + 16, 4);
  if (eocd >= 20 && le(base + eocd - 20, 4) == 0x07064b50) {  // ZIP64
    const uint64_t record = le(base + eocd - 20 + 8, 8);
    if (size < 56 || record > size - 56 || le(base + record, 4) != 0x06064b50) throw fail("bad ZIP64 end-of-central-directory record");
    entries = le(base + record + 32, 8);
    cd_size = le(base + record + 40, 8);
    cd_offset = le(base + record + 48, 8);
  }
  if (cd_offset > size || cd_size > size - cd_offset) throw fail("the central directory lies outside the file");
  std::map<std::string, ZipEntry> out;
  uint64_t at = cd_offset;
  const uint64_t end = cd_offset + cd_size;
  for (uint64_t i = 0; i < entries; ++i) {
    if (end - at < 46 || le(base + at, 4) != 0x02014b50) throw fail(concat("central directory entry ", i, " is damaged"));
    const unsigned char* h = base + at;
    const uint64_t method = le(h + 10, 2), name_len = le(h + 28, 2), extra_len = le(h + 30, 2),
                   comment_len = le(h + 32, 2);
    uint64_t compressed = le(h + 20, 4), uncompressed = le(h + 24, 4), local = le(h + 42, 4);
    if (46 + name_len + extra_len + comment_len > end - at) throw fail(concat("central directory entry ", i, " is damaged"));
    const std::string name(reinterpret_cast<const char*>(h + 46), name_len);
    // ZIP64 extra field: the 64-bit values of whichever fields hold 0xFFFFFFFF.
    for (const unsigned char *x = h + 46 + name_len, *x_end = x + extra_len; x + 4 <= x_end;) {
      const uint64_t id = le(x, 2), len = le(x + 2, 2);
      if (len > static_cast<uint64_t>(x_end - x - 4)) throw fail(concat("entry '", name, "' has a damaged extra field"));
      if (id == 1) {
        const unsigned char* v = x + 4;
        auto take = [&](uint64_t& field) {
          if (field != 0xFFFFFFFFu) return;
          if (v + 8 > x + 4 + len) throw fail(concat("entry '", name, "' has a short ZIP64 field"));
          field = le(v, 8);
          v += 8;
        };
        take(uncompressed);
        take(compressed);
        take(local);
      }
      x += 4 + len;
    }
    if (size < 30 || local > size - 30 || le(base + local, 4) != 0x04034b50)
      throw fail(concat("entry '", name, "' points to no local header"));
    const uint64_t data = local + 30 + le(base + local + 26, 2) + le(base + local + 28, 2);
    if (data > size || compressed > size - data)
      throw fail(concat("entry '", name, "' runs past the end of the file (the file is truncated)"));
    if (method == 0 && compressed != uncompressed) throw fail(concat("stored entry '", name, "' has two sizes"));
    if (!out.emplace(name, ZipEntry{base + data, compressed, method == 0}).second)
      throw fail(concat("entry '", name, "' appears twice"));
    at += 46 + name_len + extra_len + comment_len;
  }
  return out;
}

}  // namespace flashneox
