#include "common/json_column.hpp"

#include "common/error.hpp"

namespace deltasync {

JsonValue ColumnDocument(const Value& v) {
  JsonValue doc;
  std::string error;
  if (v.type != ValueType::kText || !ParseJson(v.s, doc, error) || !doc.IsObject()) {
    doc = JsonValue();
    doc.kind = JsonValue::Kind::kObject;
  }
  return doc;
}

JsonValue CheckedDocument(const Value& v, const std::string& table, const std::string& column) {
  JsonValue doc;
  std::string error;
  if (v.type == ValueType::kText && ParseJson(v.s, doc, error) && doc.IsObject()) return doc;
  std::string what = v.type == ValueType::kNull    ? "NULL"
                     : v.type != ValueType::kText  ? "a value that is not text"
                     : !error.empty()              ? "text that is not JSON (" + error + ")"
                                                   : "JSON that is not an object";
  throw Error(ErrorCode::kConstraint, "json column \"" + column + "\" of table \"" + table +
                                          "\" holds JSON objects only; the write gives it " + what,
              {}, "write an object such as '{}' (declare the column NOT NULL DEFAULT '{}')");
}

JsonMembers ColumnMembers(const RowClocks& clocks, uint32_t col, const JsonValue& doc, const SiteOfFn& site_of) {
  if (!clocks.HasMembers(col)) {
    const ColClock& c = clocks.Get(col);
    return MembersOf(doc, Clock{c.cl, c.hlc, site_of(c.site)}, c.site, c.ver);
  }
  JsonMembers out;
  for (const MemberClock& m : clocks.Members()) {
    if (m.column != col) continue;
    JsonMember j{m.path, m.present, {}, Clock{m.cl, m.hlc, site_of(m.site)}, m.site, m.ver};
    if (m.present) {
      const JsonValue* at = &doc;
      for (const std::string& k : m.path) at = at && at->IsObject() ? at->Find(k) : nullptr;
      if (at) j.value = CanonicalJson(*at);
      else j.present = false;  // the document lacks it (changed behind deltasync's back)
    }
    out.push_back(std::move(j));
  }
  return out;
}

void StoreMembers(RowClocks& clocks, uint32_t col, const JsonMembers& members) {
  std::vector<MemberClock> stored;
  stored.reserve(members.size());
  for (const JsonMember& m : members)
    stored.push_back(MemberClock{col, m.path, m.present, m.clock.hlc, m.site, m.ver, m.clock.cl});
  clocks.SetMembers(col, std::move(stored));
}

bool CaptureJsonWrite(RowClocks& clocks, uint32_t col, const Value& old_value, const Value& new_value, uint64_t hlc,
                      int64_t cl, const SiteOfFn& site_of) {
  JsonValue old_doc = ColumnDocument(old_value), new_doc = ColumnDocument(new_value);
  JsonMembers members = ColumnMembers(clocks, col, old_doc, site_of);
  bool changed = LocalJsonWrite(members, old_doc, new_doc, Clock{cl, hlc, site_of(0)}, 0, 0) != 0;
  // Stored even when nothing changed: the column's clock moves to this write, and the members
  // it stood for keep their own.
  if (changed || !clocks.HasMembers(col)) StoreMembers(clocks, col, members);
  return changed;
}

}  // namespace deltasync
