#include "sqlite_ext/sqlite_conn.hpp"

#include "common/scoped_flag.hpp"
#include "common/utf8.hpp"
#include "sqlite_ext/sqlite_functions.hpp"
#include "sqlite_ext/sqlite_repr.hpp"
#include "sqlite_ext/sqlite_txn.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace deltasync {

namespace {
constexpr int64_t kSchemaVersion = 1;

// Follows ALTER TABLE ... RENAME COLUMN: SQLite keeps a renamed column at its position and
// rewrites the triggers, so a tracked name missing from the table whose position now holds a
// name deltasync does not know is that column under its new name. `current` is the table's
// columns in order as (name, pk position). Anything else is left as stored, and the
// statements built from it fail on the unknown name (identifiers are quoted with backticks,
// which SQLite never reads as a string literal).
void FollowRenames(TableInfo& t, const nlohmann::json& current) {
  std::vector<std::pair<int64_t, std::string>> pk;
  std::vector<std::string> cols;
  for (const auto& c : current) {
    auto name = c[0].get<std::string>();
    auto pos = c[1].get<int64_t>();
    if (pos > 0) pk.emplace_back(pos, name);
    else cols.push_back(name);
  }
  std::sort(pk.begin(), pk.end());
  auto known = [&](const std::string& n) {
    return std::find(t.pk.begin(), t.pk.end(), n) != t.pk.end() ||
           std::find(t.cols.begin(), t.cols.end(), n) != t.cols.end();
  };
  auto present = [&](const std::string& n) {
    return std::any_of(pk.begin(), pk.end(), [&](const auto& p) { return p.second == n; }) ||
           std::find(cols.begin(), cols.end(), n) != cols.end();
  };
  if (pk.size() != t.pk.size() || cols.size() < t.cols.size()) return;
  std::vector<std::string> new_pk = t.pk, new_cols = t.cols;
  std::vector<std::pair<std::string, std::string>> renames;
  auto follow = [&](std::string& stored, const std::string& now) {
    if (stored == now || present(stored) || known(now)) return stored == now;
    renames.emplace_back(stored, now);
    stored = now;
    return true;
  };
  for (size_t k = 0; k < pk.size(); ++k)
    if (!follow(new_pk[k], pk[k].second)) return;
  for (size_t k = 0; k < t.cols.size(); ++k)
    if (!follow(new_cols[k], cols[k])) return;
  t.renamed = new_pk != t.pk || new_cols != t.cols;
  t.renames = std::move(renames);
  t.pk = std::move(new_pk);
  t.cols = std::move(new_cols);
}

}  // namespace

ShadowRow ReadShadowRow(const Stmt& s, int first) {
  return ShadowRowFromStored(s.Int(first), s.Int(first + 1), s.Int(first + 2), s.Int(first + 3), s.Blob(first + 4));
}

std::string ShadowKeyList(size_t n) {
  std::string out;
  for (size_t k = 0; k < n; ++k) out += (k ? ", " : "") + ShadowKeyColumn(k);
  return out;
}

std::string ShadowKeyWhere(size_t n, int first_param) {
  std::string out;
  for (size_t k = 0; k < n; ++k)
    out += (k ? " AND " : "") + ShadowKeyColumn(k) + " = ?" + std::to_string(first_param + static_cast<int>(k));
  return out;
}

std::string MetaTableName(const std::string& table) { return table + "__deltasync_meta"; }
std::string TriggerName(const std::string& table, const char* suffix) {
  return table + "__deltasync_" + suffix;
}

void Conn::EnsureSchema() {
  if (schema_ready_) return;
  Exec(db_,
       "CREATE TABLE IF NOT EXISTS deltasync_settings(name TEXT PRIMARY KEY, value) WITHOUT ROWID;"
       "CREATE TABLE IF NOT EXISTS deltasync_sites(ord INTEGER PRIMARY KEY, site_id BLOB NOT NULL UNIQUE);"
       "CREATE TABLE IF NOT EXISTS deltasync_tables(id INTEGER PRIMARY KEY AUTOINCREMENT,"
       " name TEXT NOT NULL UNIQUE, pk TEXT NOT NULL, columns TEXT NOT NULL);"
       "CREATE TABLE IF NOT EXISTS deltasync_hubs(hub TEXT PRIMARY KEY, push_cursor INTEGER NOT NULL DEFAULT 0,"
       " pull_cursor INTEGER NOT NULL DEFAULT 0, last_sync_ms INTEGER, hub_id TEXT) WITHOUT ROWID;"
       // Each hub's frontier as the site last heard it, and its marks (common/compaction),
       // written with the pull cursor.
       "CREATE TABLE IF NOT EXISTS deltasync_hub_frontier(hub TEXT PRIMARY KEY, frontier INTEGER NOT NULL,"
       " mark_ver INTEGER NOT NULL, mark_seq INTEGER NOT NULL, safe_ver INTEGER NOT NULL) WITHOUT ROWID;"
       "CREATE TABLE IF NOT EXISTS deltasync_hub_echo(hub TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL);"
       "CREATE TABLE IF NOT EXISTS deltasync_hub_health(hub TEXT PRIMARY KEY, last_error TEXT, last_error_ms INTEGER,"
       " failing_since_ms INTEGER, last_success_ms INTEGER, failures INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
       "CREATE TABLE IF NOT EXISTS deltasync_columns(table_id INTEGER NOT NULL, name TEXT NOT NULL,"
       " options TEXT NOT NULL, PRIMARY KEY (table_id, name)) WITHOUT ROWID;"
       // deltasync_schedule (sqlite_schedule.cpp): options hold the token, as given.
       "CREATE TABLE IF NOT EXISTS deltasync_schedules(hub TEXT PRIMARY KEY, url TEXT NOT NULL,"
       " options TEXT NOT NULL, interval_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL) WITHOUT ROWID;"
       // The progress of the last long push and pull with each hub (common/sync_progress).
       "CREATE TABLE IF NOT EXISTS deltasync_sync_progress(hub TEXT NOT NULL, direction TEXT NOT NULL,"
       " state TEXT NOT NULL, since_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, rows_done INTEGER NOT NULL,"
       " rows_expected INTEGER, rows_per_s INTEGER NOT NULL, eta_ms INTEGER, PRIMARY KEY (hub, direction)) WITHOUT ROWID;"
       "CREATE TABLE IF NOT EXISTS deltasync_hub_push(hub TEXT PRIMARY KEY, until INTEGER NOT NULL, tbl TEXT NOT NULL,"
       " key BLOB NOT NULL) WITHOUT ROWID;"
       "CREATE TABLE IF NOT EXISTS deltasync_quarantine(tbl TEXT NOT NULL, key BLOB NOT NULL, changes TEXT NOT NULL,"
       " error TEXT NOT NULL, since_ms INTEGER NOT NULL, PRIMARY KEY (tbl, key)) WITHOUT ROWID;"
       // Kept changes of columns this site does not have yet (common/pending_cells).
       "CREATE TABLE IF NOT EXISTS deltasync_pending(tbl TEXT NOT NULL, col TEXT NOT NULL, key BLOB NOT NULL,"
       " change TEXT NOT NULL, since_ms INTEGER NOT NULL, PRIMARY KEY (tbl, col, key)) WITHOUT ROWID;"
       // Columns of tracked tables this site dropped (now_named NULL) or renamed.
       "CREATE TABLE IF NOT EXISTS deltasync_gone_columns(table_id INTEGER NOT NULL, name TEXT NOT NULL COLLATE NOCASE,"
       " now_named TEXT, PRIMARY KEY (table_id, name)) WITHOUT ROWID;");
  int64_t v = SettingInt("schema_version", 0);
  if (v > kSchemaVersion)
    throw Error(ErrorCode::kInvalidArgument, "this database was set up by a newer deltasync (schema version " +
                                                 std::to_string(v) + "); upgrade the extension");
  if (v == 0) SetSetting("schema_version", kSchemaVersion);
  schema_ready_ = true;
}

const SiteId& Conn::LocalSite() {
  if (site_) return *site_;
  EnsureSchema();
  Stmt get(db_, "SELECT value FROM deltasync_settings WHERE name = 'site_id'");
  if (get.Step()) {
    site_ = SiteId::FromBytes(get.Blob(0));
  } else {
    SiteId id = SiteId::Random();
    Stmt put(db_, "INSERT INTO deltasync_settings(name, value) VALUES ('site_id', ?1)");
    put.BindBlob(1, id.View());
    put.Run();
    Stmt ord(db_, "INSERT OR REPLACE INTO deltasync_sites(ord, site_id) VALUES (0, ?1)");
    ord.BindBlob(1, id.View());
    ord.Run();
    site_ = id;
  }
  return *site_;
}

int64_t Conn::SettingInt(const char* name, int64_t fallback) {
  Stmt s(db_, "SELECT value FROM deltasync_settings WHERE name = ?1");
  s.BindText(1, name);
  if (!s.Step() || s.IsNull(0)) return fallback;
  return s.Int(0);
}

void Conn::SetSetting(const char* name, int64_t value) {
  Stmt s(db_, "INSERT INTO deltasync_settings(name, value) VALUES (?1, ?2)"
              " ON CONFLICT(name) DO UPDATE SET value = excluded.value");
  s.BindText(1, name);
  s.BindInt(2, value);
  s.Run();
}

// The persisted db_version is a reservation: a transaction promises itself a block of
// versions at its first change, so the counter is written once per transaction instead
// of once per row, and the next writer (on any connection) starts above the block.
// Unused numbers are skipped; versions are increasing, not dense.
void Conn::BeginTxn() {
  EnsureSchema();
  LocalSite();
  int64_t stored_hlc = 0, stored_ver = 0;
  Stmt state(db_, "SELECT name, value FROM deltasync_settings WHERE name IN ('hlc', 'db_version')");
  while (state.Step()) (state.Text(0) == "hlc" ? stored_hlc : stored_ver) = state.Int(1);
  clock_.Observe(static_cast<uint64_t>(stored_hlc));
  txn_hlc_ = clock_.Now(WallClockMillis());
  next_ver_ = std::max(stored_ver, last_issued_) + 1;
  reserved_ = next_ver_ + reserve_size_ - 1;
  WriteClockState();
  JoinTxn(db_);
  in_txn_ = true;
}

void Conn::WriteClockState() {
  Stmt s(db_, "INSERT INTO deltasync_settings(name, value) VALUES ('hlc', ?1), ('db_version', ?2)"
              " ON CONFLICT(name) DO UPDATE SET value = excluded.value");
  s.BindInt(1, static_cast<int64_t>(txn_hlc_));
  s.BindInt(2, reserved_);
  s.Run();
}

int64_t Conn::NextVersion() {
  if (!in_txn_) BeginTxn();
  if (next_ver_ > reserved_) {
    reserve_size_ = std::min<int64_t>(reserve_size_ * 4, int64_t{1} << 20);
    reserved_ = next_ver_ + reserve_size_ - 1;
    WriteClockState();
  }
  last_issued_ = next_ver_;
  return next_ver_++;
}

uint64_t Conn::TxnHlc() {
  if (!in_txn_) BeginTxn();
  return txn_hlc_;
}

void Conn::RefreshTxnHlc() {
  if (!in_txn_) BeginTxn();
  txn_hlc_ = clock_.Now(WallClockMillis());
  WriteClockState();
}

int64_t Conn::SafeVersion() {
  EnsureSchema();
  // Inside a write transaction the rest of its block is still to be issued, so the cursor
  // is the last version issued; outside, the stored reservation covers everything issued.
  if (in_txn_) return next_ver_ - 1;
  return SettingInt("db_version", 0);
}

void Conn::LoadSites() {
  LocalSite();
  sites_.clear();
  site_ords_.clear();
  Stmt s(db_, "SELECT ord, site_id FROM deltasync_sites ORDER BY ord");
  while (s.Step()) {
    auto ord = static_cast<uint32_t>(s.Int(0));
    SiteId id = SiteId::FromBytes(s.Blob(1));
    if (sites_.size() <= ord) sites_.resize(ord + 1);
    sites_[ord] = id;
    site_ords_[id] = ord;
  }
  sites_loaded_ = true;
}

uint32_t Conn::SiteOrdinal(const SiteId& site) {
  if (!sites_loaded_) LoadSites();
  auto it = site_ords_.find(site);
  if (it != site_ords_.end()) return it->second;
  // A miss costs one indexed lookup (another connection may have registered the site) and,
  // for a new site, one insert: never a reload of the whole list, so registering n sites is
  // linear in n.
  Stmt get(db_, "SELECT ord FROM deltasync_sites WHERE site_id = ?1");
  get.BindBlob(1, site.View());
  if (!get.Step()) {
    get.Reset();
    // Join the transaction first, so a rollback of this registration also drops the cache.
    if (!in_txn_) BeginTxn();
    Stmt add(db_, "INSERT INTO deltasync_sites(ord, site_id) SELECT coalesce(max(ord), 0) + 1, ?1 FROM deltasync_sites");
    add.BindBlob(1, site.View());
    add.Run();
    get.BindBlob(1, site.View());  // Reset cleared the binding
    if (!get.Step()) throw Error(ErrorCode::kInternal, "a site just registered is missing");
  }
  auto ord = static_cast<uint32_t>(get.Int(0));
  if (sites_.size() <= ord) sites_.resize(ord + 1);
  sites_[ord] = site;
  site_ords_[site] = ord;
  return ord;
}

const SiteId& Conn::SiteOf(uint32_t ordinal) {
  if (!sites_loaded_ || ordinal >= sites_.size()) LoadSites();
  if (ordinal >= sites_.size()) throw Error(ErrorCode::kInternal, "unknown site ordinal " + std::to_string(ordinal));
  return sites_[ordinal];
}

std::vector<TableInfo> Conn::LoadTables() {
  EnsureSchema();
  std::vector<TableInfo> out;
  std::vector<size_t> added;                              // tables with columns the triggers miss
  std::vector<std::pair<size_t, std::string>> renamed;    // tables renamed since, with their new name
  Stmt s(db_,
         "SELECT d.id, d.name, d.pk, d.columns,"
         " EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = d.name),"
         " (SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = d.name"
         "   AND name IN (d.name || '__deltasync_ins', d.name || '__deltasync_del', d.name || '__deltasync_upk',"
         "                d.name || '__deltasync_upd')),"
         " (SELECT json_group_array(json_array(name, pk)) FROM"
         "   (SELECT name, pk FROM pragma_table_xinfo(d.name) WHERE hidden = 0 ORDER BY cid)),"
         // ALTER TABLE ... RENAME TO moves the triggers (under their old names) to the new name.
         " (SELECT tbl_name FROM sqlite_schema WHERE type = 'trigger' AND name = d.name || '__deltasync_ins'"
         "   AND tbl_name <> d.name),"
         " (SELECT json_group_object(name, json(options)) FROM deltasync_columns WHERE table_id = d.id)"
         " FROM deltasync_tables AS d ORDER BY d.id");
  while (s.Step()) {
    TableInfo t;
    t.id = s.Int(0);
    t.name = std::string(s.Text(1));
    t.pk = nlohmann::json::parse(s.Text(2)).get<std::vector<std::string>>();
    t.cols = nlohmann::json::parse(s.Text(3)).get<std::vector<std::string>>();
    t.q_name = QuoteIdent(t.name);
    t.q_meta = QuoteIdent(MetaTableName(t.name));
    t.reprs = TableReprsFromJson(s.IsNull(8) ? "" : s.Text(8), t.pk, t.cols);  // by stored name, before renames
    t.policies = TablePoliciesFromJson(s.IsNull(8) ? "" : s.Text(8), t.cols);
    int64_t want_triggers = t.cols.empty() ? 3 : 4;
    size_t now_cols = 0;
    if (s.Int(4) != 0) {
      nlohmann::json current = nlohmann::json::parse(s.Text(6));
      FollowRenames(t, current);
      for (const auto& c : current) now_cols += c[1].get<int64_t>() == 0 ? 1 : 0;
    }
    if (s.Int(4) == 0) {
      t.state = TableState::kDropped;
      if (!s.IsNull(7)) renamed.emplace_back(out.size(), std::string(s.Text(7)));
    } else if (s.Int(5) != want_triggers) {
      t.state = TableState::kNeedsEnable;
    } else if (now_cols > t.cols.size()) {
      added.push_back(out.size());  // ALTER TABLE ... ADD COLUMN: the triggers do not cover it yet
    }
    out.push_back(std::move(t));
  }
  s.Reset();
  // Schema changes since the last call are followed here, before anything reads the table:
  // RENAME COLUMN, a rebuild (triggers gone), ADD COLUMN, RENAME TO.
  if (repairing_) return out;
  ScopedFlag guard(repairing_);
  bool followed = false;
  for (const TableInfo& t : out)
    if (!t.renames.empty() && t.state != TableState::kDropped) followed |= PersistColumnRenames(*this, t);
  for (const TableInfo& t : out)
    if (t.state == TableState::kNeedsEnable) followed |= RepairRebuiltTable(*this, t);
  for (size_t k : added) followed |= RepairRebuiltTable(*this, out[k]);
  for (const auto& [k, new_name] : renamed) followed |= FollowTableRename(*this, out[k], new_name);
  if (!followed) return out;
  repairing_ = false;
  return LoadTables();
}

void sqlite::TableInfo::RequireCaptured() const {
  if (state == TableState::kNeedsEnable)
    throw Error(ErrorCode::kInvalidArgument,
                "tracked table \"" + name + "\" has lost its capture triggers (was it dropped and created again?); "
                "call deltasync_enable('" + name + "') to resume tracking (if its key changed: deltasync_disable('" + name +
                    "') then deltasync_enable('" + name + "')) or deltasync_disable('" + name + "') to stop");
}

std::optional<TableInfo> Conn::FindTable(const std::string& name) {
  for (TableInfo& t : LoadTables())
    if (EqualsIgnoreAsciiCase(t.name, name)) return std::move(t);
  return std::nullopt;
}

}  // namespace deltasync
