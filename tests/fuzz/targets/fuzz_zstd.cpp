// zstd frames with the size guard (common/compress.cpp). The first two bytes pick the
// limit; the rest is the compressed body. Decompression refuses with deltasync::Error and
// never returns more than the limit; data compressed here comes back exactly, and is
// refused one byte under its size.
#include <string>

#include "common/compress.hpp"
#include "fuzz_util.hpp"

using namespace deltasync;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t max_size = (size_t{data[0]} << 8 | data[1]) * 64;  // 0 .. ~4 MiB
  std::string_view body = fuzz::AsText(data + 2, size - 2);
  try {
    std::string out = ZstdDecompress(body, max_size);
    FUZZ_CHECK(out.size() <= max_size);
  } catch (const Error& e) {
    fuzz::CheckRefusal(e);
    FUZZ_CHECK(e.code() == ErrorCode::kInvalidPayload);
  }

  const std::string packed = ZstdCompress(body, 1);
  FUZZ_CHECK(ZstdDecompress(packed, body.size()) == body);
  if (!body.empty()) {
    bool refused = false;
    try {
      ZstdDecompress(packed, body.size() - 1);
    } catch (const Error& e) {
      refused = true;
    }
    FUZZ_CHECK(refused);
  }
  return 0;
}
