// deltasync_id(): row ids no other site allocates, as a column DEFAULT (issue 9, item 7).
#include <gtest/gtest.h>

#include <cstdio>
#include <set>
#include <string>

#include "sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::Site;

namespace {
// BIGINT, not INTEGER: SQLite never applies a DEFAULT to an INTEGER PRIMARY KEY (the rowid).
constexpr const char* kSchema =
    "CREATE TABLE product(id BIGINT PRIMARY KEY DEFAULT (deltasync_id()), name TEXT NOT NULL);"
    "SELECT deltasync_enable('product');";
}  // namespace

TEST(RowIds, DefaultIdsOfTwoSitesNeverMergeRows) {
  Site a, b;
  a.Exec(kSchema);
  b.Exec(kSchema);
  for (int k = 0; k < 50; ++k) {
    a.Exec("INSERT INTO product(name) VALUES ('from a')");
    b.Exec("INSERT INTO product(name) VALUES ('from b')");
  }
  a.Apply(b.Changes(0));
  b.Apply(a.Changes(0));
  EXPECT_EQ(a.Int("SELECT count(*) FROM product"), 100);
  EXPECT_EQ(a.Rows("SELECT * FROM product ORDER BY id"), b.Rows("SELECT * FROM product ORDER BY id"));
  // The top 20 bits are the site's node: by default the first 20 bits of its site id.
  std::string site = a.Text("SELECT deltasync_site_id()");
  int64_t node = std::stoll(site.substr(0, 5), nullptr, 16);
  EXPECT_EQ(a.Int("SELECT count(*) FROM product WHERE name = 'from a' AND id >> 43 = " + std::to_string(node)), 50);
  // Increasing within a site.
  EXPECT_EQ(a.Int("SELECT count(*) FROM product AS x WHERE name = 'from a' AND EXISTS (SELECT 1 FROM product AS y"
                  " WHERE y.name = 'from a' AND y.rowid < x.rowid AND y.id > x.id)"),
            0);
}

TEST(RowIds, ConnectionsOfOneFileNeverShareAnId) {
  std::string path = ::testing::TempDir() + "/row_ids.db";
  std::remove(path.c_str());
  std::set<int64_t> seen;
  {
    Site c1(path), c2(path);
    c1.Exec(kSchema);
    for (int k = 0; k < 100; ++k) {
      Site& c = k % 3 ? c1 : c2;
      if (k % 10 == 0) c.Exec("BEGIN; INSERT INTO product(name) VALUES ('x'); INSERT INTO product(name) VALUES ('y'); COMMIT");
      else c.Exec("INSERT INTO product(name) VALUES ('z')");
      if (k == 50) c1.Exec("BEGIN; INSERT INTO product(name) VALUES ('rolled back'); ROLLBACK");
    }
    for (auto& r : c1.Rows("SELECT id FROM product")) seen.insert(r[0].i);
    EXPECT_EQ(seen.size(), static_cast<size_t>(c1.Int("SELECT count(*) FROM product")));
  }
  // The counter is kept in the file: a new connection continues above every id given out.
  Site again(path);
  int64_t max_before = *seen.rbegin();
  again.Exec("INSERT INTO product(name) VALUES ('after reopen')");
  EXPECT_GT(again.Int("SELECT id FROM product WHERE name = 'after reopen'"), max_before);
  std::remove(path.c_str());
}

TEST(RowIds, AnExplicitNodeAndItsBounds) {
  Site a;
  a.Exec(kSchema);
  a.Exec("INSERT INTO deltasync_settings(name, value) VALUES ('id_node', 7)");
  a.Exec("INSERT INTO product(name) VALUES ('n7')");
  EXPECT_EQ(a.Int("SELECT id >> 43 FROM product"), 7);
  a.Exec("UPDATE deltasync_settings SET value = 1048576 WHERE name = 'id_node'");
  std::string err = a.ExecError("INSERT INTO product(name) VALUES ('bad node')");
  EXPECT_NE(err.find("deltasync: setting id_node must be an integer from 0 to 1048575"), std::string::npos) << err;
  EXPECT_EQ(a.Int("SELECT count(*) FROM product"), 1);
}

// Issue 9, item 10: an ORM's own bookkeeping is refused unless forced.
TEST(Bookkeeping, MigrationTablesAreRefusedUnlessForced) {
  Site a;
  a.Exec("CREATE TABLE django_migrations(id INTEGER PRIMARY KEY, app TEXT, name TEXT);"
         "CREATE TABLE alembic_version(version_num TEXT PRIMARY KEY)");
  std::string err = a.ExecError("SELECT deltasync_enable('django_migrations')");
  EXPECT_NE(err.find("deltasync: \"django_migrations\" is Django's record of the migrations"), std::string::npos) << err;
  EXPECT_NE(err.find("{\"force\": true}"), std::string::npos) << err;
  EXPECT_EQ(a.Int("SELECT count(*) FROM deltasync_tables"), 0);
  err = a.ExecError("SELECT deltasync_enable('ALEMBIC_VERSION')");
  EXPECT_NE(err.find("Alembic"), std::string::npos) << err;
  err = a.ExecError(R"(SELECT deltasync_enable('alembic_version', '{"forse": true}'))");
  EXPECT_NE(err.find("unknown deltasync_enable option \"forse\""), std::string::npos) << err;
  EXPECT_EQ(a.ExecError(R"(SELECT deltasync_enable('alembic_version', '{"force": true}'))"), "");
  EXPECT_EQ(a.Int("SELECT count(*) FROM deltasync_tables WHERE name = 'alembic_version'"), 1);
  // Re-enabling a table already tracked needs no force.
  EXPECT_EQ(a.ExecError("SELECT deltasync_enable('alembic_version')"), "");
}
