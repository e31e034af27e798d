// Site registration on a SQLite site is linear: applying a payload whose changes come from
// n new sites reads O(n) rows in all, never the whole site list again per new site (counted
// with SQLite's row trace, not timed).
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdint>
#include <string>

#include "common/hlc.hpp"
#include "common/payload.hpp"
#include "sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::Site;

namespace {

// A payload of n rows of t(id, v), each written by a different new site.
std::string FromManySites(int n) {
  deltasync::Payload p;
  p.site = deltasync::SiteId::Random();
  deltasync::TableChanges t;
  t.name = "t";
  t.pk = {"id"};
  t.columns = {"v"};
  uint64_t hlc = deltasync::HlcFromMillis(deltasync::WallClockMillis() - 1000);
  for (int k = 0; k < n; ++k) {
    p.sites.push_back(deltasync::SiteId::Random());
    deltasync::RowChanges r;
    r.key = {Value::Integer(k)};
    r.cl = 1;
    r.changes.push_back(deltasync::ColumnChange{0, Value::Integer(k), hlc, static_cast<uint32_t>(k), 1});
    t.rows.push_back(r);
  }
  p.tables.push_back(t);
  return deltasync::EncodeJson(p);
}

int CountRow(unsigned, void* ctx, void*, void*) {
  ++*static_cast<int64_t*>(ctx);
  return 0;
}

// The rows SQLite statements on s produced while f ran.
template <typename F>
int64_t RowsRead(Site& s, F&& f) {
  int64_t rows = 0;
  sqlite3_trace_v2(s.db(), SQLITE_TRACE_ROW, CountRow, &rows);
  f();
  sqlite3_trace_v2(s.db(), 0, nullptr, nullptr);
  return rows;
}

TEST(SqliteSites, RegisteringManyNewSitesReadsRowsLinearInTheirNumber) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER); SELECT deltasync_enable('t');");
  s.Exec("INSERT INTO t VALUES (-1, 0)");  // the site's own ordinal is in place
  constexpr int kSites = 4000;
  std::string payload = FromManySites(kSites);
  int64_t rows = RowsRead(s, [&] { s.Apply(payload); });
  EXPECT_EQ(s.Int("SELECT count(*) FROM deltasync_sites"), kSites + 1);
  EXPECT_EQ(s.Int("SELECT count(*) FROM t"), kSites + 1);
  // A reload of the list per new site would read kSites^2 / 2 = 8,000,000 rows.
  EXPECT_LT(rows, 20 * kSites) << rows << " rows read";
  // A second payload from as many other new sites costs the same, not more.
  std::string more = FromManySites(kSites);
  int64_t again = RowsRead(s, [&] { s.Apply(more); });
  EXPECT_EQ(s.Int("SELECT count(*) FROM deltasync_sites"), 2 * kSites + 1);
  EXPECT_LT(again, 20 * kSites) << again << " rows read";
}

// A payload applied directly (deltasync_apply, not screened as network input is) may list
// any number of sites no change uses: none of them is registered.
TEST(SqliteSites, ListedSitesNoChangeUsesAreNotRegistered) {
  Site s;
  s.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER); SELECT deltasync_enable('t');");
  s.Exec("INSERT INTO t VALUES (-1, 0)");
  deltasync::Payload p = deltasync::DecodeJson(FromManySites(3));
  for (int k = 0; k < 2000; ++k) p.sites.push_back(deltasync::SiteId::Random());
  s.Apply(deltasync::EncodeJson(p));
  EXPECT_EQ(s.Int("SELECT count(*) FROM deltasync_sites"), 3 + 1);
  EXPECT_EQ(s.Int("SELECT count(*) FROM t"), 3 + 1);
}

}  // namespace
