#pragma once
// UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
#include <string_view>

namespace deltasync {
bool IsValidUtf8(std::string_view s);
}
