// The reference JSON decoder of the payload model: a strict nlohmann_json DOM parse, then
// checks of every field's type and range. The cold path: DecodeJson (payload_json_fast.cpp)
// hands it every document the fast decoder does not accept outright, so every refusal, and
// its documented message, comes from here.
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
      auto only = j.begin();
      const std::string& tag = only.key();
      const Json& body = only.value();
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

Payload DecodeJsonReference(std::string_view text) {
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
  if (fmt == doc.end() || !fmt->is_string() || fmt->get_ref<const std::string&>() != kJsonFormatName)
    throw Invalid("not a deltasync payload (\"format\" must be \"deltasync\")");
  int64_t version = AsInt(Field(doc, "version"), "version");
  if (version != kPayloadVersion && version != kPayloadVersionPolicies)
    throw Error(ErrorCode::kInvalidPayload, "unsupported payload version " + std::to_string(version) +
                                                " (this build reads versions 1 and 2)");
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
      if (version == kPayloadVersionPolicies) {
        auto pol = jt.find("policies");
        if (pol != jt.end()) {
          std::vector<std::string> names = StringArray(*pol, "policies");
          for (size_t k = 0; k < names.size(); ++k) {
            if (names[k] != "lww" && names[k] != "counter" && names[k] != "json") throw Invalid("unknown policy \"" + names[k] + "\"");
            t.policies.push_back(ParsePolicy(names[k], k < t.columns.size() ? t.columns[k] : ""));
          }
          if (!AnyPolicy(t.policies)) t.policies.clear();
        }
      }
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
