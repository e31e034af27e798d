#include "server/hub_store.hpp"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "common/hlc.hpp"
#include "common/key_codec.hpp"
#include "common/merge.hpp"
#include "sqlite_ext/sqlite_util.hpp"

namespace deltasync::hub {

namespace {

constexpr int64_t kSchemaVersion = 1;

Value DecodeStoredValue(std::string_view bytes) {
  ByteReader in(bytes, "stored value");
  Value v = DecodeValue(in);
  if (!in.AtEnd()) in.Fail("trailing bytes");
  return v;
}

// Names the hub relays must be portable identifiers: 1-63 bytes (PostgreSQL's limit), no
// control characters, no quotes, backslashes or semicolons. The hub never puts a name into
// SQL text, but a name built to break out of quoting has no business travelling to sites.
void CheckIdentifier(const std::string& name, const char* what) {
  bool ok = !name.empty() && name.size() <= 63;
  for (char ch : name) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\'' || c == '`' || c == '\\' || c == ';') ok = false;
  }
  if (!ok) {
    std::string shown = name.substr(0, 40);
    for (char& c : shown)
      if (static_cast<unsigned char>(c) < 0x20) c = '?';
    throw Error(ErrorCode::kInvalidPayload, std::string("invalid payload: ") + what + " name \"" + shown +
                                                "\" is not a portable identifier (1-63 bytes, no quotes, backslashes, "
                                                "semicolons or control characters)");
  }
}

void CheckIdentifiers(const Payload& p) {
  for (const TableChanges& t : p.tables) {
    CheckIdentifier(t.name, "table");
    for (const auto& c : t.pk) CheckIdentifier(c, "column");
    for (const auto& c : t.columns) CheckIdentifier(c, "column");
  }
}

}  // namespace

HubStore::HubStore(const std::string& path) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw Error(ErrorCode::kInternal, "cannot open hub store " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db_, 5000);
  // WAL with full sync: a push is acknowledged only once its commit is on disk.
  Exec(db_, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;");
  Exec(db_,
       "CREATE TABLE IF NOT EXISTS hub_settings(name TEXT PRIMARY KEY, value) WITHOUT ROWID;"
       "CREATE TABLE IF NOT EXISTS hub_nodes(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
       " seq INTEGER NOT NULL DEFAULT 0);"
       "CREATE TABLE IF NOT EXISTS hub_sites(ord INTEGER PRIMARY KEY, site_id BLOB NOT NULL UNIQUE);"
       "CREATE TABLE IF NOT EXISTS hub_tables(id INTEGER PRIMARY KEY, node INTEGER NOT NULL REFERENCES hub_nodes(id),"
       " name TEXT NOT NULL, pk TEXT NOT NULL, UNIQUE (node, name));"
       "CREATE TABLE IF NOT EXISTS hub_rows(node INTEGER NOT NULL, tbl INTEGER NOT NULL, key BLOB NOT NULL,"
       " cl INTEGER NOT NULL, seq INTEGER NOT NULL, writer INTEGER NOT NULL, PRIMARY KEY (tbl, key)) WITHOUT ROWID;"
       "CREATE INDEX IF NOT EXISTS hub_rows_seq ON hub_rows(node, seq);"
       "CREATE TABLE IF NOT EXISTS hub_cells(tbl INTEGER NOT NULL, key BLOB NOT NULL, col TEXT NOT NULL,"
       " value BLOB NOT NULL, hlc INTEGER NOT NULL, site INTEGER NOT NULL, cl INTEGER NOT NULL, seq INTEGER NOT NULL,"
       " PRIMARY KEY (tbl, key, col)) WITHOUT ROWID;");
  Stmt ver(db_, "SELECT value FROM hub_settings WHERE name = 'schema_version'");
  int64_t v = ver.Step() ? ver.Int(0) : 0;
  ver.Reset();
  if (v > kSchemaVersion)
    throw Error(ErrorCode::kInternal, "hub store " + path + " has schema version " + std::to_string(v) +
                                          ", newer than this deltasync (" + std::to_string(kSchemaVersion) + ")");
  Stmt id(db_, "SELECT value FROM hub_settings WHERE name = 'hub_id'");
  if (id.Step()) {
    hub_id_ = SiteId::FromBytes(id.Blob(0));
  } else {
    hub_id_ = SiteId::Random();
    Stmt put(db_, "INSERT INTO hub_settings(name, value) VALUES ('hub_id', ?1), ('schema_version', ?2)");
    put.BindBlob(1, hub_id_.View());
    put.BindInt(2, kSchemaVersion);
    put.Run();
  }
  Stmt sites(db_, "SELECT ord, site_id FROM hub_sites ORDER BY ord");
  while (sites.Step()) {
    auto ord = static_cast<size_t>(sites.Int(0));
    if (sites_.size() <= ord) sites_.resize(ord + 1);
    sites_[ord] = SiteId::FromBytes(sites.Blob(1));
  }
}

HubStore::~HubStore() { sqlite3_close(db_); }

std::optional<int64_t> HubStore::Node(const std::string& name, bool create) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt get(db_, "SELECT id FROM hub_nodes WHERE name = ?1");
  get.BindText(1, name);
  if (get.Step()) return get.Int(0);
  if (!create) return std::nullopt;
  Stmt add(db_, "INSERT INTO hub_nodes(name) VALUES (?1)");
  add.BindText(1, name);
  add.Run();
  return sqlite3_last_insert_rowid(db_);
}

uint32_t HubStore::SiteOrdinal(const SiteId& site) {
  for (size_t k = 0; k < sites_.size(); ++k)
    if (sites_[k] == site) return static_cast<uint32_t>(k);
  auto ord = static_cast<uint32_t>(sites_.size());
  Stmt add(db_, "INSERT INTO hub_sites(ord, site_id) VALUES (?1, ?2)");
  add.BindInt(1, ord);
  add.BindBlob(2, site.View());
  add.Run();
  sites_.push_back(site);
  return ord;
}

const SiteId& HubStore::SiteOf(int64_t ord) {
  if (ord < 0 || static_cast<size_t>(ord) >= sites_.size())
    throw Error(ErrorCode::kInternal, "hub store: unknown site ordinal " + std::to_string(ord));
  return sites_[static_cast<size_t>(ord)];
}

int64_t HubStore::TableId(int64_t node, const TableChanges& t) {
  std::string pk = nlohmann::json(t.pk).dump();
  Stmt get(db_, "SELECT id, pk FROM hub_tables WHERE node = ?1 AND name = ?2");
  get.BindInt(1, node);
  get.BindText(2, t.name);
  if (get.Step()) {
    if (get.Text(1) != pk)
      throw Error(ErrorCode::kInvalidPayload, "table \"" + t.name + "\": key columns " + pk +
                                                  " differ from those this node holds, " + std::string(get.Text(1)));
    return get.Int(0);
  }
  Stmt add(db_, "INSERT INTO hub_tables(node, name, pk) VALUES (?1, ?2, ?3)");
  add.BindInt(1, node);
  add.BindText(2, t.name);
  add.BindText(3, pk);
  add.Run();
  return sqlite3_last_insert_rowid(db_);
}

PushResult HubStore::Push(int64_t node, const Payload& p, uint64_t max_clock_drift_ms) {
  CheckIdentifiers(p);
  CheckClockDrift(MaxHlc(p), WallClockMillis(), max_clock_drift_ms);
  std::lock_guard<std::mutex> lock(mu_);
  size_t sites_before = sites_.size();
  PushResult result;
  try {
    Exec(db_, "BEGIN IMMEDIATE");
    Stmt node_seq(db_, "SELECT seq FROM hub_nodes WHERE id = ?1");
    node_seq.BindInt(1, node);
    int64_t seq = node_seq.Step() ? node_seq.Int(0) : 0;
    node_seq.Reset();

    std::vector<uint32_t> ords;
    for (const SiteId& s : p.sites) ords.push_back(SiteOrdinal(s));

    Stmt get_row(db_, "SELECT cl FROM hub_rows WHERE tbl = ?1 AND key = ?2");
    Stmt get_cells(db_, "SELECT col, hlc, site, cl FROM hub_cells WHERE tbl = ?1 AND key = ?2");
    // writer: the site whose push last changed the row, so pull can leave out rows that
    // would only tell that site what it said itself.
    Stmt put_row(db_, "INSERT INTO hub_rows(node, tbl, key, cl, seq, writer) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                      " ON CONFLICT (tbl, key) DO UPDATE SET cl = excluded.cl, seq = excluded.seq, writer = excluded.writer");
    int64_t writer = SiteOrdinal(p.site);
    Stmt put_cell(db_, "INSERT INTO hub_cells(tbl, key, col, value, hlc, site, cl, seq)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (tbl, key, col) DO UPDATE SET"
                       " value = excluded.value, hlc = excluded.hlc, site = excluded.site, cl = excluded.cl,"
                       " seq = excluded.seq");
    Stmt drop_cells(db_, "DELETE FROM hub_cells WHERE tbl = ?1 AND key = ?2");

    for (const TableChanges& t : p.tables) {
      int64_t tbl = TableId(node, t);
      for (const RowChanges& r : t.rows) {
        std::string key = EncodeKey(r.key);
        get_row.BindInt(1, tbl);
        get_row.BindBlob(2, key);
        int64_t local_cl = get_row.Step() ? get_row.Int(0) : 0;
        get_row.Reset();
        std::unordered_map<std::string, Clock> held;
        get_cells.BindInt(1, tbl);
        get_cells.BindBlob(2, key);
        while (get_cells.Step())
          held[std::string(get_cells.Text(0))] =
              Clock{get_cells.Int(3), static_cast<uint64_t>(get_cells.Int(1)), SiteOf(get_cells.Int(2))};
        get_cells.Reset();

        std::vector<Clock> incoming, local;
        for (const ColumnChange& c : r.changes) {
          incoming.push_back(Clock{c.cl, c.hlc, p.sites[c.site]});
          auto it = held.find(t.columns[c.column]);
          local.push_back(it == held.end() ? Clock{} : it->second);
        }
        RowMerge m = MergeRow(local_cl, r.cl, incoming, local);
        result.applied += m.applied;
        result.ignored += m.changes - m.applied;
        result.rows++;
        if (m.applied == 0) continue;

        ++seq;
        if (!m.exists) {
          drop_cells.BindInt(1, tbl);
          drop_cells.BindBlob(2, key);
          drop_cells.Run();
        }
        for (size_t k = 0; k < r.changes.size(); ++k) {
          if (!m.col_wins[k]) continue;
          const ColumnChange& c = r.changes[k];
          std::string value;
          EncodeValue(c.value, value);
          put_cell.BindInt(1, tbl);
          put_cell.BindBlob(2, key);
          put_cell.BindText(3, t.columns[c.column]);
          put_cell.BindBlob(4, value);
          put_cell.BindInt(5, static_cast<int64_t>(c.hlc));
          put_cell.BindInt(6, ords[c.site]);
          put_cell.BindInt(7, c.cl);
          put_cell.BindInt(8, seq);
          put_cell.Run();
        }
        put_row.BindInt(1, node);
        put_row.BindInt(2, tbl);
        put_row.BindBlob(3, key);
        put_row.BindInt(4, m.cl);
        put_row.BindInt(5, seq);
        put_row.BindInt(6, writer);
        put_row.Run();
      }
    }
    Stmt set_seq(db_, "UPDATE hub_nodes SET seq = ?1 WHERE id = ?2");
    set_seq.BindInt(1, seq);
    set_seq.BindInt(2, node);
    set_seq.Run();
    Exec(db_, "COMMIT");
    result.seq = seq;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    sites_.resize(sites_before);  // registrations were rolled back with the rest
    throw;
  }
  return result;
}

PullResult HubStore::Pull(int64_t node, int64_t since, size_t max_rows, const std::vector<std::string>& tables,
                          const std::optional<SiteId>& requester) {
  std::lock_guard<std::mutex> lock(mu_);
  PullResult out;
  Payload& p = out.payload;
  p.site = hub_id_;
  p.since = since;
  Exec(db_, "BEGIN");  // one snapshot for the whole page
  try {
    Stmt head(db_, "SELECT seq FROM hub_nodes WHERE id = ?1");
    head.BindInt(1, node);
    int64_t node_seq = head.Step() ? head.Int(0) : 0;
    head.Reset();

    std::map<int64_t, size_t> table_index;         // hub table id -> index in p.tables
    std::map<int64_t, bool> wanted;                 // hub table id -> asked for
    std::vector<std::map<std::string, uint32_t>> col_index;
    std::unordered_map<int64_t, uint32_t> site_index;
    int64_t requester_ord = -1;
    if (requester)
      for (size_t k = 0; k < sites_.size(); ++k)
        if (sites_[k] == *requester) requester_ord = static_cast<int64_t>(k);

    Stmt tinfo(db_, "SELECT name, pk FROM hub_tables WHERE id = ?1");
    Stmt rows(db_, "SELECT tbl, key, cl, seq, writer FROM hub_rows WHERE node = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3");
    // Every cell of the row, not only those newer than `since`: a row moves to the end of the
    // sequence when it changes, so a client at `since` may never have been sent its older
    // cells (they were at seq <= since, but the row had already moved on when it pulled).
    Stmt cells(db_, "SELECT col, value, hlc, site, cl FROM hub_cells WHERE tbl = ?1 AND key = ?2");
    rows.BindInt(1, node);
    rows.BindInt(2, since);
    rows.BindInt(3, static_cast<int64_t>(max_rows) + 1);
    int64_t until = since;
    size_t n = 0;
    while (rows.Step()) {
      if (n == max_rows) {
        out.more = true;
        break;
      }
      ++n;
      int64_t tbl = rows.Int(0);
      until = rows.Int(3);
      auto w = wanted.find(tbl);
      if (w == wanted.end()) {
        tinfo.BindInt(1, tbl);
        if (!tinfo.Step()) throw Error(ErrorCode::kInternal, "hub store: row of an unknown table");
        std::string name(tinfo.Text(0));
        bool ok = tables.empty() || std::find(tables.begin(), tables.end(), name) != tables.end();
        w = wanted.emplace(tbl, ok).first;
        if (ok) {
          TableChanges t;
          t.name = name;
          t.pk = nlohmann::json::parse(tinfo.Text(1)).get<std::vector<std::string>>();
          table_index[tbl] = p.tables.size();
          p.tables.push_back(std::move(t));
          col_index.emplace_back();
        }
        tinfo.Reset();
      }
      if (!w->second) continue;  // a table the client did not ask for: skipped, cursor moves on
      size_t ti = table_index[tbl];
      TableChanges& t = p.tables[ti];
      RowChanges r;
      r.key = DecodeKey(rows.Blob(1));
      r.cl = rows.Int(2);
      cells.BindInt(1, tbl);
      cells.BindBlob(2, rows.Blob(1));
      while (cells.Step()) {
        int64_t site = cells.Int(3);
        if (site == requester_ord) continue;  // never a client's own changes back to it
        ColumnChange c;
        std::string col(cells.Text(0));
        auto ci = col_index[ti].find(col);
        if (ci == col_index[ti].end()) {
          ci = col_index[ti].emplace(col, static_cast<uint32_t>(t.columns.size())).first;
          t.columns.push_back(col);
        }
        c.column = ci->second;
        c.value = DecodeStoredValue(cells.Blob(1));
        c.hlc = static_cast<uint64_t>(cells.Int(2));
        auto si = site_index.find(site);
        if (si == site_index.end()) {
          si = site_index.emplace(site, static_cast<uint32_t>(p.sites.size())).first;
          p.sites.push_back(SiteOf(site));
        }
        c.site = si->second;
        c.cl = cells.Int(4);
        r.changes.push_back(std::move(c));
      }
      cells.Reset();
      if (r.changes.empty() && rows.Int(4) == requester_ord) continue;  // nothing it does not know
      out.changes += r.changes.empty() ? 1 : r.changes.size();
      t.rows.push_back(std::move(r));
    }
    rows.Reset();
    p.until = out.more ? until : std::max(until, node_seq);
    Exec(db_, "COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  // Drop tables whose every row was filtered to nothing? Rows always carry their causal
  // length, so a table listed here has at least one row.
  return out;
}

nlohmann::json HubStore::Status(int64_t node, const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  nlohmann::json tables = nlohmann::json::array();
  Stmt s(db_,
         "SELECT t.name, (SELECT count(*) FROM hub_rows r WHERE r.tbl = t.id AND (r.cl & 1) = 1),"
         " (SELECT count(*) FROM hub_rows r WHERE r.tbl = t.id AND (r.cl & 1) = 0),"
         " (SELECT count(*) FROM hub_cells c WHERE c.tbl = t.id) FROM hub_tables t WHERE t.node = ?1 ORDER BY t.name");
  s.BindInt(1, node);
  while (s.Step())
    tables.push_back({{"table", std::string(s.Text(0))}, {"rows", s.Int(1)}, {"deleted", s.Int(2)}, {"cells", s.Int(3)}});
  s.Reset();
  Stmt seq(db_, "SELECT seq FROM hub_nodes WHERE id = ?1");
  seq.BindInt(1, node);
  int64_t n = seq.Step() ? seq.Int(0) : 0;
  return {{"node", name}, {"seq", n}, {"hub_id", hub_id_.ToString()}, {"tables", tables}};
}

std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> HubStore::NodeCounts() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> out;
  Stmt s(db_, "SELECT n.name, (SELECT count(*) FROM hub_rows r WHERE r.node = n.id), n.seq FROM hub_nodes n ORDER BY n.name");
  while (s.Step()) out.push_back({std::string(s.Text(0)), {s.Int(1), s.Int(2)}});
  return out;
}

}  // namespace deltasync::hub
