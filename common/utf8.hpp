#pragma once
// UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
#include <string_view>

#include <cstddef>
#include <cstdint>
#include <string>

namespace deltasync {
// The one UTF-8 validator of the project (payload decoders, hub, identifiers).
bool IsValidUtf8(std::string_view s);
// The length (2 to 4) of the well-formed UTF-8 sequence that starts `rest` with a non-ASCII
// byte (Unicode table 3-7), or 0 when it is not one.
size_t Utf8SequenceLength(std::string_view rest);
// Appends one code point (at most U+10FFFF) as UTF-8.
void AppendUtf8(std::string& out, uint32_t code_point);
// Equal but for the case of ASCII letters: how SQLite compares identifiers.
bool EqualsIgnoreAsciiCase(std::string_view a, std::string_view b);
}  // namespace deltasync
