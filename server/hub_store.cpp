#include "server/hub_store.hpp"


#include <algorithm>
#include <exception>
#include <map>
#include <unordered_map>

#include "common/hlc.hpp"
#include "common/key_codec.hpp"
#include "common/merge.hpp"
#include "sqlite_common/sqlite_util.hpp"

namespace deltasync::hub {

namespace {

// 2: hub_cells.pusher, the site whose push brought each value (-1 in cells a version 1
// store holds: sent to every site, as version 1 did not know who pushed them).
// 3: hub_site_contacts, each site's pull cursor and last contact per node (hub_compact.cpp).
constexpr int64_t kSchemaVersion = 3;

}  // namespace

SqliteHubStore::SqliteHubStore(const std::string& path) {
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
       " pusher INTEGER NOT NULL DEFAULT -1, PRIMARY KEY (tbl, key, col)) WITHOUT ROWID;"
       // The highest `until` each site pushed to each node (NotePushed); an older deltasync ignores it.
       "CREATE TABLE IF NOT EXISTS hub_site_pushed(node INTEGER NOT NULL, site BLOB NOT NULL,"
       " pushed_until INTEGER NOT NULL, PRIMARY KEY (node, site)) WITHOUT ROWID;"
       // A node's link to its upstream hub (hub_upstream.cpp); an older deltasync ignores it.
       "CREATE TABLE IF NOT EXISTS hub_upstream_links(node INTEGER NOT NULL, upstream TEXT NOT NULL, site BLOB NOT NULL,"
       " hub_id TEXT NOT NULL DEFAULT '', push_cursor INTEGER NOT NULL DEFAULT 0,"
       " pull_cursor INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (node, upstream)) WITHOUT ROWID;");
  Stmt ver(db_, "SELECT value FROM hub_settings WHERE name = 'schema_version'");
  int64_t v = ver.Step() ? ver.Int(0) : 0;
  ver.Reset();
  if (v > kSchemaVersion)
    throw Error(ErrorCode::kInternal, "hub store " + path + " has schema version " + std::to_string(v) +
                                          ", newer than this deltasync (" + std::to_string(kSchemaVersion) + ")");
  if (v != 0 && v < kSchemaVersion) Upgrade(v);
  EnsureContacts();
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
    site_ords_[sites_[ord]] = static_cast<uint32_t>(ord);
  }
}

// Brings a store an older deltasync left to this schema, in one transaction.
void SqliteHubStore::Upgrade(int64_t from) {
  Exec(db_, "BEGIN IMMEDIATE");
  try {
    if (from < 2) {
      bool has_pusher = false;
      Stmt cols(db_, "SELECT name FROM pragma_table_info('hub_cells')");
      while (cols.Step()) has_pusher |= cols.Text(0) == "pusher";
      if (!has_pusher) Exec(db_, "ALTER TABLE hub_cells ADD COLUMN pusher INTEGER NOT NULL DEFAULT -1");
    }
    Stmt put(db_, "UPDATE hub_settings SET value = ?1 WHERE name = 'schema_version'");
    put.BindInt(1, kSchemaVersion);
    put.Run();
    Exec(db_, "COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

SqliteHubStore::~SqliteHubStore() { sqlite3_close(db_); }

std::optional<int64_t> SqliteHubStore::Node(const std::string& name, bool create) {
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

// One hash lookup; a new site costs one insert (this process is the store's only writer).
uint32_t SqliteHubStore::SiteOrdinal(const SiteId& site) {
  auto it = site_ords_.find(site);
  if (it != site_ords_.end()) return it->second;
  auto ord = static_cast<uint32_t>(sites_.size());
  Stmt add(db_, "INSERT INTO hub_sites(ord, site_id) VALUES (?1, ?2)");
  add.BindInt(1, ord);
  add.BindBlob(2, site.View());
  add.Run();
  sites_.push_back(site);
  site_ords_[site] = ord;
  return ord;
}

const SiteId& SqliteHubStore::SiteOf(int64_t ord) {
  if (ord < 0 || static_cast<size_t>(ord) >= sites_.size())
    throw Error(ErrorCode::kInternal, "hub store: unknown site ordinal " + std::to_string(ord));
  return sites_[static_cast<size_t>(ord)];
}

// The reads and writes of one push (inside BEGIN IMMEDIATE).
class SqliteHubStore::Txn : public PushTxn {
 public:
  Txn(SqliteHubStore& store, int64_t node)
      : store_(store), db_(store.db_), node_(node),
        get_row_(db_, "SELECT cl FROM hub_rows WHERE tbl = ?1 AND key = ?2"),
        get_cells_(db_, "SELECT col, hlc, site, cl, length(value) FROM hub_cells WHERE tbl = ?1 AND key = ?2"),
        put_row_(db_, "INSERT INTO hub_rows(node, tbl, key, cl, seq, writer) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                      " ON CONFLICT (tbl, key) DO UPDATE SET cl = excluded.cl, seq = excluded.seq, writer = excluded.writer"),
        put_cell_(db_, "INSERT INTO hub_cells(tbl, key, col, value, hlc, site, cl, seq, pusher)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (tbl, key, col) DO UPDATE SET"
                       " value = excluded.value, hlc = excluded.hlc, site = excluded.site, cl = excluded.cl,"
                       " seq = excluded.seq, pusher = excluded.pusher"),
        drop_cells_(db_, "DELETE FROM hub_cells WHERE tbl = ?1 AND key = ?2") {}

  int64_t TableId(const TableChanges& t) override {
    std::string pk = nlohmann::json(t.pk).dump();
    Stmt get(db_, "SELECT id, pk FROM hub_tables WHERE node = ?1 AND name = ?2");
    get.BindInt(1, node_);
    get.BindText(2, t.name);
    if (get.Step()) {
      CheckHeldKey(t, std::string(get.Text(1)));
      return get.Int(0);
    }
    Stmt add(db_, "INSERT INTO hub_tables(node, name, pk) VALUES (?1, ?2, ?3)");
    add.BindInt(1, node_);
    add.BindText(2, t.name);
    add.BindText(3, pk);
    add.Run();
    return sqlite3_last_insert_rowid(db_);
  }
  uint32_t SiteOrdinal(const SiteId& site) override { return store_.SiteOrdinal(site); }
  SiteId SiteOf(int64_t ord) override { return store_.SiteOf(ord); }
  int64_t RowCl(int64_t tbl, const std::string& key) override {
    get_row_.BindInt(1, tbl);
    get_row_.BindBlob(2, key);
    int64_t cl = get_row_.Step() ? get_row_.Int(0) : 0;
    get_row_.Reset();
    return cl;
  }
  int64_t GraveCl(int64_t tbl, const std::string& key) override { return store_.GraveCl(tbl, key); }
  std::unordered_map<std::string, Clock> CellClocks(int64_t tbl, const std::string& key,
                                                    std::unordered_map<std::string, size_t>* sizes) override {
    std::unordered_map<std::string, Clock> held;
    get_cells_.BindInt(1, tbl);
    get_cells_.BindBlob(2, key);
    while (get_cells_.Step()) {
      std::string col(get_cells_.Text(0));
      if (sizes) (*sizes)[col] = static_cast<size_t>(get_cells_.Int(4));
      held[std::move(col)] = Clock{get_cells_.Int(3), static_cast<uint64_t>(get_cells_.Int(1)), SiteOf(get_cells_.Int(2))};
    }
    get_cells_.Reset();
    return held;
  }
  void DropCells(int64_t tbl, const std::string& key) override {
    drop_cells_.BindInt(1, tbl);
    drop_cells_.BindBlob(2, key);
    drop_cells_.Run();
  }
  void PutCell(int64_t tbl, const std::string& key, const std::string& col, const std::string& value, uint64_t hlc,
               uint32_t site, int64_t cl, int64_t seq, int64_t pusher) override {
    put_cell_.BindInt(1, tbl);
    put_cell_.BindBlob(2, key);
    put_cell_.BindText(3, col);
    put_cell_.BindBlob(4, value);
    put_cell_.BindInt(5, static_cast<int64_t>(hlc));
    put_cell_.BindInt(6, site);
    put_cell_.BindInt(7, cl);
    put_cell_.BindInt(8, seq);
    put_cell_.BindInt(9, pusher);
    put_cell_.Run();
  }
  void PutRow(int64_t tbl, const std::string& key, int64_t cl, int64_t seq, int64_t writer) override {
    put_row_.BindInt(1, node_);
    put_row_.BindInt(2, tbl);
    put_row_.BindBlob(3, key);
    put_row_.BindInt(4, cl);
    put_row_.BindInt(5, seq);
    put_row_.BindInt(6, writer);
    put_row_.Run();
  }

 private:
  SqliteHubStore& store_;
  sqlite3* db_;
  int64_t node_;
  Stmt get_row_, get_cells_, put_row_, put_cell_, drop_cells_;
};

// One page's reads (inside one read transaction).
class SqliteHubStore::Snapshot : public PullSource {
 public:
  Snapshot(SqliteHubStore& store, int64_t node)
      : store_(store), db_(store.db_), node_(node),
        cells_(db_, "SELECT col, value, hlc, site, cl, pusher FROM hub_cells WHERE tbl = ?1 AND key = ?2") {}
  std::vector<StoredRow> Rows(int64_t since, size_t limit) override {
    Stmt rows(db_, "SELECT tbl, key, cl, seq, writer FROM hub_rows WHERE node = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3");
    rows.BindInt(1, node_);
    rows.BindInt(2, since);
    rows.BindInt(3, static_cast<int64_t>(limit));
    std::vector<StoredRow> out;
    while (rows.Step())
      out.push_back(StoredRow{rows.Int(0), std::string(rows.Blob(1)), rows.Int(2), rows.Int(3), rows.Int(4)});
    return out;
  }
  void Table(int64_t tbl, std::string& name, std::vector<std::string>& pk) override {
    Stmt tinfo(db_, "SELECT name, pk FROM hub_tables WHERE id = ?1");
    tinfo.BindInt(1, tbl);
    if (!tinfo.Step()) throw Error(ErrorCode::kInternal, "hub store: row of an unknown table");
    name = std::string(tinfo.Text(0));
    pk = nlohmann::json::parse(tinfo.Text(1)).get<std::vector<std::string>>();
  }
  std::vector<StoredCell> Cells(int64_t tbl, const std::string& key) override {
    std::vector<StoredCell> out;
    cells_.BindInt(1, tbl);
    cells_.BindBlob(2, key);
    while (cells_.Step())
      out.push_back(StoredCell{std::string(cells_.Text(0)), std::string(cells_.Blob(1)),
                               static_cast<uint64_t>(cells_.Int(2)), cells_.Int(3), cells_.Int(4), cells_.Int(5)});
    cells_.Reset();
    return out;
  }
  SiteId SiteOf(int64_t ord) override { return store_.SiteOf(ord); }
  int64_t KnownSite(const SiteId& site) override {
    auto it = store_.site_ords_.find(site);
    return it == store_.site_ords_.end() ? -1 : static_cast<int64_t>(it->second);
  }

 private:
  SqliteHubStore& store_;
  sqlite3* db_;
  int64_t node_;
  Stmt cells_;
};

// One push waiting for its group's commit.
struct SqliteHubStore::PendingPush {
  int64_t node;
  const Payload* payload;
  PushResult result;
  std::exception_ptr error;
  bool done = false;
  size_t max_row_bytes = SIZE_MAX;
};

// Group commit, leader and followers: a push queues itself; if no group is committing, it
// takes the whole queue (its own push and any that arrived meanwhile) and commits it;
// otherwise it waits, and the next free push leads the next group. Decoding and checks
// happened before, outside any lock.
PushResult SqliteHubStore::Push(int64_t node, const Payload& p, uint64_t max_clock_drift_ms, size_t max_row_bytes) {
  CheckPush(p, max_clock_drift_ms);
  PendingPush me{node, &p, {}, nullptr, false, max_row_bytes};
  std::unique_lock<std::mutex> queue(queue_mu_);
  queue_.push_back(&me);
  while (!me.done) {
    if (committing_) {
      queue_cv_.wait(queue);
      continue;
    }
    committing_ = true;
    std::vector<PendingPush*> group;
    group.swap(queue_);
    queue.unlock();
    CommitGroup(group);  // never throws: every push of the group gets its result or error
    queue.lock();
    for (PendingPush* push : group) push->done = true;  // under the queue's lock: followers read it
    committing_ = false;
    queue_cv_.notify_all();
  }
  if (me.error) std::rethrow_exception(me.error);
  return me.result;
}

void SqliteHubStore::CommitGroup(const std::vector<PendingPush*>& group) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t sites_before = sites_.size();
  // A push's registrations of new sites, undone when its savepoint is (or the group's commit
  // fails): the caches never hold an ordinal the file does not.
  auto forget_sites = [&](size_t from) {
    for (size_t k = from; k < sites_.size(); ++k) site_ords_.erase(sites_[k]);
    sites_.resize(from);
  };
  std::exception_ptr group_error;
  try {
    Exec(db_, "BEGIN IMMEDIATE");
    for (PendingPush* push : group) {
      size_t push_sites = sites_.size();
      Exec(db_, "SAVEPOINT push");
      try {
        Stmt node_seq(db_, "SELECT seq FROM hub_nodes WHERE id = ?1");
        node_seq.BindInt(1, push->node);
        int64_t seq = node_seq.Step() ? node_seq.Int(0) : 0;
        node_seq.Reset();
        {
          Txn txn(*this, push->node);
          push->result = MergePush(txn, *push->payload, seq, push->max_row_bytes);
        }
        push->result.site_until = NotePushed(push->node, *push->payload);
        if (push->result.seq != seq) {
          Stmt set_seq(db_, "UPDATE hub_nodes SET seq = ?1 WHERE id = ?2");
          set_seq.BindInt(1, push->result.seq);
          set_seq.BindInt(2, push->node);
          set_seq.Run();
        }
        Exec(db_, "RELEASE push");
      } catch (...) {
        push->error = std::current_exception();
        sqlite3_exec(db_, "ROLLBACK TO push; RELEASE push", nullptr, nullptr, nullptr);
        forget_sites(push_sites);
      }
    }
    Exec(db_, "COMMIT");  // WAL, synchronous = FULL: on disk when this returns
  } catch (...) {
    group_error = std::current_exception();
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    forget_sites(sites_before);
  }
  if (group_error)
    for (PendingPush* push : group) push->error = group_error;
}

// Records the push's `until` as its site's highest for the node, in the push's transaction;
// answers the highest so far.
int64_t SqliteHubStore::NotePushed(int64_t node, const Payload& p) {
  Stmt put(db_,
           "INSERT INTO hub_site_pushed(node, site, pushed_until) VALUES (?1, ?2, ?3) ON CONFLICT (node, site)"
           " DO UPDATE SET pushed_until = max(pushed_until, excluded.pushed_until) RETURNING pushed_until");
  put.BindInt(1, node);
  put.BindBlob(2, p.site.View());
  put.BindInt(3, p.until);
  return put.Step() ? put.Int(0) : p.until;
}

PullResult SqliteHubStore::Pull(int64_t node, int64_t since, size_t max_rows, const std::vector<std::string>& tables,
                                const std::optional<SiteId>& requester, size_t max_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  PullResult out;
  Exec(db_, "BEGIN");  // one snapshot for the whole page
  try {
    Snapshot snap(*this, node);
    out = BuildPage(snap, hub_id_, since, max_rows, tables, requester, max_bytes);
    Stmt head(db_, "SELECT seq FROM hub_nodes WHERE id = ?1");
    head.BindInt(1, node);
    out.head = head.Step() ? head.Int(0) : 0;
    head.Reset();
    Exec(db_, "COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  return out;
}

nlohmann::json SqliteHubStore::Status(int64_t node, const std::string& name) {
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

std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> SqliteHubStore::NodeCounts() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> out;
  Stmt s(db_, "SELECT n.name, (SELECT count(*) FROM hub_rows r WHERE r.node = n.id), n.seq FROM hub_nodes n ORDER BY n.name");
  while (s.Step()) out.push_back({std::string(s.Text(0)), {s.Int(1), s.Int(2)}});
  return out;
}

NodeUsage SqliteHubStore::Usage(int64_t node) {
  std::lock_guard<std::mutex> lock(mu_);
  NodeUsage u;
  Stmt size(db_,
            "SELECT (SELECT count(*) FROM hub_rows WHERE node = ?1), (SELECT coalesce(sum(length(key)), 0) FROM hub_rows"
            " WHERE node = ?1) + (SELECT coalesce(sum(length(c.value)), 0) FROM hub_tables t JOIN hub_cells c ON c.tbl = t.id"
            " WHERE t.node = ?1)");
  size.BindInt(1, node);
  if (size.Step()) {
    u.rows = static_cast<uint64_t>(size.Int(0));
    u.bytes = static_cast<uint64_t>(size.Int(1));
  }
  Stmt sites(db_,
             "SELECT c.site FROM hub_tables t JOIN hub_cells c ON c.tbl = t.id WHERE t.node = ?1"
             " UNION SELECT writer FROM hub_rows WHERE node = ?1 AND writer >= 0");
  sites.BindInt(1, node);
  while (sites.Step()) u.sites.push_back(SiteOf(sites.Int(0)));
  return u;
}

LinkRecord SqliteHubStore::LoadLink(int64_t node, const std::string& upstream) {
  std::lock_guard<std::mutex> lock(mu_);
  for (int attempt = 0; attempt < 2; ++attempt) {
    Stmt get(db_, "SELECT site, hub_id, push_cursor, pull_cursor FROM hub_upstream_links WHERE node = ?1 AND upstream = ?2");
    get.BindInt(1, node);
    get.BindText(2, upstream);
    if (get.Step())
      return LinkRecord{SiteId::FromBytes(get.Blob(0)), std::string(get.Text(1)), get.Int(2), get.Int(3)};
    get.Reset();
    SiteId site = SiteId::Random();
    Stmt add(db_, "INSERT OR IGNORE INTO hub_upstream_links(node, upstream, site) VALUES (?1, ?2, ?3)");
    add.BindInt(1, node);
    add.BindText(2, upstream);
    add.BindBlob(3, site.View());
    add.Run();
  }
  throw Error(ErrorCode::kInternal, "hub store: cannot create the upstream link of node " + std::to_string(node));
}

void SqliteHubStore::SaveLink(int64_t node, const std::string& upstream, const LinkUpdate& update) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt put(db_,
           "UPDATE hub_upstream_links SET hub_id = coalesce(?3, hub_id), push_cursor = coalesce(?4, push_cursor),"
           " pull_cursor = coalesce(?5, pull_cursor) WHERE node = ?1 AND upstream = ?2");
  put.BindInt(1, node);
  put.BindText(2, upstream);
  if (update.hub_id) put.BindText(3, *update.hub_id);
  if (update.push_cursor) put.BindInt(4, *update.push_cursor);
  if (update.pull_cursor) put.BindInt(5, *update.pull_cursor);
  put.Run();
}

namespace {
// The embedded store has one process (it caches site ordinals as the only writer): its
// lease is always held.
class ProcessLease : public LinkLease {
 public:
  bool Held() override { return true; }
};
}  // namespace

std::unique_ptr<LinkLease> SqliteHubStore::LeaseLink(int64_t /*node*/) { return std::make_unique<ProcessLease>(); }

}  // namespace deltasync::hub
