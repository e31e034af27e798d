#pragma once
// Canonical binary encoding of values and of primary keys (a list of values).
// Equal keys have equal bytes on every engine, so a key is compared as a blob.
#include <string>
#include <string_view>
#include <vector>

#include "common/value.hpp"
#include "common/varint.hpp"

namespace deltasync {

// Appends one value: a type tag, then zigzag varint / 8 bytes / length-prefixed bytes.
void EncodeValue(const Value& v, std::string& out);
// Reads one value written by EncodeValue.
Value DecodeValue(ByteReader& in);

std::string EncodeKey(const std::vector<Value>& key);
std::vector<Value> DecodeKey(std::string_view bytes);

}  // namespace deltasync
