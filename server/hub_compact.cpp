// The frontier and compaction of the SQLite hub store (docs/operations.md, "Compaction"):
// each site's contact with a node, the smallest pull cursor of the active sites, and the
// tombstones at or below it dropped in small transactions.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "server/hub_store.hpp"
#include "common/hlc.hpp"
#include "sqlite_common/sqlite_util.hpp"

namespace deltasync::hub {

namespace {

// Runs body inside BEGIN IMMEDIATE ... COMMIT, rolled back on any exception.
template <typename Body>
void InWriteTxn(sqlite3* db, Body&& body) {
  Exec(db, "BEGIN IMMEDIATE");
  try {
    body();
    Exec(db, "COMMIT");
  } catch (...) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

}  // namespace

// Creates hub_site_contacts; a store that had none (an older hub wrote it) gets every site
// that wrote a row or pushed a value of a node, with cursor 0: the frontier stays at 0 until
// each of them has pulled again (or is retired), since what they saw is unknown.
void SqliteHubStore::EnsureContacts() {
  // A dropped tombstone's key and causal length (Compact): a late change for that key from a
  // site that never received the delete still loses to it.
  Exec(db_, "CREATE TABLE IF NOT EXISTS hub_graves(tbl INTEGER NOT NULL, key BLOB NOT NULL, cl INTEGER NOT NULL,"
            " PRIMARY KEY (tbl, key)) WITHOUT ROWID");
  Stmt tables(db_, "SELECT DISTINCT tbl FROM hub_graves");
  while (tables.Step()) grave_tables_.insert(tables.Int(0));
  tables.Reset();
  Stmt has(db_, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'hub_site_contacts'");
  bool existed = has.Step();
  has.Reset();
  if (existed) return;
  InWriteTxn(db_, [&] {
    Exec(db_,
         "CREATE TABLE hub_site_contacts(node INTEGER NOT NULL, site BLOB NOT NULL, pulled INTEGER NOT NULL,"
         " last_seen_ms INTEGER NOT NULL, retired INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (node, site)) WITHOUT ROWID");
    Stmt seed(db_,
              "INSERT OR IGNORE INTO hub_site_contacts(node, site, pulled, last_seen_ms)"
              " SELECT w.node, s.site_id, 0, ?1 FROM (SELECT DISTINCT node, writer AS ord FROM hub_rows"
              " UNION SELECT t.node, c.pusher FROM hub_cells c JOIN hub_tables t ON t.id = c.tbl) w"
              " JOIN hub_sites s ON s.ord = w.ord");
    seed.BindInt(1, static_cast<int64_t>(WallClockMillis()));
    seed.Run();
  });
}

int64_t SqliteHubStore::GraveCl(int64_t tbl, const std::string& key) {
  if (grave_tables_.count(tbl) == 0) return 0;
  Stmt get(db_, "SELECT cl FROM hub_graves WHERE tbl = ?1 AND key = ?2");
  get.BindInt(1, tbl);
  get.BindBlob(2, key);
  return get.Step() ? get.Int(0) : 0;
}

// Keyed by the site id itself, not an ordinal: a pull or a push that merges nothing
// registers no site in hub_sites (the site-id flood rules, docs/security.md). A site's first
// contact is written at once (a site the frontier did not know could hold anything); later
// ones only move values up, so they wait in memory for the next compaction (FlushContacts):
// a crash loses only values newer than the stored ones, which holds compaction back and
// never makes it wrong, and a pull costs no write of its own.
bool SqliteHubStore::Contact(int64_t node, const SiteId& site, int64_t pulled, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  std::pair<int64_t, SiteId> id{node, site};
  auto it = contacts_.find(id);
  if (it == contacts_.end()) {
    Stmt get(db_, "SELECT pulled, last_seen_ms, retired FROM hub_site_contacts WHERE node = ?1 AND site = ?2");
    get.BindInt(1, node);
    get.BindBlob(2, site.View());
    if (get.Step()) it = contacts_.emplace(id, ContactState{get.Int(0), get.Int(1), get.Int(2) != 0}).first;
  }
  if (it != contacts_.end()) {
    ContactState& c = it->second;
    if (c.retired) return true;
    if (pulled > c.pulled || now_ms > c.last_seen_ms) {
      c.pulled = std::max(c.pulled, pulled);
      c.last_seen_ms = std::max(c.last_seen_ms, now_ms);
      c.dirty = true;
    }
    return false;
  }
  InWriteTxn(db_, [&] {
    Stmt put(db_,
             "INSERT INTO hub_site_contacts(node, site, pulled, last_seen_ms) VALUES (?1, ?2, ?3, ?4)"
             " ON CONFLICT (node, site) DO NOTHING");
    put.BindInt(1, node);
    put.BindBlob(2, site.View());
    put.BindInt(3, std::max<int64_t>(pulled, 0));
    put.BindInt(4, now_ms);
    put.Run();
  });
  contacts_[id] = ContactState{std::max<int64_t>(pulled, 0), now_ms, false};
  return false;
}

// Writes the contacts that moved since they were stored, in one transaction (under mu_).
void SqliteHubStore::FlushContacts() {
  bool any = false;
  for (const auto& [id, c] : contacts_) any = any || c.dirty;
  if (!any) return;
  InWriteTxn(db_, [&] {
    Stmt put(db_,
             "UPDATE hub_site_contacts SET pulled = max(pulled, ?3), last_seen_ms = max(last_seen_ms, ?4)"
             " WHERE node = ?1 AND site = ?2");
    for (const auto& [id, c] : contacts_) {
      if (!c.dirty) continue;
      put.BindInt(1, id.first);
      put.BindBlob(2, id.second.View());
      put.BindInt(3, c.pulled);
      put.BindInt(4, c.last_seen_ms);
      put.Run();
    }
  });
  for (auto& [id, c] : contacts_) c.dirty = false;
}

// The smallest cursor of the node's active sites, stored or newer in memory (under mu_);
// the node's sequence when it has none.
int64_t SqliteHubStore::FrontierLocked(int64_t node) {
  Stmt f(db_, "SELECT site, pulled FROM hub_site_contacts WHERE node = ?1 AND retired = 0");
  f.BindInt(1, node);
  std::optional<int64_t> least;
  while (f.Step()) {
    int64_t pulled = f.Int(1);
    auto it = contacts_.find({node, SiteId::FromBytes(f.Blob(0))});
    if (it != contacts_.end()) pulled = std::max(pulled, it->second.pulled);
    least = least ? std::min(*least, pulled) : pulled;
  }
  if (least) return *least;
  Stmt seq(db_, "SELECT seq FROM hub_nodes WHERE id = ?1");
  seq.BindInt(1, node);
  return seq.Step() ? seq.Int(0) : 0;
}

int64_t SqliteHubStore::Frontier(int64_t node) {
  std::lock_guard<std::mutex> lock(mu_);
  return FrontierLocked(node);
}

CompactResult SqliteHubStore::Compact(int64_t node, int64_t retention_ms, int64_t now_ms, size_t batch) {
  CompactResult out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    FlushContacts();
    InWriteTxn(db_, [&] {
      if (retention_ms > 0) {
        Stmt retire(db_,
                    "UPDATE hub_site_contacts SET retired = 1 WHERE node = ?1 AND retired = 0 AND last_seen_ms < ?2");
        retire.BindInt(1, node);
        retire.BindInt(2, now_ms - retention_ms);
        retire.Run();
        out.retired = static_cast<uint64_t>(sqlite3_changes(db_));
      }
      out.frontier = FrontierLocked(node);
      Stmt n(db_, "SELECT count(*) FROM hub_site_contacts WHERE node = ?1 AND retired = 0");
      n.BindInt(1, node);
      out.sites = n.Step() ? static_cast<uint64_t>(n.Int(0)) : 0;
    });
    if (out.retired > 0)
      for (auto& [id, c] : contacts_)
        if (id.first == node) c.retired = c.retired || c.last_seen_ms < now_ms - retention_ms;
  }
  // A tombstone whose sequence is at or below the frontier has been applied by every active
  // site; a row changed meanwhile has a sequence above it and is left alone. Each batch is
  // its own transaction, and pushes run between them.
  int64_t after = 0;
  for (;;) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    InWriteTxn(db_, [&] {
      Stmt pick(db_,
                "SELECT tbl, key, seq, cl FROM hub_rows WHERE node = ?1 AND seq > ?2 AND seq <= ?3 AND (cl & 1) = 0"
                " ORDER BY seq LIMIT ?4");
      pick.BindInt(1, node);
      pick.BindInt(2, after);
      pick.BindInt(3, out.frontier);
      pick.BindInt(4, static_cast<int64_t>(batch));
      Stmt drop(db_, "DELETE FROM hub_rows WHERE tbl = ?1 AND key = ?2 AND (cl & 1) = 0");
      Stmt bury(db_, "INSERT OR REPLACE INTO hub_graves(tbl, key, cl) VALUES (?1, ?2, ?3)");
      struct Dropped {
        int64_t tbl;
        std::string key;
        int64_t cl;
      };
      std::vector<Dropped> keys;
      while (pick.Step()) {
        keys.push_back(Dropped{pick.Int(0), std::string(pick.Blob(1)), pick.Int(3)});
        after = pick.Int(2);
      }
      pick.Reset();
      for (const Dropped& d : keys) {
        drop.BindInt(1, d.tbl);
        drop.BindBlob(2, d.key);
        drop.Run();
        bury.BindInt(1, d.tbl);
        bury.BindBlob(2, d.key);
        bury.BindInt(3, d.cl);
        bury.Run();
        grave_tables_.insert(d.tbl);
      }
      n = keys.size();
    });
    out.dropped += n;
    if (n < batch) break;
  }
  return out;
}

bool SqliteHubStore::Readmit(int64_t node, const SiteId& site) {
  std::lock_guard<std::mutex> lock(mu_);
  FlushContacts();
  bool changed = false;
  InWriteTxn(db_, [&] {
    // Back in the frontier from its current cursor on, seen now.
    Stmt put(db_,
             "UPDATE hub_site_contacts SET retired = 0, last_seen_ms = ?3 WHERE node = ?1 AND site = ?2 AND retired = 1");
    put.BindInt(1, node);
    put.BindBlob(2, site.View());
    put.BindInt(3, static_cast<int64_t>(WallClockMillis()));
    put.Run();
    changed = sqlite3_changes(db_) > 0;
  });
  contacts_.erase({node, site});
  return changed;
}

// The highest `until` a site pushed (NotePushed, hub_store.cpp), and forgetting it.
int64_t SqliteHubStore::PushedUntil(int64_t node, const SiteId& site) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt get(db_, "SELECT pushed_until FROM hub_site_pushed WHERE node = ?1 AND site = ?2");
  get.BindInt(1, node);
  get.BindBlob(2, site.View());
  return get.Step() ? get.Int(0) : 0;
}

void SqliteHubStore::ForgetPushed(int64_t node, const SiteId& site) {
  std::lock_guard<std::mutex> lock(mu_);
  InWriteTxn(db_, [&] {
    Stmt del(db_, "DELETE FROM hub_site_pushed WHERE node = ?1 AND site = ?2");
    del.BindInt(1, node);
    del.BindBlob(2, site.View());
    del.Run();
  });
}

void SqliteHubStore::NewIdentity() {
  std::lock_guard<std::mutex> lock(mu_);
  SiteId id = SiteId::Random();
  InWriteTxn(db_, [&] {
    Stmt put(db_, "UPDATE hub_settings SET value = ?1 WHERE name = 'hub_id'");
    put.BindBlob(1, id.View());
    put.Run();
    Exec(db_, "UPDATE hub_site_contacts SET pulled = 0");
    Exec(db_, "DELETE FROM hub_site_pushed");
    // Upstream links start over with new site ids: the upstream sends them everything again.
    Exec(db_, "DELETE FROM hub_upstream_links");
  });
  contacts_.clear();
  hub_id_ = id;
}

}  // namespace deltasync::hub
