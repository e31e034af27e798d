// The binary payload codec, zstd bodies and DecodeAny: round trips over random models (the
// same models the JSON codec carries), the documented layout, strict refusal of every
// truncation and of corrupt input (never a crash), and the decompression size guard.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>
#include <zstd.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "common/compress.hpp"
#include "common/error.hpp"
#include "common/hlc.hpp"
#include "common/key_codec.hpp"
#include "common/payload.hpp"
#include "common/payload_binary.hpp"
#include "common/payload_codec.hpp"
#include "common/varint.hpp"
#include "test_util.hpp"

namespace deltasync {
namespace {

using dstest::ThrowsDeltasync;
using namespace std::string_literals;

const uint64_t kHlc = HlcFromMillis(1700000000000) | 3;

// A small valid payload: one table, a live row with two changes, a deleted row.
Payload Sample() {
  Payload p;
  p.site = dstest::MakeSite(0xaa, 0x01);
  p.since = 5;
  p.until = 70;
  p.sites = {dstest::MakeSite(0x11), dstest::MakeSite(0x22)};
  TableChanges t;
  t.name = "t";
  t.pk = {"id"};
  t.columns = {"a", "b"};
  RowChanges r1;
  r1.key = {Value::Integer(1)};
  r1.cl = 3;
  r1.changes.push_back({0, Value::Text("x"), kHlc, 0, 3});
  r1.changes.push_back({1, Value::Integer(-2), kHlc + 1, 1, 1});
  RowChanges r2;
  r2.key = {Value::Text("k")};
  r2.cl = 2;
  t.rows = {r1, r2};
  p.tables.push_back(t);
  return p;
}

std::string Hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

// --- round trips ----------------------------------------------------------------------

RC_GTEST_PROP(PayloadBinary, RoundTripOverRandomModels, ()) {
  Payload p = *dstest::GenPayload();
  std::string bytes = EncodeBinary(p);
  Payload q = DecodeBinary(bytes);
  std::string why;
  RC_ASSERT(dstest::SamePayload(p, q, &why));
  RC_ASSERT(EncodeBinary(q) == bytes);  // the encoding is canonical
  // The same model as the JSON codec gives.
  Payload j = DecodeJson(EncodeJson(p));
  RC_ASSERT(dstest::SamePayload(j, q, &why));
  RC_ASSERT(EncodeBinary(j) == bytes);
  RC_ASSERT(EncodeJson(q) == EncodeJson(p));
}

// Changes whose clocks jump around (down, up, across the whole range) and causal lengths
// other than the row's survive the delta and flag encodings.
RC_GTEST_PROP(PayloadBinary, ClockDeltasAndOwnCausalLengths, ()) {
  Payload p;
  p.sites = {dstest::MakeSite(1)};
  TableChanges t;
  t.name = "t";
  t.pk = {"id"};
  size_t ncols = *rc::gen::inRange<size_t>(1, 20);
  for (size_t c = 0; c < ncols; ++c) t.columns.push_back("c" + std::to_string(c));
  size_t nrows = *rc::gen::inRange<size_t>(1, 20);
  for (size_t r = 0; r < nrows; ++r) {
    RowChanges row;
    row.key = {Value::Integer(static_cast<int64_t>(r))};
    row.cl = *rc::gen::inRange<int64_t>(1, 9);
    for (size_t c = 0; c < ncols; ++c) {
      if (!*rc::gen::arbitrary<bool>()) continue;
      ColumnChange ch;
      ch.column = static_cast<uint32_t>(c);
      ch.hlc = *rc::gen::oneOf(rc::gen::inRange<uint64_t>(uint64_t{1} << 16, uint64_t{1} << 20),
                               rc::gen::inRange<uint64_t>(uint64_t{1} << 16, kMaxHlc),
                               rc::gen::just(kMaxHlc), rc::gen::just(uint64_t{1} << 16));
      ch.cl = 2 * *rc::gen::inRange<int64_t>(0, (row.cl - 1) / 2 + 1) + 1;
      row.changes.push_back(ch);
    }
    t.rows.push_back(row);
  }
  p.tables.push_back(t);
  ValidatePayload(p);
  Payload q = DecodeBinary(EncodeBinary(p));
  std::string why;
  RC_ASSERT(dstest::SamePayload(p, q, &why));
}

TEST(PayloadBinary, LayoutIsAsDocumented) {
  // docs/protocol.md, "Binary form", walks through these bytes.
  std::string expect =
      "44534231"                          // "DSB1"
      "01"                                // version 1
      "aa000000000000000000000000000001"  // site
      "0a"                                // since 5 (zigzag)
      "8c01"                              // until 70 (zigzag)
      "02"                                // 2 sites
      "11000000000000000000000000000000"  //
      "22000000000000000000000000000000"  //
      "01"                                // 1 table
      "0174"                              // name "t"
      "01026964"                          // pk ["id"]
      "0201610162"                        // columns ["a", "b"]
      "02"                                // 2 rows
      "0102"                              // key [integer 1]
      "06"                                // cl 3
      "02"                                // 2 changes
      "00" "030178"                       // column 0, text "x"
      "86808080adf9e78b03"                // hlc delta from 0 (zigzag varint)
      "00"                                // site 0, cl = the row's
      "01" "0103"                         // column 1, integer -2
      "02"                                // hlc delta +1
      "03" "02"                           // site 1, own cl follows: 1
      "03016b"                            // key [text "k"]
      "04"                                // cl 2
      "00";                               // no changes
  std::string bytes = EncodeBinary(Sample());
  // The clock line above is kHlc zigzagged.
  std::string clock;
  PutVarint(clock, ZigZag(static_cast<int64_t>(kHlc)));
  EXPECT_EQ(Hex(clock), "86808080adf9e78b03");
  EXPECT_EQ(Hex(bytes), expect);
  std::string why;
  EXPECT_TRUE(dstest::SamePayload(DecodeBinary(bytes), Sample(), &why)) << why;
}

TEST(PayloadBinary, ClocksOfOneTransactionCostOneByte) {
  Payload p = Sample();
  p.tables[0].rows.clear();
  for (int k = 0; k < 1000; ++k) {
    RowChanges r;
    r.key = {Value::Integer(k)};
    r.cl = 1;
    r.changes.push_back({0, Value::Integer(k), kHlc, 0, 1});
    r.changes.push_back({1, Value::Integer(k), kHlc, 0, 1});
    p.tables[0].rows.push_back(r);
  }
  std::string bytes = EncodeBinary(p);
  // Per row: key 3, cl 1, count 1, and per change column 1 + value 3 + clock 1 + site 1.
  EXPECT_LT(bytes.size(), 1000u * 17 + 100);
}

// --- refusals ---------------------------------------------------------------------------

TEST(PayloadBinary, RefusesOtherMagicAndVersions) {
  EXPECT_TRUE(ThrowsDeltasync([] { DecodeBinary(""); }, ErrorCode::kInvalidPayload,
                              "invalid payload: not a deltasync binary payload"));
  EXPECT_TRUE(ThrowsDeltasync([] { DecodeBinary("DSB"); }, ErrorCode::kInvalidPayload,
                              "not a deltasync binary payload"));
  EXPECT_TRUE(ThrowsDeltasync([] { DecodeBinary(EncodeJson(Sample())); }, ErrorCode::kInvalidPayload,
                              "not a deltasync binary payload"));
  std::string bytes = EncodeBinary(Sample());
  std::string v3 = bytes;
  v3[4] = 3;
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(v3); }, ErrorCode::kInvalidPayload,
                              "deltasync: unsupported payload version 3 (this build reads versions 1 and 2)"));
  std::string v300 = "DSB1";
  PutVarint(v300, 300);
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(v300 + bytes.substr(5)); }, ErrorCode::kInvalidPayload,
                              "unsupported payload version 300"));
  EXPECT_TRUE(ThrowsDeltasync([] { DecodeBinary("DSB1"); }, ErrorCode::kInvalidPayload,
                              "deltasync: invalid payload: malformed binary payload: truncated"));
}

TEST(PayloadBinary, RefusesTrailingBytes) {
  std::string bytes = EncodeBinary(Sample());
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(bytes + '\0'); }, ErrorCode::kInvalidPayload,
                              "invalid payload: trailing bytes after the payload"));
}

// A header with no tables, then `rest`.
std::string Header(int nsites = 1) {
  std::string b = "DSB1";
  PutVarint(b, 1);
  b.append(16, '\x01');
  PutVarint(b, 0);
  PutVarint(b, 0);
  PutVarint(b, static_cast<uint64_t>(nsites));
  for (int k = 0; k < nsites; ++k) b.append(16, static_cast<char>(k + 1));
  return b;
}

// One table "t" (pk "id", columns "a"), one row with key integer 1 and cl 1, one change
// with the given fields (value integer 0).
std::string OneChange(uint64_t column, uint64_t hlc_delta_zz, uint64_t site_flag, const std::string& tail = "") {
  std::string b = Header();
  PutVarint(b, 1);
  b += "\x01t\x01\x02id\x01\x01" "a";
  PutVarint(b, 1);  // rows
  EncodeValue(Value::Integer(1), b);
  PutVarint(b, ZigZag(1));
  PutVarint(b, 1);  // changes
  PutVarint(b, column);
  EncodeValue(Value::Integer(0), b);
  PutVarint(b, hlc_delta_zz);
  PutVarint(b, site_flag);
  return b + tail;
}

TEST(PayloadBinary, RefusesOutOfRangeFields) {
  const uint64_t hlc = ZigZag(static_cast<int64_t>(kHlc));
  EXPECT_NO_THROW(DecodeBinary(OneChange(0, hlc, 0)));
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(OneChange(uint64_t{1} << 32, hlc, 0)); },
                              ErrorCode::kInvalidPayload, "invalid payload: column index out of range"));
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(OneChange(1, hlc, 0)); }, ErrorCode::kInvalidPayload,
                              "column index out of range"));  // ValidatePayload's
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(OneChange(0, hlc, uint64_t{1} << 33)); },
                              ErrorCode::kInvalidPayload, "invalid payload: site index out of range"));
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(OneChange(0, hlc, 2)); }, ErrorCode::kInvalidPayload,
                              "site index out of range"));
  // A clock beyond 2^63 - 1, as the JSON form refuses it; and a clock below zero wraps there.
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(OneChange(0, ZigZag(std::numeric_limits<int64_t>::min()), 0)); },
                              ErrorCode::kInvalidPayload, "invalid payload: hlc out of range"));
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(OneChange(0, ZigZag(-1), 0)); }, ErrorCode::kInvalidPayload,
                              "hlc out of range"));
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(OneChange(0, 0, 0)); }, ErrorCode::kInvalidPayload,
                              "missing clock"));
  // Own causal length: even, or above the row's.
  std::string even;
  PutVarint(even, ZigZag(2));
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(OneChange(0, hlc, 1, even)); }, ErrorCode::kInvalidPayload,
                              "must be odd"));
  std::string one;
  PutVarint(one, ZigZag(1));
  EXPECT_NO_THROW(DecodeBinary(OneChange(0, hlc, 1, one)));  // the flag with the row's own cl is accepted
  // An unknown value tag.
  std::string bad = OneChange(0, hlc, 0);
  bad[bad.size() - 1 - 9 - 2] = 9;  // the change's value tag: before integer 0 (2 bytes), clock (9), site (1)
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(bad); }, ErrorCode::kInvalidPayload, "unknown value tag"));
}

TEST(PayloadBinary, RefusesCountsBeyondTheBytesLeft) {
  for (uint64_t n : {uint64_t{3}, uint64_t{1000}, uint64_t{1} << 40, std::numeric_limits<uint64_t>::max()}) {
    std::string b = Header(0);
    PutVarint(b, n);  // tables
    EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(b + "\x01t\x01\x02id\x00\x00"s); }, ErrorCode::kInvalidPayload,
                                "table count exceeds the bytes left"));
    std::string s = "DSB1";
    PutVarint(s, 1);
    s.append(16, '\0');
    s += std::string("\x00\x00", 2);
    PutVarint(s, n);  // sites
    EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(s + std::string(16, 'x') + '\0'); }, ErrorCode::kInvalidPayload,
                                "site count exceeds the bytes left"));
    std::string r = Header(0);
    PutVarint(r, 1);
    r += "\x01t\x01\x02id\x00"s;
    PutVarint(r, n);  // rows
    EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(r + "\x03\x00\x02\x00"s); }, ErrorCode::kInvalidPayload,
                                "row count exceeds the bytes left"));
    std::string name = Header(0);
    PutVarint(name, 1);
    PutVarint(name, n);  // name length (7 bytes follow)
    EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(name + "t\x01\x02id\x00\x00"s); }, ErrorCode::kInvalidPayload,
                                n > 7 ? "malformed binary payload: truncated" : ""));
  }
}

TEST(PayloadBinary, RefusesNamesThatAreNotUtf8) {
  Payload p = Sample();
  p.tables[0].name = "t\xff";
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(EncodeBinary(p)); }, ErrorCode::kInvalidPayload,
                              "invalid payload: table name is not valid UTF-8"));
  p = Sample();
  p.tables[0].columns[1] = "\xed\xa0\x80";
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(EncodeBinary(p)); }, ErrorCode::kInvalidPayload,
                              "column name is not valid UTF-8"));
  // Text values carry any bytes.
  p = Sample();
  p.tables[0].rows[0].changes[0].value = Value::Text("\xff\x00\xfe");
  EXPECT_NO_THROW(DecodeBinary(EncodeBinary(p)));
}

TEST(PayloadBinary, ValidatesTheModel) {
  Payload p = Sample();
  p.until = 1;  // < since
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(EncodeBinary(p)); }, ErrorCode::kInvalidPayload,
                              "since/until out of order"));
  p = Sample();
  p.tables[0].rows[1].key = {Value::Null()};
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeBinary(EncodeBinary(p)); }, ErrorCode::kInvalidPayload,
                              "NULL in a primary key"));
  p = Sample();
  p.tables[0].rows[1].key.push_back(Value::Integer(2));  // arity is implied by pk: the encoder refuses
  EXPECT_TRUE(ThrowsDeltasync([&] { EncodeBinary(p); }, ErrorCode::kInvalidPayload, "key has the wrong arity"));
}

// Every strict prefix of a valid encoding is refused with a deltasync error.
RC_GTEST_PROP(PayloadBinary, EveryTruncationIsRefused, ()) {
  std::string bytes = EncodeBinary(*dstest::GenPayload());
  std::vector<size_t> cuts;
  if (bytes.size() <= 4096) {
    for (size_t n = 0; n < bytes.size(); ++n) cuts.push_back(n);
  } else {  // large values: the first and last 1024 cuts, and 200 in between
    for (size_t n = 0; n < 1024; ++n) cuts.push_back(n);
    for (size_t n = bytes.size() - 1024; n < bytes.size(); ++n) cuts.push_back(n);
    for (int k = 0; k < 200; ++k) cuts.push_back(*rc::gen::inRange<size_t>(1024, bytes.size() - 1024));
  }
  for (size_t n : cuts) {
    std::string_view cut(bytes.data(), n);
    RC_ASSERT(ThrowsDeltasync([&] { DecodeBinary(cut); }, ErrorCode::kInvalidPayload));
  }
}

// Corrupt bytes (changed, inserted, removed) are refused with a deltasync error or decode
// to a model that is valid and round-trips; never a crash or a foreign exception.
RC_GTEST_PROP(PayloadBinary, CorruptionIsRefusedOrValid, ()) {
  std::string bytes = EncodeBinary(*dstest::GenPayload());
  int edits = *rc::gen::inRange(1, 4);
  for (int k = 0; k < edits; ++k) {
    size_t at = *rc::gen::inRange<size_t>(0, bytes.size());
    switch (*rc::gen::inRange(0, 4)) {
      case 0: bytes[at] = *dstest::GenByte(); break;
      case 1: bytes[at] = static_cast<char>(bytes[at] ^ (1 << *rc::gen::inRange(0, 8))); break;
      case 2: bytes.insert(at, 1, *dstest::GenByte()); break;
      default: bytes.erase(at, 1); break;
    }
    if (bytes.empty()) break;
  }
  std::string why;
  bool ok = dstest::ThrowsNothingButDeltasync(
      [&] {
        Payload p = DecodeBinary(bytes);
        ValidatePayload(p);
        Payload q = DecodeBinary(EncodeBinary(p));
        std::string w;
        if (!dstest::SamePayload(p, q, &w)) throw std::runtime_error("re-encoding differs: " + w);
      },
      &why);
  RC_ASSERT(ok);
}

// Random bytes after a valid header: refused or valid, never a crash.
RC_GTEST_PROP(PayloadBinary, RandomBodiesAreRefusedOrValid, ()) {
  std::string bytes = Header(*rc::gen::inRange(0, 3)) + *dstest::GenBytes();
  std::string why;
  RC_ASSERT(dstest::ThrowsNothingButDeltasync([&] { ValidatePayload(DecodeBinary(bytes)); }, &why));
}

// --- zstd -------------------------------------------------------------------------------

RC_GTEST_PROP(Zstd, RoundTrip, ()) {
  std::string data = *rc::gen::oneOf(dstest::GenBytes(), dstest::GenLargeBytes(), dstest::GenLargeUtf8());
  int level = *rc::gen::inRange(1, 10);
  std::string z = ZstdCompress(data, level);
  RC_ASSERT(ZstdDecompress(z, data.size()) == data);
  if (!data.empty()) {
    RC_ASSERT(ThrowsDeltasync([&] { ZstdDecompress(z, data.size() - 1); }, ErrorCode::kInvalidPayload,
                              "invalid payload: decompressed size exceeds the limit of"));
  }
}

// One frame whose header does not state the content size.
std::string CompressWithoutContentSize(const std::string& data) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress2(cctx, out.data(), out.size(), data.data(), data.size());
  ZSTD_freeCCtx(cctx);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  EXPECT_EQ(ZSTD_getFrameContentSize(out.data(), out.size()), ZSTD_CONTENTSIZE_UNKNOWN);
  return out;
}

TEST(Zstd, MaxSizeGuard) {
  std::string big(10 << 20, 'a');  // 10 MiB of one byte: a few hundred bytes compressed
  std::string z = ZstdCompress(big);
  EXPECT_LT(z.size(), 2000u);
  EXPECT_TRUE(ThrowsDeltasync([&] { ZstdDecompress(z, 1 << 20); }, ErrorCode::kInvalidPayload,
                              "decompressed size exceeds the limit of 1048576 bytes"));
  EXPECT_EQ(ZstdDecompress(z, big.size()).size(), big.size());
}

// Frames without a content size in their header (a streaming compressor) go through the
// streaming path, with the same guard.
TEST(Zstd, FramesWithoutContentSize) {
  std::string data(3 << 20, '\0');
  for (size_t k = 0; k < data.size(); ++k) data[k] = static_cast<char>((k * 7) % 251 + (k >> 12));
  std::string z = CompressWithoutContentSize(data);
  EXPECT_EQ(ZstdDecompress(z, data.size()), data);
  EXPECT_EQ(ZstdDecompress(z + z, 2 * data.size()), data + data);  // two frames
  EXPECT_TRUE(ThrowsDeltasync([&] { ZstdDecompress(z, data.size() - 1); }, ErrorCode::kInvalidPayload,
                              "decompressed size exceeds the limit"));
  EXPECT_TRUE(ThrowsDeltasync([&] { ZstdDecompress(z.substr(0, z.size() - 3), data.size()); },
                              ErrorCode::kInvalidPayload, "invalid payload: zstd data"));
}

TEST(Zstd, RefusesCorruptInput) {
  std::string z = ZstdCompress("hello hello hello hello");
  EXPECT_TRUE(ThrowsDeltasync([] { ZstdDecompress("", 100); }, ErrorCode::kInvalidPayload, "invalid payload: "));
  EXPECT_TRUE(ThrowsDeltasync([] { ZstdDecompress("not zstd at all", 100); }, ErrorCode::kInvalidPayload,
                              "invalid payload: "));
  for (size_t n = 0; n < z.size(); ++n)
    EXPECT_TRUE(ThrowsDeltasync([&] { ZstdDecompress(z.substr(0, n), 100); }, ErrorCode::kInvalidPayload,
                                "invalid payload: "))
        << n;
  EXPECT_TRUE(ThrowsDeltasync([&] { ZstdDecompress(z + "x", 100); }, ErrorCode::kInvalidPayload,
                              "invalid payload: "));
}

RC_GTEST_PROP(Zstd, CorruptionNeverCrashes, ()) {
  std::string z = ZstdCompress(*dstest::GenBytes());
  size_t at = *rc::gen::inRange<size_t>(0, z.size());
  z[at] = static_cast<char>(z[at] ^ (1 << *rc::gen::inRange(0, 8)));
  std::string why;
  RC_ASSERT(dstest::ThrowsNothingButDeltasync([&] { ZstdDecompress(z, 1 << 16); }, &why));
}

// --- DecodeAny ----------------------------------------------------------------------------

TEST(DecodeAny, DispatchesOnTypeAndEncoding) {
  const Payload p = Sample();
  const std::string json = EncodeJson(p), bin = EncodeBinary(p);
  std::string why;
  for (const auto& [body, type] : std::vector<std::pair<std::string, std::string>>{
           {json, "application/json"},
           {json, "Application/JSON; charset=utf-8"},
           {bin, "application/vnd.deltasync.payload"},
           {bin, " application/vnd.deltasync.payload ;x=y"}}) {
    EXPECT_TRUE(dstest::SamePayload(DecodeAny(body, type, "", 1 << 20), p, &why)) << type;
    EXPECT_TRUE(dstest::SamePayload(DecodeAny(body, type, "identity", 1 << 20), p, &why)) << type;
    EXPECT_TRUE(dstest::SamePayload(DecodeAny(ZstdCompress(body), type, "zstd", 1 << 20), p, &why)) << type;
    EXPECT_TRUE(dstest::SamePayload(DecodeAny(ZstdCompress(body), type, "ZSTD", 1 << 20), p, &why)) << type;
  }
  EXPECT_EQ(kContentTypeJson, "application/json");
  EXPECT_EQ(kContentTypeBinary, "application/vnd.deltasync.payload");
  EXPECT_EQ(kContentEncodingZstd, "zstd");
}

TEST(DecodeAny, Refusals) {
  const std::string json = EncodeJson(Sample()), bin = EncodeBinary(Sample());
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeAny(json, "text/plain", "", 1 << 20); }, ErrorCode::kInvalidPayload,
                              "deltasync: unsupported content type \"text/plain\""));
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeAny(json, "", "", 1 << 20); }, ErrorCode::kInvalidPayload,
                              "unsupported content type"));
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeAny(json, "application/json", "gzip", 1 << 20); },
                              ErrorCode::kInvalidPayload, "deltasync: unsupported content encoding \"gzip\""));
  // The wrong codec for the body.
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeAny(json, kContentTypeBinary, "", 1 << 20); },
                              ErrorCode::kInvalidPayload, "not a deltasync binary payload"));
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeAny(bin, kContentTypeJson, "", 1 << 20); }, ErrorCode::kInvalidPayload,
                              "invalid payload"));
  // Size limits, before and after decompression; and a body that is not zstd.
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeAny(bin, kContentTypeBinary, "", bin.size() - 1); },
                              ErrorCode::kInvalidPayload, "larger than the limit"));
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeAny(ZstdCompress(bin), kContentTypeBinary, "zstd", bin.size() - 1); },
                              ErrorCode::kInvalidPayload, "exceeds the limit"));
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeAny(bin, kContentTypeBinary, "zstd", 1 << 20); },
                              ErrorCode::kInvalidPayload, "invalid payload: "));
}

}  // namespace
}  // namespace deltasync
