#include "common/key_codec.hpp"

#include <cstring>

namespace deltasync {

void EncodeValue(const Value& v, std::string& out) {
  out.push_back(static_cast<char>(v.type));
  switch (v.type) {
    case ValueType::kNull: break;
    case ValueType::kInteger: PutVarint(out, ZigZag(v.i)); break;
    case ValueType::kReal: {
      uint64_t bits;
      std::memcpy(&bits, &v.r, sizeof bits);
      for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(bits >> shift));
      break;
    }
    case ValueType::kText:
    case ValueType::kBlob:
      PutVarint(out, v.s.size());
      out.append(v.s);
      break;
  }
}

Value DecodeValue(ByteReader& in) {
  uint8_t tag = in.Byte();
  switch (static_cast<ValueType>(tag)) {
    case ValueType::kNull: return Value::Null();
    case ValueType::kInteger: return Value::Integer(UnZigZag(in.Varint()));
    case ValueType::kReal: {
      uint64_t bits = 0;
      for (int k = 0; k < 8; ++k) bits = (bits << 8) | in.Byte();
      double d;
      std::memcpy(&d, &bits, sizeof d);
      return Value::Real(d);
    }
    case ValueType::kText: {
      uint64_t n = in.Varint();
      return Value::Text(in.Bytes(n));
    }
    case ValueType::kBlob: {
      uint64_t n = in.Varint();
      return Value::Blob(in.Bytes(n));
    }
  }
  in.Fail("unknown value tag");
}

std::string EncodeKey(const std::vector<Value>& key) {
  std::string out;
  for (const Value& v : key) EncodeValue(v, out);
  return out;
}

std::vector<Value> DecodeKey(std::string_view bytes) {
  ByteReader in(bytes, "key");
  std::vector<Value> key;
  while (!in.AtEnd()) key.push_back(DecodeValue(in));
  return key;
}

}  // namespace deltasync
