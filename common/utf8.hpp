#pragma once
// UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
#include <string_view>

#include <cstdint>
#include <string>

namespace deltasync {
bool IsValidUtf8(std::string_view s);
// Appends one code point (at most U+10FFFF) as UTF-8.
void AppendUtf8(std::string& out, uint32_t code_point);
// Equal but for the case of ASCII letters: how SQLite compares identifiers.
bool EqualsIgnoreAsciiCase(std::string_view a, std::string_view b);
}  // namespace deltasync
