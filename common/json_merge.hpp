#pragma once
// The json policy (SPEC section 3, rule 8; docs/policies.md), once for both engines and the
// hub: a json column holds a JSON object merged member by member. Its state is a set of
// *members*, one per path (object keys from the root; objects recurse, arrays and scalars are
// leaves, an empty object is a leaf `{}`), each with the clock of the write that set or
// removed it. Two sets merge path by path by rule 2 (the greater (cl, hlc, site) wins), so
// the merge is idempotent, commutative and associative; the document is a function of the
// set (RenderJson), so sites holding the same set hold the same text.
//
// Which members show: a present member at path P with clock c is visible unless
//   (a) a member at a proper prefix of P has a newer clock (a later write replaced or removed
//       the object P lies in) — or the same clock and is present (a malformed set), or
//   (b) a member below P has a newer clock (a later write made P an object).
// Both are permanent (clocks at a path only grow), so a hidden member can be kept as a
// removal with its clock, and one below a newer prefix can be dropped. A local write is
// diffed against the document it replaces (DiffJson); its edits at the write's clock, newer
// than every clock the site holds, make the document show exactly what was written
// (LocalJsonWrite).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/json_value.hpp"
#include "common/merge.hpp"

namespace deltasync {

using JsonPath = std::vector<std::string>;

// One member: a path and what the last write to it did.
struct JsonMember {
  JsonPath path;        // never empty: the root is always an object
  bool present = false;  // false: removed, with the clock of the removal
  std::string value;    // present: the leaf's canonical JSON (a scalar, an array or {})
  Clock clock;          // (cl, hlc, site id) of the write
  uint32_t site = 0;    // the caller's own data, carried along (a site's local ordinal)
  int64_t ver = 0;      // likewise (the version at which a site adopted the member)
};
// A column's members, sorted by path, one per path.
using JsonMembers = std::vector<JsonMember>;

// One edit a local write made: set `path` to `value` (canonical), or remove it.
struct JsonEdit {
  JsonPath path;
  bool present = false;
  std::string value;
};

// Every leaf of `doc` (an object) as a present member written at `clock`.
JsonMembers MembersOf(const JsonValue& doc, const Clock& clock, uint32_t site, int64_t ver);

// The edits that turn object `old_doc` into object `new_doc`: each changed leaf, each removed
// member (once, at its highest removed path), a member that became `{}`.
std::vector<JsonEdit> DiffJson(const JsonValue& old_doc, const JsonValue& new_doc);

// The document `members` show; hidden members become removals and members below a newer
// prefix are dropped (both decide nothing any more).
JsonValue RenderJson(JsonMembers& members);

// Records a local write that turned `old_doc` into `new_doc` at `clock` (newer than every
// clock in `members`; the writing transaction's earlier writes share it). Afterwards
// RenderJson(members) is `new_doc`: if the members did not show `old_doc` (written while
// deltasync was not looking), every leaf of `new_doc` is written at `clock` instead.
// Returns the edits' count (0: the documents are the same).
size_t LocalJsonWrite(JsonMembers& members, const JsonValue& old_doc, const JsonValue& new_doc, const Clock& clock,
                      uint32_t site, int64_t ver);

// The member at `path`, or nullptr.
JsonMember* FindMember(JsonMembers& members, const JsonPath& path);
const JsonMember* FindMember(const JsonMembers& members, const JsonPath& path);
// Whether an incoming member (written at `in`) replaces the local one (`local`, nullptr when
// there is none) once the row's merged causal length is `merged_cl`: only a member of the
// row's current life counts, and of two the newer.
bool MemberWins(int64_t merged_cl, const JsonMember* local, const Clock& in);
// Inserts or replaces the member at m.path.
void PutMember(JsonMembers& members, JsonMember m);
// Drops the members written in a life before `cl` (the row was deleted since).
void DropMembersBefore(JsonMembers& members, int64_t cl);

// A path as canonical JSON text, an array of strings: ["a","b"].
std::string PathText(const JsonPath& path);

// The wire value of one member change (text): [path, value] when present, [path] when
// removed, canonical. The hub keeps each as a cell of its own named by the path.
std::string EncodeMemberChange(const JsonPath& path, bool present, std::string_view value);
// Reads one back; false and `error` when it is not a canonical member change (a non-empty
// path of strings, a leaf value that is not a non-empty object).
bool DecodeMemberChange(std::string_view text, JsonPath& path, bool& present, std::string& value, std::string& error);
// The path part of a member change's text (its canonical JSON, as PathText gives it), or
// empty when `text` is not a member change: the hub names a member's cell by it.
std::string_view MemberChangePath(std::string_view text);

}  // namespace deltasync
