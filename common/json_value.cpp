#include "common/json_value.hpp"

#include <algorithm>

#include "common/utf8.hpp"

namespace deltasync {

const JsonValue* JsonValue::Find(std::string_view key) const {
  auto it = std::lower_bound(members.begin(), members.end(), key,
                             [](const auto& m, std::string_view k) { return m.first < k; });
  return it != members.end() && it->first == key ? &it->second : nullptr;
}

namespace {

// A recursive-descent parser over one text; every failure records the first reason.
class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  bool Document(JsonValue& out) {
    Space();
    if (!Value(out, 0)) return false;
    Space();
    return pos_ == s_.size() || Fail("text after the JSON value");
  }
  const std::string& error() const { return error_; }

 private:
  bool Fail(const char* why) {
    if (error_.empty()) error_ = std::string(why) + " at byte " + std::to_string(pos_);
    return false;
  }
  void Space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  bool Literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return Fail("not a JSON value");
    pos_ += word.size();
    return true;
  }

  bool Value(JsonValue& out, int depth) {
    if (pos_ >= s_.size()) return Fail("unexpected end");
    char c = s_[pos_];
    switch (c) {
      case '{': return Object(out, depth + 1);
      case '[': return Array(out, depth + 1);
      case '"': out.kind = JsonValue::Kind::kString; return String(out.text);
      case 't': out.kind = JsonValue::Kind::kTrue; return Literal("true");
      case 'f': out.kind = JsonValue::Kind::kFalse; return Literal("false");
      case 'n': out.kind = JsonValue::Kind::kNull; return Literal("null");
      default: out.kind = JsonValue::Kind::kNumber; return Number(out.text);
    }
  }

  bool Object(JsonValue& out, int depth) {
    if (depth > kMaxJsonDepth) return Fail("nested too deep");
    out.kind = JsonValue::Kind::kObject;
    ++pos_;
    Space();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      Space();
      if (pos_ >= s_.size() || s_[pos_] != '"') return Fail("expected a member name");
      std::pair<std::string, JsonValue> m;
      if (!String(m.first)) return false;
      Space();
      if (pos_ >= s_.size() || s_[pos_] != ':') return Fail("expected ':'");
      ++pos_;
      Space();
      if (!Value(m.second, depth)) return false;
      out.members.push_back(std::move(m));
      Space();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        break;
      }
      return Fail("expected ',' or '}'");
    }
    // Sorted by key; of a key given twice the last value stays (stable sort keeps input order).
    std::stable_sort(out.members.begin(), out.members.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::pair<std::string, JsonValue>> unique;
    unique.reserve(out.members.size());
    for (auto& m : out.members) {
      if (!unique.empty() && unique.back().first == m.first) unique.back() = std::move(m);
      else unique.push_back(std::move(m));
    }
    out.members = std::move(unique);
    return true;
  }

  bool Array(JsonValue& out, int depth) {
    if (depth > kMaxJsonDepth) return Fail("nested too deep");
    out.kind = JsonValue::Kind::kArray;
    ++pos_;
    Space();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      Space();
      out.items.emplace_back();
      if (!Value(out.items.back(), depth)) return false;
      Space();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return Fail("expected ',' or ']'");
    }
  }

  bool Hex4(uint32_t& v) {
    if (pos_ + 4 > s_.size()) return Fail("short \\u escape");
    v = 0;
    for (int k = 0; k < 4; ++k) {
      char h = s_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= static_cast<uint32_t>(h - '0');
      else if (h >= 'a' && h <= 'f') v |= static_cast<uint32_t>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= static_cast<uint32_t>(h - 'A' + 10);
      else return Fail("bad \\u escape");
    }
    return true;
  }

  bool String(std::string& out) {
    ++pos_;  // the opening quote
    for (;;) {
      if (pos_ >= s_.size()) return Fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return Fail("control character in a string");
      if (c >= 0x80) {
        size_t n = Utf8SequenceLength(s_.substr(pos_));
        if (n == 0) return Fail("invalid UTF-8");
        out.append(s_.substr(pos_, n));
        pos_ += n;
        continue;
      }
      ++pos_;
      if (c != '\\') {
        out.push_back(static_cast<char>(c));
        continue;
      }
      if (pos_ >= s_.size()) return Fail("unterminated string");
      char e = s_[pos_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          if (!Hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return Fail("lone surrogate");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo = 0;
            if (s_.substr(pos_, 2) != "\\u") return Fail("lone surrogate");
            pos_ += 2;
            if (!Hex4(lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return Fail("lone surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          // PostgreSQL's text and jsonb cannot hold U+0000: no site could store it.
          if (cp == 0) return Fail("\\u0000 in a string");
          AppendUtf8(out, cp);
          break;
        }
        default: return Fail("bad escape");
      }
    }
  }

  static bool Digit(char c) { return c >= '0' && c <= '9'; }

  // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, written as numeric writes it.
  bool Number(std::string& out) {
    bool negative = false;
    if (s_[pos_] == '-') {
      negative = true;
      ++pos_;
    }
    size_t int_start = pos_;
    if (pos_ >= s_.size() || !Digit(s_[pos_])) return Fail("not a JSON value");
    if (s_[pos_] == '0') ++pos_;
    else
      while (pos_ < s_.size() && Digit(s_[pos_])) ++pos_;
    std::string_view int_digits = s_.substr(int_start, pos_ - int_start), frac_digits;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      size_t start = ++pos_;
      while (pos_ < s_.size() && Digit(s_[pos_])) ++pos_;
      if (pos_ == start) return Fail("digits expected after '.'");
      frac_digits = s_.substr(start, pos_ - start);
    }
    int64_t exponent = 0;
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      bool neg_exp = false;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) neg_exp = s_[pos_++] == '-';
      size_t start = pos_;
      while (pos_ < s_.size() && Digit(s_[pos_])) {
        if (exponent < 1000000) exponent = exponent * 10 + (s_[pos_] - '0');
        ++pos_;
      }
      if (pos_ == start) return Fail("digits expected in the exponent");
      if (neg_exp) exponent = -exponent;
    }
    const int64_t limit = static_cast<int64_t>(kMaxJsonNumberDigits);
    if (exponent > limit || exponent < -limit || int_digits.size() + frac_digits.size() > kMaxJsonNumberDigits)
      return Fail("a number longer than 1000 digits");
    std::string all = std::string(int_digits) + std::string(frac_digits);
    int64_t point = static_cast<int64_t>(int_digits.size()) + exponent;  // digits before the point
    std::string whole, frac;
    if (point <= 0) {
      whole = "0";
      frac = std::string(static_cast<size_t>(-point), '0') + all;
    } else if (point >= static_cast<int64_t>(all.size())) {
      whole = all + std::string(static_cast<size_t>(point) - all.size(), '0');
    } else {
      whole = all.substr(0, static_cast<size_t>(point));
      frac = all.substr(static_cast<size_t>(point));
    }
    size_t lead = whole.find_first_not_of('0');
    whole = lead == std::string::npos ? "0" : whole.substr(lead);
    if (whole.size() + frac.size() > kMaxJsonNumberDigits) return Fail("a number longer than 1000 digits");
    bool zero = whole == "0" && frac.find_first_not_of('0') == std::string::npos;
    out.clear();
    if (negative && !zero) out.push_back('-');
    out += whole;
    if (!frac.empty()) out += "." + frac;
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace

bool ParseJson(std::string_view text, JsonValue& out, std::string& error) {
  out = JsonValue();
  Parser p(text);
  if (p.Document(out)) return true;
  error = p.error();
  return false;
}

void AppendJsonString(std::string& out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

void AppendCanonicalJson(std::string& out, const JsonValue& v) {
  switch (v.kind) {
    case JsonValue::Kind::kNull: out += "null"; break;
    case JsonValue::Kind::kFalse: out += "false"; break;
    case JsonValue::Kind::kTrue: out += "true"; break;
    case JsonValue::Kind::kNumber: out += v.text; break;
    case JsonValue::Kind::kString: AppendJsonString(out, v.text); break;
    case JsonValue::Kind::kArray:
      out.push_back('[');
      for (size_t k = 0; k < v.items.size(); ++k) {
        if (k) out.push_back(',');
        AppendCanonicalJson(out, v.items[k]);
      }
      out.push_back(']');
      break;
    case JsonValue::Kind::kObject:
      out.push_back('{');
      for (size_t k = 0; k < v.members.size(); ++k) {
        if (k) out.push_back(',');
        AppendJsonString(out, v.members[k].first);
        out.push_back(':');
        AppendCanonicalJson(out, v.members[k].second);
      }
      out.push_back('}');
      break;
  }
}

std::string CanonicalJson(const JsonValue& v) {
  std::string out;
  AppendCanonicalJson(out, v);
  return out;
}

}  // namespace deltasync
