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

// deltasync_id(): 63-bit row ids no other site allocates. An id is the site's id node in the
// top 20 bits and the site's own counter in the low 43 (8.8e12 ids per site). The node is the
// first 20 bits of the site id unless the site sets one (setting id_node): two sites collide
// only if they share a node, so a fleet that cannot rule that out by chance (docs/applications.md)
// assigns nodes itself.
inline constexpr int kRowIdCounterBits = 43;
inline constexpr int64_t kRowIdMaxNode = (int64_t{1} << 20) - 1;
uint32_t DefaultIdNode(const SiteId& site);
// Throws kInvalidArgument for a node outside 0..kRowIdMaxNode and kConstraint once the
// counter is used up.
int64_t ComposeRowId(int64_t node, int64_t counter);

}  // namespace deltasync
