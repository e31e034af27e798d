// Round trips and rejections of the small codecs: varint, values, keys, row clocks,
// base64, UTF-8 validation and site ids.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "common/base64.hpp"
#include "common/key_codec.hpp"
#include "common/row_clocks.hpp"
#include "common/site_id.hpp"
#include "common/utf8.hpp"
#include "common/value.hpp"
#include "common/varint.hpp"
#include "test_util.hpp"

namespace deltasync {
namespace {

using dstest::BitsOf;
using dstest::DoubleFromBits;
using dstest::ThrowsDeltasync;

std::string Bytes(std::initializer_list<int> bs) {
  std::string s;
  for (int b : bs) s.push_back(static_cast<char>(b));
  return s;
}

// --- varint ---------------------------------------------------------------------------

TEST(Varint, KnownEncodings) {
  auto enc = [](uint64_t v) {
    std::string s;
    PutVarint(s, v);
    return s;
  };
  EXPECT_EQ(enc(0), Bytes({0}));
  EXPECT_EQ(enc(1), Bytes({1}));
  EXPECT_EQ(enc(127), Bytes({0x7f}));
  EXPECT_EQ(enc(128), Bytes({0x80, 0x01}));
  EXPECT_EQ(enc(300), Bytes({0xac, 0x02}));
  EXPECT_EQ(enc(16383), Bytes({0xff, 0x7f}));
  EXPECT_EQ(enc(16384), Bytes({0x80, 0x80, 0x01}));
  EXPECT_EQ(enc(UINT64_MAX), Bytes({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}));
}

TEST(Varint, ZigZagKnownValues) {
  EXPECT_EQ(ZigZag(0), 0u);
  EXPECT_EQ(ZigZag(-1), 1u);
  EXPECT_EQ(ZigZag(1), 2u);
  EXPECT_EQ(ZigZag(-2), 3u);
  EXPECT_EQ(ZigZag(INT64_MAX), UINT64_MAX - 1);
  EXPECT_EQ(ZigZag(INT64_MIN), UINT64_MAX);
  EXPECT_EQ(UnZigZag(UINT64_MAX), INT64_MIN);
  EXPECT_EQ(UnZigZag(UINT64_MAX - 1), INT64_MAX);
}

RC_GTEST_PROP(Varint, RoundTripAndMinimalLength, ()) {
  uint64_t v = *rc::gen::weightedOneOf<uint64_t>(
      {{3, rc::gen::arbitrary<uint64_t>()},
       {1, rc::gen::map(rc::gen::inRange<int>(0, 64), [](int b) { return uint64_t{1} << b; })},
       {1, rc::gen::map(rc::gen::inRange<int>(1, 65), [](int b) { return b == 64 ? UINT64_MAX : (uint64_t{1} << b) - 1; })}});
  std::string s;
  PutVarint(s, v);
  size_t bits = 0;
  for (uint64_t x = v; x; x >>= 1) ++bits;
  RC_ASSERT(s.size() == std::max<size_t>(1, (bits + 6) / 7));
  std::string tail = *rc::gen::container<std::string>(rc::gen::arbitrary<char>());
  std::string buf = s + tail;
  ByteReader r(buf);
  RC_ASSERT(r.Varint() == v);
  RC_ASSERT(r.Remaining() == tail.size());
}

RC_GTEST_PROP(Varint, ZigZagRoundTrip, ()) {
  int64_t v = *dstest::GenInt64();
  RC_ASSERT(UnZigZag(ZigZag(v)) == v);
  // Small magnitudes get small codes.
  if (v > -64 && v < 64) RC_ASSERT(ZigZag(v) < 128u);
}

TEST(Varint, ReaderRejectsTruncationAndOverflow) {
  EXPECT_TRUE(ThrowsDeltasync([] { ByteReader("").Varint(); }, ErrorCode::kInvalidPayload, "truncated"));
  EXPECT_TRUE(ThrowsDeltasync([] { ByteReader(Bytes({0x80})).Varint(); }, ErrorCode::kInvalidPayload, "truncated"));
  EXPECT_TRUE(ThrowsDeltasync([] { ByteReader(Bytes({0xff, 0xff, 0xff})).Varint(); }, ErrorCode::kInvalidPayload));
  // Eleven bytes, or a tenth byte carrying more than the 64th bit.
  EXPECT_TRUE(ThrowsDeltasync(
      [] { ByteReader(Bytes({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02})).Varint(); },
      ErrorCode::kInvalidPayload));
  EXPECT_TRUE(ThrowsDeltasync(
      [] { ByteReader(Bytes({0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00})).Varint(); },
      ErrorCode::kInvalidPayload));
  EXPECT_TRUE(ThrowsDeltasync([] { ByteReader("ab").Bytes(3); }, ErrorCode::kInvalidPayload, "truncated"));
  EXPECT_TRUE(ThrowsDeltasync([] { ByteReader("", "widget").Byte(); }, ErrorCode::kInvalidPayload, "widget"));
}

// --- values ---------------------------------------------------------------------------

TEST(Value, EqualityIsExact) {
  EXPECT_EQ(Value::Null(), Value::Null());
  EXPECT_NE(Value::Integer(1), Value::Real(1.0));  // integer 1 and real 1.0 differ
  EXPECT_NE(Value::Text("1"), Value::Integer(1));
  EXPECT_NE(Value::Text("ab"), Value::Blob("ab"));
  EXPECT_NE(Value::Null(), Value::Integer(0));
  EXPECT_NE(Value::Null(), Value::Text(""));
  EXPECT_NE(Value::Text(""), Value::Blob(""));
  EXPECT_NE(Value::Real(0.0), Value::Real(-0.0));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(Value::Real(nan), Value::Real(nan));  // bit for bit, not IEEE ==
  EXPECT_NE(Value::Real(DoubleFromBits(0x7ff8000000000000)), Value::Real(DoubleFromBits(0x7ff8000000000001)));
  EXPECT_NE(Value::Real(DoubleFromBits(0x7ff8000000000000)), Value::Real(DoubleFromBits(0xfff8000000000000)));
  EXPECT_EQ(Value::Text(std::string("a\0b", 3)), Value::Text(std::string("a\0b", 3)));
  EXPECT_NE(Value::Text(std::string("a\0b", 3)), Value::Text("a"));
  EXPECT_EQ(Value::Integer(INT64_MIN), Value::Integer(INT64_MIN));
  EXPECT_NE(Value::Integer(INT64_MIN), Value::Integer(INT64_MAX));
  EXPECT_TRUE(Value::Null().IsNull());
  EXPECT_FALSE(Value::Integer(0).IsNull());
}

TEST(Value, DebugString) {
  EXPECT_EQ(DebugString(Value::Null()), "NULL");
  EXPECT_EQ(DebugString(Value::Integer(-42)), "-42");
  EXPECT_NE(DebugString(Value::Real(1.5)).find("1.5"), std::string::npos);
  EXPECT_EQ(DebugString(Value::Text("hi")), "'hi'");
  EXPECT_EQ(DebugString(Value::Blob("abc")), "blob(3)");
  EXPECT_LT(DebugString(Value::Text(std::string(1000, 'x'))).size(), 60u);
  EXPECT_NE(DebugString(Value::Integer(1)), DebugString(Value::Real(1.0)));
}

RC_GTEST_PROP(KeyCodec, ValueRoundTrip, ()) {
  Value v = *dstest::GenValue();
  std::string enc;
  EncodeValue(v, enc);
  ByteReader in(enc);
  Value back = DecodeValue(in);
  RC_ASSERT(back == v);
  RC_ASSERT(in.AtEnd());
  RC_ASSERT(static_cast<uint8_t>(enc[0]) == static_cast<uint8_t>(v.type));
}

RC_GTEST_PROP(KeyCodec, KeyRoundTrip, ()) {
  std::vector<Value> key = *rc::gen::container<std::vector<Value>>(dstest::GenValue());
  std::string enc = EncodeKey(key);
  RC_ASSERT(DecodeKey(enc) == key);
}

// Equal keys have equal bytes and different keys different bytes: keys compare as blobs.
RC_GTEST_PROP(KeyCodec, EncodingIsInjective, ()) {
  auto small = rc::gen::weightedOneOf<Value>({
      {1, rc::gen::just(Value::Null())},
      {2, rc::gen::map(rc::gen::inRange<int64_t>(-3, 4), Value::Integer)},
      {2, rc::gen::map(rc::gen::element(0.0, -0.0, 1.0, 2.0), Value::Real)},
      {2, rc::gen::map(rc::gen::elementOf(std::vector<std::string>{"", "a", "ab", std::string(1, '\0'), "\x01"}),
                       [](const std::string& s) { return Value::Text(s); })},
      {2, rc::gen::map(rc::gen::elementOf(std::vector<std::string>{"", "a", "ab", std::string(1, '\0'), "\x01"}),
                       [](const std::string& s) { return Value::Blob(s); })},
  });
  auto gen_key = rc::gen::container<std::vector<Value>>(small);
  std::vector<Value> a = *gen_key, b = *gen_key;
  RC_ASSERT((EncodeKey(a) == EncodeKey(b)) == (a == b));
}

TEST(KeyCodec, KnownBytes) {
  EXPECT_EQ(EncodeKey({}), "");
  EXPECT_EQ(EncodeKey({Value::Integer(1)}), Bytes({1, 2}));
  EXPECT_EQ(EncodeKey({Value::Integer(-1)}), Bytes({1, 1}));
  EXPECT_EQ(EncodeKey({Value::Null()}), Bytes({0}));
  EXPECT_EQ(EncodeKey({Value::Real(1.0)}), Bytes({2, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(EncodeKey({Value::Text("ab"), Value::Blob("c")}), Bytes({3, 2, 'a', 'b', 4, 1, 'c'}));
  // Integer 1 and real 1.0 are different keys.
  EXPECT_NE(EncodeKey({Value::Integer(1)}), EncodeKey({Value::Real(1.0)}));
}

TEST(KeyCodec, RejectsMalformedBytes) {
  EXPECT_TRUE(ThrowsDeltasync([] { DecodeKey(Bytes({5})); }, ErrorCode::kInvalidPayload, "unknown value tag"));
  EXPECT_TRUE(ThrowsDeltasync([] { DecodeKey(Bytes({0xff})); }, ErrorCode::kInvalidPayload));
  EXPECT_TRUE(ThrowsDeltasync([] { DecodeKey(Bytes({1})); }, ErrorCode::kInvalidPayload, "truncated"));
  EXPECT_TRUE(ThrowsDeltasync([] { DecodeKey(Bytes({1, 0x80})); }, ErrorCode::kInvalidPayload));
  EXPECT_TRUE(ThrowsDeltasync([] { DecodeKey(Bytes({2, 0, 0, 0})); }, ErrorCode::kInvalidPayload, "truncated"));
  EXPECT_TRUE(ThrowsDeltasync([] { DecodeKey(Bytes({3, 5, 'a'})); }, ErrorCode::kInvalidPayload, "truncated"));
  EXPECT_TRUE(ThrowsDeltasync([] { DecodeKey(Bytes({4, 0xff, 0xff, 0xff, 0xff, 0x0f, 'a'})); },
                              ErrorCode::kInvalidPayload));
  EXPECT_TRUE(ThrowsDeltasync([] { DecodeKey(Bytes({1, 2, 3})); }, ErrorCode::kInvalidPayload));
}

RC_GTEST_PROP(KeyCodec, ArbitraryBytesNeverCrash, ()) {
  std::string bytes = *dstest::GenBytes();
  std::string why;
  bool ok = dstest::ThrowsNothingButDeltasync([&] { DecodeKey(bytes); }, &why);
  RC_ASSERT(ok);
}

RC_GTEST_PROP(KeyCodec, TruncatedValueNeverDecodesToTheOriginal, ()) {
  std::vector<Value> key = *rc::gen::nonEmpty(rc::gen::container<std::vector<Value>>(dstest::GenValue()));
  std::string enc = EncodeKey(key);
  size_t cut = *rc::gen::inRange<size_t>(0, enc.size());
  std::vector<Value> back;
  bool threw = false;
  try {
    back = DecodeKey(enc.substr(0, cut));
  } catch (const Error& e) {
    threw = true;
    RC_ASSERT(std::string(e.what()).rfind("deltasync: ", 0) == 0);
  }
  if (!threw) RC_ASSERT(back != key);
}

// --- row clocks -----------------------------------------------------------------------

ColClock CC(uint64_t hlc, uint32_t site, int64_t ver, int64_t cl) {
  ColClock c;
  c.hlc = hlc;
  c.site = site;
  c.ver = ver;
  c.cl = cl;
  return c;
}

TEST(RowClocks, GetSetAndSetAll) {
  RowClocks rc(CC(100, 0, 7, 1));
  EXPECT_EQ(rc.Get(0), CC(100, 0, 7, 1));
  EXPECT_EQ(rc.Get(99), CC(100, 0, 7, 1));
  rc.Set(3, CC(200, 2, 8, 1));
  rc.Set(1, CC(150, 1, 9, 1));
  EXPECT_EQ(rc.Get(3), CC(200, 2, 8, 1));
  EXPECT_EQ(rc.Get(1), CC(150, 1, 9, 1));
  EXPECT_EQ(rc.Get(2), CC(100, 0, 7, 1));
  ASSERT_EQ(rc.Overrides().size(), 2u);
  EXPECT_EQ(rc.Overrides()[0].first, 1u);  // kept sorted
  EXPECT_EQ(rc.Overrides()[1].first, 3u);
  rc.Set(3, CC(300, 2, 10, 1));  // replaces, does not duplicate
  EXPECT_EQ(rc.Overrides().size(), 2u);
  EXPECT_EQ(rc.Get(3), CC(300, 2, 10, 1));
  rc.SetAll(CC(400, 5, 11, 3));
  EXPECT_TRUE(rc.Overrides().empty());
  EXPECT_EQ(rc.Get(1), CC(400, 5, 11, 3));
  EXPECT_EQ(rc.Base(), CC(400, 5, 11, 3));
}

// A renamed column is sent again: its version moves, its hlc, site and cl do not; a column
// on the shared clock moves the shared clock; a column without a clock stays without one.
TEST(RowClocks, ReadoptMovesOnlyTheVersion) {
  RowClocks rc(CC(100, 0, 7, 1));
  rc.Set(2, CC(200, 3, 8, 1));
  rc.Set(4, CC(0, 0, 9, 0));
  rc.Readopt(2, 50);
  EXPECT_EQ(rc.Get(2), CC(200, 3, 50, 1));
  EXPECT_EQ(rc.Base(), CC(100, 0, 7, 1));
  rc.Readopt(1, 51);
  EXPECT_EQ(rc.Base(), CC(100, 0, 51, 1));
  EXPECT_EQ(rc.Get(0), CC(100, 0, 51, 1));
  EXPECT_EQ(rc.Get(2), CC(200, 3, 50, 1));
  rc.Readopt(4, 52);
  EXPECT_FALSE(rc.Get(4).Present());
  EXPECT_EQ(rc.Get(4).ver, 9);
}

TEST(RowClocks, DefaultHasNoClock) {
  RowClocks rc;
  EXPECT_FALSE(rc.Get(0).Present());
  EXPECT_TRUE(CC(1, 0, 0, 1).Present());
}

TEST(RowClocks, ResolveFillsCurrentMarkers) {
  RowClocks rc(CC(100, 0, 0, 0));
  rc.Set(1, CC(150, 1, 0, 3));
  rc.Set(2, CC(160, 1, 4, 0));
  rc.Set(3, CC(0, 0, 0, 0));  // no clock: its cl stays 0
  rc.Resolve(42, 5);
  EXPECT_EQ(rc.Base(), CC(100, 0, 42, 5));
  EXPECT_EQ(rc.Get(1), CC(150, 1, 42, 3));
  EXPECT_EQ(rc.Get(2), CC(160, 1, 4, 5));
  EXPECT_EQ(rc.Get(3).cl, 0);
  EXPECT_EQ(rc.Get(3).ver, 42);
}

TEST(RowClocks, CommonCaseHasNoExtras) {
  // Written at the row's current version and causal length, no column updated since.
  RowClocks rc(CC(100, 2, 7, 3));
  rc.Normalize(7, 3);
  EXPECT_EQ(rc.EncodeExtras(), "");
  RowClocks back = RowClocks::Decode(100, 2, "");
  back.Resolve(7, 3);
  EXPECT_EQ(back.Base(), CC(100, 2, 7, 3));
  EXPECT_TRUE(back.Overrides().empty());
  // Once the row moves on (a later version), the shared clock's version needs the extras.
  RowClocks old(CC(100, 2, 7, 3));
  old.Normalize(8, 3);
  EXPECT_NE(old.EncodeExtras(), "");
  RowClocks upd(CC(100, 2, 7, 3));
  upd.Set(1, CC(120, 0, 8, 3));
  upd.Normalize(8, 3);
  EXPECT_NE(upd.EncodeExtras(), "");
}

rc::Gen<ColClock> GenColClock() {
  return rc::gen::build<ColClock>(rc::gen::set(&ColClock::hlc, rc::gen::arbitrary<uint64_t>()),
                                  rc::gen::set(&ColClock::site, rc::gen::arbitrary<uint32_t>()),
                                  rc::gen::set(&ColClock::ver, dstest::GenInt64()),
                                  rc::gen::set(&ColClock::cl, dstest::GenInt64()));
}

rc::Gen<std::vector<std::pair<uint32_t, ColClock>>> GenOverrides(rc::Gen<ColClock> clock) {
  return rc::gen::container<std::vector<std::pair<uint32_t, ColClock>>>(
      rc::gen::pair(rc::gen::weightedOneOf<uint32_t>({{3, rc::gen::inRange<uint32_t>(0, 10)},
                                                      {1, rc::gen::arbitrary<uint32_t>()},
                                                      {1, rc::gen::just(UINT32_MAX)}}),
                    clock));
}

RC_GTEST_PROP(RowClocks, ExtrasRoundTrip, ()) {
  RowClocks clocks(*GenColClock());
  auto sets = *GenOverrides(GenColClock());
  for (const auto& s : sets) clocks.Set(s.first, s.second);
  std::string extras = clocks.EncodeExtras();
  RowClocks back = RowClocks::Decode(clocks.Base().hlc, clocks.Base().site, extras);
  RC_ASSERT(back.Base() == clocks.Base());
  RC_ASSERT(back.Overrides() == clocks.Overrides());
  for (const auto& s : sets) RC_ASSERT(back.Get(s.first) == clocks.Get(s.first));
  RC_ASSERT(back.EncodeExtras() == extras);
  // The last Set of a column is the one that counts.
  for (size_t k = 0; k < sets.size(); ++k) {
    bool later = false;
    for (size_t j = k + 1; j < sets.size(); ++j) later = later || sets[j].first == sets[k].first;
    if (!later) RC_ASSERT(back.Get(sets[k].first) == sets[k].second);
  }
  // Overrides stay sorted and unique.
  for (size_t k = 1; k < back.Overrides().size(); ++k)
    RC_ASSERT(back.Overrides()[k - 1].first < back.Overrides()[k].first);
}

// Stored form and back: Normalize, encode, decode, Resolve gives the explicit clocks again.
RC_GTEST_PROP(RowClocks, NormalizeThenResolveIsIdentity, ()) {
  const int64_t row_ver = *rc::gen::inRange<int64_t>(1, 1000);
  const int64_t row_cl = *rc::gen::inRange<int64_t>(1, 9);
  // Explicit clocks: present, ver and cl never 0; often equal to the row's.
  auto gen_clock = rc::gen::build<ColClock>(
      rc::gen::set(&ColClock::hlc, rc::gen::inRange<uint64_t>(1, UINT64_MAX)),
      rc::gen::set(&ColClock::site, rc::gen::inRange<uint32_t>(0, 4)),
      rc::gen::set(&ColClock::ver, rc::gen::weightedOneOf<int64_t>({{1, rc::gen::just(row_ver)},
                                                                    {1, rc::gen::inRange<int64_t>(1, 1000)}})),
      rc::gen::set(&ColClock::cl, rc::gen::weightedOneOf<int64_t>({{1, rc::gen::just(row_cl)},
                                                                   {1, rc::gen::inRange<int64_t>(1, 9)}})));
  RowClocks clocks(*gen_clock);
  for (const auto& s : *GenOverrides(gen_clock)) clocks.Set(s.first, s.second);
  RowClocks stored = clocks;
  stored.Normalize(row_ver, row_cl);
  RowClocks back = RowClocks::Decode(stored.Base().hlc, stored.Base().site, stored.EncodeExtras());
  back.Resolve(row_ver, row_cl);
  RC_ASSERT(back.Base() == clocks.Base());
  RC_ASSERT(back.Overrides() == clocks.Overrides());
  if (clocks.Overrides().empty() && clocks.Base().ver == row_ver && clocks.Base().cl == row_cl)
    RC_ASSERT(stored.EncodeExtras().empty());
}

TEST(RowClocks, DecodeRejectsMalformedExtras) {
  // Layout: format 1, shared ver, shared cl, override count, (column, hlc, site, ver, cl)...
  const std::string head = Bytes({1, 7, 3});
  const std::string clock = Bytes({6, 0, 0, 1});
  const std::string good = head + Bytes({1, 2}) + clock;
  EXPECT_NO_THROW(RowClocks::Decode(5, 0, good));
  EXPECT_EQ(RowClocks::Decode(5, 0, good).Get(2), CC(6, 0, 0, 1));
  EXPECT_EQ(RowClocks::Decode(5, 0, good).Get(1), CC(5, 0, 7, 3));
  EXPECT_TRUE(ThrowsDeltasync([&] { RowClocks::Decode(5, 0, Bytes({4}) + good.substr(1)); },
                              ErrorCode::kInvalidPayload, "unknown format"));
  EXPECT_TRUE(ThrowsDeltasync([&] { RowClocks::Decode(5, 0, good + "x"); }, ErrorCode::kInvalidPayload, "trailing"));
  for (size_t cut = 1; cut < good.size(); ++cut)
    EXPECT_TRUE(ThrowsDeltasync([&] { RowClocks::Decode(5, 0, good.substr(0, cut)); }, ErrorCode::kInvalidPayload,
                                "row clocks"))
        << "cut at " << cut;
  // Site ordinal beyond 32 bits.
  EXPECT_TRUE(ThrowsDeltasync(
      [&] { RowClocks::Decode(5, 0, head + Bytes({1, 2, 6, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 1})); },
      ErrorCode::kInvalidPayload, "site ordinal"));
  // Overrides out of order / duplicated.
  EXPECT_NO_THROW(RowClocks::Decode(5, 0, head + Bytes({2, 1}) + clock + Bytes({2}) + clock));
  EXPECT_TRUE(ThrowsDeltasync([&] { RowClocks::Decode(5, 0, head + Bytes({2, 2}) + clock + Bytes({1}) + clock); },
                              ErrorCode::kInvalidPayload, "out of order"));
  EXPECT_TRUE(ThrowsDeltasync([&] { RowClocks::Decode(5, 0, head + Bytes({2, 1}) + clock + Bytes({1}) + clock); },
                              ErrorCode::kInvalidPayload, "out of order"));
  // An override count larger than what is left.
  EXPECT_TRUE(ThrowsDeltasync([&] { RowClocks::Decode(5, 0, head + Bytes({0xff, 0xff, 0xff, 0xff, 0x0f})); },
                              ErrorCode::kInvalidPayload));
  // Column beyond 32 bits.
  EXPECT_TRUE(ThrowsDeltasync(
      [&] { RowClocks::Decode(5, 0, head + Bytes({1, 0x80, 0x80, 0x80, 0x80, 0x10}) + clock); },
      ErrorCode::kInvalidPayload));
}

RC_GTEST_PROP(RowClocks, ArbitraryExtrasNeverCrash, ()) {
  std::string bytes = *dstest::GenBytes();
  std::string why;
  RC_ASSERT(dstest::ThrowsNothingButDeltasync([&] { RowClocks::Decode(1, 0, bytes); }, &why));
}

// --- base64 ---------------------------------------------------------------------------

TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"}};
  for (const auto& v : vectors) {
    EXPECT_EQ(Base64Encode(v.first), v.second);
    EXPECT_EQ(Base64Decode(v.second), v.first);
  }
  EXPECT_EQ(Base64Encode(Bytes({0xfb, 0xff, 0xbf})), "+/+/");
  EXPECT_EQ(Base64Decode("+/+/"), Bytes({0xfb, 0xff, 0xbf}));
  EXPECT_EQ(Base64Encode(std::string(3, '\0')), "AAAA");
  EXPECT_EQ(Base64Decode("AA=="), std::string(1, '\0'));
}

RC_GTEST_PROP(Base64, RoundTrip, ()) {
  std::string bytes = *dstest::GenBytes();
  std::string text = Base64Encode(bytes);
  RC_ASSERT(text.size() == (bytes.size() + 2) / 3 * 4);
  RC_ASSERT(text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") ==
            std::string::npos);
  RC_ASSERT(Base64Decode(text) == bytes);
}

// Decoding accepts exactly the canonical encodings.
RC_GTEST_PROP(Base64, DecodeAcceptsOnlyCanonicalText, ()) {
  std::string text = *rc::gen::container<std::string>(
      rc::gen::elementOf(std::string("AQZgw+/=9=A=\n -_")));
  std::string out;
  bool ok = true;
  try {
    out = Base64Decode(text);
  } catch (const Error& e) {
    ok = false;
    RC_ASSERT(std::string(e.what()).rfind("deltasync: ", 0) == 0);
    RC_ASSERT(e.code() == ErrorCode::kInvalidPayload);
  }
  if (ok) RC_ASSERT(Base64Encode(out) == text);
}

TEST(Base64, RejectsNonCanonicalOrBadText) {
  const char* bad[] = {"A",     "AA",    "AAA",   "AAAAA", "A===",  "====",     "AA=A",     "=AAA",
                       "AA==AAAA", "Zh==", "Zm9=", "Zm8",   "Zm8 ", " Zm8=",    "Zm8=\n",   "Zm-_",
                       "Zm8*",  "AB=C",  "Zg=",   "Zg==="};
  for (const char* b : bad)
    EXPECT_TRUE(ThrowsDeltasync([&] { Base64Decode(b); }, ErrorCode::kInvalidPayload, "base64")) << b;
  EXPECT_TRUE(ThrowsDeltasync([&] { Base64Decode(std::string("Zm9v\0AAA", 8)); }, ErrorCode::kInvalidPayload));
}

// --- UTF-8 ----------------------------------------------------------------------------

// An independent reference, written from Unicode Table 3-7 (well-formed byte sequences).
bool ReferenceUtf8(const std::string& s) {
  size_t i = 0;
  auto in = [&](size_t k, int lo, int hi) {
    if (k >= s.size()) return false;
    int b = static_cast<unsigned char>(s[k]);
    return b >= lo && b <= hi;
  };
  while (i < s.size()) {
    int b = static_cast<unsigned char>(s[i]);
    if (b <= 0x7f) { i += 1; continue; }
    if (b >= 0xc2 && b <= 0xdf && in(i + 1, 0x80, 0xbf)) { i += 2; continue; }
    if (b == 0xe0 && in(i + 1, 0xa0, 0xbf) && in(i + 2, 0x80, 0xbf)) { i += 3; continue; }
    if (((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef) && in(i + 1, 0x80, 0xbf) && in(i + 2, 0x80, 0xbf)) { i += 3; continue; }
    if (b == 0xed && in(i + 1, 0x80, 0x9f) && in(i + 2, 0x80, 0xbf)) { i += 3; continue; }
    if (b == 0xf0 && in(i + 1, 0x90, 0xbf) && in(i + 2, 0x80, 0xbf) && in(i + 3, 0x80, 0xbf)) { i += 4; continue; }
    if (b >= 0xf1 && b <= 0xf3 && in(i + 1, 0x80, 0xbf) && in(i + 2, 0x80, 0xbf) && in(i + 3, 0x80, 0xbf)) { i += 4; continue; }
    if (b == 0xf4 && in(i + 1, 0x80, 0x8f) && in(i + 2, 0x80, 0xbf) && in(i + 3, 0x80, 0xbf)) { i += 4; continue; }
    return false;
  }
  return true;
}

TEST(Utf8, KnownValidAndInvalid) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8(std::string("nul\0inside", 10)));
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_TRUE(IsValidUtf8("\xf4\x8f\xbf\xbf"));  // U+10FFFF
  EXPECT_TRUE(IsValidUtf8("\xed\x9f\xbf"));      // U+D7FF
  EXPECT_TRUE(IsValidUtf8("\xee\x80\x80"));      // U+E000
  EXPECT_TRUE(IsValidUtf8("\xef\xbf\xbf"));      // U+FFFF
  const char* bad[] = {
      "\x80",             // lone continuation
      "\xbf",             //
      "\xc0\x80",         // overlong NUL
      "\xc1\xbf",         // overlong
      "\xe0\x80\x80",     // overlong 3-byte
      "\xe0\x9f\xbf",     // overlong 3-byte
      "\xf0\x80\x80\x80", // overlong 4-byte
      "\xf0\x8f\xbf\xbf", // overlong 4-byte
      "\xed\xa0\x80",     // U+D800 surrogate
      "\xed\xbf\xbf",     // U+DFFF surrogate
      "\xf4\x90\x80\x80", // U+110000
      "\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80", "\xfe", "\xff",
      "\xe2\x82",         // truncated
      "\xc3",             "\xf0\x9f\x98", "a\xc3(", "\xe2(\xa1",
  };
  for (const char* b : bad) EXPECT_FALSE(IsValidUtf8(b)) << b;
}

RC_GTEST_PROP(Utf8, EncodedScalarValuesAreValid, ()) {
  std::string s = *dstest::GenUtf8();
  RC_ASSERT(IsValidUtf8(s));
}

RC_GTEST_PROP(Utf8, AgreesWithReference, ()) {
  std::string s = *rc::gen::weightedOneOf<std::string>({
      {2, dstest::GenBytes()},
      // Valid text with one byte changed.
      {2, rc::gen::exec([] {
         std::string t = *dstest::GenUtf8();
         if (t.empty()) return t;
         size_t at = *rc::gen::inRange<size_t>(0, t.size());
         t[at] = *dstest::GenByte();
         return t;
       })},
      // Valid text cut anywhere.
      {1, rc::gen::exec([] {
         std::string t = *dstest::GenUtf8();
         return t.substr(0, *rc::gen::inRange<size_t>(0, t.size() + 1));
       })},
  });
  RC_ASSERT(IsValidUtf8(s) == ReferenceUtf8(s));
}

TEST(Utf8, EveryTwoAndThreeByteSequenceAgreesWithReference) {
  for (int a = 0x80; a < 0x100; ++a)
    for (int b = 0; b < 0x100; ++b) {
      std::string s = Bytes({a, b});
      ASSERT_EQ(IsValidUtf8(s), ReferenceUtf8(s)) << a << " " << b;
      for (int c : {0x00, 0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc0}) {
        std::string t = Bytes({a, b, c});
        ASSERT_EQ(IsValidUtf8(t), ReferenceUtf8(t)) << a << " " << b << " " << c;
      }
    }
}

// --- site ids -------------------------------------------------------------------------

TEST(SiteId, KnownText) {
  SiteId s = SiteId::Parse("00112233-4455-6677-8899-aabbccddeeff");
  for (size_t k = 0; k < 16; ++k) EXPECT_EQ(s.bytes[k], static_cast<uint8_t>(k * 0x11));
  EXPECT_EQ(s.ToString(), "00112233-4455-6677-8899-aabbccddeeff");
  EXPECT_EQ(SiteId::Parse("00112233-4455-6677-8899-AABBCCDDEEFF"), s);  // uppercase accepted
  EXPECT_EQ(SiteId{}.ToString(), "00000000-0000-0000-0000-000000000000");
  EXPECT_EQ(s.View().size(), 16u);
  EXPECT_EQ(SiteId::FromBytes(s.View()), s);
}

RC_GTEST_PROP(SiteId, TextRoundTrip, ()) {
  SiteId s = *dstest::GenSiteId();
  std::string t = s.ToString();
  RC_ASSERT(t.size() == 36u);
  for (size_t k = 0; k < t.size(); ++k) {
    if (k == 8 || k == 13 || k == 18 || k == 23)
      RC_ASSERT(t[k] == '-');
    else
      RC_ASSERT(std::string("0123456789abcdef").find(t[k]) != std::string::npos);
  }
  RC_ASSERT(SiteId::Parse(t) == s);
  RC_ASSERT(SiteId::FromBytes(s.View()) == s);
  SiteId o = *dstest::GenSiteId();
  RC_ASSERT((s < o) == (s.View() < o.View()));  // ordering is by unsigned bytes
  RC_ASSERT((s == o) == (t == o.ToString()));
  if (s == o) RC_ASSERT(SiteIdHash()(s) == SiteIdHash()(o));
}

TEST(SiteId, ParseRejectsNonCanonicalText) {
  const char* bad[] = {
      "",
      "00112233-4455-6677-8899-aabbccddeef",     // short
      "00112233-4455-6677-8899-aabbccddeeff0",   // long
      "001122334455667788990aabbccddeeff",       // no dashes
      "0011223344556677-8899-aabbccddeeff----",  // dashes misplaced
      "00112233_4455_6677_8899_aabbccddeeff",
      "0011223-34455-6677-8899-aabbccddeeff",
      "{00112233-4455-6677-8899-aabbccddeef}",
      "00112233-4455-6677-8899-aabbccddeegf",  // not hex
      "00112233-4455-6677-8899-aabbccddee f",
      "+0112233-4455-6677-8899-aabbccddeeff",
      "0x112233-4455-6677-8899-aabbccddeeff",
  };
  for (const char* b : bad)
    EXPECT_TRUE(ThrowsDeltasync([&] { SiteId::Parse(b); }, ErrorCode::kInvalidPayload, "site id")) << b;
  EXPECT_TRUE(ThrowsDeltasync([] { SiteId::Parse(std::string("00112233-4455-6677-8899-aabbccddee\0f", 36)); },
                              ErrorCode::kInvalidPayload));
}

TEST(SiteId, FromBytesNeedsSixteen) {
  EXPECT_TRUE(ThrowsDeltasync([] { SiteId::FromBytes(std::string(15, 'x')); }, ErrorCode::kInvalidPayload));
  EXPECT_TRUE(ThrowsDeltasync([] { SiteId::FromBytes(std::string(17, 'x')); }, ErrorCode::kInvalidPayload));
  EXPECT_TRUE(ThrowsDeltasync([] { SiteId::FromBytes(""); }, ErrorCode::kInvalidPayload));
}

TEST(SiteId, RandomIsVersion4AndUnique) {
  std::set<std::string> seen;
  for (int k = 0; k < 200; ++k) {
    SiteId s = SiteId::Random();
    EXPECT_EQ(s.bytes[6] >> 4, 4);           // version 4
    EXPECT_EQ(s.bytes[8] & 0xc0, 0x80);      // RFC 4122 variant
    EXPECT_EQ(s.ToString()[14], '4');
    EXPECT_TRUE(seen.insert(s.ToString()).second);
    EXPECT_EQ(SiteId::Parse(s.ToString()), s);
  }
}

}  // namespace
}  // namespace deltasync
