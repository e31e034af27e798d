// The compact binary codec of the payload model; the layout is documented byte by byte in
// docs/protocol.md ("Binary form"). Values are written by the key codec (EncodeValue);
// integers are LEB128 varints (zigzag for signed ones); a change's clock is the difference
// from the previous change's clock in the payload, so the clocks of one transaction cost a
// byte each, and a change's causal length costs nothing when it equals its row's.
//
// The decoder accepts exactly the models the JSON decoder accepts: names are valid UTF-8,
// clocks at most 2^63 - 1, column and site indexes at most 2^32 - 1, then ValidatePayload.
#include "common/payload_binary.hpp"

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "common/key_codec.hpp"
#include "common/utf8.hpp"
#include "common/varint.hpp"

namespace deltasync {

namespace {

Error Invalid(const std::string& what) { return Error(ErrorCode::kInvalidPayload, "invalid payload: " + what); }

constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// The smallest encodings, used to bound every count by the bytes left before any memory
// is reserved for it.
constexpr size_t kMinTableBytes = 4;   // name length, pk count, column count, row count
constexpr size_t kMinRowBytes = 2;     // cl, change count (plus >= 1 byte per key value)
constexpr size_t kMinChangeBytes = 4;  // column, value tag, clock delta, site/flag

void PutString(std::string& out, std::string_view s) {
  PutVarint(out, s.size());
  out.append(s.data(), s.size());
}

void PutStrings(std::string& out, const std::vector<std::string>& a) {
  PutVarint(out, a.size());
  for (const std::string& s : a) PutString(out, s);
}

// A generous size for the output buffer, from one pass over the model.
size_t EstimateSize(const Payload& p) {
  size_t n = 64 + 16 * p.sites.size();
  for (const TableChanges& t : p.tables) {
    n += 16 + t.name.size();
    for (const auto& s : t.pk) n += 4 + s.size();
    for (const auto& s : t.columns) n += 4 + s.size();
    for (const RowChanges& r : t.rows) {
      n += 4;
      for (const Value& v : r.key) n += 10 + v.s.size();
      for (const ColumnChange& c : r.changes) n += 16 + c.value.s.size();
    }
  }
  return n;
}

class Decoder {
 public:
  explicit Decoder(std::string_view bytes) : in_(bytes, "binary payload") {}

  Payload Decode() {
    uint64_t version = in_.Varint();
    if (version != static_cast<uint64_t>(kPayloadVersion) && version != static_cast<uint64_t>(kPayloadVersionPolicies))
      throw Error(ErrorCode::kInvalidPayload,
                  "unsupported payload version " + std::to_string(version) + " (this build reads versions 1 and 2)");
    policies_ = version == static_cast<uint64_t>(kPayloadVersionPolicies);
    Payload p;
    std::memcpy(p.site.bytes.data(), in_.Bytes(16).data(), 16);
    p.since = UnZigZag(in_.Varint());
    p.until = UnZigZag(in_.Varint());
    p.sites.resize(Count(16, "site count"));
    for (SiteId& s : p.sites) std::memcpy(s.bytes.data(), in_.Bytes(16).data(), 16);
    p.tables.resize(Count(kMinTableBytes, "table count"));
    for (TableChanges& t : p.tables) ReadTable(t);
    if (!in_.AtEnd()) throw Invalid("trailing bytes after the payload");
    return p;
  }

 private:
  // A count of items of at least min_bytes each, bounded by the bytes left.
  size_t Count(size_t min_bytes, const char* what) {
    uint64_t n = in_.Varint();
    if (n > in_.Remaining() / min_bytes) throw Invalid(std::string(what) + " exceeds the bytes left");
    return static_cast<size_t>(n);
  }

  void ReadName(std::string& out, const char* what) {
    uint64_t n = in_.Varint();
    if (n > in_.Remaining()) in_.Fail("truncated");
    std::string_view s = in_.Bytes(static_cast<size_t>(n));
    if (!IsValidUtf8(s)) throw Invalid(std::string(what) + " is not valid UTF-8");
    out.assign(s.data(), s.size());
  }

  void ReadNames(std::vector<std::string>& out, const char* what) {
    out.resize(Count(1, what));
    for (std::string& s : out) ReadName(s, what);
  }

  void ReadTable(TableChanges& t) {
    ReadName(t.name, "table name");
    ReadNames(t.pk, "pk");
    ReadNames(t.columns, "column name");
    if (policies_) {  // version 2: one policy byte per column
      t.policies.resize(t.columns.size());
      for (ColumnPolicy& p : t.policies) {
        uint8_t b = static_cast<uint8_t>(in_.Byte());
        if (b > static_cast<uint8_t>(kLastPolicy)) throw Invalid("unknown policy");
        p = static_cast<ColumnPolicy>(b);
      }
      if (!AnyPolicy(t.policies)) t.policies.clear();
    }
    const size_t npk = t.pk.size();
    t.rows.resize(Count(kMinRowBytes + npk, "row count"));
    for (RowChanges& r : t.rows) {
      r.key.reserve(npk);
      for (size_t k = 0; k < npk; ++k) r.key.push_back(DecodeValue(in_));
      r.cl = UnZigZag(in_.Varint());
      r.changes.resize(Count(kMinChangeBytes, "change count"));
      for (ColumnChange& c : r.changes) {
        uint64_t column = in_.Varint();
        if (column > UINT32_MAX) throw Invalid("column index out of range");
        c.column = static_cast<uint32_t>(column);
        c.value = DecodeValue(in_);
        hlc_ += static_cast<uint64_t>(UnZigZag(in_.Varint()));  // modulo 2^64, as written
        if (hlc_ > kInt64Max) throw Invalid("hlc out of range");
        c.hlc = hlc_;
        uint64_t site_flag = in_.Varint();
        if ((site_flag >> 1) > UINT32_MAX) throw Invalid("site index out of range");
        c.site = static_cast<uint32_t>(site_flag >> 1);
        c.cl = (site_flag & 1) ? UnZigZag(in_.Varint()) : r.cl;
      }
    }
  }

  ByteReader in_;
  uint64_t hlc_ = 0;
  bool policies_ = false;  // version 2: tables carry their columns' policies
};

}  // namespace

std::string EncodeBinary(const Payload& p) {
  std::string out;
  out.reserve(EstimateSize(p));
  out.append(kBinaryMagic.data(), kBinaryMagic.size());
  const int version = PayloadVersionOf(p);
  PutVarint(out, static_cast<uint64_t>(version));
  out.append(p.site.View());
  PutVarint(out, ZigZag(p.since));
  PutVarint(out, ZigZag(p.until));
  PutVarint(out, p.sites.size());
  for (const SiteId& s : p.sites) out.append(s.View());
  PutVarint(out, p.tables.size());
  uint64_t prev_hlc = 0;
  for (const TableChanges& t : p.tables) {
    PutString(out, t.name);
    PutStrings(out, t.pk);
    PutStrings(out, t.columns);
    if (version == kPayloadVersionPolicies)
      for (size_t k = 0; k < t.columns.size(); ++k) out.push_back(static_cast<char>(PolicyAt(t.policies, k)));
    PutVarint(out, t.rows.size());
    for (const RowChanges& r : t.rows) {
      if (r.key.size() != t.pk.size()) throw Invalid("table \"" + t.name + "\": key has the wrong arity");
      for (const Value& v : r.key) EncodeValue(v, out);
      PutVarint(out, ZigZag(r.cl));
      PutVarint(out, r.changes.size());
      for (const ColumnChange& c : r.changes) {
        PutVarint(out, c.column);
        EncodeValue(c.value, out);
        PutVarint(out, ZigZag(static_cast<int64_t>(c.hlc - prev_hlc)));  // modulo 2^64
        prev_hlc = c.hlc;
        const bool own_cl = c.cl != r.cl;
        PutVarint(out, (uint64_t{c.site} << 1) | (own_cl ? 1 : 0));
        if (own_cl) PutVarint(out, ZigZag(c.cl));
      }
    }
  }
  return out;
}

Payload DecodeBinary(std::string_view bytes) {
  if (bytes.substr(0, kBinaryMagic.size()) != kBinaryMagic) throw Invalid("not a deltasync binary payload");
  Payload p;
  try {
    Decoder d(bytes.substr(kBinaryMagic.size()));
    p = d.Decode();
  } catch (const Error& e) {
    // The byte reader words its refusals "malformed binary payload: ..."; give them the
    // prefix every other payload refusal has.
    static constexpr std::string_view kReader = "deltasync: malformed ";
    std::string_view what = e.what();
    if (what.substr(0, kReader.size()) == kReader) throw Invalid(std::string(what.substr(11)));
    throw;
  }
  ValidatePayload(p);
  return p;
}

}  // namespace deltasync
