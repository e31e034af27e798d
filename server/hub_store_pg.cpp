// The hub's store on PostgreSQL. Schema (docs/scaling.md): every hot table carries the node
// as the first column of its key, so Citus distributes hub_seqs, hub_tables, hub_rows and
// hub_cells on it, co-located (one node's rows and its sequence on one worker); hub_nodes
// (the name -> id map, UNIQUE (name)), hub_sites and hub_settings are small reference
// tables, written only when a node or a site is first seen.
//
// No lost or skipped change with several hubs: a push (or a group of pushes to one node that
// arrived together: group commit, one transaction, a savepoint each) locks its node's hub_seqs
// row (SELECT ... FOR UPDATE NOWAIT, retried by the hub within a bound) for its whole
// transaction, so pushes to one node commit one after another and in the order of the
// sequence numbers they hand out; a pull page reads one snapshot (REPEATABLE READ), which
// therefore holds a prefix of the node's sequence, and its cursor is the last row it read
// (hub_merge's BuildPage), never a counter read apart. Pushes to different nodes share no
// row, lock or sequence, and a request for a node that exists writes nothing.
#include "server/hub_store_pg.hpp"
#include "server/hub_checksum.hpp"

#include <libpq-fe.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <algorithm>
#include <iterator>
#include <map>
#include <set>
#include <unordered_map>
#include <thread>

#include "common/error.hpp"
#include "common/hlc.hpp"
#include "common/key_codec.hpp"

namespace deltasync::hub {

namespace {

// 2: hub_cells.pusher, the site whose push brought each value (-1 in cells a version 1
// store holds: sent to every site, as version 1 did not know who pushed them).
// 3: each node's sequence in hub_seqs (keyed by node, beside its rows), not in hub_nodes.
// 4: hub_site_contacts and hub_graves, the frontier and compaction (docs/operations.md).
constexpr int64_t kSchemaVersion = 4;

// A failure of the connection or of a server that is shutting down or starting: retried.
bool IsConnectionState(const char* sqlstate) {
  if (!sqlstate) return true;  // no SQLSTATE at all: the connection broke
  return std::strncmp(sqlstate, "08", 2) == 0 || std::strcmp(sqlstate, "57P01") == 0 ||
         std::strcmp(sqlstate, "57P02") == 0 || std::strcmp(sqlstate, "57P03") == 0;
}
bool IsRetryable(const char* sqlstate) {
  return sqlstate && (std::strcmp(sqlstate, "40001") == 0 || std::strcmp(sqlstate, "40P01") == 0);
}

struct Retry : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// The node's lock was not granted in time: a 503, without retrying (the wait was the retry).
struct Busy : StoreUnavailable {
  using StoreUnavailable::StoreUnavailable;
};

// Parameters of one statement: text for numbers and names, binary for bytes.
class Params {
 public:
  Params& Int(int64_t v) { return Text(std::to_string(v)); }
  Params& Text(std::string v) {
    values_.push_back(std::move(v));
    formats_.push_back(0);
    return *this;
  }
  Params& Bytes(std::string v) {
    values_.push_back(std::move(v));
    formats_.push_back(1);
    return *this;
  }
  int size() const { return static_cast<int>(values_.size()); }
  void Fill(std::vector<const char*>& ptrs, std::vector<int>& lens) const {
    for (const auto& v : values_) {
      ptrs.push_back(v.data());
      lens.push_back(static_cast<int>(v.size()));
    }
  }
  const int* formats() const { return formats_.data(); }

 private:
  std::vector<std::string> values_;
  std::vector<int> formats_;
};

// A result, with text values; bytea columns are unescaped by Bytes().
class Result {
 public:
  explicit Result(PGresult* r) : r_(r) {}
  ~Result() { PQclear(r_); }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  int rows() const { return PQntuples(r_); }
  bool IsNull(int row, int col) const { return PQgetisnull(r_, row, col); }
  int64_t Int(int row, int col) const { return IsNull(row, col) ? 0 : std::stoll(PQgetvalue(r_, row, col)); }
  std::string Text(int row, int col) const { return std::string(PQgetvalue(r_, row, col), PQgetlength(r_, row, col)); }
  std::string Bytes(int row, int col) const {
    size_t n = 0;
    unsigned char* b = PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r_, row, col)), &n);
    if (!b) throw Error(ErrorCode::kInternal, "hub store: cannot decode bytea");
    std::string out(reinterpret_cast<char*>(b), n);
    PQfreemem(b);
    return out;
  }

 private:
  PGresult* r_;
};

// Array parameters in PostgreSQL's text form, one statement shape for any number of rows (so
// it is prepared once): each element double-quoted, '"' and '\\' escaped; bytes as hex.
class ArrayText {
 public:
  ArrayText& Bytes(std::string_view b) {
    static const char kHex[] = "0123456789abcdef";
    Open();
    out_ += "\"\\\\x";
    for (unsigned char ch : b) {
      out_ += kHex[ch >> 4];
      out_ += kHex[ch & 15];
    }
    out_ += '"';
    return *this;
  }
  ArrayText& Text(std::string_view t) {
    Open();
    out_ += '"';
    for (char ch : t) {
      if (ch == '"' || ch == '\\') out_ += '\\';
      out_ += ch;
    }
    out_ += '"';
    return *this;
  }
  ArrayText& Int(int64_t v) {
    Open();
    out_ += std::to_string(v);
    return *this;
  }
  std::string Done() { return (out_.empty() ? "{" : out_) + "}"; }

 private:
  void Open() { out_ += out_.empty() ? "{" : ","; }
  std::string out_;
};

}  // namespace

class PgHubStore::Conn {
 public:
  // TCP keepalives and a user timeout notice a half-open link to the database within about
  // half a minute; a session idle inside a transaction (a hub that vanished mid-push while
  // holding a node's lock) is ended by the server after a minute.
  explicit Conn(const std::string& conninfo) {
    const char* keys[] = {"dbname", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
                          "tcp_user_timeout", "connect_timeout", nullptr};
    const char* vals[] = {conninfo.c_str(), "1", "10", "5", "3", "30000", "10", nullptr};
    conn_ = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(conn_) == CONNECTION_OK) Configure();
  }
  ~Conn() { PQfinish(conn_); }
  bool Ok() const { return PQstatus(conn_) == CONNECTION_OK; }
  void Reset() {
    PQreset(conn_);
    if (Ok()) Configure();
  }
  std::string ErrorText() const { return PQerrorMessage(conn_); }

  std::unique_ptr<Result> Run(const std::string& sql, const Params& p = Params()) {
    std::vector<const char*> ptrs;
    std::vector<int> lens;
    p.Fill(ptrs, lens);
    return Check(PQexecParams(conn_, sql.c_str(), p.size(), nullptr, ptrs.data(), lens.data(), p.formats(), 0));
  }
  // The same, as a statement this connection prepared the first time it ran it (parsed and
  // planned once per connection, not per call): for the push path's fixed statements.
  std::unique_ptr<Result> RunPrepared(const char* name, const char* sql, const Params& p) {
    if (!prepared_.count(name)) {
      Check(PQprepare(conn_, name, sql, p.size(), nullptr));
      prepared_.insert(name);
    }
    std::vector<const char*> ptrs;
    std::vector<int> lens;
    p.Fill(ptrs, lens);
    return Check(PQexecPrepared(conn_, name, p.size(), ptrs.data(), lens.data(), p.formats(), 0));
  }

 private:
  std::unique_ptr<Result> Check(PGresult* r) {
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return std::make_unique<Result>(r);
    const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    std::string why = r ? PQresultErrorMessage(r) : PQerrorMessage(conn_);
    bool connection = IsConnectionState(state) || PQstatus(conn_) != CONNECTION_OK;
    if (state && std::strcmp(state, "55P03") == 0) {  // lock_timeout
      PQclear(r);
      throw Busy("hub store: the node is busy (its lock was held too long)");
    }
    bool retry = IsRetryable(state);
    PQclear(r);
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    if (connection) throw StoreUnavailable("hub store: " + why);
    if (retry) throw Retry(why);
    throw Error(ErrorCode::kInternal, "hub store: " + why);
  }
  void Configure() {
    prepared_.clear();  // a new session: nothing prepared yet
    PQclear(PQexec(conn_, "SET client_min_messages = warning; SET idle_in_transaction_session_timeout = '60s'"));
  }
  PGconn* conn_ = nullptr;
  std::set<std::string> prepared_;
};

PgHubStore::PgHubStore(const std::string& conninfo, size_t pool) : conninfo_(conninfo), pool_size_(pool) {
  if (const char* delay = std::getenv("DELTASYNC_TEST_PUSH_COMMIT_DELAY_MS")) push_commit_delay_ms_ = std::atoi(delay);
  WithConn([&](Conn& c) {
    CreateSchema(c);
    return 0;
  });
}

PgHubStore::~PgHubStore() = default;

std::unique_ptr<PgHubStore::Conn> PgHubStore::Acquire() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, std::chrono::seconds(30), [&] { return !idle_.empty() || open_ < pool_size_; }))
    throw StoreUnavailable("hub store: every connection of the pool stayed busy for 30 s");
  std::unique_ptr<Conn> c;
  if (!idle_.empty()) {
    c = std::move(idle_.back());
    idle_.pop_back();
  } else {
    ++open_;
    lock.unlock();
    c = std::make_unique<Conn>(conninfo_);
  }
  return c;
}

void PgHubStore::Release(std::unique_ptr<Conn> c) {
  std::lock_guard<std::mutex> lock(mu_);
  if (c) idle_.push_back(std::move(c));
  else --open_;
  cv_.notify_one();
}

void PgHubStore::DropIdle() {
  std::lock_guard<std::mutex> lock(mu_);
  open_ -= idle_.size();
  idle_.clear();
  cv_.notify_all();
}

// Ends a failed transaction and returns the connection to the pool; one that cannot even
// roll back is closed instead.
void PgHubStore::RollbackAndRelease(std::unique_ptr<Conn> c) {
  try {
    c->Run("ROLLBACK");
    Release(std::move(c));
  } catch (...) {
    c.reset();
    Release(nullptr);
  }
}

template <typename Body>
auto PgHubStore::WithConn(Body&& body) -> decltype(body(std::declval<Conn&>())) {
  static const int kDelaysMs[] = {50, 200, 500, 1000, 2000};
  constexpr int kAttempts = 6;  // the last one after the 2000 ms wait
  std::string last;
  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<Conn> c = Acquire();
    try {
      if (!c->Ok()) c->Reset();
      if (!c->Ok()) throw StoreUnavailable("hub store: " + c->ErrorText());
      auto result = body(*c);
      Release(std::move(c));
      return result;
    } catch (const Busy&) {
      RollbackAndRelease(std::move(c));
      throw;
    } catch (const StoreUnavailable& e) {
      last = e.what();
      c.reset();  // a broken connection is not reused ...
      Release(nullptr);
      DropIdle();  // ... and the idle ones are likely broken too (a restarted server)
    } catch (const Retry& e) {
      last = e.what();
      RollbackAndRelease(std::move(c));
    } catch (...) {
      if (c->Ok()) {
        try {
          c->Run("ROLLBACK");
        } catch (...) {
        }
        Release(std::move(c));
      } else {
        c.reset();
        Release(nullptr);
      }
      throw;
    }
    if (attempt + 1 == kAttempts) throw StoreUnavailable(last);
    std::this_thread::sleep_for(std::chrono::milliseconds(kDelaysMs[attempt]));
  }
}

void PgHubStore::CreateSchema(Conn& c) {
  // Hubs starting together take turns; the lock is released with the session's transaction.
  c.Run("BEGIN");
  c.Run("SELECT pg_advisory_xact_lock(7226871305446233719)");
  c.Run("CREATE TABLE IF NOT EXISTS hub_settings (name text PRIMARY KEY, value text NOT NULL)");
  auto ver = c.Run("SELECT value FROM hub_settings WHERE name = 'schema_version'");
  int64_t v = ver->rows() ? std::stoll(ver->Text(0, 0)) : 0;
  if (v > kSchemaVersion)
    throw Error(ErrorCode::kInternal, "hub store has schema version " + std::to_string(v) + ", newer than this deltasync (" +
                                          std::to_string(kSchemaVersion) + ")");
  c.Run("CREATE TABLE IF NOT EXISTS hub_nodes (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE)");
  c.Run("CREATE TABLE IF NOT EXISTS hub_seqs (node bigint PRIMARY KEY, seq bigint NOT NULL)");
  // A version 1 or 2 store kept the sequence in hub_nodes: moved, and the column dropped, so
  // an older hub still running on this store fails loudly instead of handing out numbers.
  auto old_seq = c.Run("SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
                       " AND table_name = 'hub_nodes' AND column_name = 'seq'");
  if (old_seq->rows() > 0) {
    c.Run("INSERT INTO hub_seqs (node, seq) SELECT id, seq FROM hub_nodes ON CONFLICT (node) DO NOTHING");
    c.Run("ALTER TABLE hub_nodes DROP COLUMN seq");
  }
  c.Run("CREATE TABLE IF NOT EXISTS hub_sites (ord integer PRIMARY KEY, site_id bytea NOT NULL UNIQUE)");
  c.Run("CREATE SEQUENCE IF NOT EXISTS hub_site_ord MINVALUE 0 START 0");
  c.Run("CREATE TABLE IF NOT EXISTS hub_tables (node bigint NOT NULL, id bigserial, name text NOT NULL, pk text NOT NULL,"
        " PRIMARY KEY (node, id), UNIQUE (node, name))");
  c.Run("CREATE TABLE IF NOT EXISTS hub_rows (node bigint NOT NULL, tbl bigint NOT NULL, key bytea NOT NULL,"
        " cl bigint NOT NULL, seq bigint NOT NULL, writer integer NOT NULL, PRIMARY KEY (node, tbl, key))");
  c.Run("CREATE INDEX IF NOT EXISTS hub_rows_seq ON hub_rows (node, seq)");
  c.Run("CREATE TABLE IF NOT EXISTS hub_cells (node bigint NOT NULL, tbl bigint NOT NULL, key bytea NOT NULL,"
        " col text NOT NULL, value bytea NOT NULL, hlc bigint NOT NULL, site integer NOT NULL, cl bigint NOT NULL,"
        " seq bigint NOT NULL, pusher integer NOT NULL DEFAULT -1, PRIMARY KEY (node, tbl, key, col))");
  // A version 1 store: a constant default adds the column without rewriting the table.
  c.Run("ALTER TABLE hub_cells ADD COLUMN IF NOT EXISTS pusher integer NOT NULL DEFAULT -1");
  c.Run("CREATE TABLE IF NOT EXISTS hub_site_contacts (node bigint NOT NULL, site bytea NOT NULL, pulled bigint NOT NULL,"
        " last_seen_ms bigint NOT NULL, retired boolean NOT NULL DEFAULT false, PRIMARY KEY (node, site))");
  c.Run("CREATE TABLE IF NOT EXISTS hub_graves (node bigint NOT NULL, tbl bigint NOT NULL, key bytea NOT NULL,"
        " cl bigint NOT NULL, PRIMARY KEY (node, tbl, key))");
  // The highest `until` each site pushed to each node (PushResult::site_until); an older
  // deltasync ignores it.
  c.Run("CREATE TABLE IF NOT EXISTS hub_site_pushed (node bigint NOT NULL, site bytea NOT NULL,"
        " pushed_until bigint NOT NULL, PRIMARY KEY (node, site))");
  // A node's link to its upstream hub (hub_upstream.cpp); an older deltasync ignores it.
  c.Run("CREATE TABLE IF NOT EXISTS hub_upstream_links (node bigint NOT NULL, upstream text NOT NULL, site bytea NOT NULL,"
        " hub_id text NOT NULL DEFAULT '', push_cursor bigint NOT NULL DEFAULT 0, pull_cursor bigint NOT NULL DEFAULT 0,"
        " PRIMARY KEY (node, upstream))");
  if (v != 0 && v < 4)  // what the sites of an older store saw is unknown: they hold the frontier at 0
    c.Run("INSERT INTO hub_site_contacts (node, site, pulled, last_seen_ms) SELECT w.node, s.site_id, 0, $1 FROM"
          " (SELECT DISTINCT node, writer AS ord FROM hub_rows UNION SELECT node, pusher FROM hub_cells) w"
          " JOIN hub_sites s ON s.ord = w.ord ON CONFLICT DO NOTHING",
          Params().Int(static_cast<int64_t>(WallClockMillis())));
  c.Run("INSERT INTO hub_settings VALUES ('schema_version', $1) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        Params().Int(kSchemaVersion));
  c.Run("INSERT INTO hub_settings VALUES ('hub_id', $1) ON CONFLICT DO NOTHING", Params().Text(SiteId::Random().ToString()));
  auto id = c.Run("SELECT value FROM hub_settings WHERE name = 'hub_id'");
  hub_id_ = SiteId::Parse(id->Text(0, 0));
  c.Run("COMMIT");
  LoadSites(c);
}

void PgHubStore::CacheSite(uint32_t ord, const SiteId& site) {  // under sites_mu_
  if (sites_.size() <= ord) sites_.resize(static_cast<size_t>(ord) + 1);
  sites_[ord] = site;  // an ordinal's site never changes
  site_ords_[site] = ord;
}

// Every site, once, when the store opens; afterwards a site is looked up when first needed.
void PgHubStore::LoadSites(Conn& c) {
  auto r = c.Run("SELECT ord, site_id FROM hub_sites ORDER BY ord");
  std::lock_guard<std::mutex> lock(sites_mu_);
  for (int k = 0; k < r->rows(); ++k) CacheSite(static_cast<uint32_t>(r->Int(k, 0)), SiteId::FromBytes(r->Bytes(k, 1)));
}

int64_t PgHubStore::KnownSite(Conn& c, const SiteId& site) {
  {
    std::lock_guard<std::mutex> lock(sites_mu_);
    auto it = site_ords_.find(site);
    if (it != site_ords_.end()) return it->second;
  }
  std::string bytes(site.View());
  auto r = c.Run("SELECT ord FROM hub_sites WHERE site_id = $1", Params().Bytes(bytes));
  if (r->rows() == 0) return -1;
  std::lock_guard<std::mutex> lock(sites_mu_);
  CacheSite(static_cast<uint32_t>(r->Int(0, 0)), site);
  return r->Int(0, 0);
}

SiteId PgHubStore::SiteOf(Conn& c, int64_t ord) {
  {
    std::lock_guard<std::mutex> lock(sites_mu_);
    if (ord >= 0 && static_cast<size_t>(ord) < sites_.size() && sites_[static_cast<size_t>(ord)])
      return *sites_[static_cast<size_t>(ord)];  // a copy: another thread may grow sites_
  }
  // Registered through another hub process since this one started: one indexed lookup.
  auto r = c.Run("SELECT site_id FROM hub_sites WHERE ord = $1", Params().Int(ord));
  // Not visible here yet: on Citus, a site's registration commits on each copy of hub_sites
  // in turn (two-phase commit), and a copy may lag behind the rows using it until Citus's
  // recovery finishes it. Retried, then a 503; the client comes back.
  if (r->rows() == 0) throw Retry("hub store: site ordinal " + std::to_string(ord) + " is not visible yet");
  SiteId site = SiteId::FromBytes(r->Bytes(0, 0));
  std::lock_guard<std::mutex> lock(sites_mu_);
  CacheSite(static_cast<uint32_t>(ord), site);
  return site;
}

// Sites are registered in their own committed statements, before the push transaction:
// an ordinal no push ends up using is harmless, and the cache never holds a rolled-back one.
// Those not cached yet take two statements together, however many there are.
PgHubStore::SiteOrds PgHubStore::RegisterSites(Conn& c, const std::vector<SiteId>& sites) {
  SiteOrds ords;
  std::string missing;  // a text[] literal of the ids not cached (UUID text: no quoting needed)
  {
    std::lock_guard<std::mutex> lock(sites_mu_);
    for (const SiteId& s : sites) {
      auto it = site_ords_.find(s);
      if (it != site_ords_.end()) ords[s] = it->second;
      else missing += (missing.empty() ? "{" : ",") + s.ToString();
    }
  }
  if (missing.empty()) return ords;
  missing += "}";
  c.Run("INSERT INTO hub_sites (ord, site_id) SELECT nextval('hub_site_ord'), s.id FROM"
        " (SELECT DISTINCT decode(replace(u, '-', ''), 'hex') AS id FROM unnest($1::text[]) AS u) AS s"
        " WHERE NOT EXISTS (SELECT 1 FROM hub_sites WHERE site_id = s.id) ON CONFLICT DO NOTHING",
        Params().Text(missing));
  auto r = c.Run("SELECT ord, site_id FROM hub_sites WHERE site_id IN"
                 " (SELECT decode(replace(u, '-', ''), 'hex') FROM unnest($1::text[]) AS u)",
                 Params().Text(missing));
  std::lock_guard<std::mutex> lock(sites_mu_);
  for (int k = 0; k < r->rows(); ++k) {
    SiteId s = SiteId::FromBytes(r->Bytes(k, 1));
    CacheSite(static_cast<uint32_t>(r->Int(k, 0)), s);
    ords[s] = static_cast<uint32_t>(r->Int(k, 0));
  }
  for (const SiteId& s : sites)
    if (!ords.count(s)) throw Error(ErrorCode::kInternal, "hub store: cannot register site " + s.ToString());
  return ords;
}

// A node's id: from this process's map, else one read; only a node seen for the first time
// is written (its name and its sequence row, in one transaction). Ids never change, so the map
// is never stale; a request for a node that exists writes nothing and takes no number.
std::optional<int64_t> PgHubStore::Node(const std::string& name, bool create) {
  {
    std::lock_guard<std::mutex> lock(nodes_mu_);
    auto it = node_ids_.find(name);
    if (it != node_ids_.end()) return it->second;
  }
  std::optional<int64_t> id = WithConn([&](Conn& c) -> std::optional<int64_t> {
    auto r = c.Run("SELECT id FROM hub_nodes WHERE name = $1", Params().Text(name));
    if (r->rows() > 0) return r->Int(0, 0);
    if (!create) return std::nullopt;
    c.Run("BEGIN");
    c.Run("SET LOCAL lock_timeout = '20s'");  // another hub creating the same node at once
    c.Run("INSERT INTO hub_nodes (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", Params().Text(name));
    auto made = c.Run("SELECT id FROM hub_nodes WHERE name = $1", Params().Text(name));
    int64_t node = made->Int(0, 0);
    c.Run("INSERT INTO hub_seqs (node, seq) VALUES ($1, 0) ON CONFLICT (node) DO NOTHING", Params().Int(node));
    c.Run("COMMIT");
    return node;
  });
  if (id) {
    std::lock_guard<std::mutex> lock(nodes_mu_);
    node_ids_[name] = *id;
  }
  return id;
}

// One push's reads and writes, batched per payload table: the rows, cells and graves of all
// its keys are read in one statement, and what the merge decided is written at the end of the
// table: what the node did not hold in plain inserts, what it held in upserts (a payload may
// name a key twice: the caches and the buffers keep the later decision). The statements take their keys and values
// as arrays, so each has one shape, prepared once per connection. Each key is looked up by
// the whole of its index (a LATERAL subquery per key, OFFSET 0 so that it stays one): with
// `key IN (...)` a store whose statistics lag behind its growth (a new hub) was read with an
// index scan on (node, tbl) and a filter on the key, a scan of the whole table per push.
class PgHubStore::Txn : public PushTxn {
 public:
  Txn(PgHubStore& store, Conn& c, int64_t node, const SiteOrds& ords, std::set<std::string>& created)
      : store_(store), c_(c), node_(node), ords_(ords), created_(created) {}
  int64_t TableId(const TableChanges& t) override {
    {  // a node's table ids and key names never change once committed
      std::lock_guard<std::mutex> lock(store_.tables_mu_);
      auto it = store_.table_ids_.find({node_, t.name});
      if (it != store_.table_ids_.end()) {
        CheckHeldKey(t, it->second.second);
        return it->second.first;
      }
    }
    std::string pk = nlohmann::json(t.pk).dump();
    auto r = c_.Run("SELECT id, pk FROM hub_tables WHERE node = $1 AND name = $2", Params().Int(node_).Text(t.name));
    if (r->rows() == 0) {  // a new table: the only write here (the node's lock is held)
      c_.Run("INSERT INTO hub_tables (node, name, pk) VALUES ($1, $2, $3) ON CONFLICT (node, name) DO NOTHING",
             Params().Int(node_).Text(t.name).Text(pk));
      r = c_.Run("SELECT id, pk FROM hub_tables WHERE node = $1 AND name = $2", Params().Int(node_).Text(t.name));
      created_.insert(t.name);  // not committed yet: not cached
    } else if (!created_.count(t.name)) {
      std::lock_guard<std::mutex> lock(store_.tables_mu_);
      store_.table_ids_[{node_, t.name}] = {r->Int(0, 0), r->Text(0, 1)};
    }
    CheckHeldKey(t, r->Text(0, 1));
    return r->Int(0, 0);
  }
  uint32_t SiteOrdinal(const SiteId& site) override {
    auto it = ords_.find(site);
    if (it == ords_.end()) throw Error(ErrorCode::kInternal, "hub store: site not registered before the push");
    return it->second;
  }
  SiteId SiteOf(int64_t ord) override { return store_.SiteOf(c_, ord); }

  void Prefetch(int64_t tbl, const std::vector<std::string>& keys) override {
    tbl_ = tbl;
    row_cl_.clear();
    cells_.clear();
    sizes_.clear();
    grave_cl_.clear();
    held_rows_.clear();
    held_cells_.clear();
    ArrayText arr;
    for (const std::string& k : keys) arr.Bytes(k);
    // A row: (key, cl, NULL...) when it has no cell, else one line per cell; a key the node
    // does not hold: (key, NULL, ..., grave cl or NULL).
    auto got = c_.RunPrepared(
        "ds_push_read",
        "SELECT k.key, r.cl, c.col, c.hlc, c.site, c.cl, c.len, g.cl FROM unnest($3::bytea[]) AS k(key)"
        " LEFT JOIN LATERAL (SELECT cl FROM hub_rows WHERE node = $1 AND tbl = $2 AND key = k.key OFFSET 0) r ON true"
        " LEFT JOIN LATERAL (SELECT col, hlc, site, cl, octet_length(value) AS len FROM hub_cells"
        "  WHERE node = $1 AND tbl = $2 AND key = k.key OFFSET 0) c ON r.cl IS NOT NULL"
        " LEFT JOIN LATERAL (SELECT cl FROM hub_graves WHERE node = $1 AND tbl = $2 AND key = k.key OFFSET 0) g"
        "  ON r.cl IS NULL",
        Params().Int(node_).Int(tbl).Text(arr.Done()));
    for (int i = 0; i < got->rows(); ++i) {
      std::string key = got->Bytes(i, 0);
      if (got->IsNull(i, 1)) {
        if (!got->IsNull(i, 7)) grave_cl_[key] = got->Int(i, 7);
        continue;
      }
      row_cl_[key] = got->Int(i, 1);
      held_rows_.insert(key);
      if (got->IsNull(i, 2)) continue;
      std::string col = got->Text(i, 2);
      held_cells_.insert({key, col});
      sizes_[key][col] = static_cast<size_t>(got->Int(i, 6));
      cells_[std::move(key)][std::move(col)] =
          Clock{got->Int(i, 5), static_cast<uint64_t>(got->Int(i, 3)), store_.SiteOf(c_, got->Int(i, 4))};
    }
  }
  int64_t RowCl(int64_t, const std::string& key) override {
    auto it = row_cl_.find(key);
    return it == row_cl_.end() ? 0 : it->second;
  }
  int64_t GraveCl(int64_t, const std::string& key) override {
    auto it = grave_cl_.find(key);
    return it == grave_cl_.end() ? 0 : it->second;
  }
  std::unordered_map<std::string, Clock> CellClocks(int64_t, const std::string& key,
                                                    std::unordered_map<std::string, size_t>* sizes) override {
    if (sizes) {
      auto s = sizes_.find(key);
      if (s != sizes_.end()) *sizes = s->second;
    }
    auto it = cells_.find(key);
    return it == cells_.end() ? std::unordered_map<std::string, Clock>{} : it->second;
  }
  void DropCells(int64_t, const std::string& key) override {
    cells_.erase(key);
    sizes_.erase(key);
    dropped_.push_back(key);
    for (auto it = put_cells_.begin(); it != put_cells_.end();)
      it = it->first.first == key ? put_cells_.erase(it) : std::next(it);
    // Flush deletes them before it writes: what is written again is new.
    held_cells_.erase(held_cells_.lower_bound({key, std::string()}),
                      held_cells_.lower_bound({key + '\0', std::string()}));
  }
  void PutCell(int64_t, const std::string& key, const std::string& col, const std::string& value, uint64_t hlc,
               uint32_t site, int64_t cl, int64_t seq, int64_t pusher) override {
    cells_[key][col] = Clock{cl, hlc, store_.SiteOf(c_, site)};
    sizes_[key][col] = value.size();
    put_cells_[{key, col}] = CellWrite{value, hlc, site, cl, seq, pusher};
  }
  void PutRow(int64_t, const std::string& key, int64_t cl, int64_t seq, int64_t writer) override {
    row_cl_[key] = cl;
    put_rows_[key] = RowWrite{cl, seq, writer};
  }
  void Flush() override {
    for (size_t start = 0; start < dropped_.size(); start += kChunk) {
      Params p;
      p.Int(node_).Int(tbl_);
      std::string in;
      for (size_t k = start; k < std::min(dropped_.size(), start + kChunk); ++k) {
        p.Bytes(dropped_[k]);
        in += (k == start ? "$" : ", $") + std::to_string(k - start + 3);
      }
      c_.Run("DELETE FROM hub_cells WHERE node = $1 AND tbl = $2 AND key IN (" + in + ")", p);
    }
    dropped_.clear();
    // What the node did not hold is inserted plainly (no other session writes the node while
    // its lock is held, so the read above is the truth); the rest is updated in place through
    // the upsert. A plain insert costs about half an upsert's.
    auto held_cell = [&](const std::pair<std::string, std::string>& k) { return held_cells_.count(k) > 0; };
    WriteCells(false, held_cell);
    WriteCells(true, held_cell);
    auto held_row = [&](const std::string& k) { return held_rows_.count(k) > 0; };
    WriteRows(false, held_row);
    WriteRows(true, held_row);
    put_cells_.clear();
    put_rows_.clear();
  }

 private:
  template <typename Held>
  void WriteCells(bool held, Held&& is_held) {
    ArrayText key, col, value, hlc, site, cl, seq, pusher;
    bool any = false;
    for (const auto& [k, w] : put_cells_) {
      if (is_held(k) != held) continue;
      any = true;
      key.Bytes(k.first);
      col.Text(k.second);
      value.Bytes(w.value);
      hlc.Int(static_cast<int64_t>(w.hlc));
      site.Int(w.site);
      cl.Int(w.cl);
      seq.Int(w.seq);
      pusher.Int(w.pusher);
    }
    if (!any) return;
    Params p;
    p.Int(node_).Int(tbl_).Text(key.Done()).Text(col.Done()).Text(value.Done()).Text(hlc.Done()).Text(site.Done())
        .Text(cl.Done()).Text(seq.Done()).Text(pusher.Done());
    if (!held)
      c_.RunPrepared("ds_push_new_cells",
                     "INSERT INTO hub_cells (node, tbl, key, col, value, hlc, site, cl, seq, pusher)"
                     " SELECT $1, $2, u.* FROM unnest($3::bytea[], $4::text[], $5::bytea[], $6::bigint[], $7::integer[],"
                     " $8::bigint[], $9::bigint[], $10::integer[]) AS u",
                     p);
    else
      c_.RunPrepared("ds_push_cells",
                     "INSERT INTO hub_cells (node, tbl, key, col, value, hlc, site, cl, seq, pusher)"
                     " SELECT $1, $2, u.* FROM unnest($3::bytea[], $4::text[], $5::bytea[], $6::bigint[], $7::integer[],"
                     " $8::bigint[], $9::bigint[], $10::integer[]) AS u"
                     " ON CONFLICT (node, tbl, key, col) DO UPDATE SET value = excluded.value, hlc = excluded.hlc,"
                     " site = excluded.site, cl = excluded.cl, seq = excluded.seq, pusher = excluded.pusher",
                     p);
  }
  template <typename Held>
  void WriteRows(bool held, Held&& is_held) {
    ArrayText key, cl, seq, writer;
    bool any = false;
    for (const auto& [k, w] : put_rows_) {
      if (is_held(k) != held) continue;
      any = true;
      key.Bytes(k);
      cl.Int(w.cl);
      seq.Int(w.seq);
      writer.Int(w.writer);
    }
    if (!any) return;
    Params p;
    p.Int(node_).Int(tbl_).Text(key.Done()).Text(cl.Done()).Text(seq.Done()).Text(writer.Done());
    if (!held)
      c_.RunPrepared("ds_push_new_rows",
                     "INSERT INTO hub_rows (node, tbl, key, cl, seq, writer)"
                     " SELECT $1, $2, u.* FROM unnest($3::bytea[], $4::bigint[], $5::bigint[], $6::integer[]) AS u",
                     p);
    else
      c_.RunPrepared("ds_push_rows",
                     "INSERT INTO hub_rows (node, tbl, key, cl, seq, writer)"
                     " SELECT $1, $2, u.* FROM unnest($3::bytea[], $4::bigint[], $5::bigint[], $6::integer[]) AS u"
                     " ON CONFLICT (node, tbl, key) DO UPDATE SET cl = excluded.cl, seq = excluded.seq, writer = excluded.writer",
                     p);
  }

  static constexpr size_t kChunk = 500;
  struct CellWrite {
    std::string value;
    uint64_t hlc;
    uint32_t site;
    int64_t cl, seq, pusher;
  };
  struct RowWrite {
    int64_t cl, seq, writer;
  };

  PgHubStore& store_;
  Conn& c_;
  int64_t node_;
  const SiteOrds& ords_;
  std::set<std::string>& created_;  // tables this transaction created (cached only once committed: never)
  int64_t tbl_ = 0;
  std::unordered_map<std::string, int64_t> row_cl_;
  std::unordered_map<std::string, int64_t> grave_cl_;
  std::unordered_map<std::string, std::unordered_map<std::string, Clock>> cells_;
  std::unordered_map<std::string, std::unordered_map<std::string, size_t>> sizes_;  // stored value bytes
  std::vector<std::string> dropped_;
  std::set<std::string> held_rows_;                            // (key) and ...
  std::set<std::pair<std::string, std::string>> held_cells_;  // ... (key, col) the node held before this table's writes
  std::map<std::pair<std::string, std::string>, CellWrite> put_cells_;
  std::map<std::string, RowWrite> put_rows_;
};

// Opens the push's transaction holding the node's sequence row, and returns the sequence.
// NOWAIT: the database never queues this lock (on Citus the wait would happen in a worker's
// session, where this session's lock_timeout does not reach); the hub waits between
// attempts instead, 2 ms doubling to 50 ms, for at most 20 s, then answers 503.
int64_t PgHubStore::LockNode(Conn& c, int64_t node) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int pause_ms = 2;
  for (;;) {
    c.Run("BEGIN ISOLATION LEVEL READ COMMITTED");
    c.Run("SET LOCAL lock_timeout = '20s'");  // any other wait is bounded too (a 503, not a hang)
    try {
      auto head = c.Run("SELECT seq FROM hub_seqs WHERE node = $1 FOR UPDATE NOWAIT", Params().Int(node));
      if (head->rows() > 0) return head->Int(0, 0);
    } catch (const Busy&) {
      c.Run("ROLLBACK");
      if (std::chrono::steady_clock::now() + std::chrono::milliseconds(pause_ms) > deadline) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
      pause_ms = std::min(pause_ms * 2, 50);
      continue;
    }
    // A node without its sequence row (never written by Node(); a store edited by hand):
    // given one, then locked as any other.
    c.Run("INSERT INTO hub_seqs (node, seq) VALUES ($1, 0) ON CONFLICT (node) DO NOTHING", Params().Int(node));
    c.Run("COMMIT");
  }
}

// Records the push's `until` as its site's highest for the node, in the push's transaction;
// answers the highest so far (PushResult::site_until).
int64_t PgHubStore::NotePushed(Conn& c, int64_t node, const Payload& p) {
  return c.RunPrepared("ds_push_noted",
                       "INSERT INTO hub_site_pushed (node, site, pushed_until) VALUES ($1, $2, $3) ON CONFLICT (node, site)"
                       " DO UPDATE SET pushed_until = greatest(hub_site_pushed.pushed_until, excluded.pushed_until)"
                       " RETURNING pushed_until",
                       Params().Int(node).Bytes(std::string(p.site.View())).Int(p.until))
      ->Int(0, 0);
}

// One push waiting for its group's commit.
struct PgHubStore::PendingPush {
  const Payload* payload;
  size_t max_row_bytes;
  PushResult result;
  std::exception_ptr error;
  bool done = false;
};

// Group commit, as on the SQLite store: a push queues itself on its node's lane; if no group
// of that node is committing here, it takes the whole queue (its own push and any that
// arrived meanwhile) and commits it; otherwise it waits, and the next free push leads the
// next group. Each is answered after the commit that holds it. Decoding and checks happened
// before, outside any lock; pushes to other nodes have lanes of their own.
PushResult PgHubStore::Push(int64_t node, const Payload& p, uint64_t max_clock_drift_ms, size_t max_row_bytes) {
  CheckPush(p, max_clock_drift_ms);
  NodeLane& lane = Lane(node);
  PendingPush me{&p, max_row_bytes, {}, nullptr, false};
  std::unique_lock<std::mutex> queue(lane.queue_mu);
  lane.queue.push_back(&me);
  while (!me.done) {
    if (lane.committing) {
      lane.queue_cv.wait(queue);
      continue;
    }
    lane.committing = true;
    std::vector<PendingPush*> group;
    group.swap(lane.queue);
    queue.unlock();
    CommitGroup(node, group);  // never throws: every push of the group gets its result or error
    queue.lock();
    for (PendingPush* push : group) push->done = true;  // under the queue's lock: followers read it
    lane.committing = false;
    lane.queue_cv.notify_all();
  }
  if (me.error) std::rethrow_exception(me.error);
  return me.result;
}

void PgHubStore::CommitGroup(int64_t node, const std::vector<PendingPush*>& group) {
  try {
    // One connection per process writes a node: pushes queued on a busy node do not hold the
    // whole pool, so other nodes and pulls are served meanwhile.
    std::lock_guard<std::mutex> node_turn(NodeMutex(node));
    std::vector<SiteId> sites;
    for (PendingPush* push : group) {
      std::vector<SiteId> more = SitesToRegister(*push->payload);
      sites.insert(sites.end(), more.begin(), more.end());
    }
    WithConn([&](Conn& c) {  // a retried attempt starts the whole group again
      SiteOrds ords = RegisterSites(c, sites);
      // The node's row lock orders pushes to one node by commit (see the top of this file).
      const int64_t head = LockNode(c, node);
      std::set<std::string> created;
      int64_t seq = head;
      const bool alone = group.size() == 1;
      for (PendingPush* push : group) {
        push->error = nullptr;
        if (alone) {  // its failure fails the transaction, as without grouping
          Txn txn(*this, c, node, ords, created);
          push->result = MergePush(txn, *push->payload, seq, push->max_row_bytes);
          push->result.site_until = NotePushed(c, node, *push->payload);
          seq = push->result.seq;
          continue;
        }
        c.Run("SAVEPOINT push");
        try {
          Txn txn(*this, c, node, ords, created);
          push->result = MergePush(txn, *push->payload, seq, push->max_row_bytes);
          push->result.site_until = NotePushed(c, node, *push->payload);
          c.Run("RELEASE push");
          seq = push->result.seq;
        } catch (const StoreUnavailable&) {
          throw;  // the connection or the node's lock: the whole group fails or is retried
        } catch (const Retry&) {
          throw;
        } catch (...) {  // this push is refused; the group goes on without it
          push->error = std::current_exception();
          c.Run("ROLLBACK TO push");
          c.Run("RELEASE push");
        }
      }
      if (seq != head) c.Run("UPDATE hub_seqs SET seq = $1 WHERE node = $2", Params().Int(seq).Int(node));
      // Tests only: numbers taken, not committed yet (what the node's lock must keep from pullers).
      if (push_commit_delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(push_commit_delay_ms_));
      c.Run("COMMIT");  // synchronous_commit as the server has it (on by default): durable when it returns
      return 0;
    });
  } catch (...) {
    for (PendingPush* push : group) push->error = std::current_exception();
  }
}

class PgHubStore::Snapshot : public PullSource {
 public:
  Snapshot(PgHubStore& store, Conn& c, int64_t node) : store_(store), c_(c), node_(node) {}
  std::vector<StoredRow> Rows(int64_t since, size_t limit) override {
    auto r = c_.Run("SELECT tbl, key, cl, seq, writer FROM hub_rows WHERE node = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                    Params().Int(node_).Int(since).Int(static_cast<int64_t>(limit)));
    std::vector<StoredRow> out;
    for (int k = 0; k < r->rows(); ++k)
      out.push_back(StoredRow{r->Int(k, 0), r->Bytes(k, 1), r->Int(k, 2), r->Int(k, 3), r->Int(k, 4)});
    // The cells of all these rows in one statement.
    auto cells = c_.Run("SELECT c.tbl, c.key, c.col, c.value, c.hlc, c.site, c.cl, c.pusher FROM hub_cells c JOIN"
                        " (SELECT tbl, key FROM hub_rows WHERE node = $1 AND seq > $2 ORDER BY seq LIMIT $3) AS r"
                        " ON c.tbl = r.tbl AND c.key = r.key WHERE c.node = $1",
                        Params().Int(node_).Int(since).Int(static_cast<int64_t>(limit)));
    for (int k = 0; k < cells->rows(); ++k)
      cells_[{cells->Int(k, 0), cells->Bytes(k, 1)}].push_back(
          StoredCell{cells->Text(k, 2), cells->Bytes(k, 3), static_cast<uint64_t>(cells->Int(k, 4)), cells->Int(k, 5),
                     cells->Int(k, 6), cells->Int(k, 7)});
    return out;
  }
  void Table(int64_t tbl, std::string& name, std::vector<std::string>& pk) override {
    auto r = c_.Run("SELECT name, pk FROM hub_tables WHERE node = $1 AND id = $2", Params().Int(node_).Int(tbl));
    if (r->rows() == 0) throw Error(ErrorCode::kInternal, "hub store: row of an unknown table");
    name = r->Text(0, 0);
    pk = nlohmann::json::parse(r->Text(0, 1)).get<std::vector<std::string>>();
  }
  std::vector<StoredCell> Cells(int64_t tbl, const std::string& key) override {
    auto it = cells_.find({tbl, key});
    return it == cells_.end() ? std::vector<StoredCell>{} : it->second;
  }
  SiteId SiteOf(int64_t ord) override { return store_.SiteOf(c_, ord); }
  int64_t KnownSite(const SiteId& site) override { return store_.KnownSite(c_, site); }

 private:
  PgHubStore& store_;
  Conn& c_;
  int64_t node_;
  std::map<std::pair<int64_t, std::string>, std::vector<StoredCell>> cells_;
};

PullResult PgHubStore::Pull(int64_t node, int64_t since, size_t max_rows, const std::vector<std::string>& tables,
                            const std::optional<SiteId>& requester, size_t max_bytes) {
  return WithConn([&](Conn& c) {
    c.Run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");  // one snapshot for the page
    Snapshot snap(*this, c, node);
    PullResult out = BuildPage(snap, hub_id_, since, max_rows, tables, requester, max_bytes);
    auto head = c.Run("SELECT seq FROM hub_seqs WHERE node = $1", Params().Int(node));
    out.head = head->rows() ? head->Int(0, 0) : 0;
    c.Run("COMMIT");
    return out;
  });
}

nlohmann::json PgHubStore::Status(int64_t node, const std::string& name) {
  return WithConn([&](Conn& c) {
    nlohmann::json tables = nlohmann::json::array();
    auto r = c.Run("SELECT t.name, (SELECT count(*) FROM hub_rows r WHERE r.node = t.node AND r.tbl = t.id AND r.cl % 2 = 1),"
                   " (SELECT count(*) FROM hub_rows r WHERE r.node = t.node AND r.tbl = t.id AND r.cl % 2 = 0),"
                   " (SELECT count(*) FROM hub_cells c WHERE c.node = t.node AND c.tbl = t.id)"
                   " FROM hub_tables t WHERE t.node = $1 ORDER BY t.name",
                   Params().Int(node));
    for (int k = 0; k < r->rows(); ++k)
      tables.push_back({{"table", r->Text(k, 0)}, {"rows", r->Int(k, 1)}, {"deleted", r->Int(k, 2)}, {"cells", r->Int(k, 3)}});
    auto s = c.Run("SELECT seq FROM hub_seqs WHERE node = $1", Params().Int(node));
    int64_t n = s->rows() ? s->Int(0, 0) : 0;
    return nlohmann::json{{"node", name}, {"seq", n}, {"hub_id", hub_id_.ToString()}, {"tables", tables}};
  });
}

// Three plain statements joined here, not one with a subquery per node: on Citus, hub_nodes
// is a reference table, and a correlated subquery beside one is refused; each statement
// below is a reference-table read or a GROUP BY on the distribution column (run per shard).
std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> PgHubStore::NodeCounts() {
  return WithConn([&](Conn& c) {
    std::map<int64_t, int64_t> rows, seqs;
    auto counted = c.Run("SELECT node, count(*) FROM hub_rows GROUP BY node");
    for (int k = 0; k < counted->rows(); ++k) rows[counted->Int(k, 0)] = counted->Int(k, 1);
    auto heads = c.Run("SELECT node, seq FROM hub_seqs");
    for (int k = 0; k < heads->rows(); ++k) seqs[heads->Int(k, 0)] = heads->Int(k, 1);
    std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> out;
    auto names = c.Run("SELECT id, name FROM hub_nodes ORDER BY name");
    for (int k = 0; k < names->rows(); ++k) {
      int64_t id = names->Int(k, 0);
      out.push_back({names->Text(k, 1), {rows.count(id) ? rows[id] : 0, seqs.count(id) ? seqs[id] : 0}});
    }
    return out;
  });
}

NodeUsage PgHubStore::Usage(int64_t node) {
  return WithConn([&](Conn& c) {
    NodeUsage u;
    auto size = c.Run("SELECT (SELECT count(*) FROM hub_rows WHERE node = $1),"
                      " (SELECT coalesce(sum(length(key)), 0) FROM hub_rows WHERE node = $1)"
                      " + (SELECT coalesce(sum(length(value)), 0) FROM hub_cells WHERE node = $1)",
                      Params().Int(node));
    u.rows = static_cast<uint64_t>(size->Int(0, 0));
    u.bytes = static_cast<uint64_t>(size->Int(0, 1));
    // Ordinals from the node's shards, ids from the site map (no join with a reference table).
    auto ords = c.Run("SELECT site FROM hub_cells WHERE node = $1 UNION SELECT writer FROM hub_rows WHERE node = $1",
                      Params().Int(node));
    for (int k = 0; k < ords->rows(); ++k) u.sites.push_back(SiteOf(c, ords->Int(k, 0)));
    return u;
  });
}

// The frontier and compaction (docs/operations.md). Several hub processes share the
// contacts, so each contact is written through: a site's first one durably, later ones with
// synchronous_commit off (a value lost to a crash is an older, lower one: it holds
// compaction back, never makes it wrong), and the answer says whether it is retired.
bool PgHubStore::Contact(int64_t node, const SiteId& site, int64_t pulled, int64_t now_ms) {
  bool known;
  {
    std::lock_guard<std::mutex> lock(contacts_mu_);
    known = known_contacts_.count({node, site}) > 0;
  }
  bool retired = WithConn([&](Conn& c) {
    c.Run("BEGIN");
    if (known) c.Run("SET LOCAL synchronous_commit = off");
    auto r = c.Run("INSERT INTO hub_site_contacts (node, site, pulled, last_seen_ms) VALUES ($1, $2, greatest($3, 0), $4)"
                   " ON CONFLICT (node, site) DO UPDATE SET pulled = greatest(hub_site_contacts.pulled, excluded.pulled),"
                   " last_seen_ms = greatest(hub_site_contacts.last_seen_ms, excluded.last_seen_ms) RETURNING retired",
                   Params().Int(node).Bytes(std::string(site.View())).Int(pulled).Int(now_ms));
    c.Run("COMMIT");
    return r->Text(0, 0) == "t";
  });
  std::lock_guard<std::mutex> lock(contacts_mu_);
  known_contacts_.insert({node, site});
  return retired;
}

// The smallest cursor of the node's active sites; the node's sequence when it has none.
static int64_t PgFrontier(PgHubStore::Conn& c, int64_t node);

int64_t PgHubStore::Frontier(int64_t node) {
  return WithConn([&](Conn& c) { return PgFrontier(c, node); });
}

CompactResult PgHubStore::Compact(int64_t node, int64_t retention_ms, int64_t now_ms, size_t batch) {
  CompactResult out;
  WithConn([&](Conn& c) {
    c.Run("BEGIN");
    if (retention_ms > 0)
      out.retired = static_cast<uint64_t>(
          c.Run("UPDATE hub_site_contacts SET retired = true WHERE node = $1 AND NOT retired AND last_seen_ms < $2"
                " RETURNING 1",
                Params().Int(node).Int(now_ms - retention_ms))
              ->rows());
    out.frontier = PgFrontier(c, node);
    out.sites = static_cast<uint64_t>(
        c.Run("SELECT count(*) FROM hub_site_contacts WHERE node = $1 AND NOT retired", Params().Int(node))->Int(0, 0));
    c.Run("COMMIT");
    return 0;
  });
  // Each batch under the node's lock, as a push: tombstones move to hub_graves; a row a push
  // changed meanwhile has a sequence above the frontier and is left alone.
  int64_t after = 0;
  for (;;) {
    std::unique_lock<std::mutex> node_turn(NodeMutex(node));
    auto [n, last] = WithConn([&](Conn& c) {
      LockNode(c, node);
      auto r = c.Run(
          "WITH picked AS (SELECT tbl, key FROM hub_rows WHERE node = $1 AND seq > $2 AND seq <= $3 AND cl % 2 = 0"
          " ORDER BY seq LIMIT $4),"
          " gone AS (DELETE FROM hub_rows h USING picked p WHERE h.node = $1 AND h.tbl = p.tbl AND h.key = p.key"
          " RETURNING h.tbl, h.key, h.cl, h.seq),"
          " buried AS (INSERT INTO hub_graves (node, tbl, key, cl) SELECT $1, tbl, key, cl FROM gone"
          " ON CONFLICT (node, tbl, key) DO UPDATE SET cl = excluded.cl RETURNING 1)"
          " SELECT (SELECT count(*) FROM buried), coalesce((SELECT max(seq) FROM gone), $2)",
          Params().Int(node).Int(after).Int(out.frontier).Int(static_cast<int64_t>(batch)));
      c.Run("COMMIT");
      return std::make_pair(static_cast<size_t>(r->Int(0, 0)), r->Int(0, 1));
    });
    out.dropped += n;
    after = last;
    if (n < batch) break;
  }
  return out;
}

bool PgHubStore::Readmit(int64_t node, const SiteId& site) {
  return WithConn([&](Conn& c) {
    return c.Run("UPDATE hub_site_contacts SET retired = false, last_seen_ms = $3 WHERE node = $1 AND site = $2"
                 " AND retired RETURNING 1",
                 Params().Int(node).Bytes(std::string(site.View())).Int(static_cast<int64_t>(WallClockMillis())))
               ->rows() > 0;
  });
}

int64_t PgHubStore::PushedUntil(int64_t node, const SiteId& site) {
  return WithConn([&](Conn& c) {
    auto r = c.Run("SELECT pushed_until FROM hub_site_pushed WHERE node = $1 AND site = $2",
                   Params().Int(node).Bytes(std::string(site.View())));
    return r->rows() ? r->Int(0, 0) : int64_t{0};
  });
}

void PgHubStore::ForgetPushed(int64_t node, const SiteId& site) {
  WithConn([&](Conn& c) {
    c.Run("DELETE FROM hub_site_pushed WHERE node = $1 AND site = $2", Params().Int(node).Bytes(std::string(site.View())));
    return 0;
  });
}

void PgHubStore::NewIdentity() {
  SiteId id = SiteId::Random();
  WithConn([&](Conn& c) {
    c.Run("BEGIN");
    c.Run("UPDATE hub_settings SET value = $1 WHERE name = 'hub_id'", Params().Text(id.ToString()));
    c.Run("UPDATE hub_site_contacts SET pulled = 0");
    c.Run("DELETE FROM hub_site_pushed");
    // Upstream links start over with new site ids: the upstream sends them everything again.
    c.Run("DELETE FROM hub_upstream_links");
    c.Run("COMMIT");
    return 0;
  });
  hub_id_ = id;
}

static int64_t PgFrontier(PgHubStore::Conn& c, int64_t node) {
  auto r = c.Run("SELECT coalesce((SELECT min(pulled) FROM hub_site_contacts WHERE node = $1 AND NOT retired),"
                 " (SELECT seq FROM hub_seqs WHERE node = $1), 0)",
                 Params().Int(node));
  return r->Int(0, 0);
}

PgHubStore::NodeLane& PgHubStore::Lane(int64_t node) {
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<NodeLane>& lane = lanes_[node];
  if (!lane) lane = std::make_unique<NodeLane>();
  return *lane;
}

LinkRecord PgHubStore::LoadLink(int64_t node, const std::string& upstream) {
  return WithConn([&](Conn& c) {
    const std::string kGet =
        "SELECT site, hub_id, push_cursor, pull_cursor FROM hub_upstream_links WHERE node = $1 AND upstream = $2";
    auto r = c.Run(kGet, Params().Int(node).Text(upstream));
    if (r->rows() == 0) {  // the first time: created once, whichever process comes first
      c.Run("INSERT INTO hub_upstream_links (node, upstream, site) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            Params().Int(node).Text(upstream).Bytes(std::string(SiteId::Random().View())));
      r = c.Run(kGet, Params().Int(node).Text(upstream));
    }
    if (r->rows() != 1) throw Error(ErrorCode::kInternal, "hub store: the upstream link of a node vanished");
    return LinkRecord{SiteId::FromBytes(r->Bytes(0, 0)), r->Text(0, 1), r->Int(0, 2), r->Int(0, 3)};
  });
}

void PgHubStore::SaveLink(int64_t node, const std::string& upstream, const LinkUpdate& update) {
  WithConn([&](Conn& c) {
    Params p;
    p.Int(node).Text(upstream);
    std::string sets;
    auto set = [&](const char* column, const std::optional<std::string>& text, const std::optional<int64_t>& number) {
      if (!text && !number) return;
      if (text) p.Text(*text);
      else p.Int(*number);
      sets += std::string(sets.empty() ? "" : ", ") + column + " = $" + std::to_string(p.size());
    };
    set("hub_id", update.hub_id, std::nullopt);
    set("push_cursor", std::nullopt, update.push_cursor);
    set("pull_cursor", std::nullopt, update.pull_cursor);
    if (!sets.empty()) c.Run("UPDATE hub_upstream_links SET " + sets + " WHERE node = $1 AND upstream = $2", p);
    return 0;
  });
}

namespace {
// A node's link lease on PostgreSQL: a session advisory lock (key: a constant and the node id)
// held on a connection of its own, so the server releases it when this process or its
// session ends; checked with a round trip at most once a second.
class PgLinkLease : public LinkLease {
 public:
  explicit PgLinkLease(std::unique_ptr<PgHubStore::Conn> c) : c_(std::move(c)) {}
  bool Held() override {
    if (!c_ || !c_->Ok()) return false;
    auto now = std::chrono::steady_clock::now();
    if (now - checked_ < std::chrono::seconds(1)) return true;
    try {
      c_->Run("SELECT 1");
    } catch (const std::exception&) {
      c_.reset();
      return false;
    }
    checked_ = now;
    return true;
  }

 private:
  std::unique_ptr<PgHubStore::Conn> c_;
  std::chrono::steady_clock::time_point checked_ = std::chrono::steady_clock::now();
};
constexpr int32_t kLinkLockClass = 0x64737570;  // "dsup"
}  // namespace

std::unique_ptr<LinkLease> PgHubStore::LeaseLink(int64_t node) {
  // A process standing by asks again on the same connection (no new session a second).
  std::unique_ptr<Conn> c;
  {
    std::lock_guard<std::mutex> lock(lease_mu_);
    auto it = standby_.find(node);
    if (it != standby_.end()) {
      c = std::move(it->second);
      standby_.erase(it);
    }
  }
  if (!c || !c->Ok()) c = std::make_unique<Conn>(conninfo_);
  if (!c->Ok()) throw StoreUnavailable("hub store: " + c->ErrorText());
  auto r = c->Run("SELECT pg_try_advisory_lock($1::int, ($2::bigint % 2147483647)::int)",
                  Params().Int(kLinkLockClass).Int(node));
  if (r->Text(0, 0) == "t") return std::make_unique<PgLinkLease>(std::move(c));
  std::lock_guard<std::mutex> lock(lease_mu_);
  standby_[node] = std::move(c);
  return nullptr;
}

std::unique_ptr<HubStore> OpenStore(const std::string& db) {
  if (db.rfind("postgresql://", 0) == 0 || db.rfind("postgres://", 0) == 0) return std::make_unique<PgHubStore>(db);
  return std::make_unique<SqliteHubStore>(db);
}

// GET /nodes/<node>/checksum on this store: a chunk of live rows and their cells per
// statement pair, both read in one REPEATABLE READ transaction, so pushes go on meanwhile.
nlohmann::json PgHubStore::Checksum(int64_t node, const std::vector<std::string>& tables) {
  class Source : public ChecksumSource {
   public:
    Source(PgHubStore& s, int64_t node) : s_(s), node_(node) {}
    std::vector<ChecksumTable> Tables() override {
      return s_.WithConn([&](Conn& c) {
        std::vector<ChecksumTable> out;
        auto r = c.Run("SELECT id, name FROM hub_tables WHERE node = $1 ORDER BY name", Params().Int(node_));
        for (int k = 0; k < r->rows(); ++k) out.push_back(ChecksumTable{r->Int(k, 0), r->Text(k, 1)});
        return out;
      });
    }
    std::vector<ChecksumRow> LiveRows(int64_t tbl, const std::string* after, size_t limit) override {
      return s_.WithConn([&](Conn& c) {
        std::vector<ChecksumRow> out;
        c.Run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        Params p;
        p.Int(node_).Int(tbl).Int(static_cast<int64_t>(limit));
        if (after) p.Bytes(*after);
        auto rows = c.Run(std::string("SELECT key, cl FROM hub_rows WHERE node = $1 AND tbl = $2 AND cl % 2 = 1") +
                              (after ? " AND key > $4" : "") + " ORDER BY key LIMIT $3",
                          p);
        for (int k = 0; k < rows->rows(); ++k) out.push_back(ChecksumRow{rows->Bytes(k, 0), rows->Int(k, 1), {}});
        if (!out.empty()) {
          // The chunk's cells by key range, in key order: merged with the rows as they come.
          Params q;
          q.Int(node_).Int(tbl).Bytes(out.front().key).Bytes(out.back().key);
          auto cells = c.Run("SELECT key, col, value, cl FROM hub_cells WHERE node = $1 AND tbl = $2"
                             " AND key >= $3 AND key <= $4 ORDER BY key",
                             q);
          size_t at = 0;
          for (int k = 0; k < cells->rows(); ++k) {
            std::string key = cells->Bytes(k, 0);
            while (at < out.size() && out[at].key < key) ++at;
            if (at == out.size()) break;
            if (out[at].key != key) continue;  // a deleted row's: none are kept, but never counted
            StoredCell cell;
            cell.col = cells->Text(k, 1);
            cell.value = cells->Bytes(k, 2);
            cell.cl = cells->Int(k, 3);
            out[at].cells.push_back(std::move(cell));
          }
        }
        c.Run("COMMIT");
        return out;
      });
    }

   private:
    PgHubStore& s_;
    int64_t node_;
  } src(*this, node);
  return NodeChecksum(src, tables);
}

}  // namespace deltasync::hub
