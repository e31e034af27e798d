#pragma once
// Recording a failed hub call so that it outlives the call's aborted transaction.
#include <cstdint>
#include <string>

namespace deltasync {

// Starts a background worker that records, in its own transaction, that the call with hub
// `key` failed with `message` at `at_ms` (deltasync.hubs). Best effort: without a free
// worker slot nothing is recorded.
void RecordHubFailure(const std::string& key, const std::string& message, int64_t at_ms);

}  // namespace deltasync
