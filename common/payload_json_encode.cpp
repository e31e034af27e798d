// The JSON encoder of the payload model (docs/protocol.md): streams text directly, as it is
// on the sync path. Every real is written with a '.' or an exponent, so that a reader tells
// it from an integer.
#include <cinttypes>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "common/base64.hpp"
#include "common/error.hpp"
#include "common/payload.hpp"
#include "common/payload_json.hpp"
#include "common/utf8.hpp"

namespace deltasync {

namespace {

void PutString(std::string& out, std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  out.push_back('"');
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        if (c < 0x20) {
          out.append("\\u00");
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

void PutInt(std::string& out, int64_t v) {
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%" PRId64, v);
  out.append(buf, n);
}

void PutUint(std::string& out, uint64_t v) {
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%" PRIu64, v);
  out.append(buf, n);
}

// Shortest decimal that reads back to the same bits, always with a '.' or exponent
// so that a reader tells it from an integer.
void PutFiniteReal(std::string& out, double d) {
  char buf[40];
  for (int prec = 15; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  out.append(buf);
  if (!std::strpbrk(buf, ".eE")) out.append(".0");
}

void PutValue(std::string& out, const Value& v) {
  switch (v.type) {
    case ValueType::kNull: out.append("null"); break;
    case ValueType::kInteger: PutInt(out, v.i); break;
    case ValueType::kReal:
      if (std::isfinite(v.r)) {
        PutFiniteReal(out, v.r);
      } else {
        uint64_t bits;
        std::memcpy(&bits, &v.r, sizeof bits);
        char buf[40];
        std::snprintf(buf, sizeof buf, "{\"f64\":\"%016" PRIx64 "\"}", bits);
        out.append(buf);
      }
      break;
    case ValueType::kText:
      if (IsValidUtf8(v.s)) {
        PutString(out, v.s);
      } else {
        out.append("{\"text_b64\":\"").append(Base64Encode(v.s)).append("\"}");
      }
      break;
    case ValueType::kBlob: out.append("{\"blob\":\"").append(Base64Encode(v.s)).append("\"}"); break;
  }
}

void PutStringArray(std::string& out, const std::vector<std::string>& a) {
  out.push_back('[');
  for (size_t k = 0; k < a.size(); ++k) {
    if (k) out.push_back(',');
    PutString(out, a[k]);
  }
  out.push_back(']');
}

}  // namespace

std::string EncodeJson(const Payload& p) {
  std::string out;
  out.append("{\"format\":\"").append(kJsonFormatName).append("\",\"version\":");
  PutInt(out, PayloadVersionOf(p));
  out.append(",\"site\":");
  PutString(out, p.site.ToString());
  out.append(",\"since\":");
  PutInt(out, p.since);
  out.append(",\"until\":");
  PutInt(out, p.until);
  out.append(",\"sites\":[");
  for (size_t k = 0; k < p.sites.size(); ++k) {
    if (k) out.push_back(',');
    PutString(out, p.sites[k].ToString());
  }
  out.append("],\"tables\":[");
  for (size_t t = 0; t < p.tables.size(); ++t) {
    const TableChanges& tc = p.tables[t];
    if (t) out.push_back(',');
    out.append("{\"name\":");
    PutString(out, tc.name);
    out.append(",\"pk\":");
    PutStringArray(out, tc.pk);
    out.append(",\"columns\":");
    PutStringArray(out, tc.columns);
    if (AnyPolicy(tc.policies)) {  // version 2 only
      out.append(",\"policies\":[");
      for (size_t k = 0; k < tc.policies.size(); ++k) {
        if (k) out.push_back(',');
        PutString(out, PolicyName(tc.policies[k]));
      }
      out.push_back(']');
    }
    out.append(",\"rows\":[");
    for (size_t r = 0; r < tc.rows.size(); ++r) {
      const RowChanges& row = tc.rows[r];
      if (r) out.push_back(',');
      out.append("\n{\"key\":[");
      for (size_t k = 0; k < row.key.size(); ++k) {
        if (k) out.push_back(',');
        PutValue(out, row.key[k]);
      }
      out.append("],\"cl\":");
      PutInt(out, row.cl);
      out.append(",\"changes\":[");
      for (size_t c = 0; c < row.changes.size(); ++c) {
        const ColumnChange& ch = row.changes[c];
        if (c) out.push_back(',');
        out.push_back('[');
        PutUint(out, ch.column);
        out.push_back(',');
        PutValue(out, ch.value);
        out.push_back(',');
        PutUint(out, ch.hlc);
        out.push_back(',');
        PutUint(out, ch.site);
        out.push_back(',');
        PutInt(out, ch.cl);
        out.push_back(']');
      }
      out.append("]}");
    }
    out.append("]}");
  }
  out.append("]}");
  return out;
}

}  // namespace deltasync
