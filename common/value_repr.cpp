#include "common/value_repr.hpp"

#include <array>
#include <cstdio>
#include <optional>

#include "common/error.hpp"

namespace deltasync {

namespace {

struct FormName {
  ReprForm form;
  const char* kind;
  const char* name;
  const char* description;
};

constexpr FormName kForms[] = {
    {ReprForm::kUuidDashed, "uuid", "dashed", "8-4-4-4-12 lowercase hex digits"},
    {ReprForm::kUuidHex32, "uuid", "hex32", "32 lowercase hex digits"},
    {ReprForm::kUuidBlob, "uuid", "blob", "a 16-byte blob"},
    {ReprForm::kTimestampNaiveUtc, "timestamp", "naive_utc",
     "YYYY-MM-DD HH:MM:SS[.ffffff] in UTC, six fraction digits when the fraction is not zero"},
    {ReprForm::kTimestampNaiveUtcUs, "timestamp", "naive_utc_us", "YYYY-MM-DD HH:MM:SS.ffffff in UTC"},
    {ReprForm::kTimestampIsoUtcMs, "timestamp", "iso_utc_ms", "YYYY-MM-DDTHH:MM:SS.mmmZ"},
};

const FormName* Find(ReprForm f) {
  for (const FormName& n : kForms)
    if (n.form == f) return &n;
  return nullptr;
}

bool IsUuid(ReprForm f) { return f == ReprForm::kUuidDashed || f == ReprForm::kUuidHex32 || f == ReprForm::kUuidBlob; }

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// How a text spells a uuid, if it is one in any spelling PostgreSQL's uuid input accepts
// (optional braces, a dash allowed after any group of four digits, either case).
enum class UuidText { kNot, kDashedLower, kHexLower, kOther };

UuidText ClassifyUuidText(std::string_view s, std::array<uint8_t, 16>& bytes) {
  bool braces = s.size() >= 2 && s.front() == '{' && s.back() == '}';
  std::string_view body = braces ? s.substr(1, s.size() - 2) : s;
  size_t digits = 0;
  bool upper = false, last_dash = false;
  for (size_t k = 0; k < body.size(); ++k) {
    char c = body[k];
    if (c == '-') {
      if (digits == 0 || digits % 4 != 0 || last_dash || k + 1 == body.size()) return UuidText::kNot;
      last_dash = true;
      continue;
    }
    int h = HexDigit(c);
    if (h < 0 || digits == 32) return UuidText::kNot;
    upper |= c >= 'A' && c <= 'F';
    bytes[digits / 2] = static_cast<uint8_t>(digits % 2 ? (bytes[digits / 2] | h) : h << 4);
    ++digits;
    last_dash = false;
  }
  if (digits != 32) return UuidText::kNot;
  if (braces || upper) return UuidText::kOther;
  if (body.size() == 32) return UuidText::kHexLower;
  bool dashed = body.size() == 36 && body[8] == '-' && body[13] == '-' && body[18] == '-' && body[23] == '-';
  return dashed ? UuidText::kDashedLower : UuidText::kOther;
}

std::string HexOf(const std::array<uint8_t, 16>& b, bool dashes) {
  static const char* k = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < 16; ++i) {
    if (dashes && (i == 4 || i == 6 || i == 8 || i == 10)) out += '-';
    out += k[b[i] >> 4];
    out += k[b[i] & 15];
  }
  return out;
}

// The uuid a value holds: its bytes and spelling (a 16-byte blob is a uuid too).
struct UuidValue {
  enum { kNot, kText, kBlob } what = kNot;
  UuidText spelling = UuidText::kNot;
  std::array<uint8_t, 16> bytes{};
};

UuidValue ReadUuid(const Value& v) {
  UuidValue u;
  if (v.type == ValueType::kBlob && v.s.size() == 16) {
    u.what = UuidValue::kBlob;
    for (size_t k = 0; k < 16; ++k) u.bytes[k] = static_cast<uint8_t>(v.s[k]);
  } else if (v.type == ValueType::kText) {
    u.spelling = ClassifyUuidText(v.s, u.bytes);
    if (u.spelling != UuidText::kNot) u.what = UuidValue::kText;
  }
  return u;
}

ReprOutcome UuidToWire(ReprForm f, const Value& local, Value& out) {
  UuidValue u = ReadUuid(local);
  if (u.what == UuidValue::kNot) return ReprOutcome::kAsIs;
  bool local_form = (f == ReprForm::kUuidDashed && u.spelling == UuidText::kDashedLower) ||
                    (f == ReprForm::kUuidHex32 && u.spelling == UuidText::kHexLower) ||
                    (f == ReprForm::kUuidBlob && u.what == UuidValue::kBlob);
  if (!local_form) return ReprOutcome::kOtherSpelling;
  if (f == ReprForm::kUuidDashed) return ReprOutcome::kAsIs;
  out = Value::Text(HexOf(u.bytes, true));
  return ReprOutcome::kConverted;
}

ReprOutcome UuidToLocal(ReprForm f, const Value& wire, Value& out) {
  UuidValue u = ReadUuid(wire);
  if (u.what == UuidValue::kNot) return ReprOutcome::kAsIs;
  if (u.spelling != UuidText::kDashedLower) return ReprOutcome::kOtherSpelling;
  if (f == ReprForm::kUuidDashed) return ReprOutcome::kAsIs;
  if (f == ReprForm::kUuidHex32) out = Value::Text(HexOf(u.bytes, false));
  else out = Value::Blob(std::string_view(reinterpret_cast<const char*>(u.bytes.data()), 16));
  return ReprOutcome::kConverted;
}

// A timestamp in any ISO 8601 spelling PostgreSQL's input reads: YYYY-MM-DD, then optionally
// [T or space]HH:MM[:SS[.f…]] and a zone (Z, ±HH, ±HHMM, ±HH:MM).
struct Timestamp {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  bool has_time = false, has_seconds = false;
  std::string_view fraction;  // the digits after the point
  std::string_view zone;      // as written
};

bool Digits(std::string_view s, size_t at, size_t n, int& out) {
  if (at + n > s.size()) return false;
  out = 0;
  for (size_t k = at; k < at + n; ++k) {
    if (s[k] < '0' || s[k] > '9') return false;
    out = out * 10 + (s[k] - '0');
  }
  return true;
}

int DaysIn(int y, int mo) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return mo == 2 && leap ? 29 : kDays[mo - 1];
}

std::optional<Timestamp> ParseTimestamp(std::string_view s) {
  Timestamp t;
  if (s.size() < 10 || !Digits(s, 0, 4, t.y) || s[4] != '-' || !Digits(s, 5, 2, t.mo) || s[7] != '-' ||
      !Digits(s, 8, 2, t.d))
    return std::nullopt;
  if (t.mo < 1 || t.mo > 12 || t.d < 1 || t.d > DaysIn(t.y, t.mo)) return std::nullopt;
  size_t at = 10;
  if (at < s.size()) {
    if (s[at] != 'T' && s[at] != 't' && s[at] != ' ') return std::nullopt;
    if (!Digits(s, at + 1, 2, t.h) || at + 3 >= s.size() || s[at + 3] != ':' || !Digits(s, at + 4, 2, t.mi))
      return std::nullopt;
    t.has_time = true;
    at += 6;
    if (at < s.size() && s[at] == ':') {
      if (!Digits(s, at + 1, 2, t.s)) return std::nullopt;
      t.has_seconds = true;
      at += 3;
      if (at < s.size() && s[at] == '.') {
        size_t from = ++at;
        while (at < s.size() && s[at] >= '0' && s[at] <= '9') ++at;
        if (at == from) return std::nullopt;
        t.fraction = s.substr(from, at - from);
      }
    }
    if (t.h > 24 || t.mi > 59 || t.s > 60) return std::nullopt;
    t.zone = s.substr(at);
    if (!t.zone.empty()) {
      std::string_view z = t.zone;
      int zh = 0, zm = 0;
      bool ok = z == "Z" || z == "z" ||
                ((z[0] == '+' || z[0] == '-') && Digits(z, 1, 2, zh) &&
                 (z.size() == 3 || (z.size() == 5 && Digits(z, 3, 2, zm)) ||
                  (z.size() == 6 && z[3] == ':' && Digits(z, 4, 2, zm))));
      if (!ok || zh > 15 || zm > 59) return std::nullopt;
    }
  }
  return t;
}

// The fraction as microseconds, or -1 when it has more than six digits.
int Micros(const Timestamp& t) {
  if (t.fraction.size() > 6) return -1;
  int us = 0;
  for (size_t k = 0; k < 6; ++k) us = us * 10 + (k < t.fraction.size() ? t.fraction[k] - '0' : 0);
  return us;
}

// Date and time as "YYYY-MM-DD<sep>HH:MM:SS".
std::string DateTime(const Timestamp& t, char sep) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d%c%02d:%02d:%02d", t.y, t.mo, t.d, sep, t.h, t.mi, t.s);
  return buf;
}

// PostgreSQL's timestamptz output in UTC: the fraction without trailing zeros, then +00.
std::string WireTimestamp(const Timestamp& t, int us) {
  std::string out = DateTime(t, ' ');
  if (us != 0) {
    char frac[16];
    std::snprintf(frac, sizeof frac, ".%06d", us);
    std::string f = frac;
    while (f.back() == '0') f.pop_back();
    out += f;
  }
  return out + "+00";
}

// The local spelling of form `f`, or nullopt when it cannot hold `us`.
std::optional<std::string> LocalTimestamp(ReprForm f, const Timestamp& t, int us) {
  char frac[16];
  switch (f) {
    case ReprForm::kTimestampNaiveUtc:
      if (us == 0) return DateTime(t, ' ');
      std::snprintf(frac, sizeof frac, ".%06d", us);
      return DateTime(t, ' ') + frac;
    case ReprForm::kTimestampNaiveUtcUs:
      std::snprintf(frac, sizeof frac, ".%06d", us);
      return DateTime(t, ' ') + frac;
    case ReprForm::kTimestampIsoUtcMs:
      if (us % 1000 != 0) return std::nullopt;
      std::snprintf(frac, sizeof frac, ".%03d", us / 1000);
      return DateTime(t, 'T') + frac + "Z";
    default: return std::nullopt;
  }
}

// A timestamp that the canonical and local spellings can both hold exactly.
std::optional<Timestamp> ReadTimestamp(const Value& v, bool& of_type) {
  of_type = false;
  if (v.type != ValueType::kText) return std::nullopt;
  std::optional<Timestamp> t = ParseTimestamp(v.s);
  of_type = t.has_value();
  if (!t || !t->has_seconds || t->y < 1 || t->h > 23 || t->s > 59 || Micros(*t) < 0) return std::nullopt;
  return t;
}

ReprOutcome TimestampToWire(ReprForm f, const Value& local, Value& out) {
  bool of_type = false;
  std::optional<Timestamp> t = ReadTimestamp(local, of_type);
  if (!of_type) return ReprOutcome::kAsIs;
  if (!t) return ReprOutcome::kOtherSpelling;
  int us = Micros(*t);
  std::optional<std::string> want = LocalTimestamp(f, *t, us);
  if (!want || *want != local.s) return ReprOutcome::kOtherSpelling;
  out = Value::Text(WireTimestamp(*t, us));
  return ReprOutcome::kConverted;
}

ReprOutcome TimestampToLocal(ReprForm f, const Value& wire, Value& out) {
  bool of_type = false;
  std::optional<Timestamp> t = ReadTimestamp(wire, of_type);
  if (!of_type) return ReprOutcome::kAsIs;
  if (!t) return ReprOutcome::kOtherSpelling;
  int us = Micros(*t);
  if (WireTimestamp(*t, us) != wire.s) return ReprOutcome::kOtherSpelling;
  std::optional<std::string> local = LocalTimestamp(f, *t, us);
  if (!local) return ReprOutcome::kOtherSpelling;
  out = Value::Text(*local);
  return ReprOutcome::kConverted;
}

std::string Declared(ReprForm f) { return ReprJson(f).dump() + " (" + ReprFormDescription(f) + ")"; }

}  // namespace

ReprForm ParseReprForm(std::string_view kind, std::string_view form) {
  std::string known;
  bool kind_known = false;
  for (const FormName& n : kForms) {
    if (kind != n.kind) continue;
    kind_known = true;
    if (form == n.name) return n.form;
    known += (known.empty() ? "" : ", ") + std::string(n.name);
  }
  if (!kind_known)
    throw Error(ErrorCode::kInvalidArgument,
                "unknown column option \"" + std::string(kind) + "\" (known: uuid, timestamp)");
  throw Error(ErrorCode::kInvalidArgument,
              "unknown " + std::string(kind) + " representation \"" + std::string(form) + "\" (known: " + known + ")");
}

const char* ReprKindName(ReprForm f) {
  const FormName* n = Find(f);
  return n ? n->kind : "";
}

const char* ReprFormName(ReprForm f) {
  const FormName* n = Find(f);
  return n ? n->name : "";
}

const char* ReprFormDescription(ReprForm f) {
  const FormName* n = Find(f);
  return n ? n->description : "the value as it is";
}

nlohmann::json ReprJson(ReprForm f) {
  nlohmann::json j = nlohmann::json::object();
  if (f != ReprForm::kNone) j[ReprKindName(f)] = ReprFormName(f);
  return j;
}

void TableReprs::Refresh() {
  any = false;
  for (ReprForm f : pk) any |= f != ReprForm::kNone;
  for (ReprForm f : cols) any |= f != ReprForm::kNone;
}

ReprOutcome LocalToWire(ReprForm f, const Value& local, Value& out) {
  if (f == ReprForm::kNone) return ReprOutcome::kAsIs;
  return IsUuid(f) ? UuidToWire(f, local, out) : TimestampToWire(f, local, out);
}

ReprOutcome WireToLocal(ReprForm f, const Value& wire, Value& out) {
  if (f == ReprForm::kNone) return ReprOutcome::kAsIs;
  return IsUuid(f) ? UuidToLocal(f, wire, out) : TimestampToLocal(f, wire, out);
}

void ToWireOrThrow(ReprForm f, Value& v, const std::string& table, const std::string& column) {
  Value out;
  switch (LocalToWire(f, v, out)) {
    case ReprOutcome::kAsIs: return;
    case ReprOutcome::kConverted: v = std::move(out); return;
    case ReprOutcome::kOtherSpelling: break;
  }
  throw Error(ErrorCode::kInvalidArgument,
              "column \"" + column + "\" of table \"" + table + "\" is declared " + Declared(f) + " but holds " +
                  DebugString(v) + ", a " + ReprKindName(f) +
                  " in another spelling; write it in the declared form (sent as it is, it would be a different value "
                  "or key on other sites)");
}

bool ToLocalOrThrow(ReprForm f, const Value& v, Value& out, const std::string& table, const std::string& column) {
  switch (WireToLocal(f, v, out)) {
    case ReprOutcome::kAsIs: return false;
    case ReprOutcome::kConverted: return true;
    case ReprOutcome::kOtherSpelling: break;
  }
  throw Error(ErrorCode::kConstraint,
              "cannot apply a change to column \"" + column + "\" of table \"" + table + "\": " + DebugString(v) +
                  " is a " + ReprKindName(f) + " but not in the canonical form this site's representation " +
                  Declared(f) +
                  " converts from (does the sending site declare the column differently, or can this form not hold "
                  "the value?)");
}

}  // namespace deltasync
