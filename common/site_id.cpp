#include "common/site_id.hpp"

#include <cstring>
#include <functional>
#include <random>

#include "common/error.hpp"

namespace deltasync {

SiteId SiteId::Random() {
  std::random_device rd;  // getrandom(2) on Linux
  SiteId id;
  for (size_t k = 0; k < id.bytes.size(); k += 4) {
    uint32_t r = rd();
    std::memcpy(&id.bytes[k], &r, 4);
  }
  id.bytes[6] = static_cast<uint8_t>((id.bytes[6] & 0x0f) | 0x40);
  id.bytes[8] = static_cast<uint8_t>((id.bytes[8] & 0x3f) | 0x80);
  return id;
}

SiteId SiteId::FromBytes(std::string_view b) {
  if (b.size() != 16) throw Error(ErrorCode::kInvalidPayload, "site id must be 16 bytes");
  SiteId id;
  std::memcpy(id.bytes.data(), b.data(), 16);
  return id;
}

static int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

SiteId SiteId::Parse(std::string_view text) {
  auto bad = [&] {
    return Error(ErrorCode::kInvalidPayload, "invalid site id \"" + std::string(text.substr(0, 40)) + "\"");
  };
  if (text.size() != 36) throw bad();
  SiteId id;
  size_t out = 0;
  for (size_t k = 0; k < 36;) {
    if (k == 8 || k == 13 || k == 18 || k == 23) {
      if (text[k] != '-') throw bad();
      ++k;
      continue;
    }
    int hi = HexDigit(text[k]), lo = HexDigit(text[k + 1]);
    if (hi < 0 || lo < 0) throw bad();
    id.bytes[out++] = static_cast<uint8_t>(hi * 16 + lo);
    k += 2;
  }
  return id;
}

std::string SiteId::ToString() const {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  for (size_t k = 0; k < 16; ++k) {
    if (k == 4 || k == 6 || k == 8 || k == 10) s.push_back('-');
    s.push_back(kHex[bytes[k] >> 4]);
    s.push_back(kHex[bytes[k] & 15]);
  }
  return s;
}

size_t SiteIdHash::operator()(const SiteId& s) const {
  return std::hash<std::string_view>()(s.View());
}

uint32_t DefaultIdNode(const SiteId& site) {
  return (uint32_t{site.bytes[0]} << 12) | (uint32_t{site.bytes[1]} << 4) | (uint32_t{site.bytes[2]} >> 4);
}

int64_t ComposeRowId(int64_t node, int64_t counter) {
  if (node < 0 || node > kRowIdMaxNode)
    throw Error(ErrorCode::kInvalidArgument,
                "setting id_node must be an integer from 0 to " + std::to_string(kRowIdMaxNode));
  if (counter < 0 || counter >= (int64_t{1} << kRowIdCounterBits))
    throw Error(ErrorCode::kConstraint, "deltasync_id(): this site has used up its ids (2^43)");
  return (node << kRowIdCounterBits) | counter;
}

}  // namespace deltasync
