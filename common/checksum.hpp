#pragma once
// deltasync_checksum (SPEC section 5) and the hub's GET /nodes/<node>/checksum (section 6):
// an order-independent digest of a table's live rows, the same on SQLite, PostgreSQL and the
// hub for the same rows. Defined once here (docs/protocol.md, "Checksums"):
//   row hash = SHA-256("deltasync-checksum-1" 0x00, varint(key parts), EncodeValue(part)...,
//              then per non-key column with a non-NULL value, in byte order of the names:
//              varint(name length), name, EncodeValue(value))
//   digest   = the sum of the row hashes (256-bit big-endian integers) mod 2^256
// Values are in wire form (SPEC section 4: what a site sends for them, with its storage
// class: integer 1 and real 1.0 differ); a counter column's value is the sum of its
// contributions; a NULL and a column the row lacks are the same. An empty table's digest
// is 64 zeros.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/value.hpp"

namespace deltasync {

// One non-key column of a row: its name and its value in wire form.
struct DigestColumn {
  std::string_view name;
  const Value* value = nullptr;
};

// The digest of one table's live rows, built a row at a time (memory: one row).
class TableDigest {
 public:
  // Adds a live row: its key (key-column order) and its non-key columns in any order
  // (reordered here); NULL values count as absent. Two columns of one name are refused
  // (kInternal): the caller mixed up a row.
  void AddRow(const std::vector<Value>& key, std::vector<DigestColumn>& columns);
  // Adds another digest's rows (a table read in parts).
  void Add(const TableDigest& other);
  uint64_t rows() const { return rows_; }
  // 64 lowercase hex digits.
  std::string Hex() const;
  // {"rows": N, "digest": "<hex>"}
  nlohmann::json Json() const;

  // The hash of one row as AddRow takes it (for tests).
  static std::array<uint8_t, 32> RowHash(const std::vector<Value>& key, std::vector<DigestColumn>& columns);

 private:
  std::array<uint64_t, 4> sum_{};  // little-endian 64-bit limbs of the sum mod 2^256
  uint64_t rows_ = 0;
};

// {"tables": {"<t>": {"rows": N, "digest": "<hex>"}, ...}} from (name, digest) pairs.
nlohmann::json ChecksumDocument(const std::vector<std::pair<std::string, TableDigest>>& tables);

// The table list of a hub request ("a,b"): names split on commas, empty ones dropped.
std::vector<std::string> SplitTableList(std::string_view list);

}  // namespace deltasync
