// The readable codec of the payload model: JSON, documented in docs/protocol.md.
// Encoding streams text directly (it is on the sync path); decoding parses with
// nlohmann_json and then checks every field's type and range.
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/base64.hpp"
#include "common/error.hpp"
#include "common/payload.hpp"
#include "common/utf8.hpp"

namespace deltasync {

namespace {

constexpr const char* kFormatName = "deltasync";

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

using Json = nlohmann::json;

Error Invalid(const std::string& what) { return Error(ErrorCode::kInvalidPayload, "invalid payload: " + what); }

// nlohmann reads an integer token too large for 64 bits as a double; this format writes
// every real with a '.' or an exponent, so such a token is an integer out of range.
class StrictDomParser : public nlohmann::detail::json_sax_dom_parser<Json> {
 public:
  using nlohmann::detail::json_sax_dom_parser<Json>::json_sax_dom_parser;
  bool number_float(Json::number_float_t v, const Json::string_t& token) {
    if (token.find_first_of(".eE") == Json::string_t::npos)
      throw Invalid("integer " + token + " out of the 64-bit range");
    return nlohmann::detail::json_sax_dom_parser<Json>::number_float(v, token);
  }
};

const Json& Field(const Json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end()) throw Invalid(std::string("missing \"") + name + "\"");
  return *it;
}

int64_t AsInt(const Json& j, const char* what) {
  if (j.is_number_unsigned()) {
    auto u = j.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) throw Invalid(std::string(what) + " out of range");
    return static_cast<int64_t>(u);
  }
  if (j.is_number_integer()) return j.get<int64_t>();
  throw Invalid(std::string(what) + " must be an integer");
}

uint64_t AsUint(const Json& j, const char* what) {
  int64_t v = AsInt(j, what);
  if (v < 0) throw Invalid(std::string(what) + " must not be negative");
  return static_cast<uint64_t>(v);
}

const std::string& AsString(const Json& j, const char* what) {
  if (!j.is_string()) throw Invalid(std::string(what) + " must be a string");
  return j.get_ref<const std::string&>();
}

const Json& AsArray(const Json& j, const char* what) {
  if (!j.is_array()) throw Invalid(std::string(what) + " must be an array");
  return j;
}

std::vector<std::string> StringArray(const Json& j, const char* what) {
  std::vector<std::string> out;
  for (const Json& e : AsArray(j, what)) out.push_back(AsString(e, what));
  return out;
}

Value ParseValue(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null: return Value::Null();
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return Value::Integer(AsInt(j, "integer value"));
    case Json::value_t::number_float: {
      double d = j.get<double>();
      if (!std::isfinite(d)) throw Invalid("real value out of range");
      return Value::Real(d);
    }
    case Json::value_t::string: {
      const std::string& s = j.get_ref<const std::string&>();
      return Value::Text(s);
    }
    case Json::value_t::object: {
      if (j.size() != 1) throw Invalid("a tagged value has exactly one key");
      const auto& [tag, body] = *j.items().begin();
      const std::string& text = AsString(body, "tagged value");
      if (tag == "blob") return Value::Blob(Base64Decode(text));
      if (tag == "text_b64") return Value::Text(Base64Decode(text));
      if (tag == "f64") {
        if (text.size() != 16 || text.find_first_not_of("0123456789abcdef") != std::string::npos)
          throw Invalid("f64 must be 16 lowercase hex digits");
        uint64_t bits = std::strtoull(text.c_str(), nullptr, 16);
        double d;
        std::memcpy(&d, &bits, sizeof d);
        return Value::Real(d);
      }
      throw Invalid("unknown value tag \"" + tag + "\"");
    }
    default: throw Invalid("unsupported JSON value");
  }
}

}  // namespace

std::string EncodeJson(const Payload& p) {
  std::string out;
  out.append("{\"format\":\"").append(kFormatName).append("\",\"version\":");
  PutInt(out, kPayloadVersion);
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

Payload DecodeJson(std::string_view text) {
  // nlohmann stops at a NUL byte as if the input ended there; JSON text never holds one.
  if (text.find('\0') != std::string_view::npos) throw Invalid("not valid JSON (a NUL byte)");
  Json doc;
  try {
    StrictDomParser sax(doc);
    Json::sax_parse(text.begin(), text.end(), &sax);
  } catch (const Json::exception& e) {
    throw Invalid(std::string("not valid JSON (") + e.what() + ")");
  }
  if (!doc.is_object()) throw Invalid("not a JSON object");
  auto fmt = doc.find("format");
  if (fmt == doc.end() || !fmt->is_string() || fmt->get_ref<const std::string&>() != kFormatName)
    throw Invalid("not a deltasync payload (\"format\" must be \"deltasync\")");
  int64_t version = AsInt(Field(doc, "version"), "version");
  if (version != kPayloadVersion)
    throw Error(ErrorCode::kInvalidPayload, "unsupported payload version " + std::to_string(version) +
                                                " (this build reads version " +
                                                std::to_string(kPayloadVersion) + ")");
  try {
    Payload p;
    p.site = SiteId::Parse(AsString(Field(doc, "site"), "site"));
    p.since = AsInt(Field(doc, "since"), "since");
    p.until = AsInt(Field(doc, "until"), "until");
    for (const Json& s : AsArray(Field(doc, "sites"), "sites")) p.sites.push_back(SiteId::Parse(AsString(s, "site")));
    for (const Json& jt : AsArray(Field(doc, "tables"), "tables")) {
      if (!jt.is_object()) throw Invalid("a table must be an object");
      TableChanges t;
      t.name = AsString(Field(jt, "name"), "table name");
      t.pk = StringArray(Field(jt, "pk"), "pk");
      t.columns = StringArray(Field(jt, "columns"), "columns");
      const Json& rows = AsArray(Field(jt, "rows"), "rows");
      t.rows.reserve(rows.size());
      for (const Json& jr : rows) {
        if (!jr.is_object()) throw Invalid("a row must be an object");
        RowChanges r;
        for (const Json& k : AsArray(Field(jr, "key"), "key")) r.key.push_back(ParseValue(k));
        r.cl = AsInt(Field(jr, "cl"), "cl");
        const Json& changes = AsArray(Field(jr, "changes"), "changes");
        r.changes.reserve(changes.size());
        for (const Json& jc : changes) {
          if (!jc.is_array() || jc.size() != 5) throw Invalid("a change must be [column, value, hlc, site, cl]");
          ColumnChange c;
          uint64_t col = AsUint(jc[0], "column index");
          uint64_t site = AsUint(jc[3], "site index");
          if (col > UINT32_MAX || site > UINT32_MAX) throw Invalid("index out of range");
          c.column = static_cast<uint32_t>(col);
          c.value = ParseValue(jc[1]);
          c.hlc = AsUint(jc[2], "hlc");
          c.site = static_cast<uint32_t>(site);
          c.cl = AsInt(jc[4], "cl");
          r.changes.push_back(std::move(c));
        }
        t.rows.push_back(std::move(r));
      }
      p.tables.push_back(std::move(t));
    }
    ValidatePayload(p);
    return p;
  } catch (const Json::exception& e) {
    throw Invalid(e.what());
  }
}

}  // namespace deltasync
