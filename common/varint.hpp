#pragma once
// LEB128 unsigned varints and zigzag signed ones, shared by every binary codec.
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace deltasync {

inline void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

inline uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t UnZigZag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

// Reads from a byte string, throwing kInvalidPayload on truncation.
class ByteReader {
 public:
  explicit ByteReader(std::string_view data, const char* what = "data") : data_(data), what_(what) {}
  bool AtEnd() const { return pos_ >= data_.size(); }
  size_t Remaining() const { return data_.size() - pos_; }

  uint8_t Byte() {
    if (pos_ >= data_.size()) Fail("truncated");
    return static_cast<uint8_t>(data_[pos_++]);
  }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b = Byte();
      if (shift == 63 && b > 1) Fail("varint overflow");
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    Fail("varint too long");
  }
  std::string_view Bytes(size_t n) {
    if (n > Remaining()) Fail("truncated");
    std::string_view s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  [[noreturn]] void Fail(const char* why) const {
    throw Error(ErrorCode::kInvalidPayload, std::string("malformed ") + what_ + ": " + why);
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
  const char* what_;
};

}  // namespace deltasync
