// The frontier and compaction of the SQLite hub store (docs/operations.md, "Compaction"):
// each site's contact with a node, the smallest pull cursor of the active sites, and the
// tombstones at or below it dropped in small transactions.
#include <string>
#include <vector>

#include "server/hub_store.hpp"
#include "common/hlc.hpp"
#include "sqlite_common/sqlite_util.hpp"

namespace deltasync::hub {

namespace {

// A contact write is skipped when only the time moved, by less than this.
constexpr int64_t kContactRefreshMs = 1000;

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

// Keyed by the site id itself, not an ordinal: a pull or a push that merges nothing
// registers no site in hub_sites (the site-id flood rules, docs/security.md).
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
    if (pulled <= c.pulled && now_ms < c.last_seen_ms + kContactRefreshMs) return false;  // nothing worth a write
  }
  ContactState now;
  InWriteTxn(db_, [&] {
    Stmt put(db_,
             "INSERT INTO hub_site_contacts(node, site, pulled, last_seen_ms) VALUES (?1, ?2, max(?3, 0), ?4)"
             " ON CONFLICT (node, site) DO UPDATE SET pulled = max(pulled, excluded.pulled),"
             " last_seen_ms = max(last_seen_ms, excluded.last_seen_ms) RETURNING pulled, last_seen_ms, retired");
    put.BindInt(1, node);
    put.BindBlob(2, site.View());
    put.BindInt(3, pulled);
    put.BindInt(4, now_ms);
    if (!put.Step()) throw Error(ErrorCode::kInternal, "hub store: a contact was not recorded");
    now = ContactState{put.Int(0), put.Int(1), put.Int(2) != 0};
    put.Reset();
  });
  contacts_[id] = now;
  return now.retired;
}

// The frontier as the locked store sees it.
static int64_t FrontierLocked(sqlite3* db, int64_t node) {
  Stmt f(db,
         "SELECT coalesce((SELECT min(pulled) FROM hub_site_contacts WHERE node = ?1 AND retired = 0),"
         " (SELECT seq FROM hub_nodes WHERE id = ?1), 0)");
  f.BindInt(1, node);
  return f.Step() ? f.Int(0) : 0;
}

int64_t SqliteHubStore::Frontier(int64_t node) {
  std::lock_guard<std::mutex> lock(mu_);
  return FrontierLocked(db_, node);
}

CompactResult SqliteHubStore::Compact(int64_t node, int64_t retention_ms, int64_t now_ms, size_t batch) {
  CompactResult out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    InWriteTxn(db_, [&] {
      if (retention_ms > 0) {
        Stmt retire(db_,
                    "UPDATE hub_site_contacts SET retired = 1 WHERE node = ?1 AND retired = 0 AND last_seen_ms < ?2");
        retire.BindInt(1, node);
        retire.BindInt(2, now_ms - retention_ms);
        retire.Run();
        out.retired = static_cast<uint64_t>(sqlite3_changes(db_));
      }
      out.frontier = FrontierLocked(db_, node);
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
                "SELECT tbl, key, seq FROM hub_rows WHERE node = ?1 AND seq > ?2 AND seq <= ?3 AND (cl & 1) = 0"
                " ORDER BY seq LIMIT ?4");
      pick.BindInt(1, node);
      pick.BindInt(2, after);
      pick.BindInt(3, out.frontier);
      pick.BindInt(4, static_cast<int64_t>(batch));
      Stmt drop(db_, "DELETE FROM hub_rows WHERE tbl = ?1 AND key = ?2 AND (cl & 1) = 0");
      std::vector<std::pair<int64_t, std::string>> keys;
      while (pick.Step()) {
        keys.emplace_back(pick.Int(0), std::string(pick.Blob(1)));
        after = pick.Int(2);
      }
      pick.Reset();
      for (const auto& [tbl, key] : keys) {
        drop.BindInt(1, tbl);
        drop.BindBlob(2, key);
        drop.Run();
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

}  // namespace deltasync::hub
