#include "common/checksum.hpp"

#include <algorithm>
#include <memory>

#include <openssl/evp.h>

#include "common/error.hpp"
#include "common/key_codec.hpp"
#include "common/varint.hpp"

namespace deltasync {

namespace {

constexpr char kDomain[] = "deltasync-checksum-1";  // with its NUL: the format's version

// The canonical bytes of one row (the header's "row hash" input), columns sorted by name.
void RowBytes(const std::vector<Value>& key, std::vector<DigestColumn>& columns, std::string& out) {
  out.assign(kDomain, sizeof kDomain);
  PutVarint(out, key.size());
  for (const Value& v : key) EncodeValue(v, out);
  std::sort(columns.begin(), columns.end(), [](const DigestColumn& a, const DigestColumn& b) { return a.name < b.name; });
  for (size_t k = 0; k < columns.size(); ++k) {
    if (k > 0 && columns[k].name == columns[k - 1].name)
      throw Error(ErrorCode::kInternal, "checksum: column \"" + std::string(columns[k].name) + "\" given twice");
    const Value& v = *columns[k].value;
    if (v.IsNull()) continue;
    PutVarint(out, columns[k].name.size());
    out.append(columns[k].name);
    EncodeValue(v, out);
  }
}

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

std::array<uint8_t, 32> Sha256(const std::string& bytes) {
  // One context per thread, reused: a row costs one hash, no allocation.
  thread_local std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  std::array<uint8_t, 32> out{};
  unsigned int n = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), bytes.data(), bytes.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out.data(), &n) != 1 || n != out.size())
    throw Error(ErrorCode::kInternal, "checksum: SHA-256 failed");
  return out;
}

// sum += x (both little-endian limbs), mod 2^256.
void AddLimbs(std::array<uint64_t, 4>& sum, const std::array<uint64_t, 4>& x) {
  unsigned carry = 0;
  for (size_t k = 0; k < 4; ++k) {
    uint64_t s = sum[k] + x[k];
    unsigned c1 = s < sum[k];
    uint64_t t = s + carry;
    unsigned c2 = t < s;
    sum[k] = t;
    carry = c1 | c2;
  }
}

}  // namespace

std::array<uint8_t, 32> TableDigest::RowHash(const std::vector<Value>& key, std::vector<DigestColumn>& columns) {
  thread_local std::string bytes;
  RowBytes(key, columns, bytes);
  return Sha256(bytes);
}

void TableDigest::AddRow(const std::vector<Value>& key, std::vector<DigestColumn>& columns) {
  std::array<uint8_t, 32> h = RowHash(key, columns);
  std::array<uint64_t, 4> x{};
  // The hash as a big-endian 256-bit integer: byte 0 is the most significant.
  for (size_t k = 0; k < 32; ++k) x[3 - k / 8] |= static_cast<uint64_t>(h[k]) << (8 * (7 - k % 8));
  AddLimbs(sum_, x);
  ++rows_;
}

void TableDigest::Add(const TableDigest& other) {
  AddLimbs(sum_, other.sum_);
  rows_ += other.rows_;
}

std::string TableDigest::Hex() const {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (int limb = 3; limb >= 0; --limb)
    for (int shift = 60; shift >= 0; shift -= 4) out.push_back(kHex[(sum_[static_cast<size_t>(limb)] >> shift) & 0xf]);
  return out;
}

nlohmann::json TableDigest::Json() const { return {{"rows", rows_}, {"digest", Hex()}}; }

nlohmann::json ChecksumDocument(const std::vector<std::pair<std::string, TableDigest>>& tables) {
  nlohmann::json t = nlohmann::json::object();
  for (const auto& [name, digest] : tables) t[name] = digest.Json();
  return {{"tables", t}};
}

std::vector<std::string> SplitTableList(std::string_view list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string_view::npos) comma = list.size();
    if (comma > start) out.emplace_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

}  // namespace deltasync
