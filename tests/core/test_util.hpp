#pragma once
// Shared helpers for the core tests: error matchers, printers and rapidcheck generators
// for values, site ids and whole payload models.
#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <cstdint>
#include <cstring>
#include <iomanip>
#include <limits>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "common/payload.hpp"
#include "common/site_id.hpp"
#include "common/utf8.hpp"
#include "common/value.hpp"

namespace deltasync {

// Printers (gtest and rapidcheck both pick up operator<<).
inline std::ostream& operator<<(std::ostream& os, const Value& v) {
  auto hex = [&](const std::string& s) {
    std::ostringstream h;
    for (unsigned char c : s.substr(0, 64)) h << std::hex << std::setw(2) << std::setfill('0') << int(c);
    if (s.size() > 64) h << "...(" << std::dec << s.size() << " bytes)";
    return h.str();
  };
  switch (v.type) {
    case ValueType::kNull: return os << "NULL";
    case ValueType::kInteger: return os << "int(" << v.i << ")";
    case ValueType::kReal: {
      uint64_t bits;
      std::memcpy(&bits, &v.r, sizeof bits);
      return os << "real(" << std::setprecision(17) << v.r << " bits=" << std::hex << bits << std::dec << ")";
    }
    case ValueType::kText: return os << "text(hex " << hex(v.s) << ")";
    case ValueType::kBlob: return os << "blob(hex " << hex(v.s) << ")";
  }
  return os << "?";
}
inline std::ostream& operator<<(std::ostream& os, const SiteId& s) { return os << s.ToString(); }

}  // namespace deltasync

namespace dstest {

using namespace deltasync;

// Runs f and checks that it throws deltasync::Error with the "deltasync: " prefix, the
// given code, and (if given) a message containing needle.
template <typename F>
::testing::AssertionResult ThrowsDeltasync(F&& f, ErrorCode code, const std::string& needle = "") {
  try {
    f();
  } catch (const Error& e) {
    std::string w = e.what();
    if (w.rfind("deltasync: ", 0) != 0) return ::testing::AssertionFailure() << "message lacks prefix: " << w;
    if (e.code() != code)
      return ::testing::AssertionFailure() << "wrong error code " << static_cast<int>(e.code()) << ": " << w;
    if (!needle.empty() && w.find(needle) == std::string::npos)
      return ::testing::AssertionFailure() << "message lacks \"" << needle << "\": " << w;
    return ::testing::AssertionSuccess() << w;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "non-deltasync exception: " << e.what();
  } catch (...) {
    return ::testing::AssertionFailure() << "unknown exception";
  }
  return ::testing::AssertionFailure() << "no exception thrown";
}

// True when f throws only deltasync::Error (with the prefix) or nothing at all.
template <typename F>
bool ThrowsNothingButDeltasync(F&& f, std::string* why) {
  try {
    f();
    return true;
  } catch (const Error& e) {
    std::string w = e.what();
    if (w.rfind("deltasync: ", 0) == 0) return true;
    *why = "prefix missing: " + w;
  } catch (const std::exception& e) {
    *why = std::string("foreign exception: ") + e.what();
  } catch (...) {
    *why = "unknown exception";
  }
  return false;
}

inline double DoubleFromBits(uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}
inline uint64_t BitsOf(double d) {
  uint64_t b;
  std::memcpy(&b, &d, sizeof b);
  return b;
}

inline std::string Utf8Encode(uint32_t cp) {
  std::string s;
  deltasync::AppendUtf8(s, cp);
  return s;
}

// Any Unicode scalar value (no surrogates), biased to the edges of each encoding length.
inline rc::Gen<uint32_t> GenCodePoint() {
  return rc::gen::weightedOneOf<uint32_t>({
      {4, rc::gen::inRange<uint32_t>(0, 0x80)},
      {2, rc::gen::inRange<uint32_t>(0x80, 0x800)},
      {2, rc::gen::inRange<uint32_t>(0x800, 0xd800)},
      {1, rc::gen::inRange<uint32_t>(0xe000, 0x10000)},
      {2, rc::gen::inRange<uint32_t>(0x10000, 0x110000)},
      {2, rc::gen::elementOf(std::vector<uint32_t>{0u, 1u, 0x1fu, 0x7fu, 0x80u, 0x7ffu, 0x800u, 0xd7ffu, 0xe000u, 0xfeffu,
                                     0xfffdu, 0xffffu, 0x10000u, 0x10ffffu, 0x2028u, 0x2029u, 0x22u, 0x5cu, 0x2fu,
                                     0x0au, 0x0du, 0x09u, 0x08u, 0x0cu})},
  });
}

inline rc::Gen<std::string> GenUtf8() {
  return rc::gen::map(rc::gen::container<std::vector<uint32_t>>(GenCodePoint()), [](const std::vector<uint32_t>& cps) {
    std::string s;
    for (uint32_t cp : cps) s += Utf8Encode(cp);
    return s;
  });
}

inline rc::Gen<char> GenByte() {
  return rc::gen::weightedOneOf<char>({
      {6, rc::gen::map(rc::gen::inRange<int>(0, 256), [](int c) { return static_cast<char>(c); })},
      {1, rc::gen::just('\0')},
      {1, rc::gen::elementOf(std::vector<char>{'\x80', '\xbf', '\xc0', '\xc1', '\xed', '\xf4', '\xf5', '\xfe', '\xff'})},
  });
}

inline rc::Gen<std::string> GenBytes() { return rc::gen::container<std::string>(GenByte()); }

// Large strings, built cheaply from a seed.
inline rc::Gen<std::string> GenLargeBytes() {
  return rc::gen::map(rc::gen::pair(rc::gen::inRange<uint32_t>(1, 1u << 30), rc::gen::inRange<size_t>(65536, 300000)),
                      [](const std::pair<uint32_t, size_t>& sn) {
                        std::string s(sn.second, '\0');
                        uint32_t x = sn.first;
                        for (char& c : s) {
                          x = x * 1103515245u + 12345u;
                          c = static_cast<char>(x >> 23);
                        }
                        return s;
                      });
}
inline rc::Gen<std::string> GenLargeUtf8() {
  return rc::gen::map(rc::gen::pair(GenUtf8(), rc::gen::inRange<size_t>(20000, 100000)),
                      [](const std::pair<std::string, size_t>& sn) {
                        std::string unit = sn.first + "\xe2\x82\xac" + std::string(1, '\0') + "\xf0\x9f\x98\x80";
                        std::string s;
                        while (s.size() < sn.second) s += unit;
                        return s;
                      });
}

inline rc::Gen<int64_t> GenInt64() {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  return rc::gen::weightedOneOf<int64_t>({
      {4, rc::gen::arbitrary<int64_t>()},
      {2, rc::gen::map(rc::gen::arbitrary<uint64_t>(), [](uint64_t u) { return static_cast<int64_t>(u); })},
      {1, rc::gen::elementOf(std::vector<int64_t>{kMin, kMax, kMin + 1, kMax - 1, 0, 1, -1, int64_t{1} << 53,
                                    (int64_t{1} << 53) + 1, -(int64_t{1} << 53) - 1})},
  });
}

inline rc::Gen<double> GenDouble() {
  const double inf = std::numeric_limits<double>::infinity();
  return rc::gen::weightedOneOf<double>({
      {3, rc::gen::arbitrary<double>()},
      {3, rc::gen::map(rc::gen::arbitrary<uint64_t>(), DoubleFromBits)},
      {2, rc::gen::map(rc::gen::pair(rc::gen::arbitrary<uint32_t>(), rc::gen::arbitrary<uint32_t>()),
                       [](const std::pair<uint32_t, uint32_t>& p) {
                         return DoubleFromBits((uint64_t{p.first} << 32) | p.second);
                       })},
      // NaNs with payload bits and either sign.
      {1, rc::gen::map(rc::gen::pair(rc::gen::inRange<uint64_t>(1, uint64_t{1} << 52), rc::gen::arbitrary<bool>()),
                       [](const std::pair<uint64_t, bool>& p) {
                         return DoubleFromBits((p.second ? uint64_t{1} << 63 : 0) | (uint64_t{0x7ff} << 52) |
                                               p.first);
                       })},
      {2, rc::gen::elementOf(std::vector<double>{0.0, -0.0, 1.0, -1.0, 0.1, 1e16, 1e15, 123456789.0, 1e300, -1e-300, inf, -inf,
                                   std::numeric_limits<double>::quiet_NaN(),
                                   std::numeric_limits<double>::signaling_NaN(), DoubleFromBits(0xfff8000000000000),
                                   DoubleFromBits(0x7ff0000000000001), DoubleFromBits(0x7fffffffffffffff),
                                   std::numeric_limits<double>::min(), std::numeric_limits<double>::max(),
                                   std::numeric_limits<double>::lowest(), std::numeric_limits<double>::denorm_min(),
                                   std::numeric_limits<double>::epsilon(), 9007199254740993.0, 4503599627370496.5})},
  });
}

inline rc::Gen<Value> GenValue(bool allow_null = true) {
  return rc::gen::weightedOneOf<Value>({
      {allow_null ? 1u : 0u, rc::gen::just(Value::Null())},
      {3, rc::gen::map(GenInt64(), Value::Integer)},
      {3, rc::gen::map(GenDouble(), Value::Real)},
      {3, rc::gen::map(GenUtf8(), [](const std::string& s) { return Value::Text(s); })},
      {2, rc::gen::map(GenBytes(), [](const std::string& s) { return Value::Text(s); })},
      {2, rc::gen::map(GenBytes(), [](const std::string& s) { return Value::Blob(s); })},
      {1, rc::gen::element(Value::Integer(1), Value::Real(1.0), Value::Text("1"), Value::Blob(std::string(1, '\1')),
                           Value::Text(""), Value::Blob(""), Value::Text(std::string("a\0b", 3)),
                           Value::Blob(std::string(8, '\0')), Value::Text("\xff\xfe"), Value::Text("\xed\xa0\x80"))},
      {1, rc::gen::map(GenLargeBytes(), [](const std::string& s) { return Value::Blob(s); })},
      {1, rc::gen::map(GenLargeBytes(), [](const std::string& s) { return Value::Text(s); })},
      {1, rc::gen::map(GenLargeUtf8(), [](const std::string& s) { return Value::Text(s); })},
  });
}

inline rc::Gen<SiteId> GenSiteId() {
  return rc::gen::weightedOneOf<SiteId>({
      {8, rc::gen::map(rc::gen::container<std::vector<uint8_t>>(16, rc::gen::arbitrary<uint8_t>()),
                       [](const std::vector<uint8_t>& b) {
                         SiteId s;
                         for (size_t k = 0; k < 16; ++k) s.bytes[k] = b[k];
                         return s;
                       })},
      {1, rc::gen::just(SiteId{})},
      {1, rc::gen::just([] {
         SiteId s;
         s.bytes.fill(0xff);
         return s;
       }())},
  });
}

// A random permutation (call only inside a property).
template <typename T>
std::vector<T> Shuffled(std::vector<T> v) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[*rc::gen::inRange<size_t>(0, i)]);
  return v;
}

inline SiteId MakeSite(uint8_t first, uint8_t last = 0) {
  SiteId s;
  s.bytes[0] = first;
  s.bytes[15] = last;
  return s;
}

// A name: unique by its prefix, then any valid UTF-8 (quotes, backslashes, controls, NUL...).
inline std::string NameOf(const std::string& prefix, size_t k, const std::string& tail) {
  return prefix + std::to_string(k) + "_" + tail;
}

// A random payload model that satisfies ValidatePayload.
inline rc::Gen<Payload> GenPayload() {
  return rc::gen::exec([] {
    Payload p;
    p.site = *GenSiteId();
    int64_t a = *rc::gen::map(GenInt64(), [](int64_t v) { return v == std::numeric_limits<int64_t>::min() ? 0 : (v < 0 ? -v : v); });
    int64_t b = *rc::gen::map(GenInt64(), [](int64_t v) { return v == std::numeric_limits<int64_t>::min() ? 0 : (v < 0 ? -v : v); });
    p.since = std::min(a, b);
    p.until = std::max(a, b);
    size_t nsites = *rc::gen::inRange<size_t>(0, 5);
    for (size_t k = 0; k < nsites; ++k) p.sites.push_back(*GenSiteId());
    size_t ntables = *rc::gen::inRange<size_t>(0, 4);
    for (size_t t = 0; t < ntables; ++t) {
      TableChanges tc;
      tc.name = NameOf("t", t, *GenUtf8());
      size_t npk = *rc::gen::inRange<size_t>(1, 4);
      for (size_t k = 0; k < npk; ++k) tc.pk.push_back(NameOf("k", k, *GenUtf8()));
      size_t ncols = *rc::gen::inRange<size_t>(0, 5);
      for (size_t k = 0; k < ncols; ++k) tc.columns.push_back(NameOf("c", k, *GenUtf8()));
      size_t nrows = *rc::gen::inRange<size_t>(0, 4);
      for (size_t r = 0; r < nrows; ++r) {
        RowChanges row;
        for (size_t k = 0; k < npk; ++k) row.key.push_back(*GenValue(false));
        row.cl = *rc::gen::weightedOneOf<int64_t>({
            {4, rc::gen::inRange<int64_t>(1, 8)},
            {1, rc::gen::inRange<int64_t>(1, kMaxCausalLength)},
            {1, rc::gen::just(kMaxCausalLength)},
        });
        if (!p.sites.empty()) {
          for (size_t c = 0; c < ncols; ++c) {
            if (!*rc::gen::arbitrary<bool>()) continue;
            ColumnChange ch;
            ch.column = static_cast<uint32_t>(c);
            ch.value = *GenValue();
            ch.hlc = *rc::gen::weightedOneOf<uint64_t>({
                {4, rc::gen::inRange<uint64_t>(uint64_t{1} << 16, uint64_t{1} << 60)},
                {1, rc::gen::elementOf(std::vector<uint64_t>{uint64_t{1} << 16, kMaxHlc,
                                               (uint64_t{1700000000000} << 16) | 0xffff})},
            });
            ch.site = *rc::gen::inRange<uint32_t>(0, static_cast<uint32_t>(p.sites.size()));
            int64_t lives = (row.cl - 1) / 2;  // odd values 1..row.cl: 2k+1 for k in [0, lives]
            int64_t k = *rc::gen::weightedOneOf<int64_t>({
                {3, rc::gen::inRange<int64_t>(0, lives + 1)},
                {1, rc::gen::just(lives)},
            });
            ch.cl = 2 * k + 1;
            row.changes.push_back(std::move(ch));
          }
          // Change order within a row is free; shuffle it sometimes.
          if (*rc::gen::arbitrary<bool>() && row.changes.size() > 1) std::swap(row.changes.front(), row.changes.back());
        }
        tc.rows.push_back(std::move(row));
      }
      p.tables.push_back(std::move(tc));
    }
    return p;
  });
}

inline bool SamePayload(const Payload& a, const Payload& b, std::string* why) {
  auto fail = [&](const std::string& w) {
    *why = w;
    return false;
  };
  if (a.site != b.site) return fail("site");
  if (a.since != b.since || a.until != b.until) return fail("since/until");
  if (a.sites != b.sites) return fail("sites");
  if (a.tables.size() != b.tables.size()) return fail("table count");
  for (size_t t = 0; t < a.tables.size(); ++t) {
    const auto& x = a.tables[t];
    const auto& y = b.tables[t];
    if (x.name != y.name || x.pk != y.pk || x.columns != y.columns) return fail("table header " + std::to_string(t));
    if (x.rows.size() != y.rows.size()) return fail("row count");
    for (size_t r = 0; r < x.rows.size(); ++r) {
      const auto& u = x.rows[r];
      const auto& v = y.rows[r];
      if (u.key != v.key) return fail("key of row " + std::to_string(r));
      if (u.cl != v.cl) return fail("cl of row " + std::to_string(r));
      if (u.changes.size() != v.changes.size()) return fail("change count");
      for (size_t c = 0; c < u.changes.size(); ++c) {
        const auto& m = u.changes[c];
        const auto& n = v.changes[c];
        if (m.column != n.column || m.hlc != n.hlc || m.site != n.site || m.cl != n.cl)
          return fail("change clock " + std::to_string(c));
        if (m.value != n.value) {
          std::ostringstream os;
          os << "change value " << c << ": " << m.value << " vs " << n.value;
          return fail(os.str());
        }
      }
    }
  }
  return true;
}

}  // namespace dstest
