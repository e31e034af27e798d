// Column representations (common/value_repr): every form both ways, the spellings refused,
// the values that pass unchanged, and the property that makes keys one row everywhere: the
// conversions are inverse bijections (local -> wire -> local and wire -> local -> wire give
// back the same value, for every value either direction accepts).
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/value_repr.hpp"

namespace deltasync {
namespace {

const ReprForm kAll[] = {ReprForm::kUuidDashed,         ReprForm::kUuidHex32,          ReprForm::kUuidBlob,
                         ReprForm::kTimestampNaiveUtc, ReprForm::kTimestampNaiveUtcUs, ReprForm::kTimestampIsoUtcMs};

const char* kDashed = "efbecc1f-dd13-488d-80fa-90d6e48aedea";
const char* kHex = "efbecc1fdd13488d80fa90d6e48aedea";
const std::string kBytes("\xef\xbe\xcc\x1f\xdd\x13\x48\x8d\x80\xfa\x90\xd6\xe4\x8a\xed\xea", 16);

// Converts local -> wire, expecting a conversion.
Value Wire(ReprForm f, const Value& local) {
  Value out;
  EXPECT_EQ(LocalToWire(f, local, out), ReprOutcome::kConverted) << DebugString(local);
  return out;
}
Value Local(ReprForm f, const Value& wire) {
  Value out;
  EXPECT_EQ(WireToLocal(f, wire, out), ReprOutcome::kConverted) << DebugString(wire);
  return out;
}
ReprOutcome ToWire(ReprForm f, const Value& v) {
  Value out;
  return LocalToWire(f, v, out);
}
ReprOutcome ToLocal(ReprForm f, const Value& v) {
  Value out;
  return WireToLocal(f, v, out);
}

TEST(ValueRepr, OptionNames) {
  EXPECT_EQ(ParseReprForm("uuid", "hex32"), ReprForm::kUuidHex32);
  EXPECT_EQ(ParseReprForm("uuid", "blob"), ReprForm::kUuidBlob);
  EXPECT_EQ(ParseReprForm("uuid", "dashed"), ReprForm::kUuidDashed);
  EXPECT_EQ(ParseReprForm("timestamp", "naive_utc"), ReprForm::kTimestampNaiveUtc);
  EXPECT_EQ(ParseReprForm("timestamp", "naive_utc_us"), ReprForm::kTimestampNaiveUtcUs);
  EXPECT_EQ(ParseReprForm("timestamp", "iso_utc_ms"), ReprForm::kTimestampIsoUtcMs);
  for (ReprForm f : kAll) EXPECT_EQ(ParseReprForm(ReprKindName(f), ReprFormName(f)), f);
  EXPECT_EQ(ReprJson(ReprForm::kUuidHex32), (nlohmann::json{{"uuid", "hex32"}}));
  EXPECT_EQ(ReprJson(ReprForm::kNone), nlohmann::json::object());
  try {
    ParseReprForm("uuid", "hex");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "deltasync: unknown uuid representation \"hex\" (known: dashed, hex32, blob)");
  }
  try {
    ParseReprForm("money", "x");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "deltasync: unknown column option \"money\" (known: uuid, timestamp)");
  }
}

TEST(ValueRepr, UuidForms) {
  EXPECT_EQ(Wire(ReprForm::kUuidHex32, Value::Text(kHex)), Value::Text(kDashed));
  EXPECT_EQ(Local(ReprForm::kUuidHex32, Value::Text(kDashed)), Value::Text(kHex));
  EXPECT_EQ(Wire(ReprForm::kUuidBlob, Value::Blob(kBytes)), Value::Text(kDashed));
  EXPECT_EQ(Local(ReprForm::kUuidBlob, Value::Text(kDashed)), Value::Blob(kBytes));
  // dashed is the wire form itself: unchanged, but other spellings are still refused.
  EXPECT_EQ(ToWire(ReprForm::kUuidDashed, Value::Text(kDashed)), ReprOutcome::kAsIs);
  EXPECT_EQ(ToLocal(ReprForm::kUuidDashed, Value::Text(kDashed)), ReprOutcome::kAsIs);
  EXPECT_EQ(ToWire(ReprForm::kUuidDashed, Value::Text(kHex)), ReprOutcome::kOtherSpelling);
}

TEST(ValueRepr, UuidOtherSpellingsAreRefused) {
  // Each is a uuid PostgreSQL's input reads, so sent as it is it would come back as a second key.
  for (const char* s : {"EFBECC1F-DD13-488D-80FA-90D6E48AEDEA", "{efbecc1f-dd13-488d-80fa-90d6e48aedea}",
                        "efbe-cc1f-dd13-488d-80fa-90d6-e48a-edea", "EFBECC1FDD13488D80FA90D6E48AEDEA"}) {
    for (ReprForm f : {ReprForm::kUuidDashed, ReprForm::kUuidHex32, ReprForm::kUuidBlob}) {
      EXPECT_EQ(ToWire(f, Value::Text(s)), ReprOutcome::kOtherSpelling) << s;
      EXPECT_EQ(ToLocal(f, Value::Text(s)), ReprOutcome::kOtherSpelling) << s;
    }
  }
  // The canonical dashed text in a hex32 or blob column is the phantom-key case.
  EXPECT_EQ(ToWire(ReprForm::kUuidHex32, Value::Text(kDashed)), ReprOutcome::kOtherSpelling);
  EXPECT_EQ(ToWire(ReprForm::kUuidBlob, Value::Text(kDashed)), ReprOutcome::kOtherSpelling);
  EXPECT_EQ(ToWire(ReprForm::kUuidHex32, Value::Blob(kBytes)), ReprOutcome::kOtherSpelling);
  // A local spelling arriving from a site that declares the column differently.
  EXPECT_EQ(ToLocal(ReprForm::kUuidHex32, Value::Text(kHex)), ReprOutcome::kOtherSpelling);
  EXPECT_EQ(ToLocal(ReprForm::kUuidBlob, Value::Blob(kBytes)), ReprOutcome::kOtherSpelling);
}

TEST(ValueRepr, ValuesOfOtherKindsPassUnchanged) {
  std::vector<Value> others = {Value::Null(),        Value::Integer(7),         Value::Real(1.5),
                               Value::Text(""),      Value::Text("not a uuid"), Value::Text("efbecc1f-dd13"),
                               Value::Blob("short"), Value::Text(std::string(kHex) + "0"),
                               Value::Text("efbecc1f--dd13-488d-80fa-90d6e48aedea"), Value::Text("-efbecc1fdd13488d80fa90d6e48aedea"),
                               Value::Text("2026-13-01 00:00:00"), Value::Text("2026-02-30 00:00:00"),
                               Value::Text("yesterday"), Value::Text("2026-12-01 21:39:57 BC"), Value::Text("21:39:57")};
  for (ReprForm f : kAll)
    for (const Value& v : others) {
      EXPECT_EQ(ToWire(f, v), ReprOutcome::kAsIs) << ReprFormName(f) << " " << DebugString(v);
      EXPECT_EQ(ToLocal(f, v), ReprOutcome::kAsIs) << ReprFormName(f) << " " << DebugString(v);
    }
}

TEST(ValueRepr, TimestampForms) {
  // PostgreSQL's timestamptz text in UTC: fraction without trailing zeros, +00.
  const ReprForm naive = ReprForm::kTimestampNaiveUtc, us = ReprForm::kTimestampNaiveUtcUs,
                 ms = ReprForm::kTimestampIsoUtcMs;
  EXPECT_EQ(Local(naive, Value::Text("2026-12-01 21:39:58.037039+00")), Value::Text("2026-12-01 21:39:58.037039"));
  EXPECT_EQ(Local(naive, Value::Text("2026-12-01 21:39:58.5+00")), Value::Text("2026-12-01 21:39:58.500000"));
  EXPECT_EQ(Local(naive, Value::Text("2026-12-01 21:39:58+00")), Value::Text("2026-12-01 21:39:58"));
  EXPECT_EQ(Wire(naive, Value::Text("2026-12-01 21:39:57.064847")), Value::Text("2026-12-01 21:39:57.064847+00"));
  EXPECT_EQ(Wire(naive, Value::Text("2026-12-01 21:39:57.500000")), Value::Text("2026-12-01 21:39:57.5+00"));
  EXPECT_EQ(Wire(naive, Value::Text("2024-02-29 00:00:00")), Value::Text("2024-02-29 00:00:00+00"));
  EXPECT_EQ(Local(us, Value::Text("2026-12-01 21:39:58+00")), Value::Text("2026-12-01 21:39:58.000000"));
  EXPECT_EQ(Wire(us, Value::Text("2026-12-01 21:39:58.000100")), Value::Text("2026-12-01 21:39:58.0001+00"));
  EXPECT_EQ(Local(ms, Value::Text("2026-12-01 21:39:58.12+00")), Value::Text("2026-12-01T21:39:58.120Z"));
  EXPECT_EQ(Wire(ms, Value::Text("2026-12-01T21:39:58.000Z")), Value::Text("2026-12-01 21:39:58+00"));
}

TEST(ValueRepr, TimestampOtherSpellingsAreRefused) {
  const ReprForm naive = ReprForm::kTimestampNaiveUtc;
  // Local values of the type, not in the declared spelling.
  for (const char* s : {"2026-12-01 21:39:57+00", "2026-12-01T21:39:57", "2026-12-01 21:39:57.5",
                        "2026-12-01 21:39:57.000000", "2026-12-01 21:39", "2026-12-01", "2026-12-01 21:39:57Z",
                        "2026-12-01 21:39:57.0648471", "2026-12-01 24:00:00", "2026-12-01 23:59:60"})
    EXPECT_EQ(ToWire(naive, Value::Text(s)), ReprOutcome::kOtherSpelling) << s;
  EXPECT_EQ(ToWire(ReprForm::kTimestampNaiveUtcUs, Value::Text("2026-12-01 21:39:57")), ReprOutcome::kOtherSpelling);
  EXPECT_EQ(ToWire(ReprForm::kTimestampIsoUtcMs, Value::Text("2026-12-01T21:39:57.5Z")), ReprOutcome::kOtherSpelling);
  // Wire values that are not PostgreSQL's canonical timestamptz text: a timestamp without
  // time zone, another offset, trailing zeros; and one a milliseconds form cannot hold.
  for (const char* s : {"2026-12-01 21:39:57", "2026-12-01 21:39:57+02", "2026-12-01 21:39:57.50+00",
                        "2026-12-01 21:39:57+00:00", "2026-12-01T21:39:57Z"})
    EXPECT_EQ(ToLocal(naive, Value::Text(s)), ReprOutcome::kOtherSpelling) << s;
  EXPECT_EQ(ToLocal(ReprForm::kTimestampIsoUtcMs, Value::Text("2026-12-01 21:39:57.0001+00")),
            ReprOutcome::kOtherSpelling);
}

TEST(ValueRepr, ErrorsNameTableAndColumn) {
  Value v = Value::Text(kDashed);
  try {
    ToWireOrThrow(ReprForm::kUuidHex32, v, "coupon", "id");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("deltasync: column \"id\" of table \"coupon\" is declared {\"uuid\":\"hex32\"}"),
              std::string::npos)
        << e.what();
  }
  Value out;
  try {
    ToLocalOrThrow(ReprForm::kUuidHex32, Value::Text(kHex), out, "coupon", "id");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConstraint);
    EXPECT_NE(std::string(e.what()).find("deltasync: cannot apply a change to column \"id\" of table \"coupon\""),
              std::string::npos)
        << e.what();
  }
  Value keep = Value::Integer(3);
  ToWireOrThrow(ReprForm::kUuidHex32, keep, "coupon", "id");
  EXPECT_EQ(keep, Value::Integer(3));
  EXPECT_FALSE(ToLocalOrThrow(ReprForm::kUuidHex32, keep, out, "coupon", "id"));
}

TEST(ValueRepr, TableReprsAny) {
  TableReprs r;
  r.Refresh();
  EXPECT_FALSE(r.any);
  r.cols = {ReprForm::kNone, ReprForm::kTimestampNaiveUtc};
  r.Refresh();
  EXPECT_TRUE(r.any);
  EXPECT_EQ(r.Col(1), ReprForm::kTimestampNaiveUtc);
  EXPECT_EQ(r.Col(5), ReprForm::kNone);
  EXPECT_EQ(r.Pk(0), ReprForm::kNone);
}

// Texts near both types: spellings of a few uuids and timestamps, mutated at random.
rc::Gen<Value> NearValue() {
  static const std::vector<std::string> seeds = {
      kDashed, kHex, "EFBECC1F-DD13-488D-80FA-90D6E48AEDEA", "{efbecc1f-dd13-488d-80fa-90d6e48aedea}",
      "2026-12-01 21:39:57.064847", "2026-12-01 21:39:57.064847+00", "2026-12-01 21:39:57", "2026-12-01 21:39:57+00",
      "2026-12-01T21:39:57.064Z", "2026-12-01 21:39:57.5+00", "2026-12-01 21:39:57.500000", "2024-02-29 23:59:59.999999"};
  return rc::gen::oneOf(
      rc::gen::map(rc::gen::tuple(rc::gen::elementOf(seeds), rc::gen::inRange<size_t>(0, 40),
                                  rc::gen::elementOf(std::string("0123456789abcdefABCDEF-:. +TZ{}")),
                                  rc::gen::inRange(0, 3)),
                   [](const std::tuple<std::string, size_t, char, int>& t) {
                     std::string s = std::get<0>(t);
                     size_t at = std::get<1>(t) % (s.size() + 1);
                     int op = std::get<3>(t);
                     if (op == 0 && at < s.size()) s[at] = std::get<2>(t);
                     else if (op == 1) s.insert(at, 1, std::get<2>(t));
                     else if (op == 2 && at < s.size()) s.erase(at, 1);
                     return Value::Text(s);
                   }),
      rc::gen::map(rc::gen::container<std::string>(16, rc::gen::arbitrary<char>()),
                   [](const std::string& b) { return Value::Blob(b); }),
      rc::gen::map(rc::gen::arbitrary<std::string>(), [](const std::string& s) { return Value::Text(s); }));
}

// Whatever a conversion accepts, the other one turns back into exactly the same value: a
// key spelled locally and the same key arriving from PostgreSQL are one row.
RC_GTEST_PROP(ValueRepr, ConversionsAreInverseBijections, ()) {
  ReprForm f = *rc::gen::elementOf(std::vector<ReprForm>(std::begin(kAll), std::end(kAll)));
  Value v = *NearValue();
  Value wire, back;
  ReprOutcome out = LocalToWire(f, v, wire);
  RC_CLASSIFY(out == ReprOutcome::kConverted, "converted");
  RC_CLASSIFY(out == ReprOutcome::kOtherSpelling, "refused");
  if (out != ReprOutcome::kOtherSpelling) {
    const Value& w = out == ReprOutcome::kConverted ? wire : v;
    ReprOutcome in = WireToLocal(f, w, back);
    RC_ASSERT(in != ReprOutcome::kOtherSpelling);
    RC_ASSERT((in == ReprOutcome::kConverted ? back : w) == v);
    RC_ASSERT((in == ReprOutcome::kConverted) == (out == ReprOutcome::kConverted));
  }
  Value local, again;
  ReprOutcome in = WireToLocal(f, v, local);
  if (in != ReprOutcome::kOtherSpelling) {
    const Value& l = in == ReprOutcome::kConverted ? local : v;
    ReprOutcome o = LocalToWire(f, l, again);
    RC_ASSERT(o != ReprOutcome::kOtherSpelling);
    RC_ASSERT((o == ReprOutcome::kConverted ? again : l) == v);
  }
}

}  // namespace
}  // namespace deltasync
