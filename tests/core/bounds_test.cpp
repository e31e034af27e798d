// Causal lengths and clocks are bounded where payloads enter (ValidatePayload, which every
// decoder runs): the largest accepted values still leave room for the arithmetic a site does
// on them, and one past them is refused by the JSON and the binary codec alike.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "common/hlc.hpp"
#include "common/merge.hpp"
#include "common/payload.hpp"
#include "common/payload_binary.hpp"
#include "test_util.hpp"

namespace deltasync {
namespace {

using dstest::ThrowsDeltasync;

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

// One live row (cl 1) with one column change, and one deleted row.
Payload Sample() {
  Payload p;
  p.site = SiteId::Parse("00000000-0000-4000-8000-0000000000aa");
  p.sites = {SiteId::Parse("00000000-0000-4000-8000-000000000001")};
  TableChanges t;
  t.name = "t";
  t.pk = {"id"};
  t.columns = {"v"};
  RowChanges live;
  live.key = {Value::Integer(1)};
  live.cl = 1;
  live.changes.push_back(ColumnChange{0, Value::Text("x"), HlcFromMillis(1700000000000), 0, 1});
  RowChanges gone;
  gone.key = {Value::Integer(2)};
  gone.cl = 2;
  t.rows = {live, gone};
  p.tables.push_back(t);
  return p;
}

// Refused by the model check and by both decoders, with a message naming the bound.
void ExpectRefused(const Payload& p, const std::string& needle, const std::string& what) {
  EXPECT_TRUE(ThrowsDeltasync([&] { ValidatePayload(p); }, ErrorCode::kInvalidPayload, needle)) << what;
  std::string json = EncodeJson(p), binary = EncodeBinary(p);
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeJson(json); }, ErrorCode::kInvalidPayload, needle)) << what;
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(binary); }, ErrorCode::kInvalidPayload, needle)) << what;
}

TEST(Bounds, TheLargestAcceptedValuesLeaveRoomForMergeArithmetic) {
  // A delete or re-insert adds one to the causal length; a write after seeing a clock issues
  // one past it. Both stay far from the signed 64-bit limit SQLite and PostgreSQL store.
  EXPECT_LT(kMaxCausalLength, kInt64Max - 1);
  EXPECT_LT(kMaxHlc, static_cast<uint64_t>(kInt64Max) - 1);
  HlcClock clock;
  clock.Observe(kMaxHlc);
  uint64_t next = clock.Now(WallClockMillis());
  EXPECT_GT(next, kMaxHlc);
  EXPECT_LE(next, static_cast<uint64_t>(kInt64Max));
  EXPECT_GT(HlcMillis(kMaxHlc), uint64_t{1} << 45);  // about the year 4199: no real clock is refused
  EXPECT_GT(HlcMillis(kMaxHlc), WallClockMillis() * 10);
}

TEST(Bounds, CausalLengthAndClockAtTheBoundAreAccepted) {
  Payload p = Sample();
  p.tables[0].rows[0].cl = kMaxCausalLength - 1;  // odd: a live row in its last accepted life
  p.tables[0].rows[0].changes[0].cl = kMaxCausalLength - 1;
  p.tables[0].rows[0].changes[0].hlc = kMaxHlc;
  p.tables[0].rows[1].cl = kMaxCausalLength;  // even: deleted
  ASSERT_NO_THROW(ValidatePayload(p));
  Payload j = DecodeJson(EncodeJson(p));
  Payload b = DecodeBinary(EncodeBinary(p));
  for (const Payload* q : {&j, &b}) {
    EXPECT_EQ(q->tables[0].rows[0].cl, kMaxCausalLength - 1);
    EXPECT_EQ(q->tables[0].rows[0].changes[0].hlc, kMaxHlc);
    EXPECT_EQ(q->tables[0].rows[1].cl, kMaxCausalLength);
  }
}

TEST(Bounds, CausalLengthOrClockBeyondTheBoundIsRefused) {
  std::vector<std::pair<std::string, std::function<void(Payload&)>>> cases = {
      {"row cl one past the bound", [](Payload& p) { p.tables[0].rows[1].cl = kMaxCausalLength + 1; }},
      {"row cl 2^63 - 1 (deleted row)", [](Payload& p) { p.tables[0].rows[1].cl = kInt64Max; }},
      {"row cl 2^63 - 2 (the overflow of the attack)", [](Payload& p) { p.tables[0].rows[1].cl = kInt64Max - 1; }},
      {"live row and its change at 2^63 - 1",
       [](Payload& p) {
         p.tables[0].rows[0].cl = kInt64Max;
         p.tables[0].rows[0].changes[0].cl = kInt64Max;
       }},
      {"live row just past the bound",
       [](Payload& p) {
         p.tables[0].rows[0].cl = kMaxCausalLength + 1;
         p.tables[0].rows[0].changes[0].cl = 1;
       }},
  };
  for (auto& [what, mutate] : cases) {
    Payload p = Sample();
    mutate(p);
    ExpectRefused(p, "causal length", what);
    ExpectRefused(p, "2^62", what);
  }
  std::vector<std::pair<std::string, uint64_t>> clocks = {
      {"one past the bound", kMaxHlc + 1},
      {"2^63 - 1", static_cast<uint64_t>(kInt64Max)},
      {"a millisecond part in the year 4200", HlcFromMillis((uint64_t{1} << 46) + 31556952000)},
  };
  for (auto& [what, hlc] : clocks) {
    Payload p = Sample();
    p.tables[0].rows[0].changes[0].hlc = hlc;
    ExpectRefused(p, "clock " + std::to_string(hlc) + " is beyond the largest accepted", what);
  }
  // Beyond what a signed 64-bit value holds, the codecs refuse it on their own.
  Payload p = Sample();
  p.tables[0].rows[0].changes[0].hlc = std::numeric_limits<uint64_t>::max();
  EXPECT_TRUE(ThrowsDeltasync([&] { ValidatePayload(p); }, ErrorCode::kInvalidPayload, "beyond the largest"));
  std::string json = EncodeJson(p);
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeJson(json); }, ErrorCode::kInvalidPayload));
}

}  // namespace
}  // namespace deltasync
