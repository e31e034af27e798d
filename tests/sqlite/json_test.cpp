// The json policy on SQLite (SPEC section 3, rule 8; docs/policies.md): declaration and its
// refusals, the canonical text every site stores, concurrent edits of different members
// that both survive, removals, deletes and re-inserts, and the convergence property with a
// json column in the schema (random writes through JSON1, random exchanges, identical rows).
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::Site;

namespace {

constexpr const char* kDocSchema =
    "CREATE TABLE doc(id INTEGER PRIMARY KEY, body TEXT NOT NULL DEFAULT '{}', note TEXT);"
    "SELECT deltasync_enable('doc', '{\"columns\": {\"body\": \"json\"}}');";

std::string ErrorOf(Site& s, const std::string& sql) {
  try {
    s.Exec(sql);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

class Docs : public ::testing::Test {
 protected:
  void SetUp() override {
    for (Site* s : All()) s->Exec(kDocSchema);
  }
  std::vector<Site*> All() { return {&A, &B, &C}; }
  static void Send(Site& from, Site& to) { to.Apply(from.Changes(0)); }
  void SyncAll() {
    for (int round = 0; round < 2; ++round)
      for (Site* x : All())
        for (Site* y : All())
          if (x != y) Send(*x, *y);
  }
  static std::string Body(Site& s, int id = 1) {
    return s.Text("SELECT body FROM doc WHERE id = " + std::to_string(id));
  }
  void ExpectAllEqual() {
    auto ref = A.Rows("SELECT * FROM doc ORDER BY id");
    EXPECT_EQ(B.Rows("SELECT * FROM doc ORDER BY id"), ref);
    EXPECT_EQ(C.Rows("SELECT * FROM doc ORDER BY id"), ref);
  }
  Site A, B, C;
};

TEST_F(Docs, ALocalWriteIsStoredAsCanonicalText) {
  A.Exec("INSERT INTO doc(id, body) VALUES (1, ' { \"b\" : 2 , \"a\" : [ 1 , 2 ] , \"n\": 1.50e1 } ')");
  EXPECT_EQ(Body(A), "{\"a\":[1,2],\"b\":2,\"n\":15.0}");
  A.Exec("UPDATE doc SET body = json_set(body, '$.c', json('{\"z\": 1, \"y\": 2}')) WHERE id = 1");
  EXPECT_EQ(Body(A), "{\"a\":[1,2],\"b\":2,\"c\":{\"y\":2,\"z\":1},\"n\":15.0}");
  A.Exec("INSERT INTO doc(id) VALUES (2)");
  EXPECT_EQ(Body(A, 2), "{}");
  SyncAll();
  ExpectAllEqual();
}

TEST_F(Docs, AValueThatIsNotAnObjectIsRefusedAndChangesNothing) {
  A.Exec("INSERT INTO doc(id, body) VALUES (1, '{\"a\":1}')");
  int64_t ver = A.Int("SELECT deltasync_db_version()");
  for (const char* bad : {"'[1,2]'", "'5'", "'\"s\"'", "'not json'", "'{\"a\":'", "x'7b7d'", "3", "'{\"a\":\"\\u0000\"}'"}) {
    std::string e = ErrorOf(A, std::string("UPDATE doc SET body = ") + bad + " WHERE id = 1");
    EXPECT_NE(e.find("deltasync: json column \"body\" of table \"doc\" holds JSON objects only"), std::string::npos)
        << bad << ": " << e;
    e = ErrorOf(A, std::string("INSERT INTO doc(id, body) VALUES (9, ") + bad + ")");
    EXPECT_NE(e.find("holds JSON objects only"), std::string::npos) << bad << ": " << e;
  }
  EXPECT_EQ(Body(A), "{\"a\":1}");
  EXPECT_EQ(A.Int("SELECT count(*) FROM doc"), 1);
  EXPECT_EQ(A.Int("SELECT deltasync_db_version()"), ver);
  // NULL too, where the column allows it.
  A.Exec("CREATE TABLE n(id INTEGER PRIMARY KEY, body TEXT);"
         "SELECT deltasync_enable('n', '{\"columns\": {\"body\": \"json\"}}')");
  EXPECT_NE(ErrorOf(A, "INSERT INTO n VALUES (1, NULL)").find("holds JSON objects only; the write gives it NULL"),
            std::string::npos);
  EXPECT_EQ(A.Int("SELECT count(*) FROM n"), 0);
}

TEST_F(Docs, DeclarationsThatCannotWorkAreRefused) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER, j TEXT, k JSON, v VARCHAR(20), u)");
  EXPECT_NE(ErrorOf(s, "SELECT deltasync_enable('t', '{\"columns\": {\"n\": \"json\"}}')").find("must hold JSON text"),
            std::string::npos);
  EXPECT_NE(ErrorOf(s, "SELECT deltasync_enable('t', '{\"columns\": {\"id\": \"json\"}}')").find("primary key"),
            std::string::npos);
  EXPECT_NE(ErrorOf(s, "SELECT deltasync_enable('t', '{\"columns\": {\"j\": \"jsn\"}}')").find("known: lww, counter, json"),
            std::string::npos);
  s.Exec("SELECT deltasync_enable('t', '{\"columns\": {\"j\": \"json\", \"k\": \"json\", \"v\": \"json\", \"u\": \"json\"}}')");
  auto status = s.Text("SELECT deltasync_status()");
  EXPECT_NE(status.find("\"j\":{\"policy\":\"json\"}"), std::string::npos) << status;
  // Enabling again alike is fine; another policy once rows are tracked is refused.
  s.Exec("SELECT deltasync_enable('t', '{\"columns\": {\"j\": \"json\"}}')");
  s.Exec("INSERT INTO t(id, j, k, v, u) VALUES (1, '{}', '{}', '{}', '{}')");
  EXPECT_NE(ErrorOf(s, "SELECT deltasync_enable('t', '{\"columns\": {\"j\": \"lww\"}}')").find("merges as json"),
            std::string::npos);
}

TEST_F(Docs, ConcurrentEditsOfDifferentMembersBothSurvive) {
  A.Exec("INSERT INTO doc(id, body, note) VALUES (1, '{\"name\":\"lamp\",\"attrs\":{\"color\":\"red\",\"watts\":40},\"tags\":[\"a\"]}', 'n')");
  SyncAll();
  // Offline: A recolours and removes the tags, B changes the watts and adds a member, C the note.
  A.Exec("UPDATE doc SET body = json_remove(json_set(body, '$.attrs.color', 'blue'), '$.tags') WHERE id = 1");
  B.Exec("UPDATE doc SET body = json_set(body, '$.attrs.watts', 60, '$.stock', 3) WHERE id = 1");
  C.Exec("UPDATE doc SET note = 'c' WHERE id = 1");
  Send(B, C);
  Send(C, A);
  Send(A, B);
  SyncAll();
  for (Site* s : All()) EXPECT_EQ(Body(*s), "{\"attrs\":{\"color\":\"blue\",\"watts\":60},\"name\":\"lamp\",\"stock\":3}");
  ExpectAllEqual();
  // The same member on two sites: the later write wins everywhere (later by more than the
  // clocks' millisecond: in one millisecond the tie breaks by site id).
  A.Exec("UPDATE doc SET body = json_set(body, '$.name', 'first') WHERE id = 1");
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  B.Exec("UPDATE doc SET body = json_set(body, '$.name', 'second') WHERE id = 1");
  SyncAll();
  EXPECT_EQ(A.Text("SELECT json_extract(body, '$.name') FROM doc"), "second");
  ExpectAllEqual();
}

TEST_F(Docs, WritesOfOneTransactionAndAReinsertMergeAsWritten) {
  A.Exec("INSERT INTO doc(id, body) VALUES (1, '{\"a\":1,\"o\":{\"x\":1}}')");
  SyncAll();
  A.Exec("BEGIN");
  A.Exec("UPDATE doc SET body = json_set(body, '$.o', 5)");
  A.Exec("UPDATE doc SET body = json_set(body, '$.o', json('{\"y\":2}'))");
  A.Exec("UPDATE doc SET body = json_remove(body, '$.a')");
  A.Exec("COMMIT");
  B.Exec("UPDATE doc SET body = json_set(body, '$.b', 2)");
  SyncAll();
  for (Site* s : All()) EXPECT_EQ(Body(*s), "{\"b\":2,\"o\":{\"y\":2}}");
  // A delete ends the row's life; the re-insert's document starts afresh, whatever came before.
  C.Exec("UPDATE doc SET body = json_set(body, '$.c', 3)");  // concurrent with the delete: lost with it
  A.Exec("DELETE FROM doc WHERE id = 1");
  A.Exec("INSERT INTO doc(id, body) VALUES (1, '{\"fresh\":true}')");
  SyncAll();
  for (Site* s : All()) EXPECT_EQ(Body(*s), "{\"fresh\":true}");
  ExpectAllEqual();
}

TEST_F(Docs, AReceiverWhoseDeclarationDisagreesRefusesThePayload) {
  Site lww;
  lww.Exec("CREATE TABLE doc(id INTEGER PRIMARY KEY, body TEXT NOT NULL DEFAULT '{}', note TEXT);"
           "SELECT deltasync_enable('doc')");
  A.Exec("INSERT INTO doc(id, body) VALUES (1, '{\"a\":1}')");
  try {
    lww.Apply(A.Changes(0));
    ADD_FAILURE() << "applied";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("merges as json where the changes come from but as lww here"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(lww.Int("SELECT count(*) FROM doc"), 0);
}

// The convergence property with a json column: random writes through JSON1 (set, insert,
// remove, whole documents in any spacing and key order), deletes, replaces and re-inserts, in
// random transactions; random incremental, full and relayed exchanges; identical rows at the
// end, canonical text everywhere.
class DocWorld {
 public:
  DocWorld(uint64_t seed, int n_sites) : rng_(seed), cursors_(n_sites, std::vector<int64_t>(n_sites, 0)) {
    for (int k = 0; k < n_sites; ++k) {
      sites_.push_back(std::make_unique<Site>());
      sites_.back()->Exec(kDocSchema);
    }
  }
  void Step() {
    size_t x = Pick(sites_.size()), y = Pick(sites_.size());
    int pick = static_cast<int>(Pick(100));
    if (pick < 55) {
      Write(*sites_[x]);
    } else if (x == y) {
      return;
    } else if (pick < 85) {
      int64_t until = sites_[x]->Int("SELECT deltasync_db_version()");
      sites_[y]->Apply(sites_[x]->Changes(cursors_[x][y]));
      cursors_[x][y] = until;
    } else {
      sites_[y]->Apply(sites_[x]->Changes(0));
    }
  }
  void ExchangeAll() {
    for (int round = 0; round < 2; ++round)
      for (size_t x = 0; x < sites_.size(); ++x)
        for (size_t y = 0; y < sites_.size(); ++y)
          if (x != y) sites_[y]->Apply(sites_[x]->Changes(0));
  }
  Site& site(size_t k) { return *sites_[k]; }
  size_t size() const { return sites_.size(); }

 private:
  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  std::string Path() {
    static const char* kPaths[] = {"$.a", "$.b", "$.o", "$.o.x", "$.o.y", "$.o.p.q", "$.l"};
    return kPaths[Pick(7)];
  }
  Value Leaf() {
    static const char* kLeaves[] = {"1", "2.50", "\"s\"", "[1,2]", "{}", "{\"k\":1}", "null", "true"};
    return Value::Text(kLeaves[Pick(8)]);
  }
  void Write(Site& s) {
    bool txn = Pick(4) == 0;
    if (txn) s.Exec("BEGIN");
    int n = txn ? 1 + static_cast<int>(Pick(4)) : 1;
    for (int w = 0; w < n; ++w) {
      Value id = Value::Integer(static_cast<int64_t>(Pick(3)));
      switch (Pick(10)) {
        case 0: s.Rows("INSERT OR IGNORE INTO doc(id, body, note) VALUES (?1, '{\"a\":1,\"o\":{\"x\":1}}', 'i')", {id}); break;
        case 1:
        case 2:
          s.Rows("UPDATE doc SET body = json_set(body, ?2, json(?3)) WHERE id = ?1", {id, Value::Text(Path()), Leaf()});
          break;
        case 3: s.Rows("UPDATE doc SET body = json_insert(body, ?2, json(?3)) WHERE id = ?1", {id, Value::Text(Path()), Leaf()}); break;
        case 4: s.Rows("UPDATE doc SET body = json_remove(body, ?2) WHERE id = ?1", {id, Value::Text(Path())}); break;
        case 5:
          s.Rows("UPDATE doc SET body = ' { \"o\" : { \"y\" : 2 } , \"a\" : ' || ?2 || ' } ' WHERE id = ?1",
                 {id, Value::Text(std::to_string(Pick(3)))});
          break;
        case 6: s.Rows("UPDATE doc SET note = ?2 WHERE id = ?1", {id, Value::Text("n" + std::to_string(Pick(3)))}); break;
        case 7: s.Rows("DELETE FROM doc WHERE id = ?1", {id}); break;
        case 8: s.Rows("INSERT OR REPLACE INTO doc(id, body, note) VALUES (?1, '{\"r\":1}', 'r')", {id}); break;
        default:
          s.Rows("INSERT INTO doc(id, body) VALUES (?1, '{\"u\":1}') ON CONFLICT(id) DO UPDATE SET body = "
                 "json_set(body, '$.u', coalesce(json_extract(body, '$.u'), 0) + 1)",
                 {id});
      }
    }
    if (txn) s.Exec(Pick(5) != 0 ? "COMMIT" : "ROLLBACK");
  }

  std::mt19937_64 rng_;
  std::vector<std::unique_ptr<Site>> sites_;
  std::vector<std::vector<int64_t>> cursors_;
};

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoll(v) : fallback;
}

TEST(JsonConvergence, RandomMemberEditsAndExchangesConverge) {
  int64_t cases = EnvInt("DELTASYNC_PROPERTY_CASES", 60);
  int64_t first_seed = EnvInt("DELTASYNC_PROPERTY_SEED", 20261202);
  uint64_t documents = 0;
  for (int64_t c = 0; c < cases; ++c) {
    uint64_t seed = static_cast<uint64_t>(first_seed + c);
    SCOPED_TRACE("reproduce with DELTASYNC_PROPERTY_SEED=" + std::to_string(seed) + " DELTASYNC_PROPERTY_CASES=1");
    DocWorld w(seed, 3 + static_cast<int>(seed % 2));
    std::mt19937_64 len(seed);
    int steps = 20 + static_cast<int>(len() % 60);
    try {
      for (int s = 0; s < steps; ++s) w.Step();
      w.ExchangeAll();
    } catch (const std::exception& e) {
      FAIL() << "seed " << seed << ": " << e.what();
    }
    auto ref = w.site(0).Rows("SELECT * FROM doc ORDER BY id");
    for (size_t k = 1; k < w.size(); ++k) ASSERT_EQ(w.site(k).Rows("SELECT * FROM doc ORDER BY id"), ref) << "seed " << seed;
    // Canonical everywhere: what deltasync__json_canon gives back is what is stored.
    ASSERT_EQ(w.site(0).Int("SELECT count(*) FROM doc WHERE body <> deltasync__json_canon(body)"), 0) << "seed " << seed;
    documents += ref.size();
  }
  EXPECT_GT(documents, 0u);
}

}  // namespace
