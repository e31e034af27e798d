// The collect loop of common/collect_loop against a fake engine: which rows and column
// changes a site sends, and how its sites are numbered in the payload.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/collect_loop.hpp"
#include "common/error.hpp"
#include "common/hlc.hpp"

namespace deltasync {
namespace {

SiteId Site(char b) { return SiteId::FromBytes(std::string(16, b)); }

// One stored row of the fake engine: key, shadow row, base row (absent: none).
struct FakeRow {
  int64_t id;
  ShadowRow shadow;
  bool has_base = true;
  std::vector<Value> cols;
};

struct FakeCollectTable {
  std::string name = "items";
  std::vector<std::string> pk{"id"}, cols{"name", "qty"};
  std::vector<FakeRow> rows;
};

// The cursor over a FakeCollectTable's rows changed after `since`.
class FakeCursor : public ChangeCursor {
 public:
  FakeCursor(const FakeCollectTable& t, int64_t since) : t_(t), since_(since) {}
  TableNames Names() const override { return TableNames{t_.name, t_.pk, t_.cols}; }
  bool Next(std::vector<Value>& key, ShadowRow& shadow) override {
    while (next_ < t_.rows.size() && t_.rows[next_].shadow.ver <= since_) ++next_;
    if (next_ >= t_.rows.size()) return false;
    cur_ = &t_.rows[next_++];
    key.push_back(Value::Integer(cur_->id));
    shadow = cur_->shadow;
    return true;
  }
  bool ReadBase() override { return cur_->has_base; }
  Value Column(uint32_t column) override { return cur_->cols.at(column); }

 private:
  const FakeCollectTable& t_;
  int64_t since_;
  size_t next_ = 0;
  const FakeRow* cur_ = nullptr;
};

class FakeCollect : public CollectPort {
 public:
  std::vector<FakeCollectTable> tables;
  std::vector<SiteId> sites{Site(0x01), Site(0x02), Site(0x03)};
  int64_t horizon = 50;
  const SiteId& LocalSite() override { return sites[0]; }
  const SiteId& SiteOf(uint32_t ordinal) override { return sites.at(ordinal); }
  int64_t Horizon() override { return horizon; }
  void ForEachTable(int64_t since, int64_t, const std::function<void(ChangeCursor&)>& table) override {
    for (const FakeCollectTable& t : tables) {
      FakeCursor cur(t, since);
      table(cur);
    }
  }
};

const uint64_t kT1 = HlcFromMillis(1700000000000);

// A live row at version `ver` whose columns carry clocks from site ordinal `site`.
FakeRow Live(int64_t id, int64_t ver, uint32_t site) {
  FakeRow r;
  r.id = id;
  r.shadow.cl = 1;
  r.shadow.ver = ver;
  r.shadow.clocks.SetAll(ColClock{kT1, site, ver, 1});
  r.cols = {Value::Text("n" + std::to_string(id)), Value::Integer(id)};
  return r;
}

FakeRow Deleted(int64_t id, int64_t ver) {
  FakeRow r;
  r.id = id;
  r.shadow.cl = 2;
  r.shadow.ver = ver;
  r.has_base = false;
  return r;
}

TEST(CollectLoop, LiveRowsCarryTheirColumnsAndDeletesTheirCausalLength) {
  FakeCollect port;
  FakeCollectTable t;
  t.rows = {Live(1, 5, 0), Deleted(2, 6)};
  port.tables = {t};
  Payload p = CollectChanges(port, 0, {});
  EXPECT_EQ(p.site, port.sites[0]);
  EXPECT_EQ(p.since, 0);
  EXPECT_EQ(p.until, 50);
  ASSERT_EQ(p.tables.size(), 1u);
  const TableChanges& tc = p.tables[0];
  EXPECT_EQ(tc.name, "items");
  EXPECT_EQ(tc.columns, (std::vector<std::string>{"name", "qty"}));
  ASSERT_EQ(tc.rows.size(), 2u);
  EXPECT_EQ(tc.rows[0].cl, 1);
  ASSERT_EQ(tc.rows[0].changes.size(), 2u);
  EXPECT_EQ(tc.rows[0].changes[1].value, Value::Integer(1));
  EXPECT_EQ(tc.rows[0].changes[1].hlc, kT1);
  EXPECT_EQ(tc.rows[1].cl, 2);
  EXPECT_TRUE(tc.rows[1].changes.empty());
}

TEST(CollectLoop, SitesAreNumberedInTheOrderTheyAppear) {
  FakeCollect port;
  FakeCollectTable t;
  t.rows = {Live(1, 5, 2), Live(2, 6, 0), Live(3, 7, 2)};
  port.tables = {t};
  Payload p = CollectChanges(port, 0, {});
  EXPECT_EQ(p.sites, (std::vector<SiteId>{port.sites[2], port.sites[0]}));
  EXPECT_EQ(p.tables[0].rows[0].changes[0].site, 0u);
  EXPECT_EQ(p.tables[0].rows[1].changes[0].site, 1u);
  EXPECT_EQ(p.tables[0].rows[2].changes[0].site, 0u);
}

TEST(CollectLoop, OnlyChangesNewerThanSinceAndACursorFromTheFutureStaysPut) {
  FakeCollect port;
  FakeCollectTable t;
  FakeRow r = Live(1, 8, 0);
  r.shadow.clocks.Set(1, ColClock{kT1 + 1, 0, 3, 1});  // qty last written at version 3
  t.rows = {Live(9, 2, 0), r};
  port.tables = {t};
  Payload p = CollectChanges(port, 4, {});
  ASSERT_EQ(p.tables[0].rows.size(), 1u);
  ASSERT_EQ(p.tables[0].rows[0].changes.size(), 1u);
  EXPECT_EQ(p.tables[0].rows[0].changes[0].column, 0u);
  EXPECT_EQ(CollectChanges(port, 99, {}).until, 99);
}

TEST(CollectLoop, ALiveRowWithoutItsBaseRowCarriesNoColumnChange) {
  FakeCollect port;
  FakeCollectTable t;
  FakeRow r = Live(1, 5, 0);
  r.has_base = false;
  t.rows = {r};
  port.tables = {t};
  Payload p = CollectChanges(port, 0, {});
  ASSERT_EQ(p.tables[0].rows.size(), 1u);
  EXPECT_TRUE(p.tables[0].rows[0].changes.empty());
}

TEST(CollectLoop, ExcludedVersionsStayHomeAndEmptyTablesAreLeftOut) {
  FakeCollect port;
  FakeCollectTable t, other;
  other.name = "other";
  t.rows = {Live(1, 5, 1), Deleted(2, 6), Live(3, 9, 0)};
  port.tables = {t, other};
  Payload p = CollectChanges(port, 0, VersionRanges{{5, 6}});
  ASSERT_EQ(p.tables.size(), 1u);
  ASSERT_EQ(p.tables[0].rows.size(), 1u);
  EXPECT_EQ(p.tables[0].rows[0].key[0], Value::Integer(3));
}

// Batches: whole rows within the row and byte limits, each with its own site list, in
// order, together exactly what one collect gives; a stop ends the collect.
TEST(CollectLoop, InBatchesIsTheWholeCollectCutIntoBoundedSelfContainedPieces) {
  FakeCollect port;
  FakeCollectTable a, b;
  a.name = "a";
  b.name = "b";
  for (int64_t id = 1; id <= 23; ++id) a.rows.push_back(id % 5 == 0 ? Deleted(id, id) : Live(id, id, id % 3));
  for (int64_t id = 1; id <= 7; ++id) b.rows.push_back(Live(id, 100 + id, 2));
  b.rows[3].cols[0] = Value::Text(std::string(5000, 'x'));  // a row bigger than the byte budget
  port.tables = {a, b};
  Payload whole = CollectChanges(port, 0, {});
  BatchLimits limits;
  limits.max_rows = 4;
  limits.max_bytes = 1000;
  std::vector<Payload> batches;
  std::vector<CollectPosition> after;
  CollectInBatches(port, 0, 50, {}, CollectPosition{}, limits, [&](Payload& p, const CollectPosition& pos) {
    batches.push_back(p);
    after.push_back(pos);
    return true;
  });
  std::vector<std::pair<std::string, int64_t>> seen, expected;
  for (const TableChanges& t : whole.tables)
    for (const RowChanges& r : t.rows) expected.emplace_back(t.name, r.key[0].i);
  for (size_t k = 0; k < batches.size(); ++k) {
    const Payload& p = batches[k];
    EXPECT_EQ(p.since, 0);
    EXPECT_EQ(p.until, 50);
    size_t rows = 0;
    for (const TableChanges& t : p.tables)
      for (const RowChanges& r : t.rows) {
        seen.emplace_back(t.name, r.key[0].i);
        ++rows;
        for (const ColumnChange& c : r.changes) EXPECT_LT(c.site, p.sites.size()) << "a batch names its own sites";
      }
    EXPECT_GE(rows, 1u);
    EXPECT_LE(rows, 4u);
    EXPECT_EQ(after[k].table, seen.back().first);
    EXPECT_EQ(after[k].key, std::vector<Value>{Value::Integer(seen.back().second)});
  }
  EXPECT_EQ(seen, expected);
  // The 5,000-byte row travels alone.
  bool alone = false;
  for (const Payload& p : batches)
    if (p.tables.size() == 1 && p.tables[0].rows.size() == 1 && p.tables[0].name == "b" && p.tables[0].rows[0].key[0].i == 4)
      alone = true;
  EXPECT_TRUE(alone);
  // Stopping after the first batch sends nothing more.
  int calls = 0;
  CollectInBatches(port, 0, 50, {}, CollectPosition{}, limits, [&](Payload&, const CollectPosition&) {
    ++calls;
    return false;
  });
  EXPECT_EQ(calls, 1);
  // An engine that cannot seek refuses a position.
  EXPECT_THROW(CollectInBatches(port, 0, 50, {}, CollectPosition{"a", {Value::Integer(3)}}, limits,
                                [](Payload&, const CollectPosition&) { return true; }),
               Error);
}

}  // namespace
}  // namespace deltasync
