// The fast JSON decoder of the payload model and DecodeJson, the entry point: the fast
// decoder builds the model in one pass without a DOM; what it does not take outright goes
// to the reference decoder (payload_json_reference.cpp), which accepts or refuses it.
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
          case kFormat: format_ok = ReadString() == kJsonFormatName; break;
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
        size_t n = Utf8SequenceLength(std::string_view(p_, static_cast<size_t>(end_ - p_)));
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
