// The JSON payload codec: round trips over random payload models (every value class),
// the documented shape of the text, and rejection of every malformed shape.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/base64.hpp"
#include "common/error.hpp"
#include "common/hlc.hpp"
#include "common/payload.hpp"
#include "common/utf8.hpp"
#include "test_util.hpp"

namespace deltasync {
namespace {

using Json = nlohmann::json;
using dstest::BitsOf;
using dstest::DoubleFromBits;
using dstest::ThrowsDeltasync;

const char* kU1 = "00112233-4455-6677-8899-aabbccddeeff";
const char* kU2 = "ffeeddcc-bbaa-9988-7766-554433221100";
const uint64_t kHlc = HlcFromMillis(1700000000000) | 3;

// --- round trips ----------------------------------------------------------------------

RC_GTEST_PROP(PayloadJson, RoundTripOverRandomModels, ()) {
  Payload p = *dstest::GenPayload();
  ValidatePayload(p);  // the generator only builds valid models
  std::string text = EncodeJson(p);
  Payload q = DecodeJson(text);
  std::string why;
  RC_ASSERT(dstest::SamePayload(p, q, &why));
  RC_ASSERT(EncodeJson(q) == text);  // the encoding is canonical
  RC_ASSERT(MaxHlc(q) == MaxHlc(p));
}

// The text has the documented shape, and each value class its documented JSON form.
RC_GTEST_PROP(PayloadJson, TextHasTheDocumentedShape, ()) {
  Payload p = *dstest::GenPayload();
  std::string text = EncodeJson(p);
  RC_ASSERT(IsValidUtf8(text));
  Json doc = Json::parse(text);
  RC_ASSERT(doc.at("format") == "deltasync");
  RC_ASSERT(doc.at("version") == 1);
  RC_ASSERT(doc.at("site") == p.site.ToString());
  RC_ASSERT(doc.at("since").get<int64_t>() == p.since);
  RC_ASSERT(doc.at("until").get<int64_t>() == p.until);
  RC_ASSERT(doc.at("sites").size() == p.sites.size());
  RC_ASSERT(doc.at("tables").size() == p.tables.size());
  auto check_value = [](const Json& j, const Value& v) {
    switch (v.type) {
      case ValueType::kNull: RC_ASSERT(j.is_null()); break;
      case ValueType::kInteger:
        RC_ASSERT(j.is_number_integer());
        RC_ASSERT(j.get<int64_t>() == v.i);
        break;
      case ValueType::kReal:
        if (std::isfinite(v.r)) {
          RC_ASSERT(j.is_number_float());
          RC_ASSERT(BitsOf(j.get<double>()) == BitsOf(v.r));
        } else {
          RC_ASSERT(j.is_object());
          RC_ASSERT(j.size() == 1u);
          const std::string& hex = j.at("f64").get_ref<const std::string&>();
          RC_ASSERT(hex.size() == 16u);
          RC_ASSERT(std::stoull(hex, nullptr, 16) == BitsOf(v.r));
        }
        break;
      case ValueType::kText:
        if (IsValidUtf8(v.s)) {
          RC_ASSERT(j.is_string());
          RC_ASSERT(j.get<std::string>() == v.s);
        } else {
          RC_ASSERT(j.is_object());
          RC_ASSERT(Base64Decode(j.at("text_b64").get<std::string>()) == v.s);
        }
        break;
      case ValueType::kBlob:
        RC_ASSERT(j.is_object());
        RC_ASSERT(j.size() == 1u);
        RC_ASSERT(Base64Decode(j.at("blob").get<std::string>()) == v.s);
        break;
    }
  };
  for (size_t t = 0; t < p.tables.size(); ++t) {
    const Json& jt = doc["tables"][t];
    RC_ASSERT(jt.at("name") == p.tables[t].name);
    RC_ASSERT(jt.at("pk").get<std::vector<std::string>>() == p.tables[t].pk);
    RC_ASSERT(jt.at("columns").get<std::vector<std::string>>() == p.tables[t].columns);
    for (size_t r = 0; r < p.tables[t].rows.size(); ++r) {
      const RowChanges& row = p.tables[t].rows[r];
      const Json& jr = jt.at("rows")[r];
      RC_ASSERT(jr.at("cl").get<int64_t>() == row.cl);
      for (size_t k = 0; k < row.key.size(); ++k) check_value(jr.at("key")[k], row.key[k]);
      for (size_t c = 0; c < row.changes.size(); ++c) {
        const Json& jc = jr.at("changes")[c];
        RC_ASSERT(jc.size() == 5u);
        RC_ASSERT(jc[0].get<uint64_t>() == row.changes[c].column);
        check_value(jc[1], row.changes[c].value);
        RC_ASSERT(jc[2].get<uint64_t>() == row.changes[c].hlc);
        RC_ASSERT(jc[3].get<uint64_t>() == row.changes[c].site);
        RC_ASSERT(jc[4].get<int64_t>() == row.changes[c].cl);
      }
    }
  }
}

// Every strict prefix of a payload (a transfer cut short) is refused.
RC_GTEST_PROP(PayloadJson, TruncatedTextIsRefused, ()) {
  Payload p = *dstest::GenPayload();
  std::string text = EncodeJson(p);
  size_t cut = *rc::gen::weightedOneOf<size_t>({
      {3, rc::gen::inRange<size_t>(0, text.size())},
      {1, rc::gen::just(text.size() - 1)},
  });
  bool threw = false;
  try {
    DecodeJson(text.substr(0, cut));
  } catch (const Error& e) {
    threw = true;
    RC_ASSERT(std::string(e.what()).rfind("deltasync: ", 0) == 0);
    RC_ASSERT(e.code() == ErrorCode::kInvalidPayload);
  }
  RC_ASSERT(threw);
}

// Random damage either is refused with a deltasync error, or yields a valid model that
// round-trips; nothing else (no foreign exception, no crash).
RC_GTEST_PROP(PayloadJson, DamagedTextFailsCleanly, ()) {
  Payload p = *dstest::GenPayload();
  std::string text = EncodeJson(p);
  int edits = *rc::gen::inRange(1, 4);
  for (int k = 0; k < edits; ++k) {
    size_t at = *rc::gen::inRange<size_t>(0, text.size());
    switch (*rc::gen::inRange(0, 4)) {
      case 0: text[at] = *dstest::GenByte(); break;
      case 1: text.erase(at, 1); break;
      case 2: text.insert(at, 1, *rc::gen::elementOf(std::string("0123456789-.e\"[]{},:nul\\"))); break;
      case 3: text[at] = *rc::gen::elementOf(std::string("0123456789\"[]{},")); break;
    }
    if (text.empty()) text = "{";
  }
  try {
    Payload q = DecodeJson(text);
    ValidatePayload(q);
    Payload r = DecodeJson(EncodeJson(q));
    std::string why;
    RC_ASSERT(dstest::SamePayload(q, r, &why));
  } catch (const Error& e) {
    RC_ASSERT(std::string(e.what()).rfind("deltasync: ", 0) == 0);
    RC_ASSERT(e.code() == ErrorCode::kInvalidPayload);
  }
}

Payload OneValuePayload(const Value& key, const Value& value) {
  Payload p;
  p.site = SiteId::Parse(kU1);
  p.since = 3;
  p.until = 9;
  p.sites = {SiteId::Parse(kU1)};
  TableChanges t;
  t.name = "t";
  t.pk = {"id"};
  t.columns = {"v"};
  RowChanges r;
  r.key = {key};
  r.cl = 1;
  ColumnChange c;
  c.column = 0;
  c.value = value;
  c.hlc = kHlc;
  c.site = 0;
  c.cl = 1;
  r.changes.push_back(c);
  t.rows.push_back(r);
  p.tables.push_back(t);
  return p;
}

std::vector<Value> SpecialValues() {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<Value> v = {
      Value::Integer(0),
      Value::Integer(1),
      Value::Integer(-1),
      Value::Integer(std::numeric_limits<int64_t>::min()),
      Value::Integer(std::numeric_limits<int64_t>::max()),
      Value::Real(0.0),
      Value::Real(-0.0),
      Value::Real(1.0),
      Value::Real(-1.5),
      Value::Real(0.1),
      Value::Real(1e16),
      Value::Real(1e300),
      Value::Real(123456789012345680000.0),
      Value::Real(std::numeric_limits<double>::max()),
      Value::Real(std::numeric_limits<double>::lowest()),
      Value::Real(std::numeric_limits<double>::min()),
      Value::Real(std::numeric_limits<double>::denorm_min()),
      Value::Real(-std::numeric_limits<double>::denorm_min()),
      Value::Real(9007199254740993.0),
      Value::Real(inf),
      Value::Real(-inf),
      Value::Real(std::numeric_limits<double>::quiet_NaN()),
      Value::Real(DoubleFromBits(0x7ff8000000000001)),  // quiet NaN with payload
      Value::Real(DoubleFromBits(0x7ff0000000000001)),  // signaling NaN
      Value::Real(DoubleFromBits(0xfff8dead0000beef)),  // negative NaN with payload
      Value::Real(DoubleFromBits(0x7fffffffffffffff)),
      Value::Text(""),
      Value::Text("hello"),
      Value::Text(std::string("nul\0inside\0", 11)),
      Value::Text("quote\" backslash\\ slash/ \b\f\n\r\t \x01\x1f\x7f"),
      Value::Text("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xef\xbb\xbf\xe2\x80\xa8"),
      Value::Text("\xff"),                    // not UTF-8
      Value::Text("\xed\xa0\x80"),            // encoded surrogate: not UTF-8
      Value::Text("\xc0\x80"),                // overlong: not UTF-8
      Value::Text(std::string("ok\0\xfe", 4)),
      Value::Text(std::string(200000, 'x')),  // large
      Value::Blob(""),
      Value::Blob(std::string(1, '\0')),
      Value::Blob(std::string(17, '\0')),
      Value::Blob("\x01\x02\x03\xff"),
      Value::Blob(std::string(300001, '\xab')),  // large
  };
  return v;
}

TEST(PayloadJson, EveryValueClassRoundTripsInKeysAndChanges) {
  for (const Value& v : SpecialValues()) {
    Payload p = OneValuePayload(v, v);
    std::string text = EncodeJson(p);
    Payload q;
    ASSERT_NO_THROW(q = DecodeJson(text)) << v;
    ASSERT_EQ(q.tables.size(), 1u);
    EXPECT_EQ(q.tables[0].rows[0].key[0], v);
    EXPECT_EQ(q.tables[0].rows[0].changes[0].value, v);
    EXPECT_EQ(EncodeJson(q), text);
  }
  // NULL travels as a column value.
  Payload p = OneValuePayload(Value::Integer(1), Value::Null());
  EXPECT_EQ(DecodeJson(EncodeJson(p)).tables[0].rows[0].changes[0].value, Value::Null());
}

TEST(PayloadJson, ValueFormsInText) {
  auto change_text = [](const Value& v) {
    Json doc = Json::parse(EncodeJson(OneValuePayload(Value::Integer(1), v)));
    return doc["tables"][0]["rows"][0]["changes"][0][1];
  };
  auto raw_text = [](const Value& v) { return EncodeJson(OneValuePayload(Value::Integer(1), v)); };
  EXPECT_TRUE(change_text(Value::Integer(1)).is_number_integer());
  EXPECT_TRUE(change_text(Value::Real(1.0)).is_number_float());  // 1.0 stays a real
  EXPECT_NE(raw_text(Value::Real(1.0)).find("[0,1.0,"), std::string::npos);
  EXPECT_NE(raw_text(Value::Integer(1)).find("[0,1,"), std::string::npos);
  EXPECT_NE(raw_text(Value::Real(-0.0)).find("[0,-0.0,"), std::string::npos);
  EXPECT_NE(raw_text(Value::Real(1e300)).find("[0,1e+300,"), std::string::npos);
  EXPECT_NE(raw_text(Value::Real(std::numeric_limits<double>::infinity())).find("{\"f64\":\"7ff0000000000000\"}"),
            std::string::npos);
  EXPECT_NE(raw_text(Value::Real(-std::numeric_limits<double>::infinity())).find("{\"f64\":\"fff0000000000000\"}"),
            std::string::npos);
  EXPECT_NE(raw_text(Value::Real(DoubleFromBits(0x7ff8000000000001))).find("{\"f64\":\"7ff8000000000001\"}"),
            std::string::npos);
  EXPECT_NE(raw_text(Value::Text(std::string("a\0b", 3))).find("\"a\\u0000b\""), std::string::npos);
  EXPECT_NE(raw_text(Value::Text("\xff")).find("{\"text_b64\":\"/w==\"}"), std::string::npos);
  EXPECT_NE(raw_text(Value::Blob("\xff")).find("{\"blob\":\"/w==\"}"), std::string::npos);
  EXPECT_NE(raw_text(Value::Blob("")).find("{\"blob\":\"\"}"), std::string::npos);
  EXPECT_NE(raw_text(Value::Null()).find("[0,null,"), std::string::npos);
  EXPECT_NE(raw_text(Value::Integer(std::numeric_limits<int64_t>::min())).find("[0,-9223372036854775808,"),
            std::string::npos);
}

TEST(PayloadJson, EmptyPayloadRoundTrips) {
  Payload p;
  p.site = SiteId::Parse(kU2);
  std::string text = EncodeJson(p);
  Payload q = DecodeJson(text);
  EXPECT_EQ(q.site, p.site);
  EXPECT_TRUE(q.sites.empty());
  EXPECT_TRUE(q.tables.empty());
  EXPECT_EQ(q.since, 0);
  EXPECT_EQ(q.until, 0);
}

// A document written by hand (other producers, other formatting) is read the same way.
TEST(PayloadJson, DecodesHandWrittenDocument) {
  const std::string text = std::string(R"( {
    "version": 1, "format": "deltasync",
    "tables": [ { "rows": [ { "changes": [ [1, 1e5, 65536, 1, 1], [0, -0.0, 65537, 0, 3],
                                             [2, {"f64": "7ff8000000000123"}, 99999999, 0, 1],
                                             [3, "\u00e9\u0000\ud83d\ude00", 65536, 0, 3],
                                             [4, {"text_b64": "/w=="}, 65536, 0, 3] ],
                              "cl": 3, "key": ["k", 9223372036854775807, -9223372036854775808, {"blob": "AAE="}] } ],
                  "columns": ["a", "b", "c", "d", "e"], "pk": ["p1", "p2", "p3", "p4"], "name": "T \"x\"" } ],
    "sites": ["00112233-4455-6677-8899-AABBCCDDEEFF", ")") +
                           kU2 + R"("],
    "site": ")" + kU2 + R"(", "since": 10, "until": 10 }
  )";
  Payload p = DecodeJson(text);
  EXPECT_EQ(p.site, SiteId::Parse(kU2));
  EXPECT_EQ(p.since, 10);
  EXPECT_EQ(p.until, 10);
  ASSERT_EQ(p.sites.size(), 2u);
  EXPECT_EQ(p.sites[0], SiteId::Parse(kU1));  // uppercase hex accepted
  ASSERT_EQ(p.tables.size(), 1u);
  const TableChanges& t = p.tables[0];
  EXPECT_EQ(t.name, "T \"x\"");
  ASSERT_EQ(t.rows.size(), 1u);
  const RowChanges& r = t.rows[0];
  EXPECT_EQ(r.cl, 3);
  ASSERT_EQ(r.key.size(), 4u);
  EXPECT_EQ(r.key[0], Value::Text("k"));
  EXPECT_EQ(r.key[1], Value::Integer(std::numeric_limits<int64_t>::max()));
  EXPECT_EQ(r.key[2], Value::Integer(std::numeric_limits<int64_t>::min()));
  EXPECT_EQ(r.key[3], Value::Blob(std::string("\0\1", 2)));
  ASSERT_EQ(r.changes.size(), 5u);
  EXPECT_EQ(r.changes[0].column, 1u);
  EXPECT_EQ(r.changes[0].value, Value::Real(100000.0));  // an exponent makes a real
  EXPECT_EQ(r.changes[0].hlc, 65536u);
  EXPECT_EQ(r.changes[0].site, 1u);
  EXPECT_EQ(r.changes[0].cl, 1);
  EXPECT_EQ(r.changes[1].value, Value::Real(-0.0));
  EXPECT_EQ(BitsOf(r.changes[1].value.r), 0x8000000000000000u);
  EXPECT_EQ(BitsOf(r.changes[2].value.r), 0x7ff8000000000123u);
  EXPECT_EQ(r.changes[3].value, Value::Text(std::string("\xc3\xa9\0\xf0\x9f\x98\x80", 7)));
  EXPECT_EQ(r.changes[4].value, Value::Text("\xff"));
  EXPECT_EQ(MaxHlc(p), 99999999u);
  EXPECT_EQ(CountChanges(t), 5u);
}

// --- helpers of the model ----------------------------------------------------------------

TEST(PayloadModel, MaxHlcAndCountChanges) {
  Payload p = OneValuePayload(Value::Integer(1), Value::Integer(2));
  EXPECT_EQ(MaxHlc(p), kHlc);
  EXPECT_EQ(MaxHlc(Payload{}), 0u);
  TableChanges& t = p.tables[0];
  EXPECT_EQ(CountChanges(t), 1u);
  RowChanges del;
  del.key = {Value::Integer(2)};
  del.cl = 2;  // a delete: counts as one existence change
  t.rows.push_back(del);
  EXPECT_EQ(CountChanges(t), 2u);
  t.columns.push_back("w");
  ColumnChange c = t.rows[0].changes[0];
  c.column = 1;
  c.hlc = kHlc + 100;
  t.rows[0].changes.push_back(c);
  EXPECT_EQ(CountChanges(t), 3u);
  EXPECT_EQ(MaxHlc(p), kHlc + 100);
  EXPECT_NO_THROW(ValidatePayload(p));
  EXPECT_EQ(CountChanges(TableChanges{}), 0u);
}

TEST(PayloadModel, ValidateRejectsBrokenModels) {
  const Payload good = OneValuePayload(Value::Integer(1), Value::Integer(2));
  ASSERT_NO_THROW(ValidatePayload(good));
  std::vector<std::pair<std::string, std::function<void(Payload&)>>> cases = {
      {"negative since", [](Payload& p) { p.since = -1; }},
      {"until before since", [](Payload& p) { p.until = 2; }},
      {"empty table name", [](Payload& p) { p.tables[0].name = ""; }},
      {"duplicate table", [](Payload& p) { p.tables.push_back(p.tables[0]); }},
      {"no pk", [](Payload& p) { p.tables[0].pk.clear(); }},
      {"empty pk name", [](Payload& p) { p.tables[0].pk = {""}; }},
      {"empty column name", [](Payload& p) { p.tables[0].columns = {""}; }},
      {"column named like pk", [](Payload& p) { p.tables[0].columns = {"id"}; }},
      {"key arity", [](Payload& p) { p.tables[0].rows[0].key.push_back(Value::Integer(2)); }},
      {"empty key", [](Payload& p) { p.tables[0].rows[0].key.clear(); }},
      {"null key", [](Payload& p) { p.tables[0].rows[0].key = {Value::Null()}; }},
      {"row cl 0", [](Payload& p) { p.tables[0].rows[0].cl = 0; }},
      {"row cl negative", [](Payload& p) { p.tables[0].rows[0].cl = -3; }},
      {"column out of range", [](Payload& p) { p.tables[0].rows[0].changes[0].column = 1; }},
      {"site out of range", [](Payload& p) { p.tables[0].rows[0].changes[0].site = 1; }},
      {"hlc 0", [](Payload& p) { p.tables[0].rows[0].changes[0].hlc = 0; }},
      {"hlc without millis", [](Payload& p) { p.tables[0].rows[0].changes[0].hlc = 0xffff; }},
      {"change cl even", [](Payload& p) {
         p.tables[0].rows[0].cl = 3;
         p.tables[0].rows[0].changes[0].cl = 2;
       }},
      {"change cl 0", [](Payload& p) { p.tables[0].rows[0].changes[0].cl = 0; }},
      {"change cl above row", [](Payload& p) { p.tables[0].rows[0].changes[0].cl = 3; }},
      {"column twice", [](Payload& p) {
         auto& r = p.tables[0].rows[0];
         r.changes.push_back(r.changes[0]);
       }},
  };
  for (auto& c : cases) {
    Payload p = good;
    c.second(p);
    EXPECT_TRUE(ThrowsDeltasync([&] { ValidatePayload(p); }, ErrorCode::kInvalidPayload, "invalid payload"))
        << c.first;
    // The encoder writes it, but the decoder refuses it.
    std::string text = EncodeJson(p);
    EXPECT_TRUE(ThrowsDeltasync([&] { DecodeJson(text); }, ErrorCode::kInvalidPayload)) << c.first;
  }
}

// --- malformed documents -------------------------------------------------------------------

Json BaseDoc() {
  Json row = {{"key", Json::array({1})},
              {"cl", 1},
              {"changes", Json::array({Json::array({0, "x", kHlc, 0, 1}),
                                       Json::array({1, Json{{"blob", "AAE="}}, kHlc, 1, 1})})}};
  Json table = {{"name", "t"},
                {"pk", Json::array({"id"})},
                {"columns", Json::array({"a", "b"})},
                {"rows", Json::array({row})}};
  return Json{{"format", "deltasync"}, {"version", 1},     {"site", kU1},
              {"since", 0},            {"until", 5},       {"sites", Json::array({kU1, kU2})},
              {"tables", Json::array({table})}};
}
Json& Table(Json& d) { return d["tables"][0]; }
Json& Row(Json& d) { return d["tables"][0]["rows"][0]; }
Json& Change(Json& d, int k = 0) { return d["tables"][0]["rows"][0]["changes"][k]; }
Json& ChangeValue(Json& d) { return Change(d)[1]; }

struct Malformed {
  std::string name;
  std::function<std::string()> make;
  std::string needle;  // a part of the expected message ("" = any)
};

void PrintTo(const Malformed& m, std::ostream* os) { *os << m.name; }

Malformed Raw(const std::string& name, const std::string& text, const std::string& needle = "") {
  return {name, [text] { return text; }, needle};
}
Malformed Mut(const std::string& name, std::function<void(Json&)> f, const std::string& needle = "") {
  return {name, [f] {
            Json d = BaseDoc();
            f(d);
            return d.dump();
          },
          needle};
}
// Puts a raw token (which a JSON library would not let us build) where f puts a marker.
Malformed Tok(const std::string& name, std::function<void(Json&, const Json&)> f, const std::string& token,
              const std::string& needle = "") {
  return {name, [f, token] {
            Json d = BaseDoc();
            f(d, "@@TOKEN@@");
            std::string text = d.dump();
            size_t at = text.find("\"@@TOKEN@@\"");
            return text.substr(0, at) + token + text.substr(at + 11);
          },
          needle};
}

const std::string kNotJson = "not valid JSON";
const std::string kVersion = "unsupported payload version";

std::vector<Malformed> MalformedCases() {
  const std::string good = BaseDoc().dump();
  auto in_value = [](Json& d, const Json& t) { ChangeValue(d) = t; };
  auto in_key = [](Json& d, const Json& t) { Row(d)["key"][0] = t; };
  return {
      // Not JSON, or not a JSON object.
      Raw("Empty", "", kNotJson),
      Raw("Whitespace", "  \n ", kNotJson),
      Raw("NotJson", "hello", kNotJson),
      Raw("SingleQuotes", "{'format':'deltasync','version':1}", kNotJson),
      Raw("TopLevelArray", "[" + good + "]", "object"),
      Raw("TopLevelNull", "null"),
      Raw("TopLevelNumber", "1"),
      Raw("TopLevelString", "\"deltasync\""),
      Raw("EmptyObject", "{}", "format"),
      Raw("TrailingGarbage", good + " x", kNotJson),
      Raw("TrailingComma", good.substr(0, good.size() - 1) + ",}", kNotJson),
      Raw("TrailingSecondDocument", good + good, kNotJson),
      Raw("TruncatedHalf", good.substr(0, good.size() / 2), kNotJson),
      Raw("TruncatedLastByte", good.substr(0, good.size() - 1), kNotJson),
      Raw("TruncatedInsideString", good.substr(0, good.find("deltasync") + 4), kNotJson),
      Raw("Comment", "/* hi */" + good, kNotJson),
      Raw("NulByteAfterDocument", good + std::string(1, '\0'), kNotJson),
      Raw("NulThenGarbage", good + std::string("\0garbage", 8), kNotJson),
      Raw("NulInsideDocument", good.substr(0, 20) + std::string(1, '\0') + good.substr(20), kNotJson),
      Tok("InvalidUtf8InString", in_value, "\"a\xff\"", kNotJson),
      Tok("OverlongUtf8InString", in_value, "\"\xc0\xaf\"", kNotJson),
      Tok("RawNulInString", in_value, std::string("\"a\0b\"", 5), kNotJson),
      Tok("RawNewlineInString", in_value, "\"a\nb\"", kNotJson),
      Tok("LoneSurrogateEscape", in_value, "\"\\ud800\"", kNotJson),
      Tok("BadEscape", in_value, "\"\\x41\"", kNotJson),
      Tok("NaNLiteral", in_value, "NaN", kNotJson),
      Tok("InfinityLiteral", in_value, "Infinity", kNotJson),
      Tok("LeadingZero", in_value, "01", kNotJson),
      Tok("PlusSign", in_value, "+1", kNotJson),
      Tok("HexNumber", in_value, "0x10", kNotJson),
      // format and version.
      Mut("FormatMissing", [](Json& d) { d.erase("format"); }, "format"),
      Mut("FormatWrongName", [](Json& d) { d["format"] = "deltasync2"; }, "format"),
      Mut("FormatWrongCase", [](Json& d) { d["format"] = "DeltaSync"; }, "format"),
      Mut("FormatNumber", [](Json& d) { d["format"] = 1; }, "format"),
      Mut("FormatNull", [](Json& d) { d["format"] = nullptr; }, "format"),
      Mut("VersionThree", [](Json& d) { d["version"] = 3; }, kVersion + " 3"),
      Mut("VersionZero", [](Json& d) { d["version"] = 0; }, kVersion),
      Mut("VersionNegative", [](Json& d) { d["version"] = -1; }, kVersion),
      Mut("VersionHuge", [](Json& d) { d["version"] = 1000000; }, kVersion),
      Mut("VersionThreeWithOtherShape", [](Json& d) { d = Json{{"format", "deltasync"}, {"version", 3}, {"x", 1}}; },
          kVersion),
      Mut("VersionMissing", [](Json& d) { d.erase("version"); }, "version"),
      Mut("VersionString", [](Json& d) { d["version"] = "1"; }, "version"),
      Mut("VersionFloat", [](Json& d) { d["version"] = 1.0; }, "version"),
      Mut("VersionNull", [](Json& d) { d["version"] = nullptr; }, "version"),
      Mut("VersionArray", [](Json& d) { d["version"] = Json::array({1}); }, "version"),
      // site.
      Mut("SiteMissing", [](Json& d) { d.erase("site"); }, "site"),
      Mut("SiteNumber", [](Json& d) { d["site"] = 7; }, "site"),
      Mut("SiteEmpty", [](Json& d) { d["site"] = ""; }, "site id"),
      Mut("SiteShort", [](Json& d) { d["site"] = "00112233-4455-6677-8899-aabbccddeef"; }, "site id"),
      Mut("SiteLong", [](Json& d) { d["site"] = "00112233-4455-6677-8899-aabbccddeeff0"; }, "site id"),
      Mut("SiteNoDashes", [](Json& d) { d["site"] = "00112233445566778899aabbccddeeff"; }, "site id"),
      Mut("SiteDashMisplaced", [](Json& d) { d["site"] = "0011223-34455-6677-8899-aabbccddeeff"; }, "site id"),
      Mut("SiteNonHex", [](Json& d) { d["site"] = "00112233-4455-6677-8899-aabbccddeegg"; }, "site id"),
      Mut("SiteBraces", [](Json& d) { d["site"] = "{00112233-4455-6677-8899-aabbccddeeff}"; }, "site id"),
      // since / until.
      Mut("SinceMissing", [](Json& d) { d.erase("since"); }, "since"),
      Mut("UntilMissing", [](Json& d) { d.erase("until"); }, "until"),
      Mut("SinceString", [](Json& d) { d["since"] = "0"; }, "since"),
      Mut("SinceFloat", [](Json& d) { d["since"] = 1.5; }, "since"),
      Mut("SinceNull", [](Json& d) { d["since"] = nullptr; }, "since"),
      Mut("UntilBool", [](Json& d) { d["until"] = true; }, "until"),
      Mut("SinceNegative", [](Json& d) { d["since"] = -1; }, "since"),
      Mut("UntilBeforeSince", [](Json& d) { d["since"] = 10; }, "since"),
      Tok("SinceAboveInt64", [](Json& d, const Json& t) { d["since"] = t; }, "9223372036854775808", "since"),
      Tok("UntilAboveUint64", [](Json& d, const Json& t) { d["until"] = t; }, "18446744073709551616", "range"),
      Tok("UntilExponent", [](Json& d, const Json& t) { d["until"] = t; }, "1e3", "until"),
      // sites.
      Mut("SitesMissing", [](Json& d) { d.erase("sites"); }, "sites"),
      Mut("SitesObject", [](Json& d) { d["sites"] = Json::object(); }, "sites"),
      Mut("SitesString", [](Json& d) { d["sites"] = kU1; }, "sites"),
      Mut("SitesHoldsNumber", [](Json& d) { d["sites"][1] = 5; }, "site"),
      Mut("SitesHoldsNull", [](Json& d) { d["sites"][1] = nullptr; }, "site"),
      Mut("SitesHoldsBadUuid", [](Json& d) { d["sites"][1] = "nope"; }, "site id"),
      // tables.
      Mut("TablesMissing", [](Json& d) { d.erase("tables"); }, "tables"),
      Mut("TablesObject", [](Json& d) { d["tables"] = Json::object(); }, "tables"),
      Mut("TablesNull", [](Json& d) { d["tables"] = nullptr; }, "tables"),
      Mut("TableIsArray", [](Json& d) { d["tables"][0] = Json::array(); }, "table"),
      Mut("TableIsString", [](Json& d) { d["tables"][0] = "t"; }, "table"),
      Mut("TableIsNull", [](Json& d) { d["tables"][0] = nullptr; }, "table"),
      Mut("TableNameMissing", [](Json& d) { Table(d).erase("name"); }, "name"),
      Mut("TableNameNumber", [](Json& d) { Table(d)["name"] = 1; }, "name"),
      Mut("TableNameEmpty", [](Json& d) { Table(d)["name"] = ""; }, "name"),
      Mut("DuplicateTable", [](Json& d) { d["tables"].push_back(Table(d)); }, "twice"),
      Mut("DuplicateTableDifferentShape", [](Json& d) {
            Json t = Table(d);
            t["rows"] = Json::array();
            t["columns"] = Json::array();
            d["tables"].push_back(t);
          }, "twice"),
      Mut("PkMissing", [](Json& d) { Table(d).erase("pk"); }, "pk"),
      Mut("PkString", [](Json& d) { Table(d)["pk"] = "id"; }, "pk"),
      Mut("PkEmpty", [](Json& d) { Table(d)["pk"] = Json::array(); }, "primary key"),
      Mut("PkHoldsNumber", [](Json& d) { Table(d)["pk"] = Json::array({1}); }, "pk"),
      Mut("PkDuplicate", [](Json& d) {
            Table(d)["pk"] = Json::array({"id", "id"});
            Row(d)["key"] = Json::array({1, 2});
          }, "key column"),
      Mut("PkEmptyName", [](Json& d) { Table(d)["pk"] = Json::array({""}); }, "key column"),
      Mut("ColumnsMissing", [](Json& d) { Table(d).erase("columns"); }, "columns"),
      Mut("ColumnsObject", [](Json& d) { Table(d)["columns"] = Json::object(); }, "columns"),
      Mut("ColumnsHoldNull", [](Json& d) { Table(d)["columns"][1] = nullptr; }, "columns"),
      Mut("ColumnsDuplicate", [](Json& d) { Table(d)["columns"] = Json::array({"a", "a"}); }, "column list"),
      Mut("ColumnNamedLikePk", [](Json& d) { Table(d)["columns"] = Json::array({"a", "id"}); }, "column list"),
      Mut("ColumnEmptyName", [](Json& d) { Table(d)["columns"][1] = ""; }, "column list"),
      // rows.
      Mut("RowsMissing", [](Json& d) { Table(d).erase("rows"); }, "rows"),
      Mut("RowsObject", [](Json& d) { Table(d)["rows"] = Json::object(); }, "rows"),
      Mut("RowIsArray", [](Json& d) { Row(d) = Json::array(); }, "row"),
      Mut("RowIsNumber", [](Json& d) { Row(d) = 1; }, "row"),
      Mut("KeyMissing", [](Json& d) { Row(d).erase("key"); }, "key"),
      Mut("KeyScalar", [](Json& d) { Row(d)["key"] = 1; }, "key"),
      Mut("KeyNull", [](Json& d) { Row(d)["key"] = Json::array({nullptr}); }, "NULL"),
      Mut("KeyNullInComposite", [](Json& d) {
            Table(d)["pk"] = Json::array({"id", "id2"});
            Row(d)["key"] = Json::array({1, nullptr});
          }, "NULL"),
      Mut("KeyTooShort", [](Json& d) { Row(d)["key"] = Json::array(); }, "arity"),
      Mut("KeyTooLong", [](Json& d) { Row(d)["key"] = Json::array({1, 2}); }, "arity"),
      Mut("KeyNestedArray", [](Json& d) { Row(d)["key"] = Json::array({Json::array({1})}); }),
      Mut("KeyBool", [](Json& d) { Row(d)["key"] = Json::array({true}); }),
      Mut("RowClMissing", [](Json& d) { Row(d).erase("cl"); }, "cl"),
      Mut("RowClZero", [](Json& d) { Row(d)["cl"] = 0; }, "causal length"),
      Mut("RowClNegative", [](Json& d) { Row(d)["cl"] = -1; }, "causal length"),
      Mut("RowClFloat", [](Json& d) { Row(d)["cl"] = 1.0; }, "cl"),
      Mut("RowClString", [](Json& d) { Row(d)["cl"] = "1"; }, "cl"),
      Tok("RowClAboveInt64", [](Json& d, const Json& t) { Row(d)["cl"] = t; }, "9223372036854775808", "cl"),
      // changes.
      Mut("ChangesMissing", [](Json& d) { Row(d).erase("changes"); }, "changes"),
      Mut("ChangesObject", [](Json& d) { Row(d)["changes"] = Json::object(); }, "changes"),
      Mut("ChangeIsObject", [](Json& d) { Change(d) = Json{{"column", 0}}; }, "change"),
      Mut("ChangeIsNumber", [](Json& d) { Change(d) = 0; }, "change"),
      Mut("ChangeEmpty", [](Json& d) { Change(d) = Json::array(); }, "change"),
      Mut("ChangeArity4", [](Json& d) { Change(d).erase(4); }, "change"),
      Mut("ChangeArity6", [](Json& d) { Change(d).push_back(1); }, "change"),
      Mut("ColumnIndexOutOfRange", [](Json& d) { Change(d)[0] = 2; }, "column index"),
      Mut("ColumnIndexNegative", [](Json& d) { Change(d)[0] = -1; }, "column index"),
      Mut("ColumnIndexFloat", [](Json& d) { Change(d)[0] = 0.0; }, "column index"),
      Mut("ColumnIndexString", [](Json& d) { Change(d)[0] = "a"; }, "column index"),
      Mut("ColumnIndexNull", [](Json& d) { Change(d)[0] = nullptr; }, "column index"),
      Mut("ColumnIndexAbove32Bits", [](Json& d) { Change(d)[0] = uint64_t{1} << 32; }, "index"),
      Mut("SiteIndexOutOfRange", [](Json& d) { Change(d)[3] = 2; }, "site index"),
      Mut("SiteIndexNoSites", [](Json& d) { d["sites"] = Json::array(); }, "site index"),
      Mut("SiteIndexNegative", [](Json& d) { Change(d)[3] = -1; }, "site index"),
      Mut("SiteIndexAbove32Bits", [](Json& d) { Change(d)[3] = (uint64_t{1} << 32) + 1; }, "index"),
      Mut("SiteIndexString", [](Json& d) { Change(d)[3] = kU1; }, "site index"),
      Mut("HlcZero", [](Json& d) { Change(d)[2] = 0; }, "clock"),
      Mut("HlcWithoutMillis", [](Json& d) { Change(d)[2] = 65535; }, "clock"),
      Mut("HlcNegative", [](Json& d) { Change(d)[2] = -65536; }, "hlc"),
      Mut("HlcFloat", [](Json& d) { Change(d)[2] = 65536.0; }, "hlc"),
      Mut("HlcString", [](Json& d) { Change(d)[2] = "65536"; }, "hlc"),
      Mut("HlcNull", [](Json& d) { Change(d)[2] = nullptr; }, "hlc"),
      Tok("HlcAboveUint64", [](Json& d, const Json& t) { Change(d)[2] = t; }, "18446744073709551616", "range"),
      Mut("ChangeClZero", [](Json& d) { Change(d)[4] = 0; }, "causal length"),
      Mut("ChangeClNegative", [](Json& d) { Change(d)[4] = -1; }, "causal length"),
      Mut("ChangeClEven", [](Json& d) {
            Row(d)["cl"] = 3;
            Change(d)[4] = 2;
          }, "causal length"),
      Mut("ChangeClEvenEqualToRow", [](Json& d) {
            Row(d)["cl"] = 2;
            Change(d)[4] = 2;
          }, "causal length"),
      Mut("ChangeClAboveRow", [](Json& d) { Change(d)[4] = 3; }, "causal length"),
      Mut("ChangeClFloat", [](Json& d) { Change(d)[4] = 1.0; }, "cl"),
      Mut("ChangeClString", [](Json& d) { Change(d)[4] = "1"; }, "cl"),
      Mut("DuplicateColumnInRow", [](Json& d) { Change(d, 1)[0] = 0; }, "twice"),
      // values.
      Mut("ValueBool", [](Json& d) { ChangeValue(d) = true; }, "value"),
      Mut("ValueArray", [](Json& d) { ChangeValue(d) = Json::array({1}); }, "value"),
      Mut("ValueEmptyObject", [](Json& d) { ChangeValue(d) = Json::object(); }, "tagged value"),
      Mut("ValueTwoTags", [](Json& d) { ChangeValue(d) = Json{{"blob", ""}, {"text_b64", ""}}; }, "tagged value"),
      Mut("ValueUnknownTag", [](Json& d) { ChangeValue(d) = Json{{"date", "2020-01-01"}}; }, "tag"),
      Mut("ValueTagWrongCase", [](Json& d) { ChangeValue(d) = Json{{"Blob", "AAE="}}; }, "tag"),
      Mut("BlobBodyNumber", [](Json& d) { ChangeValue(d) = Json{{"blob", 1}}; }, "tagged value"),
      Mut("BlobBodyNull", [](Json& d) { ChangeValue(d) = Json{{"blob", nullptr}}; }, "tagged value"),
      Mut("BlobBodyArray", [](Json& d) { ChangeValue(d) = Json{{"blob", Json::array({1})}}; }, "tagged value"),
      Mut("BlobBadLength", [](Json& d) { ChangeValue(d) = Json{{"blob", "AAE"}}; }, "base64"),
      Mut("BlobBadChar", [](Json& d) { ChangeValue(d) = Json{{"blob", "A@=="}}; }, "base64"),
      Mut("BlobNonCanonical", [](Json& d) { ChangeValue(d) = Json{{"blob", "AAF="}}; }, "base64"),
      Mut("BlobWhitespace", [](Json& d) { ChangeValue(d) = Json{{"blob", " AAE="}}; }, "base64"),
      Mut("BlobNewline", [](Json& d) { ChangeValue(d) = Json{{"blob", "AAAA\nAAAA"}}; }, "base64"),
      Mut("BlobUrlSafeAlphabet", [](Json& d) { ChangeValue(d) = Json{{"blob", "-_8="}}; }, "base64"),
      Mut("BlobPaddingInMiddle", [](Json& d) { ChangeValue(d) = Json{{"blob", "AA==AAAA"}}; }, "base64"),
      Mut("BlobInKeyBadBase64", [](Json& d) { Row(d)["key"][0] = Json{{"blob", "***"}}; }, "base64"),
      Mut("TextB64Bad", [](Json& d) { ChangeValue(d) = Json{{"text_b64", "!!!!"}}; }, "base64"),
      Mut("TextB64Number", [](Json& d) { ChangeValue(d) = Json{{"text_b64", 5}}; }, "tagged value"),
      Mut("F64Short", [](Json& d) { ChangeValue(d) = Json{{"f64", "7ff800000000000"}}; }, "f64"),
      Mut("F64Long", [](Json& d) { ChangeValue(d) = Json{{"f64", "7ff80000000000000"}}; }, "f64"),
      Mut("F64Empty", [](Json& d) { ChangeValue(d) = Json{{"f64", ""}}; }, "f64"),
      Mut("F64Uppercase", [](Json& d) { ChangeValue(d) = Json{{"f64", "7FF8000000000000"}}; }, "f64"),
      Mut("F64NonHex", [](Json& d) { ChangeValue(d) = Json{{"f64", "7ff800000000000g"}}; }, "f64"),
      Mut("F64Prefix", [](Json& d) { ChangeValue(d) = Json{{"f64", "0x7ff80000000000"}}; }, "f64"),
      Mut("F64Sign", [](Json& d) { ChangeValue(d) = Json{{"f64", "-7ff800000000000"}}; }, "f64"),
      Mut("F64Spaces", [](Json& d) { ChangeValue(d) = Json{{"f64", " 7ff80000000000 "}}; }, "f64"),
      Mut("F64Number", [](Json& d) { ChangeValue(d) = Json{{"f64", 1.5}}; }, "tagged value"),
      Mut("F64InKeyBad", [](Json& d) { Row(d)["key"][0] = Json{{"f64", "nan"}}; }, "f64"),
      // numbers out of range.
      Tok("IntValueAboveInt64", in_value, "9223372036854775808", "range"),
      Tok("IntValueAboveUint64", in_value, "18446744073709551616", "range"),
      Tok("IntValueBelowInt64", in_value, "-9223372036854775809", "range"),
      Tok("IntValueHuge", in_value, "123456789012345678901234567890", "range"),
      Tok("IntKeyAboveInt64", in_key, "9223372036854775808", "range"),
      Tok("IntKeyBelowInt64", in_key, "-9223372036854775809", "range"),
      Tok("RealValueOverflow", in_value, "1e400", "range"),
      Tok("RealValueNegativeOverflow", in_value, "-1.5e999", "range"),
      Tok("RealKeyOverflow", in_key, "1E+309", "range"),
  };
}

class PayloadJsonMalformed : public ::testing::TestWithParam<Malformed> {};

TEST_P(PayloadJsonMalformed, IsRefusedWithADeltasyncError) {
  const Malformed& m = GetParam();
  std::string text = m.make();
  EXPECT_TRUE(ThrowsDeltasync([&] { DecodeJson(text); }, ErrorCode::kInvalidPayload, m.needle))
      << "input: " << text.substr(0, 400);
}

INSTANTIATE_TEST_SUITE_P(All, PayloadJsonMalformed, ::testing::ValuesIn(MalformedCases()),
                         [](const ::testing::TestParamInfo<Malformed>& info) { return info.param.name; });

// The base document of the malformed cases is itself valid, so each case fails for its
// own reason.
TEST(PayloadJsonMalformedBase, BaseDocumentDecodes) {
  Payload p = DecodeJson(BaseDoc().dump());
  ASSERT_EQ(p.tables.size(), 1u);
  ASSERT_EQ(p.tables[0].rows.size(), 1u);
  EXPECT_EQ(p.tables[0].rows[0].changes.size(), 2u);
  EXPECT_EQ(p.tables[0].rows[0].changes[1].value, Value::Blob(std::string("\0\1", 2)));
  EXPECT_EQ(p.sites.size(), 2u);
  // And so are the benign variants of the cases above.
  Json d = BaseDoc();
  Row(d)["cl"] = 5;
  Change(d)[4] = 5;
  Change(d, 1)[4] = 3;
  EXPECT_NO_THROW(DecodeJson(d.dump()));
  d = BaseDoc();
  Row(d)["cl"] = 2;  // a row deleted after its changes were written in life 1
  EXPECT_NO_THROW(DecodeJson(d.dump()));
  d = BaseDoc();
  d["since"] = 5;  // since == until
  EXPECT_NO_THROW(DecodeJson(d.dump()));
  d = BaseDoc();
  Change(d)[2] = 65536;  // the smallest clock with a millisecond part
  EXPECT_NO_THROW(DecodeJson(d.dump()));
  d = BaseDoc();
  ChangeValue(d) = Json{{"f64", "3ff0000000000000"}};
  EXPECT_EQ(DecodeJson(d.dump()).tables[0].rows[0].changes[0].value, Value::Real(1.0));
  std::string text = Tok("", [](Json& x, const Json& t) { ChangeValue(x) = t; }, "9223372036854775807").make();
  EXPECT_EQ(DecodeJson(text).tables[0].rows[0].changes[0].value,
            Value::Integer(std::numeric_limits<int64_t>::max()));
  text = Tok("", [](Json& x, const Json& t) { ChangeValue(x) = t; }, "-9223372036854775808").make();
  EXPECT_EQ(DecodeJson(text).tables[0].rows[0].changes[0].value,
            Value::Integer(std::numeric_limits<int64_t>::min()));
  text = Tok("", [](Json& x, const Json& t) { ChangeValue(x) = t; }, "1.7976931348623157e308").make();
  EXPECT_EQ(DecodeJson(text).tables[0].rows[0].changes[0].value, Value::Real(std::numeric_limits<double>::max()));
}

}  // namespace
}  // namespace deltasync

// Keys match by position (issue 9: a renamed key column keeps syncing); another key is told
// apart by a name the other side holds elsewhere, and by the number of key columns.
TEST(KeyMismatch, RenamedKeyColumnsMatchAndOtherKeysDoNot) {
  using deltasync::KeyMismatch;
  using V = std::vector<std::string>;
  EXPECT_EQ(KeyMismatch({"id"}, {"name"}, {"ID"}, {"name"}), "");
  EXPECT_EQ(KeyMismatch({"pid"}, {"name"}, {"id"}, {"name"}), "");      // renamed here or there
  EXPECT_EQ(KeyMismatch({"a", "b"}, {}, {"a", "c"}, {"x"}), "");         // the hub: no held columns
  EXPECT_NE(KeyMismatch({"id"}, {}, {"id", "k"}, {}), "");               // arity
  EXPECT_NE(KeyMismatch({"id"}, {"name"}, {"name"}, {"id"}), "");        // keyed by another column
  EXPECT_NE(KeyMismatch({"id"}, V{}, {"name"}, {"id"}), "");             // ... as the hub sees it
  EXPECT_NE(KeyMismatch({"id"}, {"name"}, {"name"}, V{}), "");           // ... as a site sees it
  EXPECT_NE(KeyMismatch({"a", "b"}, {}, {"b", "a"}, {}), "");            // the same columns in another order
  EXPECT_NE(KeyMismatch({"a", "b"}, {}, {"b", "a"}, {}).find("another position"), std::string::npos);
}
