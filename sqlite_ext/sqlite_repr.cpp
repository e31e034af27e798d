// Column representations on SQLite: stored in deltasync_columns(table_id, name, options),
// set by deltasync_enable, applied where apply binds and collect reads (common/value_repr
// holds the conversions).
#include "sqlite_ext/sqlite_repr.hpp"

#include "common/utf8.hpp"

namespace deltasync {

namespace {

// The position of `name` among the key columns (first) and then the others, or -1.
int ColumnPosition(const std::vector<std::string>& pk, const std::vector<std::string>& cols, const std::string& name) {
  for (size_t k = 0; k < pk.size(); ++k)
    if (EqualsIgnoreAsciiCase(pk[k], name)) return static_cast<int>(k);
  for (size_t k = 0; k < cols.size(); ++k)
    if (EqualsIgnoreAsciiCase(cols[k], name)) return static_cast<int>(pk.size() + k);
  return -1;
}

ReprForm& At(TableReprs& r, size_t npk, size_t pos) { return pos < npk ? r.pk[pos] : r.cols[pos - npk]; }

// The representation in a stored options object ({"uuid": "hex32"}); other members (a
// policy) are not this file's.
ReprForm FormOf(const nlohmann::json& options) {
  for (const char* kind : {"uuid", "timestamp"})
    if (options.is_object() && options.contains(kind) && options[kind].is_string())
      return ParseReprForm(kind, options[kind].get<std::string>());
  return ReprForm::kNone;
}

}  // namespace

TableReprs TableReprsFromJson(std::string_view stored, const std::vector<std::string>& pk,
                              const std::vector<std::string>& cols) {
  TableReprs r;
  if (stored.empty()) return r;
  nlohmann::json j = nlohmann::json::parse(stored);
  if (!j.is_object() || j.empty()) return r;
  r.pk.assign(pk.size(), ReprForm::kNone);
  r.cols.assign(cols.size(), ReprForm::kNone);
  for (auto it = j.begin(); it != j.end(); ++it) {
    int pos = ColumnPosition(pk, cols, it.key());
    if (pos >= 0) At(r, pk.size(), static_cast<size_t>(pos)) = FormOf(it.value());
  }
  r.Refresh();
  return r;
}

std::vector<ColumnPolicy> TablePoliciesFromJson(std::string_view stored, const std::vector<std::string>& cols) {
  std::vector<ColumnPolicy> out;
  if (stored.empty()) return out;
  nlohmann::json j = nlohmann::json::parse(stored);
  if (!j.is_object() || j.empty()) return out;
  out.assign(cols.size(), ColumnPolicy::kLww);
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_object() || !it.value().contains("policy") || !it.value()["policy"].is_string()) continue;
    for (size_t k = 0; k < cols.size(); ++k)
      if (EqualsIgnoreAsciiCase(cols[k], it.key())) out[k] = ParsePolicy(it.value()["policy"].get<std::string>(), cols[k]);
  }
  if (!AnyPolicy(out)) out.clear();
  return out;
}

nlohmann::json ColumnOptionsJson(const std::vector<std::string>& pk, const std::vector<std::string>& cols,
                                 const TableReprs& r, const std::vector<ColumnPolicy>& policies) {
  nlohmann::json out = nlohmann::json::object();
  for (size_t k = 0; k < pk.size(); ++k)
    if (r.Pk(k) != ReprForm::kNone) out[pk[k]] = ReprJson(r.Pk(k));
  for (size_t k = 0; k < cols.size(); ++k) {
    if (r.Col(k) != ReprForm::kNone) out[cols[k]] = ReprJson(r.Col(k));
    if (PolicyAt(policies, k) != ColumnPolicy::kLww) out[cols[k]]["policy"] = PolicyName(PolicyAt(policies, k));
  }
  return out;
}

void SaveTableReprs(sqlite3* db, int64_t table_id, const std::vector<std::string>& pk,
                    const std::vector<std::string>& cols, const TableReprs& r,
                    const std::vector<ColumnPolicy>& policies) {
  DropTableReprs(db, table_id);
  nlohmann::json options = ColumnOptionsJson(pk, cols, r, policies);
  Stmt ins(db, "INSERT INTO deltasync_columns(table_id, name, options) VALUES (?1, ?2, ?3)");
  for (auto it = options.begin(); it != options.end(); ++it) {
    std::string text = it.value().dump();
    ins.BindInt(1, table_id);
    ins.BindText(2, it.key());
    ins.BindText(3, text);
    ins.Run();
  }
}

void DropTableReprs(sqlite3* db, int64_t table_id) {
  Stmt del(db, "DELETE FROM deltasync_columns WHERE table_id = ?1");
  del.BindInt(1, table_id);
  del.Run();
}

TableReprs EnableTableReprs(sqlite3* db, const std::string& table, const std::vector<std::string>& pk,
                            const std::vector<std::string>& cols, const TableInfo* known,
                            const std::vector<ColumnOption>& requested) {
  // Columns the call does not name keep what they have: enabling again with no options
  // (as an ORM's connection handler does) changes nothing.
  TableReprs r;
  r.pk.assign(pk.size(), ReprForm::kNone);
  r.cols.assign(cols.size(), ReprForm::kNone);
  if (known) {
    for (size_t k = 0; k < pk.size(); ++k) r.pk[k] = known->reprs.Pk(k);
    for (size_t k = 0; k < cols.size(); ++k) r.cols[k] = known->reprs.Col(k);
  }
  std::vector<std::pair<size_t, ReprForm>> changed;
  for (const ColumnOption& c : requested) {
    int pos = ColumnPosition(pk, cols, c.column);
    if (pos < 0)
      throw Error(ErrorCode::kInvalidArgument,
                  "deltasync_enable options name column \"" + c.column + "\", which table \"" + table + "\" does not have");
    if (!c.has_repr) continue;  // a policy only: EnableTablePolicies
    ReprForm& slot = At(r, pk.size(), static_cast<size_t>(pos));
    if (slot != c.repr) changed.emplace_back(static_cast<size_t>(pos), c.repr);
    slot = c.repr;
  }
  if (changed.empty()) {
    r.Refresh();
    return r;
  }
  auto name_at = [&](size_t pos) { return pos < pk.size() ? pk[pos] : cols[pos - pk.size()]; };
  // The shadow table's keys and the base rows are stored in the old spelling: a new one
  // would make them other values (and keys second rows). Safe only before any row exists.
  if (known) {
    Stmt any(db, "SELECT count(*) FROM " + known->q_meta);
    int64_t rows = any.Step() ? any.Int(0) : 0;
    if (rows > 0) {
      size_t pos = changed.front().first;
      ReprForm before = pos < pk.size() ? known->reprs.Pk(pos) : known->reprs.Col(pos - pk.size());
      throw Error(ErrorCode::kInvalidArgument,
                  "column \"" + name_at(pos) + "\" of table \"" + table + "\" is represented as " +
                      ReprJson(before).dump() + "; changing it to " + ReprJson(changed.front().second).dump() +
                      " would leave the " + std::to_string(rows) +
                      " rows deltasync already tracks in the old spelling. Convert the column's values, then "
                      "deltasync_disable('" + table + "') and deltasync_enable it with the new representation");
    }
  }
  // Every value the table holds must be convertible now, not at the first push.
  for (const auto& [pos, form] : changed) {
    if (form == ReprForm::kNone) continue;
    std::string col = name_at(pos);
    Stmt s(db, "SELECT " + QuoteIdent(col) + " FROM " + QuoteIdent(table));
    while (s.Step()) {
      Value v = s.Val(0);
      ToWireOrThrow(form, v, table, col);
    }
  }
  Stmt id(db, "SELECT id FROM deltasync_tables WHERE name = ?1");
  id.BindText(1, table);
  if (!id.Step()) throw Error(ErrorCode::kInternal, "table \"" + table + "\" is not in deltasync_tables");
  SaveTableReprs(db, id.Int(0), pk, cols, r, known ? known->policies : std::vector<ColumnPolicy>{});
  r.Refresh();
  return r;
}

std::vector<ColumnPolicy> EnableTablePolicies(sqlite3* db, const std::string& table, const std::vector<std::string>& pk,
                                              const std::vector<std::string>& cols, const TableInfo* known,
                                              const std::vector<ColumnOption>& requested, const TableReprs& reprs) {
  std::vector<ColumnPolicy> p(cols.size(), ColumnPolicy::kLww);
  if (known)
    for (size_t k = 0; k < cols.size(); ++k) p[k] = PolicyAt(known->policies, k);
  bool changed = false;
  int64_t rows = -1;  // counted at the first change
  for (const ColumnOption& c : requested) {
    if (!c.has_policy) continue;
    int pos = ColumnPosition(pk, cols, c.column);
    if (pos < 0) continue;  // EnableTableReprs refused it
    bool is_key = static_cast<size_t>(pos) < pk.size();
    std::string name = is_key ? pk[static_cast<size_t>(pos)] : cols[static_cast<size_t>(pos) - pk.size()];
    // SQLite's affinity rule: a declared type containing "INT" stores integers.
    Stmt type(db, "SELECT upper(type) FROM pragma_table_xinfo(?1) WHERE name = ?2");
    type.BindText(1, table);
    type.BindText(2, name);
    std::string declared = type.Step() ? std::string(type.Text(0)) : "";
    // A json column holds text: a declared type of TEXT affinity, JSON, or none.
    bool text = declared.find("INT") == std::string::npos &&
                (declared.empty() || declared.find("CHAR") != std::string::npos ||
                 declared.find("CLOB") != std::string::npos || declared.find("TEXT") != std::string::npos ||
                 declared.find("JSON") != std::string::npos);
    CheckColumnPolicy(table, name, c.policy, is_key,
                      c.policy == ColumnPolicy::kJson ? text : declared.find("INT") != std::string::npos, declared);
    if (is_key) continue;
    ColumnPolicy& slot = p[static_cast<size_t>(pos) - pk.size()];
    if (slot == c.policy) continue;
    if (known && rows < 0) {
      Stmt any(db, "SELECT count(*) FROM " + known->q_meta);
      rows = any.Step() ? any.Int(0) : 0;
    }
    CheckPolicyChange(table, name, slot, c.policy, rows < 0 ? 0 : rows);
    slot = c.policy;
    changed = true;
  }
  if (!AnyPolicy(p)) p.clear();
  if (changed) {
    Stmt id(db, "SELECT id FROM deltasync_tables WHERE name = ?1");
    id.BindText(1, table);
    if (!id.Step()) throw Error(ErrorCode::kInternal, "table \"" + table + "\" is not in deltasync_tables");
    SaveTableReprs(db, id.Int(0), pk, cols, reprs, p);
  }
  return p;
}

SqliteRepr::SqliteRepr(const TableInfo& t, bool as_stored) : t_(t), any_(t.reprs.any && !as_stored) {
  for (size_t k = 0; any_ && k < t.pk.size(); ++k) any_key_ |= t.reprs.Pk(k) != ReprForm::kNone;
  if (any_) cols_.resize(t.cols.size());
}

const std::vector<Value>& SqliteRepr::KeyToLocal(const std::vector<Value>& key) {
  if (!any_key_) return key;
  key_.resize(key.size());
  for (size_t k = 0; k < key.size(); ++k)
    if (!ToLocalOrThrow(t_.reprs.Pk(k), key[k], key_[k], t_.name, t_.pk[k])) key_[k] = key[k];
  return key_;
}

bool SqliteRepr::KeyToWire(std::vector<Value>& key, bool strict) {
  if (!any_key_) return true;
  for (size_t k = 0; k < key.size(); ++k) {
    ReprForm f = t_.reprs.Pk(k);
    if (f == ReprForm::kNone) continue;
    if (strict) {
      ToWireOrThrow(f, key[k], t_.name, t_.pk[k]);
      continue;
    }
    Value out;
    ReprOutcome o = LocalToWire(f, key[k], out);
    if (o == ReprOutcome::kOtherSpelling) return false;
    if (o == ReprOutcome::kConverted) key[k] = std::move(out);
  }
  return true;
}

const Value& SqliteRepr::ConvertToLocal(uint32_t column, const Value& v) {
  ReprForm f = t_.reprs.Col(column);
  if (f == ReprForm::kNone || column >= cols_.size()) return v;
  return ToLocalOrThrow(f, v, cols_[column], t_.name, t_.cols[column]) ? cols_[column] : v;
}

}  // namespace deltasync
