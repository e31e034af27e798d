// The readable codec of the payload model: JSON, documented in docs/protocol.md.
// Encoding streams text directly (it is on the sync path). Decoding is on the sync path
// too: a strict streaming reader builds the model without a DOM; any document it does
// not accept outright goes to the reference decoder (an nlohmann_json DOM, then checks of
// every field's type and range), which accepts or refuses it with the documented message.
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

// The reference decoder: a strict DOM parse, then field-by-field checks. It is the cold
// path: DecodeJson hands it every document the FastDecoder below does not accept
// outright, so every refusal (and its message) comes from here.
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

namespace {

// --- the fast decoder ------------------------------------------------------------------
//
// A strict single-pass JSON reader (RFC 8259, with nlohmann's reading of numbers) that
// builds the model as it goes, without a DOM. It only ever accepts: on anything it does
// not take for sure -- a syntax error, a field of the wrong type or range, a missing or
// repeated field, a bad site id or base64 text, a nesting deeper than it cares to follow
// -- it gives up and DecodeJson hands the text to the reference decoder, which then
// refuses it with its usual message (or, for the rare odd document it accepts, builds the
// same model). So what the fast path accepts, it must build exactly as the reference
// would; it never words a refusal.

struct GaveUp {};

[[noreturn]] void GiveUp() { throw GaveUp(); }

// Bytes a string holds as they are: printable ASCII other than '"' and '\\'.
struct PlainTable {
  bool plain[256];
};
constexpr PlainTable MakePlainTable() {
  PlainTable t{};
  for (int c = 0; c < 256; ++c) t.plain[c] = c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
  return t;
}
constexpr PlainTable kPlain = MakePlainTable();

inline bool IsPlain(char c) { return kPlain.plain[static_cast<unsigned char>(c)]; }

// The length of the well-formed UTF-8 sequence (Unicode table 3-7) that starts a
// non-ASCII byte at p, or 0.
size_t Utf8SequenceLength(const char* p, const char* end) {
  size_t avail = static_cast<size_t>(end - p);
  auto in = [&](size_t k, unsigned lo, unsigned hi) {
    if (k >= avail) return false;
    unsigned b = static_cast<unsigned char>(p[k]);
    return b >= lo && b <= hi;
  };
  unsigned c = static_cast<unsigned char>(p[0]);
  if (c >= 0xc2 && c <= 0xdf) return in(1, 0x80, 0xbf) ? 2 : 0;
  if (c == 0xe0) return in(1, 0xa0, 0xbf) && in(2, 0x80, 0xbf) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) return in(1, 0x80, 0xbf) && in(2, 0x80, 0xbf) ? 3 : 0;
  if (c == 0xed) return in(1, 0x80, 0x9f) && in(2, 0x80, 0xbf) ? 3 : 0;
  if (c == 0xf0) return in(1, 0x90, 0xbf) && in(2, 0x80, 0xbf) && in(3, 0x80, 0xbf) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return in(1, 0x80, 0xbf) && in(2, 0x80, 0xbf) && in(3, 0x80, 0xbf) ? 4 : 0;
  if (c == 0xf4) return in(1, 0x80, 0x8f) && in(2, 0x80, 0xbf) && in(3, 0x80, 0xbf) ? 4 : 0;
  return 0;
}

// A number token as nlohmann reads it: an integer (no '.', no exponent) keeps its sign and
// magnitude; any other is a double from strtod.
struct Number {
  bool integer = true;
  bool negative = false;
  uint64_t magnitude = 0;
  double real = 0.0;
};

class FastDecoder {
 public:
  explicit FastDecoder(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  void Decode(Payload& p) {
    constexpr unsigned kFormat = 1, kVersion = 2, kSite = 4, kSince = 8, kUntil = 16, kSites = 32, kTables = 64;
    unsigned seen = 0;
    bool format_ok = false;
    int64_t version = 0;
    Expect('{');
    if (!Accept('}')) {
      do {
        std::string_view key = ReadString();
        unsigned field = key == "format"   ? kFormat
                         : key == "version" ? kVersion
                         : key == "site"    ? kSite
                         : key == "since"   ? kSince
                         : key == "until"   ? kUntil
                         : key == "sites"   ? kSites
                         : key == "tables"  ? kTables
                                            : 0;
        if (seen & field) GiveUp();  // a repeated field: the last one counts (reference)
        seen |= field;
        Expect(':');
        switch (field) {
          case kFormat: format_ok = ReadString() == kFormatName; break;
          case kVersion: version = ReadInt(); break;
          case kSite: p.site = SiteId::Parse(ReadString()); break;
          case kSince: p.since = ReadInt(); break;
          case kUntil: p.until = ReadInt(); break;
          case kSites:
            Expect('[');
            if (!Accept(']')) {
              do {
                p.sites.push_back(SiteId::Parse(ReadString()));
              } while (Accept(','));
              Expect(']');
            }
            break;
          case kTables: ReadTables(p.tables); break;
          default: SkipValue(0);
        }
      } while (Accept(','));
      Expect('}');
    }
    SkipBlanks();
    if (p_ != end_) GiveUp();
    if (seen != 127 || !format_ok || version != kPayloadVersion) GiveUp();
  }

 private:
  const char* p_;
  const char* end_;
  std::string scratch_;  // a string token that holds escapes or non-ASCII text
  std::vector<Value> key_buf_;
  std::vector<ColumnChange> change_buf_;
  int decimal_point_ = -1;

  void SkipBlanks() {
    while (p_ < end_) {
      char c = *p_;
      if (c != ' ' && c != '\n' && c != '\r' && c != '\t') break;
      ++p_;
    }
  }
  // The next byte after blanks; '\0' at the end (a NUL in the text is no token either).
  char Peek() {
    SkipBlanks();
    return p_ < end_ ? *p_ : '\0';
  }
  void Expect(char c) {
    if (Peek() != c) GiveUp();
    ++p_;
  }
  bool Accept(char c) {
    if (Peek() != c) return false;
    ++p_;
    return true;
  }
  void Literal(const char* word, size_t n) {
    if (static_cast<size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0) GiveUp();
    p_ += n;
  }

  // A string token, decoded; the view points into the text, or into scratch_ (valid until
  // the next string is read).
  std::string_view ReadString() {
    if (Peek() != '"') GiveUp();
    const char* start = ++p_;
    const char* q = start;
    while (q < end_ && IsPlain(*q)) ++q;
    if (q < end_ && *q == '"') {
      p_ = q + 1;
      return std::string_view(start, static_cast<size_t>(q - start));
    }
    scratch_.assign(start, q);
    p_ = q;
    for (;;) {
      if (p_ >= end_) GiveUp();
      auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return scratch_;
      }
      if (c == '\\') {
        ReadEscape();
      } else if (c < 0x20) {
        GiveUp();
      } else if (c < 0x80) {
        q = p_ + 1;
        while (q < end_ && IsPlain(*q)) ++q;
        scratch_.append(p_, q);
        p_ = q;
      } else {
        size_t n = Utf8SequenceLength(p_, end_);
        if (n == 0) GiveUp();
        scratch_.append(p_, n);
        p_ += n;
      }
    }
  }

  void ReadEscape() {  // at the backslash
    if (end_ - p_ < 2) GiveUp();
    char e = p_[1];
    p_ += 2;
    switch (e) {
      case '"': scratch_.push_back('"'); break;
      case '\\': scratch_.push_back('\\'); break;
      case '/': scratch_.push_back('/'); break;
      case 'b': scratch_.push_back('\b'); break;
      case 'f': scratch_.push_back('\f'); break;
      case 'n': scratch_.push_back('\n'); break;
      case 'r': scratch_.push_back('\r'); break;
      case 't': scratch_.push_back('\t'); break;
      case 'u': {
        uint32_t cp = ReadHex4();
        if (cp >= 0xd800 && cp <= 0xdbff) {
          if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') GiveUp();
          p_ += 2;
          uint32_t low = ReadHex4();
          if (low < 0xdc00 || low > 0xdfff) GiveUp();
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
          GiveUp();
        }
        AppendUtf8(scratch_, cp);
        break;
      }
      default: GiveUp();
    }
  }

  uint32_t ReadHex4() {
    if (end_ - p_ < 4) GiveUp();
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = p_[k];
      uint32_t d;
      if (c >= '0' && c <= '9') d = static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') d = static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') d = static_cast<uint32_t>(c - 'A' + 10);
      else GiveUp();
      v = v * 16 + d;
    }
    p_ += 4;
    return v;
  }

  bool AtDigit() const { return p_ < end_ && *p_ >= '0' && *p_ <= '9'; }

  Number ReadNumber() {
    SkipBlanks();
    const char* start = p_;
    Number n;
    if (p_ < end_ && *p_ == '-') {
      n.negative = true;
      ++p_;
    }
    if (!AtDigit()) GiveUp();
    if (*p_ == '0') {
      ++p_;  // a digit after it is left for the caller to refuse
    } else {
      while (AtDigit()) ++p_;
    }
    const char* int_end = p_;
    if (p_ < end_ && *p_ == '.') {
      n.integer = false;
      ++p_;
      if (!AtDigit()) GiveUp();
      while (AtDigit()) ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      n.integer = false;
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!AtDigit()) GiveUp();
      while (AtDigit()) ++p_;
    }
    if (n.integer) {
      const char* d = start + (n.negative ? 1 : 0);
      // 19 digits always fit 64 bits; longer ones are out of this format's range.
      if (int_end - d > 19) GiveUp();
      uint64_t m = 0;
      for (; d < int_end; ++d) m = m * 10 + static_cast<uint64_t>(*d - '0');
      n.magnitude = m;
    } else {
      n.real = ParseReal(start, p_);
    }
    return n;
  }

  // strtod on the token with '.' as the locale writes it, as nlohmann does; only finite.
  double ParseReal(const char* begin, const char* end) {
    if (decimal_point_ < 0) {
      const std::lconv* loc = std::localeconv();
      decimal_point_ = (loc->decimal_point == nullptr) ? '.' : *loc->decimal_point;
    }
    size_t len = static_cast<size_t>(end - begin);
    char small[64];
    std::string big;
    char* buf = small;
    if (len >= sizeof small) {
      big.assign(begin, len);
      buf = big.data();
    } else {
      std::memcpy(small, begin, len);
      small[len] = '\0';
    }
    if (decimal_point_ != '.') {
      for (size_t k = 0; k < len; ++k)
        if (buf[k] == '.') buf[k] = static_cast<char>(decimal_point_);
    }
    double d = std::strtod(buf, nullptr);
    if (!std::isfinite(d)) GiveUp();
    return d;
  }

  static int64_t IntOf(const Number& n) {
    if (!n.integer) GiveUp();
    if (n.negative) {
      if (n.magnitude > static_cast<uint64_t>(INT64_MAX) + 1) GiveUp();
      return static_cast<int64_t>(0 - n.magnitude);
    }
    if (n.magnitude > static_cast<uint64_t>(INT64_MAX)) GiveUp();
    return static_cast<int64_t>(n.magnitude);
  }
  int64_t ReadInt() { return IntOf(ReadNumber()); }
  uint64_t ReadUint() {
    int64_t v = ReadInt();
    if (v < 0) GiveUp();
    return static_cast<uint64_t>(v);
  }

  void ReadValue(Value& v) {  // v is a fresh (NULL) value
    char c = Peek();
    if (c == '"') {
      std::string_view s = ReadString();
      v.type = ValueType::kText;
      v.s.assign(s.data(), s.size());
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      Number n = ReadNumber();
      if (n.integer) {
        v.type = ValueType::kInteger;
        v.i = IntOf(n);
      } else {
        v.type = ValueType::kReal;
        v.r = n.real;
      }
    } else if (c == 'n') {
      Literal("null", 4);
    } else if (c == '{') {
      ++p_;
      ReadTaggedValue(v);
    } else {
      GiveUp();
    }
  }

  void ReadTaggedValue(Value& v) {  // after the '{'
    enum { kBlob, kTextB64, kF64 } tag;
    std::string_view name = ReadString();
    if (name == "blob") tag = kBlob;
    else if (name == "text_b64") tag = kTextB64;
    else if (name == "f64") tag = kF64;
    else GiveUp();
    Expect(':');
    std::string_view body = ReadString();
    switch (tag) {
      case kBlob:
        v.type = ValueType::kBlob;
        v.s = Base64Decode(body);
        break;
      case kTextB64:
        v.type = ValueType::kText;
        v.s = Base64Decode(body);
        break;
      case kF64: {
        if (body.size() != 16) GiveUp();
        uint64_t bits = 0;
        for (char c : body) {
          uint64_t d;
          if (c >= '0' && c <= '9') d = static_cast<uint64_t>(c - '0');
          else if (c >= 'a' && c <= 'f') d = static_cast<uint64_t>(c - 'a' + 10);
          else GiveUp();
          bits = (bits << 4) | d;
        }
        v.type = ValueType::kReal;
        std::memcpy(&v.r, &bits, sizeof v.r);
        break;
      }
    }
    Expect('}');  // a second key, even the same tag again, is for the reference to judge
  }

  // Any JSON value, checked and dropped (an unknown field).
  void SkipValue(int depth) {
    if (depth > 64) GiveUp();
    char c = Peek();
    switch (c) {
      case '"': ReadString(); break;
      case '{':
        ++p_;
        if (Accept('}')) break;
        do {
          ReadString();
          Expect(':');
          SkipValue(depth + 1);
        } while (Accept(','));
        Expect('}');
        break;
      case '[':
        ++p_;
        if (Accept(']')) break;
        do {
          SkipValue(depth + 1);
        } while (Accept(','));
        Expect(']');
        break;
      case 't': Literal("true", 4); break;
      case 'f': Literal("false", 5); break;
      case 'n': Literal("null", 4); break;
      default: {
        Number n = ReadNumber();
        // Beyond int64 the reference refuses it, or (up to UINT64_MAX) reads it: let it decide.
        if (n.integer) IntOf(n);
      }
    }
  }

  void ReadStringArray(std::vector<std::string>& out) {
    Expect('[');
    if (Accept(']')) return;
    do {
      out.emplace_back(ReadString());
    } while (Accept(','));
    Expect(']');
  }

  void ReadTables(std::vector<TableChanges>& tables) {
    constexpr unsigned kName = 1, kPk = 2, kColumns = 4, kRows = 8;
    Expect('[');
    if (Accept(']')) return;
    do {
      TableChanges& t = tables.emplace_back();
      unsigned seen = 0;
      Expect('{');
      if (!Accept('}')) {
        do {
          std::string_view key = ReadString();
          unsigned field = key == "name"      ? kName
                           : key == "pk"      ? kPk
                           : key == "columns" ? kColumns
                           : key == "rows"    ? kRows
                                              : 0;
          if (seen & field) GiveUp();
          seen |= field;
          Expect(':');
          switch (field) {
            case kName: t.name = ReadString(); break;
            case kPk: ReadStringArray(t.pk); break;
            case kColumns: ReadStringArray(t.columns); break;
            case kRows: ReadRows(t.rows); break;
            default: SkipValue(0);
          }
        } while (Accept(','));
        Expect('}');
      }
      if (seen != 15) GiveUp();
    } while (Accept(','));
    Expect(']');
  }

  void ReadRows(std::vector<RowChanges>& rows) {
    constexpr unsigned kKey = 1, kCl = 2, kChanges = 4;
    Expect('[');
    if (Accept(']')) return;
    do {
      RowChanges& r = rows.emplace_back();
      unsigned seen = 0;
      Expect('{');
      if (!Accept('}')) {
        do {
          std::string_view key = ReadString();
          unsigned field = key == "key" ? kKey : key == "cl" ? kCl : key == "changes" ? kChanges : 0;
          if (seen & field) GiveUp();
          seen |= field;
          Expect(':');
          switch (field) {
            case kKey: ReadKey(r.key); break;
            case kCl: r.cl = ReadInt(); break;
            case kChanges: ReadChanges(r.changes); break;
            default: SkipValue(0);
          }
        } while (Accept(','));
        Expect('}');
      }
      if (seen != 7) GiveUp();
    } while (Accept(','));
    Expect(']');
  }

  void ReadKey(std::vector<Value>& out) {
    Expect('[');
    if (Accept(']')) return;
    key_buf_.clear();
    do {
      ReadValue(key_buf_.emplace_back());
    } while (Accept(','));
    Expect(']');
    out.assign(std::make_move_iterator(key_buf_.begin()), std::make_move_iterator(key_buf_.end()));
  }

  void ReadChanges(std::vector<ColumnChange>& out) {
    Expect('[');
    if (Accept(']')) return;
    change_buf_.clear();
    do {
      ColumnChange& c = change_buf_.emplace_back();
      Expect('[');
      uint64_t column = ReadUint();
      if (column > UINT32_MAX) GiveUp();
      c.column = static_cast<uint32_t>(column);
      Expect(',');
      ReadValue(c.value);
      Expect(',');
      c.hlc = ReadUint();
      Expect(',');
      uint64_t site = ReadUint();
      if (site > UINT32_MAX) GiveUp();
      c.site = static_cast<uint32_t>(site);
      Expect(',');
      c.cl = ReadInt();
      Expect(']');
    } while (Accept(','));
    Expect(']');
    out.assign(std::make_move_iterator(change_buf_.begin()), std::make_move_iterator(change_buf_.end()));
  }
};

}  // namespace

bool DecodeJsonFast(std::string_view text, Payload& out) {
  Payload p;
  try {
    FastDecoder(text).Decode(p);
  } catch (const GaveUp&) {
    return false;
  } catch (const Error&) {  // a bad site id or base64 text: the reference words it
    return false;
  }
  out = std::move(p);
  return true;
}

Payload DecodeJson(std::string_view text) {
  {
    Payload p;
    if (DecodeJsonFast(text, p)) {
      // What the fast path builds, the reference would too, and then validate it the same way.
      ValidatePayload(p);
      return p;
    }
  }
  return DecodeJsonReference(text);
}

}  // namespace deltasync
