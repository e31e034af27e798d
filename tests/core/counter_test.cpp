// The counter policy (common/counter, common/column_policy, the counter parts of row_apply
// and of the payload codecs): the decision table, the stored contributions, the sums a row
// apply writes, what a collect sends, and every refusal.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "common/column_policy.hpp"
#include "common/counter.hpp"
#include "common/error.hpp"
#include "common/hlc.hpp"
#include "common/payload_binary.hpp"
#include "common/row_apply.hpp"
#include "common/row_clocks.hpp"
#include "common/schema_rules.hpp"
#include "test_util.hpp"

namespace deltasync {
namespace {

const uint64_t kT1 = HlcFromMillis(1700000000000);
const uint64_t kT2 = kT1 + 1;

// Runs f, expecting a deltasync Error whose message contains `part`.
template <typename F>
void ExpectErrorWith(F f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing: " << part;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).rfind("deltasync: ", 0), 0u);
  }
}

Contribution Contrib(uint32_t column, uint32_t site, int64_t value, uint64_t hlc, int64_t cl, int64_t ver = 7) {
  return Contribution{column, site, value, hlc, ver, cl};
}

// The decision table of ContributionWins: (merged life, local contribution, incoming) → wins.
TEST(CounterDecision, OnlyTheCurrentLifeAndTheLaterClockOfOneSiteWin) {
  Contribution local = Contrib(0, 1, 5, kT1, 1);
  // No local contribution of that site: any contribution of the current life wins.
  EXPECT_TRUE(ContributionWins(1, nullptr, 1, kT1));
  // Of two from one site in one life, the later clock.
  EXPECT_TRUE(ContributionWins(1, &local, 1, kT2));
  EXPECT_FALSE(ContributionWins(1, &local, 1, kT1));  // the same one again: idempotent
  Contribution later = Contrib(0, 1, 5, kT2, 1);
  EXPECT_FALSE(ContributionWins(1, &later, 1, kT1));  // an older one arriving late
  // A contribution of an older life than the row's (the row was deleted since) never counts.
  EXPECT_FALSE(ContributionWins(3, nullptr, 1, kT2));
  EXPECT_FALSE(ContributionWins(3, &local, 1, kT2));
  // A new life's contribution replaces the old life's, whatever the clocks.
  Contribution old_life_late = Contrib(0, 1, 5, kT2 + 100, 1);
  EXPECT_TRUE(ContributionWins(3, &old_life_late, 3, kT1));
}

TEST(CounterDecision, SumsAndOverflow) {
  RowClocks rc;
  rc.PutContribution(Contrib(1, 2, 10, kT1, 3));
  rc.PutContribution(Contrib(1, 1, -4, kT1, 3));
  rc.PutContribution(Contrib(1, 3, 100, kT1, 1));  // an older life: not counted
  rc.PutContribution(Contrib(0, 1, 1000, kT1, 3));  // another column
  EXPECT_EQ(OthersSum(rc, 1, 3, "t", "qty"), 6);
  EXPECT_EQ(OthersSum(rc, 0, 3, "t", "qty"), 1000);
  EXPECT_EQ(OthersSum(rc, 2, 3, "t", "qty"), 0);
  const int64_t max = std::numeric_limits<int64_t>::max(), min = std::numeric_limits<int64_t>::min();
  EXPECT_EQ(CounterAdd(max - 1, 1, "t", "qty"), max);
  ExpectErrorWith([&] { CounterAdd(max, 1, "t", "qty"); }, "counter \"qty\" of table \"t\" would leave the 64-bit");
  ExpectErrorWith([&] { CounterSub(min, 1, "t", "qty"); }, "64-bit integer range");
  EXPECT_EQ(CounterValue(Value::Null(), "t", "qty"), 0);
  EXPECT_EQ(CounterValue(Value::Integer(-3), "t", "qty"), -3);
  ExpectErrorWith([&] { CounterValue(Value::Real(1.5), "t", "qty"); }, "not an integer");
}

TEST(CounterStorage, ContributionsRoundTripAndStaySorted) {
  RowClocks rc(ColClock{kT1, 0, 0, 0});
  rc.Set(1, ColClock{kT2, 0, 0, 0});
  rc.PutContribution(Contrib(1, 3, -7, kT2, 1, 9));
  rc.PutContribution(Contrib(1, 2, 12, kT1, 1, 8));
  rc.PutContribution(Contrib(0, 5, std::numeric_limits<int64_t>::min(), kT1, 1, 8));
  rc.PutContribution(Contrib(1, 2, 13, kT2, 1, 10));  // replaces site 2's
  ASSERT_EQ(rc.Contributions().size(), 3u);
  EXPECT_EQ(rc.Contributions()[0].column, 0u);
  EXPECT_EQ(rc.Contributions()[1].site, 2u);
  EXPECT_EQ(rc.Contributions()[1].value, 13);
  std::string extras = rc.EncodeExtras();
  ASSERT_FALSE(extras.empty());
  EXPECT_EQ(extras[0], 2);  // format 2: with contributions
  RowClocks back = RowClocks::Decode(kT1, 0, extras);
  EXPECT_EQ(back.Contributions(), rc.Contributions());
  EXPECT_EQ(back.Get(1), rc.Get(1));
  ASSERT_NE(back.FindContribution(1, 3), nullptr);
  EXPECT_EQ(back.FindContribution(1, 3)->value, -7);
  EXPECT_EQ(back.FindContribution(1, 4), nullptr);
  // Without contributions the stored form is format 1, as before policies existed.
  RowClocks plain(ColClock{kT1, 0, 0, 0});
  plain.Set(1, ColClock{kT2, 0, 0, 0});
  EXPECT_EQ(plain.EncodeExtras()[0], 1);
  back.DropContributionsBefore(3);
  EXPECT_TRUE(back.Contributions().empty());
  // A contribution of site 0 (this site's own is never stored) is malformed.
  std::string bad = extras;
  RowClocks zero;
  zero.PutContribution(Contrib(0, 1, 1, kT1, 1));
  std::string enc = zero.EncodeExtras();
  enc[enc.size() - 5] = 0;  // the site ordinal of the one contribution
  EXPECT_THROW(RowClocks::Decode(kT1, 0, enc), Error);
}

// A miniature site: one row of table t(id; name lww, qty counter), its shadow clocks and
// base values, driven through the core's DecideRow / CounterWrites / AdoptWinners /
// CollectRowChanges exactly as the apply and collect loops drive them.
struct MiniSite {
  SiteId id;
  std::vector<SiteId> sites;  // ordinal -> id (0 = this site)
  int64_t cl = 0, ver = 0;
  RowClocks clocks;
  Value name = Value::Null(), qty = Value::Null();
  std::vector<std::string> cols = {"name", "qty"};
  std::vector<ColumnPolicy> policies = {ColumnPolicy::kLww, ColumnPolicy::kCounter};
  uint64_t now = kT1;

  uint32_t Ord(const SiteId& s) {
    for (uint32_t k = 0; k < sites.size(); ++k)
      if (sites[k] == s) return k;
    sites.push_back(s);
    return static_cast<uint32_t>(sites.size() - 1);
  }
  // A local insert (a new life) or an update writing qty: what the triggers record.
  void Insert(int64_t value) {
    cl = cl + 1 - (cl & 1);
    ++ver;
    clocks = RowClocks(ColClock{++now, 0, ver, cl});
    qty = Value::Integer(value);
    name = Value::Text("n");
  }
  void WriteQty(int64_t value) {
    ++ver;
    uint64_t h = std::max(++now, clocks.Get(1).hlc + 1);
    clocks.Set(1, ColClock{h, 0, ver, cl});
    qty = Value::Integer(value);
  }
  void Delete() {
    cl += 1;
    ++ver;
    clocks = RowClocks(ColClock{++now, 0, ver, 0});
  }
  Payload Changes(int64_t since) {
    Payload p;
    p.site = id;
    p.sites = sites;
    TableChanges t;
    t.name = "t";
    t.pk = {"id"};
    t.columns = cols;
    t.policies = policies;
    RowChanges r;
    r.key = {Value::Integer(1)};
    r.cl = cl;
    if (RowExists(cl))
      CollectRowChanges(
          r, clocks, 2, since, {}, [&](uint32_t c) { return c == 0 ? name : qty; }, [](uint32_t o) { return o; },
          &policies, &t.name, &cols);
    t.rows.push_back(r);
    p.tables.push_back(t);
    return p;
  }
  void Apply(const Payload& p) {
    std::vector<uint32_t> ords;
    for (const SiteId& s : p.sites) ords.push_back(Ord(s));
    const TableChanges& t = p.tables[0];
    TableMapping map = MapTable("t", {"id"}, cols, t, ords, &policies);
    const RowChanges& r = t.rows[0];
    RowDecision d = DecideRow(cl, clocks, r, map, [&](uint32_t o) -> const SiteId& { return sites[o]; });
    std::vector<CounterWrite> writes;
    CounterWrites(writes, d, clocks, cl, r, map, cols, "t", [&](uint32_t c) { return c == 0 ? name : qty; });
    if (d.merge.applied == 0) return;
    for (size_t k : d.winners) name = r.changes[k].value;
    for (const CounterWrite& w : writes) qty = w.value;
    ++ver;
    AdoptWinners(clocks, d, r, map, 2, ver);
    clocks.Resolve(ver, d.merge.cl);
    cl = d.merge.cl;
    now = std::max(now, MaxHlc(p));
  }
};

MiniSite Mini(uint8_t b) {
  MiniSite m;
  m.id = dstest::MakeSite(b);
  m.sites = {m.id};
  return m;
}

TEST(CounterMerge, ConcurrentSalesAddUpInAnyOrderAndAnyNumberOfTimes) {
  MiniSite a = Mini(0x10), b = Mini(0x20), c = Mini(0x30);
  a.Insert(10);
  b.Apply(a.Changes(0));
  c.Apply(a.Changes(0));
  EXPECT_EQ(b.qty, Value::Integer(10));
  a.WriteQty(8);  // sells 2
  b.WriteQty(9);  // sells 1
  c.WriteQty(c.qty.i - 4);
  c.WriteQty(c.qty.i + 1);  // sells 4, takes one back
  for (int round = 0; round < 2; ++round)
    for (MiniSite* x : {&a, &b, &c})
      for (MiniSite* y : {&c, &a, &b})
        if (x != y) y->Apply(x->Changes(0));
  for (MiniSite* s : {&a, &b, &c}) EXPECT_EQ(s->qty, Value::Integer(10 - 2 - 1 - 4 + 1)) << DebugString(s->qty);
}

TEST(CounterMerge, ADeleteEndsTheLifeAndTheReinsertIsTheInsertersContribution) {
  MiniSite a = Mini(0x10), b = Mini(0x20);
  a.Insert(10);
  b.Apply(a.Changes(0));
  b.WriteQty(7);  // -3 on b, not yet seen by a
  a.Delete();
  a.Insert(50);  // a new life: only a's 50
  b.Apply(a.Changes(0));
  a.Apply(b.Changes(0));
  EXPECT_EQ(a.qty, Value::Integer(50));
  EXPECT_EQ(b.qty, Value::Integer(50));
  b.WriteQty(45);
  a.Apply(b.Changes(0));
  EXPECT_EQ(a.qty, Value::Integer(45));
  // This site's own contribution echoed back by another site changes nothing.
  Payload echo = b.Changes(0);
  int64_t before = a.ver;
  a.Apply(echo);
  EXPECT_EQ(a.ver, before);
}

TEST(CounterMerge, ASumOutOfRangeIsRefused) {
  MiniSite a = Mini(0x10), b = Mini(0x20);
  a.Insert(std::numeric_limits<int64_t>::max() - 1);
  b.Apply(a.Changes(0));
  b.WriteQty(std::numeric_limits<int64_t>::max());  // +1 on b
  a.WriteQty(std::numeric_limits<int64_t>::max());  // +1 on a
  ExpectErrorWith([&] { a.Apply(b.Changes(0)); }, "would leave the 64-bit integer range");
  EXPECT_EQ(a.qty, Value::Integer(std::numeric_limits<int64_t>::max()));  // nothing changed
}

TEST(CounterPayload, PoliciesTravelAsVersion2InBothCodecs) {
  MiniSite a = Mini(0x10), b = Mini(0x20);
  a.Insert(3);
  b.Apply(a.Changes(0));
  b.WriteQty(1);
  Payload p = b.Changes(0);
  EXPECT_EQ(PayloadVersionOf(p), kPayloadVersionPolicies);
  std::string json = EncodeJson(p);
  EXPECT_NE(json.find("\"version\":2"), std::string::npos);
  EXPECT_NE(json.find("\"policies\":[\"lww\",\"counter\"]"), std::string::npos) << json;
  Payload back = DecodeJson(json);
  ASSERT_EQ(back.tables[0].policies, p.tables[0].policies);
  ASSERT_EQ(back.tables[0].rows[0].changes.size(), 3u);  // name, and two contributions to qty
  Payload bin = DecodeBinary(EncodeBinary(p));
  EXPECT_EQ(bin.tables[0].policies, p.tables[0].policies);
  EXPECT_EQ(EncodeJson(bin), json);
  // Without a policy the payload stays version 1, byte for byte as before.
  p.tables[0].policies.clear();
  p.tables[0].rows[0].changes.resize(1);
  EXPECT_EQ(PayloadVersionOf(p), kPayloadVersion);
  EXPECT_NE(EncodeJson(p).find("\"version\":1"), std::string::npos);
  EXPECT_EQ(EncodeJson(p).find("policies"), std::string::npos);
  EXPECT_EQ(EncodeBinary(p)[4], 1);
}

TEST(CounterPayload, MalformedCounterChangesAreRefused) {
  MiniSite a = Mini(0x10), b = Mini(0x20);
  a.Insert(3);
  b.Apply(a.Changes(0));
  b.WriteQty(1);
  Payload p = b.Changes(0);
  Payload twice = p;
  auto& ch = twice.tables[0].rows[0].changes;
  for (ColumnChange& c : ch)
    if (c.column == 1) c.site = 0;  // two contributions of one site
  ExpectErrorWith([&] { ValidatePayload(twice); }, "a site contributes twice to a counter in one row");
  Payload real = p;
  for (ColumnChange& c : real.tables[0].rows[0].changes)
    if (c.column == 1) c.value = Value::Real(1.0);
  ExpectErrorWith([&] { ValidatePayload(real); }, "is not an integer");
  Payload count = p;
  count.tables[0].policies.push_back(ColumnPolicy::kLww);
  ExpectErrorWith([&] { ValidatePayload(count); }, "one policy per column");
  std::string json = EncodeJson(p);
  std::string unknown = json;
  unknown.replace(unknown.find("\"counter\""), 9, "\"average\"");
  ExpectErrorWith([&] { DecodeJson(unknown); }, "unknown policy \"average\"");
}

TEST(CounterPayload, AReceiverWhoseDeclarationDiffersRefusesTheTable) {
  MiniSite a = Mini(0x10);
  a.Insert(3);
  Payload p = a.Changes(0);
  std::vector<uint32_t> ords = {0};
  std::vector<ColumnPolicy> lww;  // every column last-writer-wins here
  ExpectErrorWith([&] { MapTable("t", {"id"}, {"name", "qty"}, p.tables[0], ords, &lww); },
                  "column \"qty\" merges as counter where the changes come from but as lww here");
  p.tables[0].policies.clear();
  std::vector<ColumnPolicy> counter = {ColumnPolicy::kLww, ColumnPolicy::kCounter};
  ExpectErrorWith([&] { MapTable("t", {"id"}, {"name", "qty"}, p.tables[0], ords, &counter); },
                  "merges as lww where the changes come from but as counter here");
  EXPECT_NO_THROW(MapTable("t", {"id"}, {"name", "qty"}, p.tables[0], ords, &lww));
}

TEST(CounterDeclaration, OptionsNameAPolicyAsTextOrInAnObject) {
  EnableOptions o = ParseEnableOptions(R"({"columns": {"stock": "counter", "id": {"uuid": "hex32"},
                                           "n": {"policy": "counter"}, "m": {"policy": "lww", "uuid": "blob"}}})");
  ASSERT_EQ(o.columns.size(), 4u);
  for (const ColumnOption& c : o.columns) {
    if (c.column == "stock") {
      EXPECT_TRUE(c.has_policy && c.policy == ColumnPolicy::kCounter && !c.has_repr);
    }
    if (c.column == "id") {
      EXPECT_TRUE(!c.has_policy && c.has_repr && c.repr == ReprForm::kUuidHex32);
    }
    if (c.column == "n") {
      EXPECT_TRUE(c.has_policy && c.policy == ColumnPolicy::kCounter && !c.has_repr);
    }
    if (c.column == "m") {
      EXPECT_TRUE(c.has_policy && c.policy == ColumnPolicy::kLww && c.repr == ReprForm::kUuidBlob);
    }
  }
  ExpectErrorWith([] { ParseEnableOptions(R"({"columns": {"stock": "sum"}})"); },
                  "unknown policy \"sum\" for column \"stock\" (known: lww, counter, json)");
  ExpectErrorWith([] { ParseEnableOptions(R"({"columns": {"stock": {"policy": 1}}})"); }, "the options of column \"stock\"");
  ExpectErrorWith([] { ParseEnableOptions(R"({"columns": {"stock": 3}})"); }, "the options of column \"stock\"");
  ExpectErrorWith([] { ParseEnableOptions(R"({"columns": {"stock": {}}})"); }, "the options of column \"stock\"");
}

TEST(CounterDeclaration, ColumnsThatCannotBeCountersAndUnsafeChanges) {
  ExpectErrorWith([] { CheckColumnPolicy("t", "id", ColumnPolicy::kCounter, true, true, "INTEGER"); },
                  "part of the primary key");
  ExpectErrorWith([] { CheckColumnPolicy("t", "price", ColumnPolicy::kCounter, false, false, "REAL"); },
                  "column \"price\" of table \"t\" is declared \"REAL\"; a counter must be an integer column");
  EXPECT_NO_THROW(CheckColumnPolicy("t", "qty", ColumnPolicy::kCounter, false, true, "INTEGER"));
  EXPECT_NO_THROW(CheckColumnPolicy("t", "id", ColumnPolicy::kLww, true, false, "TEXT"));
  EXPECT_NO_THROW(CheckPolicyChange("t", "qty", ColumnPolicy::kLww, ColumnPolicy::kCounter, 0));
  EXPECT_NO_THROW(CheckPolicyChange("t", "qty", ColumnPolicy::kCounter, ColumnPolicy::kCounter, 5));
  ExpectErrorWith([] { CheckPolicyChange("t", "qty", ColumnPolicy::kLww, ColumnPolicy::kCounter, 5); },
                  "merges as lww; changing it to counter would merge the 5 rows");
  ExpectErrorWith([] { CheckPolicyChange("t", "qty", ColumnPolicy::kCounter, ColumnPolicy::kLww, 1); },
                  "merges as counter; changing it to lww");
}

}  // namespace
}  // namespace deltasync
