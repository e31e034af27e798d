#include "sqlite_ext/sqlite_conn.hpp"

#include <nlohmann/json.hpp>

namespace deltasync {

namespace {
constexpr int64_t kSchemaVersion = 1;

bool EqualsNoCase(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  for (size_t k = 0; k < a.size(); ++k) {
    char x = a[k], y = b[k];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}
}  // namespace

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
       " name TEXT NOT NULL UNIQUE, pk TEXT NOT NULL, columns TEXT NOT NULL);");
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

int64_t Conn::MaxStoredVersion() {
  // The floor covers versions of tables since disabled; each shadow table's version index
  // answers max(ver) with one seek. Deriving the counter this way keeps it right even when
  // a ROLLBACK TO undid part of a transaction.
  int64_t v = SettingInt("db_version_floor", 0);
  for (const TableInfo& t : LoadTables()) {
    Stmt s(db_, "SELECT max(ver) FROM " + t.q_meta);
    if (s.Step() && !s.IsNull(0) && s.Int(0) > v) v = s.Int(0);
  }
  return v;
}

void Conn::BeginTxn() {
  EnsureSchema();
  LocalSite();
  clock_.Observe(static_cast<uint64_t>(SettingInt("hlc", 0)));
  uint64_t hlc = clock_.Now(WallClockMillis());
  SetSetting("hlc", static_cast<int64_t>(hlc));
  next_ver_ = MaxStoredVersion() + 1;
  txn_hlc_ = hlc;
  in_txn_ = true;
}

int64_t Conn::NextVersion() {
  if (!in_txn_) BeginTxn();
  return next_ver_++;
}

uint64_t Conn::TxnHlc() {
  if (!in_txn_) BeginTxn();
  return txn_hlc_;
}

void Conn::RefreshTxnHlc() {
  if (!in_txn_) BeginTxn();
  txn_hlc_ = clock_.Now(WallClockMillis());
  SetSetting("hlc", static_cast<int64_t>(txn_hlc_));
}

int64_t Conn::CurrentDbVersion() {
  EnsureSchema();
  if (in_txn_) return next_ver_ - 1;
  return MaxStoredVersion();
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
  auto ord = static_cast<uint32_t>(sites_.size());
  Stmt s(db_, "INSERT INTO deltasync_sites(ord, site_id) VALUES (?1, ?2)");
  s.BindInt(1, ord);
  s.BindBlob(2, site.View());
  s.Run();
  sites_.push_back(site);
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
  Stmt s(db_, "SELECT id, name, pk, columns FROM deltasync_tables ORDER BY id");
  while (s.Step()) {
    TableInfo t;
    t.id = s.Int(0);
    t.name = std::string(s.Text(1));
    t.pk = nlohmann::json::parse(s.Text(2)).get<std::vector<std::string>>();
    t.cols = nlohmann::json::parse(s.Text(3)).get<std::vector<std::string>>();
    t.q_name = QuoteIdent(t.name);
    t.q_meta = QuoteIdent(MetaTableName(t.name));
    out.push_back(std::move(t));
  }
  return out;
}

std::optional<TableInfo> Conn::FindTable(const std::string& name) {
  for (TableInfo& t : LoadTables())
    if (EqualsNoCase(t.name, name)) return std::move(t);
  return std::nullopt;
}

}  // namespace deltasync
