// The hub's merge and page assembly (server/hub_merge) against an in-memory store: the
// cases a running hub reaches only through HTTP — counts, deletes, echo by pusher, spoofed
// origins, row and byte limits of a page, table filters — and a property: pushes merged in
// any order leave the same cells.
#include "server/hub_merge.hpp"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "common/hlc.hpp"
#include "common/key_codec.hpp"

namespace deltasync::hub {
namespace {

// One node of a hub, in memory: a PushTxn and a PullSource over the same maps.
class FakeNode : public PushTxn, public PullSource {
 public:
  struct Cell {
    std::string value;
    uint64_t hlc = 0;
    int64_t site = 0, cl = 0, seq = 0, pusher = 0;
  };
  struct Row {
    int64_t cl = 0, seq = 0, writer = 0;
    std::map<std::string, Cell> cells;
  };

  PushResult Push(const Payload& p) {
    PushResult r = MergePush(*this, p, seq_);
    seq_ = r.seq;
    return r;
  }
  PullResult Pull(int64_t since, const std::optional<SiteId>& requester, size_t max_rows = 1000,
                  size_t max_bytes = kMaxPageBytes, const std::vector<std::string>& tables = {}) {
    return BuildPage(*this, hub_id_, since, max_rows, tables, requester, max_bytes);
  }
  // Every row as (table, key, cl, {col: (value, hlc, origin, cl)}), for comparing stores.
  std::map<std::pair<std::string, std::string>,
           std::pair<int64_t, std::map<std::string, std::tuple<std::string, uint64_t, SiteId, int64_t>>>>
  Contents() const {
    std::map<std::pair<std::string, std::string>,
             std::pair<int64_t, std::map<std::string, std::tuple<std::string, uint64_t, SiteId, int64_t>>>>
        out;
    for (const auto& [id, row] : rows_) {
      auto& o = out[{tables_[id.first].first, id.second}];
      o.first = row.cl;
      for (const auto& [col, c] : row.cells) o.second[col] = {c.value, c.hlc, sites_[c.site], c.cl};
    }
    return out;
  }

  // PushTxn
  int64_t TableId(const TableChanges& t) override {
    for (size_t k = 0; k < tables_.size(); ++k)
      if (tables_[k].first == t.name) return static_cast<int64_t>(k);
    tables_.emplace_back(t.name, t.pk);
    return static_cast<int64_t>(tables_.size() - 1);
  }
  uint32_t SiteOrdinal(const SiteId& site) override {
    auto it = std::find(sites_.begin(), sites_.end(), site);
    if (it != sites_.end()) return static_cast<uint32_t>(it - sites_.begin());
    sites_.push_back(site);
    return static_cast<uint32_t>(sites_.size() - 1);
  }
  SiteId SiteOf(int64_t ord) override { return sites_.at(static_cast<size_t>(ord)); }
  int64_t RowCl(int64_t tbl, const std::string& key) override {
    auto it = rows_.find({tbl, key});
    return it == rows_.end() ? 0 : it->second.cl;
  }
  std::unordered_map<std::string, Clock> CellClocks(int64_t tbl, const std::string& key,
                                                    std::unordered_map<std::string, size_t>* sizes) override {
    std::unordered_map<std::string, Clock> out;
    auto it = rows_.find({tbl, key});
    if (it != rows_.end())
      for (const auto& [col, c] : it->second.cells) {
        out[col] = Clock{c.cl, c.hlc, sites_[c.site]};
        if (sizes) (*sizes)[col] = c.value.size();
      }
    return out;
  }
  void DropCells(int64_t tbl, const std::string& key) override { rows_[{tbl, key}].cells.clear(); }
  void PutCell(int64_t tbl, const std::string& key, const std::string& col, const std::string& value, uint64_t hlc,
               uint32_t site, int64_t cl, int64_t seq, int64_t pusher) override {
    rows_[{tbl, key}].cells[col] = Cell{value, hlc, site, cl, seq, pusher};
  }
  void PutRow(int64_t tbl, const std::string& key, int64_t cl, int64_t seq, int64_t writer) override {
    Row& r = rows_[{tbl, key}];
    r.cl = cl;
    r.seq = seq;
    r.writer = writer;
  }

  // The node's sequence (what a push hands out last).
  int64_t Seq() const { return seq_; }
  // Rows above `seq` stay invisible to pulls (committed in part: a distributed store's
  // counter may be seen ahead of its rows); -1 shows everything.
  void HideAbove(int64_t seq) { hide_above_ = seq; }

  // PullSource
  std::vector<StoredRow> Rows(int64_t since, size_t limit) override {
    std::vector<StoredRow> out;
    for (const auto& [id, row] : rows_)
      if (row.seq > since && (hide_above_ < 0 || row.seq <= hide_above_)) out.push_back(StoredRow{id.first, id.second, row.cl, row.seq, row.writer});
    std::sort(out.begin(), out.end(), [](const StoredRow& a, const StoredRow& b) { return a.seq < b.seq; });
    if (out.size() > limit) out.resize(limit);
    return out;
  }
  void Table(int64_t tbl, std::string& name, std::vector<std::string>& pk) override {
    name = tables_.at(static_cast<size_t>(tbl)).first;
    pk = tables_.at(static_cast<size_t>(tbl)).second;
  }
  std::vector<StoredCell> Cells(int64_t tbl, const std::string& key) override {
    std::vector<StoredCell> out;
    for (const auto& [col, c] : rows_.at({tbl, key}).cells) out.push_back(StoredCell{col, c.value, c.hlc, c.site, c.cl, c.pusher});
    return out;
  }
  // Compaction as the stores do it: every tombstone becomes a grave (its causal length).
  size_t DropTombstones() {
    size_t n = 0;
    for (auto it = rows_.begin(); it != rows_.end();) {
      if (it->second.cl % 2 == 0) {
        graves_[it->first] = it->second.cl;
        it = rows_.erase(it);
        ++n;
      } else {
        ++it;
      }
    }
    return n;
  }
  int64_t GraveCl(int64_t tbl, const std::string& key) override {
    auto it = graves_.find({tbl, key});
    return it == graves_.end() ? 0 : it->second;
  }
  int64_t KnownSite(const SiteId& site) override {
    auto it = std::find(sites_.begin(), sites_.end(), site);
    return it == sites_.end() ? -1 : it - sites_.begin();
  }

 private:
  SiteId hub_id_ = SiteId::Random();
  int64_t seq_ = 0;
  int64_t hide_above_ = -1;
  std::vector<std::pair<std::string, std::vector<std::string>>> tables_;
  std::vector<SiteId> sites_;
  std::map<std::pair<int64_t, std::string>, Row> rows_;
  std::map<std::pair<int64_t, std::string>, int64_t> graves_;
};

const uint64_t kNow = HlcFromMillis(WallClockMillis() - 1000);

// A push from `site` of rows of t(id; a, b): {id, cl, {column index, value, hlc offset}}.
struct Cellx {
  uint32_t column;
  std::string value;
  uint64_t dt;
};
Payload PushOf(const SiteId& site, const std::vector<std::tuple<int64_t, int64_t, std::vector<Cellx>>>& rows,
               const SiteId* origin = nullptr) {
  Payload p;
  p.site = site;
  p.sites = {origin ? *origin : site};
  TableChanges t{"t", {"id"}, {"a", "b"}, {}};
  for (const auto& [id, cl, cells] : rows) {
    RowChanges r;
    r.key = {Value::Integer(id)};
    r.cl = cl;
    for (const Cellx& c : cells) r.changes.push_back(ColumnChange{c.column, Value::Text(c.value), kNow + c.dt, 0, cl});
    t.rows.push_back(std::move(r));
  }
  p.tables.push_back(std::move(t));
  return p;
}

// The value of column `col` of row `id` in a page, or "-" when the page has none.
std::string ValueIn(const Payload& page, int64_t id, const std::string& col) {
  for (const TableChanges& t : page.tables)
    for (const RowChanges& r : t.rows)
      if (r.key == std::vector<Value>{Value::Integer(id)})
        for (const ColumnChange& c : r.changes)
          if (t.columns[c.column] == col) return c.value.s;
  return "-";
}

size_t RowsIn(const Payload& page) {
  size_t n = 0;
  for (const TableChanges& t : page.tables) n += t.rows.size();
  return n;
}

// A dropped tombstone decides through its grave as it did itself: a change of the old life
// loses and the tombstone is served again, to its pusher too (it never saw the delete); a
// higher causal length starts a new life; the same delete again is nothing.
TEST(HubMerge, AGraveDecidesAsTheTombstoneDid) {
  FakeNode node;
  SiteId a = SiteId::Random(), late = SiteId::Random();
  node.Push(PushOf(a, {{1, 1, {{0, "a1", 10}, {1, "b1", 10}}}, {2, 1, {{0, "two", 10}}}}));
  node.Push(PushOf(a, {{1, 2, {}}}));
  ASSERT_EQ(node.DropTombstones(), 1u);
  EXPECT_EQ(RowsIn(node.Pull(0, std::nullopt).payload), 1u) << "a dropped tombstone is not served";
  EXPECT_EQ(node.Push(PushOf(a, {{1, 2, {}}})).seq, 3) << "the same delete again takes no sequence";
  PushResult r = node.Push(PushOf(late, {{1, 1, {{0, "by a site that never saw the delete", 50}}}}));
  EXPECT_EQ(r.applied, 0u);
  EXPECT_EQ(r.seq, 4) << "the tombstone is served again";
  PullResult page = node.Pull(3, late);
  ASSERT_EQ(RowsIn(page.payload), 1u) << "its pusher must learn the delete";
  EXPECT_EQ(page.payload.tables[0].rows[0].cl, 2);
  EXPECT_TRUE(page.payload.tables[0].rows[0].changes.empty());
  node.DropTombstones();
  node.Push(PushOf(late, {{1, 3, {{1, "new life", 60}}}}));
  page = node.Pull(0, std::nullopt);
  EXPECT_EQ(ValueIn(page.payload, 1, "b"), "new life");
  EXPECT_EQ(ValueIn(page.payload, 1, "a"), "-");
}

TEST(HubMerge, CountsWinnersAndLosersAndKeepsTheNewest) {
  FakeNode node;
  SiteId a = SiteId::Random(), b = SiteId::Random();
  PushResult r1 = node.Push(PushOf(a, {{1, 1, {{0, "a1", 10}, {1, "b1", 10}}}}));
  EXPECT_EQ(r1.applied, 2u);
  EXPECT_EQ(r1.seq, 1);
  // b's older a loses, its newer b wins.
  PushResult r2 = node.Push(PushOf(b, {{1, 1, {{0, "old", 5}, {1, "b2", 20}}}}));
  EXPECT_EQ(r2.applied, 1u);
  EXPECT_EQ(r2.ignored, 1u);
  PullResult page = node.Pull(0, std::nullopt);
  EXPECT_EQ(ValueIn(page.payload, 1, "a"), "a1");
  EXPECT_EQ(ValueIn(page.payload, 1, "b"), "b2");
  // The same push again changes nothing and takes no sequence number.
  PushResult r3 = node.Push(PushOf(b, {{1, 1, {{0, "old", 5}, {1, "b2", 20}}}}));
  EXPECT_EQ(r3.applied, 0u);
  EXPECT_EQ(r3.seq, r2.seq);
}

TEST(HubMerge, ADeleteDropsTheCellsAndAReinsertStartsANewLife) {
  FakeNode node;
  SiteId a = SiteId::Random(), b = SiteId::Random();
  node.Push(PushOf(a, {{1, 1, {{0, "a1", 10}, {1, "b1", 10}}}}));
  node.Push(PushOf(b, {{1, 2, {}}}));  // deleted (even causal length)
  PullResult page = node.Pull(0, std::nullopt);
  ASSERT_EQ(RowsIn(page.payload), 1u);
  EXPECT_EQ(page.payload.tables[0].rows[0].cl, 2);
  EXPECT_TRUE(page.payload.tables[0].rows[0].changes.empty());
  // A value of the first life pushed late never comes back.
  EXPECT_EQ(node.Push(PushOf(a, {{1, 1, {{0, "late", 99}}}})).applied, 0u);
  // A re-insert (cl 3) with one column: only that column lives.
  node.Push(PushOf(a, {{1, 3, {{1, "again", 1}}}}));
  page = node.Pull(0, std::nullopt);
  EXPECT_EQ(ValueIn(page.payload, 1, "a"), "-");
  EXPECT_EQ(ValueIn(page.payload, 1, "b"), "again");
}

TEST(HubMerge, NeverServesASiteWhatItPushedButServesASpoofedOrigin) {
  FakeNode node;
  SiteId a = SiteId::Random(), b = SiteId::Random(), c = SiteId::Random();
  node.Push(PushOf(a, {{1, 1, {{0, "from a", 10}}}}));
  // c pushes a change that names a as its origin.
  node.Push(PushOf(c, {{2, 1, {{0, "spoofed", 10}}}}, &a));
  PullResult for_a = node.Pull(0, a);
  EXPECT_EQ(ValueIn(for_a.payload, 1, "a"), "-") << "a's own push came back to it";
  EXPECT_EQ(ValueIn(for_a.payload, 2, "a"), "spoofed") << "a change another site pushed must reach a";
  PullResult for_b = node.Pull(0, b);
  EXPECT_EQ(ValueIn(for_b.payload, 1, "a"), "from a");
  EXPECT_EQ(ValueIn(for_b.payload, 2, "a"), "spoofed");
  // A delete a pushed itself is not news to a either.
  node.Push(PushOf(a, {{1, 2, {}}}));
  EXPECT_EQ(RowsIn(node.Pull(for_a.payload.until, a).payload), 0u);
  EXPECT_EQ(RowsIn(node.Pull(for_b.payload.until, b).payload), 1u);
}

TEST(HubMerge, PagesEndAtTheRowLimitOrTheByteBudgetNeverInsideARow) {
  FakeNode node;
  SiteId a = SiteId::Random();
  std::vector<std::tuple<int64_t, int64_t, std::vector<Cellx>>> rows;
  for (int id = 1; id <= 10; ++id) rows.push_back({id, 1, {{0, std::string(1000, 'x'), 1}, {1, "b", 1}}});
  rows.push_back({11, 1, {{0, std::string(10000, 'y'), 1}}});  // larger than the budget below
  node.Push(PushOf(a, rows));
  // By rows: 4 + 4 + 3, cursors continuing, `more` until the end.
  std::vector<size_t> sizes;
  int64_t since = 0;
  for (;;) {
    PullResult p = node.Pull(since, std::nullopt, 4);
    sizes.push_back(RowsIn(p.payload));
    EXPECT_EQ(p.payload.since, since);
    since = p.payload.until;
    if (!p.more) break;
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{4, 4, 3}));
  // By bytes: a budget of 2,500 holds two 1 KB rows; the 10 KB row travels alone.
  sizes.clear();
  since = 0;
  for (;;) {
    PullResult p = node.Pull(since, std::nullopt, 1000, 2500);
    for (const TableChanges& t : p.payload.tables)
      for (const RowChanges& r : t.rows) EXPECT_EQ(r.changes.size(), r.key[0].i == 11 ? 1u : 2u) << "a row was split";
    sizes.push_back(RowsIn(p.payload));
    since = p.payload.until;
    if (!p.more) break;
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{2, 2, 2, 2, 2, 1}));
  EXPECT_EQ(since, node.Seq());
}

TEST(HubMerge, OnlyTheTablesAskedForAndTheCursorMovesPastOthers) {
  FakeNode node;
  SiteId a = SiteId::Random();
  Payload p = PushOf(a, {{1, 1, {{0, "t", 1}}}});
  TableChanges u{"u", {"id"}, {"a"}, {}};
  RowChanges r;
  r.key = {Value::Integer(7)};
  r.cl = 1;
  r.changes.push_back(ColumnChange{0, Value::Text("u"), kNow, 0, 1});
  u.rows.push_back(r);
  p.tables.push_back(u);
  node.Push(p);
  PullResult page = node.Pull(0, std::nullopt, 1000, kMaxPageBytes, {"u"});
  ASSERT_EQ(page.payload.tables.size(), 1u);
  EXPECT_EQ(page.payload.tables[0].name, "u");
  EXPECT_EQ(page.payload.until, node.Seq());
  EXPECT_FALSE(page.more);
}

// The cursor of a page is the last row it read, never the node's counter: rows the counter
// already counts but the snapshot does not show yet are pulled by the next page.
TEST(HubMerge, TheCursorIsTheLastRowReadNotTheNodeCounter) {
  FakeNode node;
  SiteId a = SiteId::Random();
  node.Push(PushOf(a, {{1, 1, {{0, "x", 1}}}}));
  node.Push(PushOf(a, {{2, 1, {{0, "y", 1}}}, {3, 1, {{0, "z", 1}}}}));
  ASSERT_EQ(node.Seq(), 3);
  node.HideAbove(1);  // the second push: counted, its rows not visible yet
  PullResult first = node.Pull(0, std::nullopt);
  EXPECT_EQ(RowsIn(first.payload), 1u);
  EXPECT_EQ(first.payload.until, 1) << "the cursor passed rows the page did not read";
  PullResult empty = node.Pull(first.payload.until, std::nullopt);
  EXPECT_EQ(RowsIn(empty.payload), 0u);
  EXPECT_EQ(empty.payload.until, 1) << "an empty page keeps the cursor";
  node.HideAbove(-1);
  PullResult second = node.Pull(empty.payload.until, std::nullopt);
  EXPECT_EQ(RowsIn(second.payload), 2u);
  EXPECT_EQ(ValueIn(second.payload, 3, "a"), "z");
  EXPECT_EQ(second.payload.until, 3);
}

TEST(HubMerge, LargestRowBytesCountsAsAPageDoes) {
  SiteId a = SiteId::Random();
  Payload p = PushOf(a, {{1, 1, {{0, std::string(100, 'x'), 1}}}, {2, 1, {{0, std::string(5000, 'y'), 1}, {1, "z", 1}}}});
  size_t big = LargestRowBytes(p);
  EXPECT_GE(big, 5001u);
  EXPECT_LT(big, 5200u);
}

// Pushes of random rows from three sites, merged in two random orders, leave the same cells
// (merge at the hub commutes), and a site that pulls everything sees what the hub holds.
RC_GTEST_PROP(HubMergeProperty, PushOrderDoesNotMatter, ()) {
  std::vector<SiteId> sites = {SiteId::Random(), SiteId::Random(), SiteId::Random()};
  int n = *rc::gen::inRange(1, 12);
  std::vector<Payload> pushes;
  for (int k = 0; k < n; ++k) {
    const SiteId& s = sites[*rc::gen::inRange<size_t>(0, sites.size())];
    std::vector<std::tuple<int64_t, int64_t, std::vector<Cellx>>> rows;
    int nrows = *rc::gen::inRange(1, 4);
    for (int j = 0; j < nrows; ++j) {
      int64_t id = *rc::gen::inRange(1, 4);
      int64_t cl = *rc::gen::inRange<int64_t>(1, 5);
      std::vector<Cellx> cells;
      if (cl % 2 == 1)
        for (uint32_t col = 0; col < 2; ++col)
          if (*rc::gen::arbitrary<bool>())
            // A site never gives two values one clock: its later pushes have later clocks.
            cells.push_back({col, "v" + std::to_string(*rc::gen::inRange(0, 100)),
                             static_cast<uint64_t>(k) * 1000 + *rc::gen::inRange<uint64_t>(0, 50)});
      rows.push_back({id, cl, cells});
    }
    // One push never holds the same key twice.
    std::sort(rows.begin(), rows.end(), [](const auto& x, const auto& y) { return std::get<0>(x) < std::get<0>(y); });
    rows.erase(std::unique(rows.begin(), rows.end(),
                           [](const auto& x, const auto& y) { return std::get<0>(x) == std::get<0>(y); }),
               rows.end());
    pushes.push_back(PushOf(s, rows));
  }
  FakeNode one, two;
  for (const Payload& p : pushes) one.Push(p);
  std::vector<Payload> shuffled = *rc::gen::exec([&] {
    std::vector<Payload> v = pushes;
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[*rc::gen::inRange<size_t>(0, i)]);
    return v;
  });
  for (const Payload& p : shuffled) two.Push(p);
  RC_ASSERT(one.Contents() == two.Contents());
}

}  // namespace
}  // namespace deltasync::hub
