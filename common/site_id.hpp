#pragma once
// A site's stable random 128-bit identity, shown as canonical UUID text.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace deltasync {

struct SiteId {
  std::array<uint8_t, 16> bytes{};

  static SiteId Random();                      // a version-4 UUID from the OS's entropy
  static SiteId FromBytes(std::string_view b);  // throws unless exactly 16 bytes
  static SiteId Parse(std::string_view text);   // canonical 8-4-4-4-12 hex, throws otherwise
  std::string ToString() const;
  std::string_view View() const {
    return std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  bool operator==(const SiteId& o) const { return bytes == o.bytes; }
  bool operator!=(const SiteId& o) const { return bytes != o.bytes; }
  bool operator<(const SiteId& o) const { return bytes < o.bytes; }
};

struct SiteIdHash {
  size_t operator()(const SiteId& s) const;
};

}  // namespace deltasync
