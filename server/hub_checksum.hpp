#pragma once
// GET /nodes/<node>/checksum (SPEC section 6): what deltasync_checksum answers on a site
// holding the node's rows, for both stores. A store hands over its live rows a chunk at a
// time, in key order, with their cells; the cells become a row's columns here as a site
// that pulled them would hold them (docs/protocol.md, "deltasync_checksum").
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/hub_merge.hpp"

namespace deltasync::hub {

// A table of the node, as the store numbers it.
struct ChecksumTable {
  int64_t id = 0;
  std::string name;
};

// A live row (odd causal length) and every cell the store holds for it.
struct ChecksumRow {
  std::string key;  // as stored: EncodeKey
  int64_t cl = 0;
  std::vector<StoredCell> cells;  // col, value and cl are all that is read
};

class ChecksumSource {
 public:
  virtual ~ChecksumSource() = default;
  virtual std::vector<ChecksumTable> Tables() = 0;
  // Live rows of table `tbl` whose stored key sorts after `after` (byte order; from the first
  // when null), in key order, at most `limit`, with their cells. Each call is consistent on
  // its own; a store may let pushes run between calls.
  virtual std::vector<ChecksumRow> LiveRows(int64_t tbl, const std::string* after, size_t limit) = 0;
};

// Rows a store reads per chunk: memory holds one chunk.
inline constexpr size_t kChecksumChunkRows = 1000;

// {"tables": {...}} for the node's tables, or only `tables` when not empty (a table the node
// does not hold: 0 rows, as a site tracking it empty answers).
nlohmann::json NodeChecksum(ChecksumSource& src, const std::vector<std::string>& tables);

}  // namespace deltasync::hub
