#pragma once
// zstd compression of payload bodies (HTTP Content-Encoding: zstd).
#include <cstddef>
#include <string>
#include <string_view>

namespace deltasync {

// One zstd frame holding `data`, with its content size in the frame header.
std::string ZstdCompress(std::string_view data, int level = 3);

// Decompresses one or more zstd frames. Refuses, with kInvalidPayload ("invalid payload:
// ..."), input that is not zstd data, corrupt or truncated, and any output larger than
// max_size bytes (checked against the frame headers before allocating, and while
// decompressing frames that do not state their size).
std::string ZstdDecompress(std::string_view data, size_t max_size);

}  // namespace deltasync
