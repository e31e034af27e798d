// The apply loop of common/apply_loop against a fake engine: which storage operations a
// payload turns into, and what it counts.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/apply_loop.hpp"
#include "common/error.hpp"
#include "common/hlc.hpp"
#include "common/merge.hpp"

namespace deltasync {
namespace {

SiteId Site(char b) { return SiteId::FromBytes(std::string(16, b)); }

// One table of the fake engine: base rows and shadow rows (stored form) by key, and a log
// of the storage operations in the order they were asked for.
struct FakeTable {
  std::string name;
  std::vector<std::string> pk, cols;
  std::map<std::string, std::vector<Value>> base;  // key text -> non-key columns
  struct Stored {
    int64_t cl, ver;
    uint64_t hlc;
    uint32_t site;
    std::string extras;
  };
  std::map<std::string, Stored> shadow;
  std::vector<std::string> log;
  std::set<std::string> refuse;  // keys whose insert the fake engine refuses
};

std::string KeyStr(const std::vector<Value>& key) {
  std::string out;
  for (const Value& v : key) out += DebugString(v) + "|";
  return out;
}

// The writer the loop gets for a FakeTable.
class FakeApplyTable : public ApplyTable {
 public:
  explicit FakeApplyTable(FakeTable& t) : t_(t) {}
  TableNames Names() const override { return TableNames{t_.name, t_.pk, t_.cols}; }
  void ReadShadow(const std::vector<Value>& key, ShadowRow& out) override {
    t_.log.push_back("read " + KeyStr(key));
    auto it = t_.shadow.find(KeyStr(key));
    if (it == t_.shadow.end()) return;
    const FakeTable::Stored& s = it->second;
    out = ShadowRowFromStored(s.cl, s.ver, static_cast<int64_t>(s.hlc), s.site, s.extras);
  }
  void DeleteRow(const std::vector<Value>& key) override {
    t_.log.push_back("delete " + KeyStr(key));
    t_.base.erase(KeyStr(key));
  }
  bool UpdateRow(const std::vector<Value>& key, const std::vector<ColumnWrite>& cols) override {
    t_.log.push_back("update " + KeyStr(key) + Columns(cols));
    auto it = t_.base.find(KeyStr(key));
    if (it == t_.base.end()) return false;
    for (const ColumnWrite& c : cols) it->second[c.column] = *c.value;
    return true;
  }
  void InsertRow(const std::vector<Value>& key, const std::vector<ColumnWrite>& cols) override {
    t_.log.push_back("insert " + KeyStr(key) + Columns(cols));
    if (t_.refuse.count(KeyStr(key))) throw RowRefused("refused " + KeyStr(key));
    auto [it, added] = t_.base.emplace(KeyStr(key), std::vector<Value>(t_.cols.size()));
    (void)added;
    for (const ColumnWrite& c : cols) it->second[c.column] = *c.value;
  }
  void ResetColumns(const std::vector<Value>& key, const std::vector<uint32_t>& cols) override {
    std::string list;
    for (uint32_t c : cols) list += std::to_string(c) + ";";
    t_.log.push_back("reset " + KeyStr(key) + list);
    for (uint32_t c : cols) t_.base.at(KeyStr(key))[c] = Value::Null();
  }
  void WriteShadow(const std::vector<Value>& key, int64_t cl, int64_t ver, const RowClocks& clocks) override {
    t_.log.push_back("shadow " + KeyStr(key) + std::to_string(cl) + "@" + std::to_string(ver));
    t_.shadow[KeyStr(key)] = FakeTable::Stored{cl, ver, clocks.Base().hlc, clocks.Base().site, clocks.EncodeExtras()};
  }
  bool ReadColumns(const std::vector<Value>& key, const std::vector<std::string>&, std::vector<Value>&) override {
    return t_.base.count(KeyStr(key)) != 0;
  }
  std::vector<std::vector<Value>> FindRows(const std::vector<std::string>&, const std::vector<Value>&) override {
    return {};
  }

 private:
  static std::string Columns(const std::vector<ColumnWrite>& cols) {
    std::string out = "[";
    for (const ColumnWrite& c : cols) out += std::to_string(c.column) + "=" + DebugString(*c.value) + ";";
    return out + "]";
  }
  FakeTable& t_;
};

// The fake engine: tables, site ordinals, a version counter, and what the loop asked.
class FakeApply : public ApplyPort {
 public:
  std::vector<FakeTable> tables;
  std::vector<SiteId> sites{Site(0x01)};  // ordinal 0: this site
  int64_t drift_setting = static_cast<int64_t>(kDefaultMaxClockDriftMs);
  int64_t next_ver = 10;
  uint64_t observed = 0;
  int atomic_calls = 0;
  bool fail_inside = false;

  int64_t MaxClockDriftSetting() override { return drift_setting; }
  int FindTable(const std::string& name) override {
    for (size_t k = 0; k < tables.size(); ++k)
      if (tables[k].name == name) return static_cast<int>(k);
    return -1;
  }
  void Atomically(const std::function<void()>& body) override {
    ++atomic_calls;
    std::vector<FakeTable> saved = tables;
    std::map<std::string, HeldRow> saved_held = held;
    std::map<std::string, PendingCell> saved_pending = pending;
    try {
      body();
      if (fail_inside) throw Error(ErrorCode::kInternal, "commit failed");
    } catch (...) {
      tables = saved;
      held = saved_held;
      pending = saved_pending;
      throw;
    }
  }
  std::unique_ptr<ApplyTable> OpenTable(int handle) override {
    return std::make_unique<FakeApplyTable>(tables[handle]);
  }
  uint32_t SiteOrdinal(const SiteId& site) override {
    for (uint32_t k = 0; k < sites.size(); ++k)
      if (sites[k] == site) return k;
    sites.push_back(site);
    return static_cast<uint32_t>(sites.size() - 1);
  }
  const SiteId& SiteOf(uint32_t ordinal) override { return sites.at(ordinal); }
  int64_t NextVersion() override { return next_ver++; }
  void ObserveClock(uint64_t max_hlc) override { observed = max_hlc; }
  std::vector<ForeignKey> ForeignKeys() override { return {}; }
  std::vector<HeldRow> HeldRows() override {
    std::vector<HeldRow> out;
    for (const auto& [id, row] : held) out.push_back(row);
    return out;
  }
  bool RefusalAbortsAtomically() override { return aborts; }
  void RowAtomically(const std::function<void()>& body) override {
    ++row_calls;
    std::vector<FakeTable> saved = tables;
    try {
      body();
    } catch (...) {
      tables = saved;
      throw;
    }
  }
  void Hold(const HeldRow& row) override { held[row.table + "/" + row.key] = row; }
  void Release(const std::string& table, const std::string& key) override { held.erase(table + "/" + key); }
  uint64_t LocalHlc() override { return observed + 1; }
  std::vector<std::pair<std::string, std::string>> PendingColumns() override {
    std::set<std::pair<std::string, std::string>> cols;
    for (const auto& [id, cell] : pending) cols.emplace(cell.table, cell.column);
    return {cols.begin(), cols.end()};
  }
  std::vector<PendingCell> PendingCells(const std::string& table, const std::string& column) override {
    std::vector<PendingCell> out;
    for (const auto& [id, cell] : pending)
      if (cell.table == table && cell.column == column) out.push_back(cell);
    return out;
  }
  std::optional<PendingCell> FindPending(const std::string& table, const std::string& column,
                                         const std::string& key) override {
    auto it = pending.find(table + "/" + column + "/" + key);
    if (it == pending.end()) return std::nullopt;
    return it->second;
  }
  void Keep(const PendingCell& cell) override { pending[cell.table + "/" + cell.column + "/" + cell.key] = cell; }
  void DropPending(const std::string& table, const std::string& column) override {
    for (auto it = pending.begin(); it != pending.end();)
      it = it->second.table == table && it->second.column == column ? pending.erase(it) : std::next(it);
  }
  std::vector<GoneColumn> GoneColumns(int handle) override { return gone[handle]; }

  std::map<std::string, PendingCell> pending;   // kept cells, by table, column and key
  std::map<int, std::vector<GoneColumn>> gone;  // per table handle
  std::map<std::string, HeldRow> held;  // the quarantine, by table and key
  bool aborts = false;                  // a refusal spoils Atomically (as on PostgreSQL)
  int row_calls = 0;
};

const uint64_t kT1 = HlcFromMillis(WallClockMillis() - 60000);
const uint64_t kT2 = kT1 + 1;

FakeTable Items() {
  FakeTable t;
  t.name = "items";
  t.pk = {"id"};
  t.cols = {"name", "qty"};
  return t;
}

ColumnChange Change(uint32_t column, Value v, uint64_t hlc, int64_t cl = 1) {
  ColumnChange c;
  c.column = column;
  c.value = std::move(v);
  c.hlc = hlc;
  c.site = 0;
  c.cl = cl;
  return c;
}

// A payload from site 0x02 for table `items` (payload columns name, qty).
Payload ItemsPayload(std::vector<RowChanges> rows) {
  Payload p;
  p.site = Site(0x02);
  p.sites = {Site(0x02)};
  TableChanges tc;
  tc.name = "items";
  tc.pk = {"id"};
  tc.columns = {"name", "qty"};
  tc.rows = std::move(rows);
  p.tables.push_back(std::move(tc));
  return p;
}

RowChanges Row(int64_t id, int64_t cl, std::vector<ColumnChange> changes) {
  RowChanges r;
  r.key = {Value::Integer(id)};
  r.cl = cl;
  r.changes = std::move(changes);
  return r;
}

TEST(ApplyLoop, ANewRowIsInsertedWithItsColumnsAndItsClocks) {
  FakeApply port;
  port.tables = {Items()};
  Payload p = ItemsPayload({Row(1, 1, {Change(0, Value::Text("pen"), kT1), Change(1, Value::Integer(3), kT1)})});
  ApplyResult r = ApplyPayload(port, p);
  EXPECT_EQ(r.applied, 2u);
  EXPECT_EQ(r.ignored, 0u);
  EXPECT_EQ(r.rows, 1u);
  EXPECT_EQ(r.first_ver, 10);
  EXPECT_EQ(r.last_ver, 10);
  const FakeTable& t = port.tables[0];
  EXPECT_EQ(t.log, (std::vector<std::string>{"read 1|", "insert 1|[0='pen';1=3;]", "shadow 1|1@10"}));
  // A whole row from one origin keeps the shared clock alone.
  const FakeTable::Stored& s = t.shadow.at("1|");
  EXPECT_EQ(s.hlc, kT1);
  EXPECT_EQ(s.site, 1u);
  EXPECT_EQ(s.extras, "");
  EXPECT_EQ(port.observed, kT1);
  EXPECT_EQ(port.atomic_calls, 1);
}

TEST(ApplyLoop, ARowHeldHereIsUpdatedWithOnlyTheWinningColumns) {
  FakeApply port;
  port.tables = {Items()};
  ApplyPayload(port, ItemsPayload({Row(1, 1, {Change(0, Value::Text("pen"), kT1), Change(1, Value::Integer(3), kT1)})}));
  port.tables[0].log.clear();
  // name is newer, qty is the same version again: only name is written.
  ApplyResult r = ApplyPayload(
      port, ItemsPayload({Row(1, 1, {Change(0, Value::Text("ink"), kT2), Change(1, Value::Integer(3), kT1)})}));
  EXPECT_EQ(r.applied, 1u);
  EXPECT_EQ(r.ignored, 1u);
  const FakeTable& t = port.tables[0];
  EXPECT_EQ(t.log, (std::vector<std::string>{"read 1|", "update 1|[0='ink';]", "shadow 1|1@11"}));
  EXPECT_EQ(DebugString(t.base.at("1|")[0]), "'ink'");
  EXPECT_NE(t.shadow.at("1|").extras, "");  // name's clock differs from the shared one
}

TEST(ApplyLoop, AnUpdateThatFindsNoBaseRowFallsBackToTheInsert) {
  FakeApply port;
  port.tables = {Items()};
  ApplyPayload(port, ItemsPayload({Row(1, 1, {Change(0, Value::Text("pen"), kT1)})}));
  port.tables[0].base.clear();  // shadow row ahead of the table
  port.tables[0].log.clear();
  ApplyPayload(port, ItemsPayload({Row(1, 1, {Change(1, Value::Integer(4), kT2)})}));
  EXPECT_EQ(port.tables[0].log,
            (std::vector<std::string>{"read 1|", "update 1|[1=4;]", "insert 1|[1=4;]", "shadow 1|1@11"}));
}

TEST(ApplyLoop, NothingNewWritesNothing) {
  FakeApply port;
  port.tables = {Items()};
  Payload p = ItemsPayload({Row(1, 1, {Change(0, Value::Text("pen"), kT1)})});
  ApplyPayload(port, p);
  port.tables[0].log.clear();
  ApplyResult r = ApplyPayload(port, p);
  EXPECT_EQ(r.applied, 0u);
  EXPECT_EQ(r.ignored, 1u);
  EXPECT_EQ(r.rows, 1u);
  EXPECT_EQ(r.first_ver, 0);
  EXPECT_EQ(port.tables[0].log, (std::vector<std::string>{"read 1|"}));
}

TEST(ApplyLoop, ADeleteRemovesTheBaseRowAndKeepsNoColumnClocks) {
  FakeApply port;
  port.tables = {Items()};
  ApplyPayload(port, ItemsPayload({Row(1, 1, {Change(0, Value::Text("pen"), kT1)})}));
  port.tables[0].log.clear();
  ApplyResult r = ApplyPayload(port, ItemsPayload({Row(1, 2, {})}));
  EXPECT_EQ(r.applied, 1u);
  EXPECT_EQ(port.tables[0].log, (std::vector<std::string>{"read 1|", "delete 1|", "shadow 1|2@11"}));
  EXPECT_TRUE(port.tables[0].base.empty());
  EXPECT_EQ(port.tables[0].shadow.at("1|").hlc, 0u);
}

TEST(ApplyLoop, AKeyOnlyNewRowIsInsertedWithNoColumns) {
  FakeApply port;
  port.tables = {Items()};
  ApplyPayload(port, ItemsPayload({Row(7, 1, {})}));
  EXPECT_EQ(port.tables[0].log, (std::vector<std::string>{"read 7|", "insert 7|[]", "shadow 7|1@10"}));
}

TEST(ApplyLoop, UntrackedTablesAreCountedAndNeverOpened) {
  FakeApply port;
  Payload p = ItemsPayload({Row(1, 1, {Change(0, Value::Text("pen"), kT1)}), Row(2, 2, {})});
  ApplyResult r = ApplyPayload(port, p);
  EXPECT_EQ(r.untracked, 2u);
  EXPECT_EQ(r.rows, 0u);
  EXPECT_EQ(port.next_ver, 10);
}

TEST(ApplyLoop, PayloadNamesMapOntoLocalColumnsIgnoringCase) {
  FakeApply port;
  port.tables = {Items()};
  Payload p = ItemsPayload({Row(1, 1, {Change(0, Value::Integer(5), kT1)})});
  p.tables[0].columns = {"QTY"};
  ApplyPayload(port, p);
  EXPECT_EQ(port.tables[0].log, (std::vector<std::string>{"read 1|", "insert 1|[1=5;]", "shadow 1|1@10"}));
  // A column the site does not have is kept as a pending cell; the row still applies.
  p.tables[0].columns = {"price"};
  p.tables[0].rows[0].key = {Value::Integer(2)};
  ApplyResult r = ApplyPayload(port, p);
  EXPECT_EQ(r.untracked, 0u);
  EXPECT_EQ(r.kept, 1u);
  EXPECT_EQ(r.rows, 1u);
  EXPECT_EQ(port.tables[0].log.back(), "shadow 2|1@11");
  EXPECT_EQ(port.pending.size(), 1u);
}

// A payload from site 0x02 for table `items` with payload columns name, qty, price.
Payload WithPrice(std::vector<RowChanges> rows) {
  Payload p = ItemsPayload(std::move(rows));
  p.tables[0].columns = {"name", "qty", "price"};
  return p;
}

TEST(ApplyLoop, AChangeForAColumnNotHereIsKeptNewestOnlyAndAppliedWhenTheColumnAppears) {
  FakeApply port;
  port.tables = {Items()};
  ApplyResult r = ApplyPayload(port, WithPrice({Row(1, 1, {Change(0, Value::Text("pen"), kT1),
                                                           Change(2, Value::Integer(5), kT1)})}));
  EXPECT_EQ(r.kept, 1u);
  EXPECT_EQ(r.applied, 1u);
  // An older change of the same cell is merged away; a newer one replaces it.
  ApplyPayload(port, WithPrice({Row(1, 1, {Change(2, Value::Integer(4), kT1 - 5)})}));
  ApplyPayload(port, WithPrice({Row(1, 1, {Change(2, Value::Integer(7), kT2)})}));
  ASSERT_EQ(port.pending.size(), 1u);
  Payload kept = DecodeJson(port.pending.begin()->second.change);
  EXPECT_EQ(DebugString(kept.tables[0].rows[0].changes.at(0).value), DebugString(Value::Integer(7)));
  // Nothing happens to the kept cell while the column is not here.
  r = ApplyPayload(port, ItemsPayload({}));
  EXPECT_EQ(r.unkept, 0u);
  EXPECT_EQ(port.pending.size(), 1u);
  // ADD COLUMN price: the next apply (even of an empty payload) merges it in.
  port.tables[0].cols.push_back("price");
  port.tables[0].base.at("1|").push_back(Value::Null());
  r = ApplyPayload(port, ItemsPayload({}));
  EXPECT_EQ(r.unkept, 1u);
  EXPECT_EQ(r.applied, 1u);
  EXPECT_TRUE(port.pending.empty());
  EXPECT_EQ(port.tables[0].log.back(), "shadow 1|1@" + std::to_string(port.next_ver - 1));
  EXPECT_EQ(DebugString(port.tables[0].base.at("1|")[2]), DebugString(Value::Integer(7)));
}

TEST(ApplyLoop, ADroppedColumnIsIgnoredAndARenamedOneLandsInItsNewName) {
  FakeApply port;
  port.tables = {Items()};
  port.tables[0].cols = {"title", "qty"};
  port.gone[0] = {GoneColumn{"price", ""}, GoneColumn{"name", "label"}, GoneColumn{"label", "title"}};
  ApplyResult r = ApplyPayload(port, WithPrice({Row(1, 1, {Change(0, Value::Text("pen"), kT1),
                                                           Change(2, Value::Integer(5), kT1)})}));
  EXPECT_EQ(r.untracked, 1u);
  EXPECT_EQ(r.kept, 0u);
  EXPECT_TRUE(port.pending.empty());
  EXPECT_EQ(DebugString(port.tables[0].base.at("1|")[0]), DebugString(Value::Text("pen")));
  // The old and the new name in one payload: the newer change wins, whichever name it has.
  Payload both = ItemsPayload({Row(1, 1, {Change(0, Value::Text("old name, newer"), kT2 + 1),
                                          Change(1, Value::Text("new name, older"), kT2)})});
  both.tables[0].columns = {"name", "title"};
  r = ApplyPayload(port, both);
  EXPECT_EQ(r.applied, 1u);
  EXPECT_EQ(DebugString(port.tables[0].base.at("1|")[0]), DebugString(Value::Text("old name, newer")));
}

TEST(ApplyLoop, AClockTooFarAheadIsRefusedBeforeAnyTableIsLookedAt) {
  FakeApply port;
  port.tables = {Items()};
  port.drift_setting = 1000;
  uint64_t ahead = HlcFromMillis(WallClockMillis() + 3600 * 1000);
  try {
    ApplyPayload(port, ItemsPayload({Row(1, 1, {Change(0, Value::Text("pen"), ahead)})}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kClockDrift);
  }
  EXPECT_EQ(port.atomic_calls, 0);
  EXPECT_TRUE(port.tables[0].log.empty());
}

TEST(ApplyLoop, AFailureLeavesNothingApplied) {
  FakeApply port;
  port.tables = {Items()};
  port.fail_inside = true;
  EXPECT_THROW(ApplyPayload(port, ItemsPayload({Row(1, 1, {Change(0, Value::Text("pen"), kT1)})})), Error);
  EXPECT_TRUE(port.tables[0].base.empty());
  EXPECT_TRUE(port.tables[0].shadow.empty());
}

TEST(ApplyLoop, TheResultDocument) {
  ApplyResult r;
  r.applied = 3;
  r.ignored = 1;
  r.untracked = 2;
  r.rows = 2;
  r.quarantined = 1;
  r.held = 4;
  EXPECT_EQ(ApplyResultJson(r, 77).dump(),
            R"({"applied":3,"db_version":77,"held":4,"ignored":1,"kept":0,"orphans":0,"quarantined":1,"released":0,)"
            R"("rows":2,"unkept":0,"untracked":2})");
}

TEST(ApplyLoop, ARefusedRowIsHeldWithItsChangesAndTheRestApplies) {
  FakeApply port;
  port.tables = {Items()};
  port.tables[0].refuse.insert(KeyStr({Value::Integer(1)}));
  ApplyResult r = ApplyPayload(port, ItemsPayload({Row(1, 1, {Change(0, Value::Text("pen"), kT1)}),
                                                   Row(2, 1, {Change(0, Value::Text("ink"), kT1)})}));
  EXPECT_EQ(r.quarantined, 1u);
  EXPECT_EQ(r.held, 1u);
  EXPECT_EQ(r.applied, 1u);  // the held row's change is counted as held only
  EXPECT_EQ(port.tables[0].base.count(KeyStr({Value::Integer(2)})), 1u);
  EXPECT_EQ(port.tables[0].shadow.count(KeyStr({Value::Integer(1)})), 0u) << "a held row's clocks are not adopted";
  ASSERT_EQ(port.held.size(), 1u);
  EXPECT_NE(port.held.begin()->second.error.find("refused"), std::string::npos);

  // The next apply (even an empty one) retries it: still refused, then accepted.
  r = ApplyPayload(port, ItemsPayload({}));
  EXPECT_EQ(r.held, 1u);
  port.tables[0].refuse.clear();
  r = ApplyPayload(port, ItemsPayload({}));
  EXPECT_EQ(r.released, 1u);
  EXPECT_EQ(r.held, 0u);
  EXPECT_TRUE(port.held.empty());
  EXPECT_EQ(port.tables[0].base.at(KeyStr({Value::Integer(1)}))[0], Value::Text("pen"));
}

TEST(ApplyLoop, HeldChangesOfOneRowMergeAndTheNewerWins) {
  FakeApply port;
  port.tables = {Items()};
  port.tables[0].refuse.insert(KeyStr({Value::Integer(1)}));
  ApplyPayload(port, ItemsPayload({Row(1, 1, {Change(0, Value::Text("new"), kT2)})}));
  ApplyPayload(port, ItemsPayload({Row(1, 1, {Change(0, Value::Text("old"), kT1), Change(1, Value::Integer(5), kT1)})}));
  ASSERT_EQ(port.held.size(), 1u);
  port.tables[0].refuse.clear();
  ApplyPayload(port, ItemsPayload({}));
  const std::vector<Value>& row = port.tables[0].base.at(KeyStr({Value::Integer(1)}));
  EXPECT_EQ(row[0], Value::Text("new"));
  EXPECT_EQ(row[1], Value::Integer(5));
}

TEST(ApplyLoop, WhereARefusalSpoilsTheTransactionThePageIsRedoneRowByRow) {
  FakeApply port;
  port.aborts = true;
  port.tables = {Items()};
  port.tables[0].refuse.insert(KeyStr({Value::Integer(2)}));
  ApplyResult r = ApplyPayload(port, ItemsPayload({Row(1, 1, {Change(0, Value::Text("pen"), kT1)}),
                                                   Row(2, 1, {Change(0, Value::Text("ink"), kT1)}),
                                                   Row(3, 1, {Change(0, Value::Text("cap"), kT1)})}));
  EXPECT_EQ(port.atomic_calls, 2);
  EXPECT_GE(port.row_calls, 3);
  EXPECT_EQ(r.applied, 2u);
  EXPECT_EQ(r.held, 1u);
  EXPECT_EQ(port.tables[0].base.size(), 2u);

  // A held row that fails again on retry is tried on its own: the next page keeps its fast path.
  port.atomic_calls = 0;
  r = ApplyPayload(port, ItemsPayload({Row(4, 1, {Change(0, Value::Text("nib"), kT1)})}));
  EXPECT_EQ(port.atomic_calls, 1);
  EXPECT_EQ(r.held, 1u);
  EXPECT_EQ(r.ranges.size(), 1u);
}

}  // namespace
}  // namespace deltasync
