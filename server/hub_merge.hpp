#pragma once
// The hub's merge and page assembly, once for every store: a store supplies the reads and
// writes of one push transaction (PushTxn) or one pull snapshot (PullSource); the rules
// (common/merge), the node sequence, whole-row pages and "never a site what it pushed
// itself" live here.
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/error.hpp"
#include "common/merge.hpp"
#include "common/payload.hpp"

namespace deltasync::hub {

struct PushResult {
  uint64_t applied = 0, ignored = 0, rows = 0;
  int64_t seq = 0;  // the node's sequence after the push
  // The highest `until` the pushing site ever pushed to the node, this push included: above
  // the site's own db_version only when it was restored from an earlier backup or copied
  // (docs/operations.md, "A site restored from a backup").
  int64_t site_until = 0;
};

struct PullResult {
  Payload payload;  // since/until are node sequences
  bool more = false;
  uint64_t changes = 0;
  int64_t head = 0;  // the node's sequence in the page's snapshot (set by the stores' Pull)
};

// Inside one push transaction on one node.
// Throws kInvalidPayload unless `t`'s key is the key a node holds for its table (`held_pk`:
// the JSON array of names stored with it). Keys match by position (KeyMismatch): a site that
// renamed a key column keeps pushing; the node keeps the names it first held.
void CheckHeldKey(const TableChanges& t, const std::string& held_pk);

class PushTxn {
 public:
  virtual ~PushTxn() = default;
  // The node's table id for t (created on first use); refuses another key than held (CheckHeldKey).
  virtual int64_t TableId(const TableChanges& t) = 0;
  virtual uint32_t SiteOrdinal(const SiteId& site) = 0;
  virtual SiteId SiteOf(int64_t ord) = 0;  // by value: a store may grow its table meanwhile
  virtual int64_t RowCl(int64_t tbl, const std::string& key) = 0;  // 0: never seen
  // For a row the store does not hold: the causal length of its tombstone if compaction
  // dropped one (kept as a grave, docs/operations.md), else 0. Stores that do not compact: 0.
  virtual int64_t GraveCl(int64_t /*tbl*/, const std::string& /*key*/) { return 0; }
  // The clocks of the row's cells, by column name; with sizes, also each cell's stored value
  // bytes (for the merged row's size: MergePush's max_row_bytes).
  virtual std::unordered_map<std::string, Clock> CellClocks(int64_t tbl, const std::string& key,
                                                            std::unordered_map<std::string, size_t>* sizes) = 0;
  virtual void DropCells(int64_t tbl, const std::string& key) = 0;
  // site: the change's origin; pusher: the site whose push brought it (p.site).
  virtual void PutCell(int64_t tbl, const std::string& key, const std::string& col, const std::string& value,
                       uint64_t hlc, uint32_t site, int64_t cl, int64_t seq, int64_t pusher) = 0;
  // writer: the site whose push last changed the row.
  virtual void PutRow(int64_t tbl, const std::string& key, int64_t cl, int64_t seq, int64_t writer) = 0;
  // Optional batching: the keys of one table about to be merged (a store may read them all
  // at once), and the end of that table (a store may write what it buffered). Reads after
  // writes of the same key must see them.
  virtual void Prefetch(int64_t /*tbl*/, const std::vector<std::string>& /*keys*/) {}
  virtual void Flush() {}
};

// A push whose changes, merged into a row the node holds, would make that row larger than the
// hard row maximum (the hub answers 413; the push changes nothing).
class RowTooLarge : public Error {
 public:
  explicit RowTooLarge(const std::string& message) : Error(ErrorCode::kInvalidPayload, message) {}
};

// Merges p into the node whose sequence is `seq` before; every changed row takes the next
// sequence number. Checks identifiers first. The caller commits, and stores result.seq.
// A row that would be larger than max_row_bytes once merged (its key and every value it
// keeps, as a pull page counts them) throws RowTooLarge: the caller rolls back.
PushResult MergePush(PushTxn& txn, const Payload& p, int64_t seq, size_t max_row_bytes = SIZE_MAX);

struct StoredRow {
  int64_t tbl = 0;
  std::string key;
  int64_t cl = 0, seq = 0, writer = 0;
};
// A pusher unknown: the cell was stored before the hub recorded pushers (schema version 1).
inline constexpr int64_t kUnknownPusher = -1;

struct StoredCell {
  std::string col, value;
  uint64_t hlc = 0;
  int64_t site = 0, cl = 0;
  int64_t pusher = kUnknownPusher;  // the site whose push brought the value
};

// One consistent snapshot of one node. It has no node counter on purpose: a page's cursor is
// the sequence of the last row it read (docs/scaling.md, "The pull gap").
class PullSource {
 public:
  virtual ~PullSource() = default;
  // Rows with seq > since, by seq, at most `limit`.
  virtual std::vector<StoredRow> Rows(int64_t since, size_t limit) = 0;
  virtual void Table(int64_t tbl, std::string& name, std::vector<std::string>& pk) = 0;
  virtual std::vector<StoredCell> Cells(int64_t tbl, const std::string& key) = 0;
  virtual SiteId SiteOf(int64_t ord) = 0;  // by value: a store may grow its table meanwhile
  virtual int64_t KnownSite(const SiteId& site) = 0;  // its ordinal, or -1
};

// The next page after `since`: whole rows only, only the listed tables (all when empty),
// never column changes that `requester` pushed itself. Filtering is by pusher, not by
// origin: a change that another site pushed with the requester's id as its origin (a
// spoofed origin, or the requester's own change relayed) is served to it.
// A page also ends before a row that would take it past max_bytes (the rows' stored size,
// about their size on the wire); a row larger than that travels alone.
// The page's `until` is the sequence of the last row it read (sent or skipped), `since` when
// it read none: never a counter read apart from the rows, which a distributed store may show
// ahead of them (the rows it counts not visible yet), so a cursor never passes a row unread.
inline constexpr size_t kMaxPageBytes = size_t{4} << 20;
PullResult BuildPage(PullSource& src, const SiteId& hub_id, int64_t since, size_t max_rows,
                     const std::vector<std::string>& tables, const std::optional<SiteId>& requester,
                     size_t max_bytes = kMaxPageBytes);

// The size of p's largest row as a pull page counts it (key, values and their clocks).
size_t LargestRowBytes(const Payload& p);

// The distinct sites of p that a push may have to register: those some change uses, and the
// pusher (p.site). Never a site only listed.
std::vector<SiteId> SitesToRegister(const Payload& p);

// What a store checks before it opens a push's transaction: names that are not portable
// identifiers (kInvalidPayload) and a clock more than max_clock_drift_ms ahead (kClockDrift).
void CheckPush(const Payload& p, uint64_t max_clock_drift_ms);

}  // namespace deltasync::hub
