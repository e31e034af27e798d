#include "common/compress.hpp"

#include <zstd.h>

#include <algorithm>
#include <memory>
#include <string>

#include "common/error.hpp"

namespace deltasync {

namespace {

Error Invalid(const std::string& what) { return Error(ErrorCode::kInvalidPayload, "invalid payload: " + what); }

Error Corrupt(size_t code) {
  return Invalid(std::string("zstd data is corrupt or truncated (") + ZSTD_getErrorName(code) + ")");
}

Error TooLarge(size_t max_size) {
  return Invalid("decompressed size exceeds the limit of " + std::to_string(max_size) + " bytes");
}

struct DCtxFree {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};
using DCtx = std::unique_ptr<ZSTD_DCtx, DCtxFree>;

DCtx NewDCtx() {
  DCtx d(ZSTD_createDCtx());
  if (!d) throw Error(ErrorCode::kInternal, "zstd: out of memory");
  return d;
}

}  // namespace

std::string ZstdCompress(std::string_view data, int level) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
  if (ZSTD_isError(n)) throw Error(ErrorCode::kInternal, std::string("zstd: ") + ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

std::string ZstdDecompress(std::string_view data, size_t max_size) {
  if (data.empty()) throw Invalid("empty zstd data");
  // The sum of the frames' content sizes, or unknown when some frame does not state it.
  unsigned long long total = 0;
  for (size_t pos = 0; pos < data.size();) {
    const char* frame = data.data() + pos;
    const size_t left = data.size() - pos;
    unsigned long long n = ZSTD_getFrameContentSize(frame, left);
    if (n == ZSTD_CONTENTSIZE_ERROR) throw Invalid("not zstd data, or truncated zstd data");
    if (n == ZSTD_CONTENTSIZE_UNKNOWN) {
      total = ZSTD_CONTENTSIZE_UNKNOWN;
      break;
    }
    if (n > max_size - total) throw TooLarge(max_size);
    total += n;
    size_t size = ZSTD_findFrameCompressedSize(frame, left);
    if (ZSTD_isError(size)) throw Corrupt(size);
    pos += size;
  }
  DCtx dctx = NewDCtx();
  if (total != ZSTD_CONTENTSIZE_UNKNOWN) {
    // Every frame states its size: refuse before allocating, then decompress in one call
    // into a buffer of exactly that size (the output buffer is the window; nothing else
    // is allocated for it).
    std::string out(static_cast<size_t>(total), '\0');
    size_t n = ZSTD_decompressDCtx(dctx.get(), out.data(), out.size(), data.data(), data.size());
    if (ZSTD_isError(n)) throw Corrupt(n);
    if (n != out.size()) throw Invalid("zstd data is shorter than its frame header says");
    return out;
  }
  // Some frame does not state its size: stream, and stop at max_size. The window a frame
  // may ask for is capped (8 MiB, or more when max_size is larger, up to zstd's default
  // 128 MiB), so a small input cannot make us allocate a large one.
  int window_log = 23;
  while (window_log < 27 && (size_t{1} << window_log) < max_size) ++window_log;
  size_t rc = ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, window_log);
  if (ZSTD_isError(rc)) throw Error(ErrorCode::kInternal, std::string("zstd: ") + ZSTD_getErrorName(rc));
  std::string out;
  const size_t chunk = ZSTD_DStreamOutSize();
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  for (;;) {
    const size_t used = out.size();  // <= max_size here
    const size_t room = std::min(chunk, max_size - used + 1);  // never more than one byte past the limit
    out.resize(used + room);
    ZSTD_outBuffer o{out.data() + used, room, 0};
    size_t left = ZSTD_decompressStream(dctx.get(), &o, &in);
    out.resize(used + o.pos);
    if (ZSTD_isError(left)) throw Corrupt(left);
    if (out.size() > max_size) throw TooLarge(max_size);
    if (in.pos == in.size) {
      if (left == 0) break;                               // the last frame is complete
      if (o.pos < room) throw Invalid("zstd data is truncated");  // it waits for more input
    }
  }
  return out;
}

}  // namespace deltasync
