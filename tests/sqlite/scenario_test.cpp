// One scenario per rule of SPEC section 3, each on three sites A, B and C.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/payload.hpp"
#include "sqlite_test_util.hpp"

using deltasync::DecodeJson;
using deltasync::EncodeJson;
using deltasync::Value;
using deltasync::test::Site;

namespace {

class ThreeSites : public ::testing::Test {
 protected:
  void SetUp() override {
    for (Site* s : All())
      s->Exec("CREATE TABLE t(id TEXT PRIMARY KEY, a TEXT, b INTEGER); SELECT deltasync_enable('t');");
  }
  std::vector<Site*> All() { return {&A, &B, &C}; }
  // Everything `from` holds, merged into `to`.
  static std::string Send(Site& from, Site& to) { return to.Apply(from.Changes(0)); }
  void SyncAll() {
    for (int round = 0; round < 2; ++round)
      for (Site* x : All())
        for (Site* y : All())
          if (x != y) Send(*x, *y);
  }
  void ExpectAllEqual() {
    auto ref = A.Rows("SELECT * FROM t ORDER BY id");
    EXPECT_EQ(B.Rows("SELECT * FROM t ORDER BY id"), ref);
    EXPECT_EQ(C.Rows("SELECT * FROM t ORDER BY id"), ref);
  }
  // Hybrid clocks order writes by time: make sure the next write is in a later millisecond.
  static void Later() { std::this_thread::sleep_for(std::chrono::milliseconds(3)); }

  Site A, B, C;
};

}  // namespace

// Rule 2: "last" means the latest clock, not the site that edited most.
TEST_F(ThreeSites, LatestWriteWinsNotMostEdits) {
  A.Exec("INSERT INTO t VALUES ('k', 'start', 0)");
  SyncAll();
  A.Exec("UPDATE t SET a = 'A1' WHERE id = 'k'");
  A.Exec("UPDATE t SET a = 'A2' WHERE id = 'k'");
  Later();
  B.Exec("UPDATE t SET a = 'B1' WHERE id = 'k'");
  // Deliver in the "wrong" order on purpose: B's change first, then A's.
  Send(B, C);
  Send(A, C);
  SyncAll();
  for (Site* s : All()) EXPECT_EQ(s->Text("SELECT a FROM t WHERE id = 'k'"), "B1");
  ExpectAllEqual();
}

// Rule 2: concurrent edits of different columns of one row both survive.
TEST_F(ThreeSites, DifferentColumnsBothSurvive) {
  A.Exec("INSERT INTO t VALUES ('k', 'start', 0)");
  SyncAll();
  A.Exec("UPDATE t SET a = 'from A' WHERE id = 'k'");
  B.Exec("UPDATE t SET b = 42 WHERE id = 'k'");
  SyncAll();
  for (Site* s : All()) {
    EXPECT_EQ(s->Text("SELECT a FROM t WHERE id = 'k'"), "from A");
    EXPECT_EQ(s->Int("SELECT b FROM t WHERE id = 'k'"), 42);
  }
}

// Rule 2: on identical clocks the greater site id wins, on every site.
TEST_F(ThreeSites, EqualClocksAreBrokenBySiteId) {
  A.Exec("INSERT INTO t VALUES ('k', 'start', 0)");
  SyncAll();
  A.Exec("UPDATE t SET a = 'from A' WHERE id = 'k'");
  B.Exec("UPDATE t SET a = 'from B' WHERE id = 'k'");
  // Force both changes onto the same clock, as two sites writing in the same instant would.
  auto pa = DecodeJson(A.Changes(0));
  auto pb = DecodeJson(B.Changes(0));
  auto find_a = [](deltasync::Payload& p) -> deltasync::ColumnChange& {
    for (auto& ch : p.tables[0].rows[0].changes)
      if (p.tables[0].columns[ch.column] == "a") return ch;
    throw std::runtime_error("no change of a");
  };
  uint64_t hlc = std::max(find_a(pa).hlc, find_a(pb).hlc) + 1;
  find_a(pa).hlc = hlc;
  find_a(pb).hlc = hlc;
  std::string winner = A.Text("SELECT deltasync_site_id()") > B.Text("SELECT deltasync_site_id()") ? "from A" : "from B";
  C.Apply(EncodeJson(pa));
  C.Apply(EncodeJson(pb));
  Site D;
  D.Exec("CREATE TABLE t(id TEXT PRIMARY KEY, a TEXT, b INTEGER); SELECT deltasync_enable('t');");
  D.Apply(EncodeJson(pb));
  D.Apply(EncodeJson(pa));
  EXPECT_EQ(C.Text("SELECT a FROM t WHERE id = 'k'"), winner);
  EXPECT_EQ(D.Text("SELECT a FROM t WHERE id = 'k'"), winner);
}

// Rule 3: a delete wins over concurrent updates made without seeing it.
TEST_F(ThreeSites, DeleteBeatsConcurrentUpdate) {
  A.Exec("INSERT INTO t VALUES ('k', 'start', 0)");
  SyncAll();
  A.Exec("DELETE FROM t WHERE id = 'k'");
  Later();
  B.Exec("UPDATE t SET a = 'updated later', b = 7 WHERE id = 'k'");  // later clock, but did not see the delete
  Send(B, C);
  Send(A, C);
  SyncAll();
  for (Site* s : All()) EXPECT_EQ(s->Int("SELECT count(*) FROM t"), 0);
}

// Rule 3: a re-insert made after seeing the delete wins over it, with the re-inserter's values.
TEST_F(ThreeSites, ReinsertAfterSeeingDeleteWins) {
  A.Exec("INSERT INTO t VALUES ('k', 'start', 0)");
  SyncAll();
  A.Exec("DELETE FROM t WHERE id = 'k'");
  Send(A, B);
  B.Exec("INSERT INTO t VALUES ('k', 'reborn', 9)");
  // C hears of the re-insert before the delete.
  Send(B, C);
  Send(A, C);
  SyncAll();
  for (Site* s : All()) {
    EXPECT_EQ(s->Text("SELECT a FROM t WHERE id = 'k'"), "reborn");
    EXPECT_EQ(s->Int("SELECT b FROM t WHERE id = 'k'"), 9);
  }
  ExpectAllEqual();
}

// Rule 3: an update from the old life of a row loses to the new life, whatever its clock.
TEST_F(ThreeSites, OldLifeUpdateLosesToReinsert) {
  A.Exec("INSERT INTO t VALUES ('k', 'start', 0)");
  SyncAll();
  A.Exec("DELETE FROM t WHERE id = 'k'");
  Send(A, B);
  B.Exec("INSERT INTO t VALUES ('k', 'reborn', 9)");
  Later();
  C.Exec("UPDATE t SET a = 'stale but late' WHERE id = 'k'");  // C saw neither
  SyncAll();
  for (Site* s : All()) EXPECT_EQ(s->Text("SELECT a FROM t WHERE id = 'k'"), "reborn");
}

// Rule 4: the same changes through any path give identical rows (relay vs direct).
TEST_F(ThreeSites, RelayAndDirectPathsAgree) {
  A.Exec("INSERT INTO t VALUES ('x', 'a', 1), ('y', 'b', 2)");
  B.Exec("INSERT INTO t VALUES ('y', 'B', 20), ('z', 'c', 3)");
  Send(A, B);  // B now holds both
  Send(B, C);  // C gets A's changes only through B
  Site D;
  D.Exec("CREATE TABLE t(id TEXT PRIMARY KEY, a TEXT, b INTEGER); SELECT deltasync_enable('t');");
  Send(B, D);  // D: B first, then A directly, then B again
  Send(A, D);
  Send(B, D);
  EXPECT_EQ(C.Rows("SELECT * FROM t ORDER BY id"), B.Rows("SELECT * FROM t ORDER BY id"));
  EXPECT_EQ(D.Rows("SELECT * FROM t ORDER BY id"), B.Rows("SELECT * FROM t ORDER BY id"));
}

// Rule 4: apply is idempotent, and says so.
TEST_F(ThreeSites, SamePayloadTwiceChangesNothingTheSecondTime) {
  A.Exec("INSERT INTO t VALUES ('k', 'v', 1); DELETE FROM t WHERE id = 'k'; INSERT INTO t VALUES ('j', 'w', 2);");
  std::string payload = A.Changes(0);
  std::string r1 = B.Apply(payload);
  auto snapshot = B.Rows("SELECT * FROM t__deltasync_meta ORDER BY 1");
  int64_t v = B.Int("SELECT deltasync_db_version()");
  std::string r2 = B.Apply(payload);
  EXPECT_EQ(B.Int("SELECT json_extract('" + r1 + "', '$.applied')"), 3);
  EXPECT_EQ(B.Int("SELECT json_extract('" + r2 + "', '$.applied')"), 0);
  EXPECT_EQ(B.Int("SELECT json_extract('" + r2 + "', '$.ignored')"), 3);
  EXPECT_EQ(B.Rows("SELECT * FROM t__deltasync_meta ORDER BY 1"), snapshot);
  EXPECT_EQ(B.Int("SELECT deltasync_db_version()"), v);
}

// Rule 5: a change applied from elsewhere is not captured as local and keeps its origin.
TEST_F(ThreeSites, NoEchoFullRelay) {
  A.Exec("INSERT INTO t VALUES ('k', 'v', 1)");
  Send(A, B);
  auto pb = DecodeJson(B.Changes(0));
  for (const auto& ch : pb.tables[0].rows[0].changes)
    EXPECT_EQ(pb.sites[ch.site].ToString(), A.Text("SELECT deltasync_site_id()"));
  // Sending it back to A changes nothing there.
  std::string r = Send(B, A);
  EXPECT_EQ(A.Int("SELECT json_extract('" + r + "', '$.applied')"), 0);
}

// Rule 6: a local transaction's changes are captured in it; a failing apply changes nothing.
// (A row a constraint refuses is held instead: tests/sqlite/constraints_test.cpp.)
TEST_F(ThreeSites, ApplyIsAllOrNothing) {
  C.Exec("SELECT deltasync_disable('t'); DROP TABLE t; CREATE TABLE t(id TEXT PRIMARY KEY, a TEXT, b INTEGER) STRICT;"
         "SELECT deltasync_enable('t'); INSERT INTO t VALUES ('c', 'taken', 0)");
  A.Exec("INSERT INTO t VALUES ('k1', 'free', 1), ('k2', 'taken', 'not a number')");
  auto before = C.Rows("SELECT * FROM t ORDER BY id");
  int64_t v = C.Int("SELECT deltasync_db_version()");
  EXPECT_THROW(Send(A, C), std::runtime_error);
  EXPECT_EQ(C.Rows("SELECT * FROM t ORDER BY id"), before);
  EXPECT_EQ(C.Int("SELECT deltasync_db_version()"), v);
}
