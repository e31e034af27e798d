#pragma once
// The payload model: what one site sends another. Codecs (JSON now, a compact binary
// form next) are views of this one model; the merge code only ever sees the model.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/column_policy.hpp"
#include "common/site_id.hpp"
#include "common/value.hpp"

namespace deltasync {

inline constexpr int kPayloadVersion = 1;
// Version 2 is version 1 plus each table's column policies; a payload is written as version 2
// only when some table has a column whose policy is not last-writer-wins, so a receiver that
// predates policies refuses it clearly instead of merging a counter as a plain value.
inline constexpr int kPayloadVersionPolicies = 2;

// A change of a counter column (ColumnPolicy::kCounter) is one site's contribution: `value`
// is the contribution, `site` the contributing site, and a row carries one per contributor.
// A change of a json column (ColumnPolicy::kJson) is one member: `value` is the text
// [path, value] (set) or [path] (removed) in canonical JSON (common/json_merge.hpp), and a
// row carries one per member path.
struct ColumnChange {
  uint32_t column = 0;  // index into TableChanges::columns
  Value value;
  uint64_t hlc = 0;
  uint32_t site = 0;  // index into Payload::sites (the origin of the change)
  int64_t cl = 0;     // the row's causal length when the value was written (odd)
};

// One row: its causal length (existence) and the column changes that travel with it.
struct RowChanges {
  std::vector<Value> key;  // in the order of TableChanges::pk
  int64_t cl = 0;
  std::vector<ColumnChange> changes;
};

struct TableChanges {
  std::string name;
  std::vector<std::string> pk;
  std::vector<std::string> columns;
  std::vector<RowChanges> rows;
  std::vector<ColumnPolicy> policies = {};  // by column; empty: every column is last-writer-wins
};


struct Payload {
  SiteId site;        // the site that produced the payload
  int64_t since = 0;  // the payload holds the producer's changes with db_version > since ...
  int64_t until = 0;  // ... and <= until
  std::vector<SiteId> sites;
  std::vector<TableChanges> tables;
};

// The payload version a payload is written as: 2 when a table carries a policy, else 1.
int PayloadVersionOf(const Payload& p);

// The largest causal length and clock a payload may carry. A local delete or re-insert adds
// one to a causal length, a local write issues a clock past every one seen: with cl <= 2^62
// and hlc <= 2^62 - 1 (a millisecond part below 2^46, the year 4199) that arithmetic never
// leaves a signed 64-bit value, whatever max_clock_drift_ms says.
inline constexpr int64_t kMaxCausalLength = int64_t{1} << 62;
inline constexpr uint64_t kMaxHlc = (uint64_t{1} << 62) - 1;

// Checks every invariant a decoder must enforce (indexes in range, odd write causal
// lengths, no NULL in keys, one policy per column, integer contributions of counters, one
// change per column — per column and site for a counter —, causal lengths and clocks within kMaxCausalLength and kMaxHlc,
// ...); throws kInvalidPayload naming the first violation. Every decoder runs it, so it is
// the one place these bounds are enforced, on sites and on the hub.
void ValidatePayload(const Payload& p);

// Whether an incoming table's key is the key a holder (a site's tracked table, a hub node's
// table) has: keys match by position, so the names may differ where one side renamed a key
// column (ALTER TABLE ... RENAME COLUMN) and the other has not yet. Returns "" when they
// match, else why not: another number of key columns, or a name at one position that the
// other side holds as a non-key column (a table declared with another key). `held_cols` and
// `incoming_cols` are each side's non-key columns (empty when not known). Names compare
// ignoring ASCII case, as SQLite and quoted-lowercase PostgreSQL identifiers do here.
std::string KeyMismatch(const std::vector<std::string>& held_pk, const std::vector<std::string>& held_cols,
                        const std::vector<std::string>& incoming_pk, const std::vector<std::string>& incoming_cols);

// Drops the site ids no column change uses and renumbers the changes' site indexes (the
// others keep their order). Every payload from the network goes through it (DecodeAny), so
// a hub or a site registers only sites it stores: a payload listing thousands of unused ids
// costs a receiver nothing. Expects a payload ValidatePayload accepted.
void DropUnusedSites(Payload& p);

// The greatest clock carried by any column change (0 when none).
uint64_t MaxHlc(const Payload& p);

// Counts changes the way deltasync_apply reports them: each column change, plus one
// existence change for each row that carries no column change (a delete, a key-only row).
uint64_t CountChanges(const TableChanges& t);

std::string EncodeJson(const Payload& p);
Payload DecodeJson(std::string_view text);

}  // namespace deltasync
