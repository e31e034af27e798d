#pragma once
// Recording a failed hub call so that it outlives the call's aborted transaction.
#include <cstdint>
#include <string>

namespace deltasync {

// Starts a background worker that records, in its own transaction, that the call with hub
// `key` failed with `message` at `at_ms` (deltasync.hubs). Best effort: without a free
// worker slot nothing is recorded.
// In a schedule worker (DeferHubFailures(true)) it starts nothing: the failure is kept in
// the process and the worker writes it with WriteHubFailure after its call's abort.
void RecordHubFailure(const std::string& key, const std::string& message, int64_t at_ms);

// The failure a deferring process kept: how it is recorded later.
struct HubFailure {
  std::string key;
  std::string message;
  int64_t at_ms = 0;
};
void DeferHubFailures(bool on);
// The failure kept since the last call, if any (and forgets it).
bool TakeDeferredHubFailure(HubFailure& out);
// Records `f` in deltasync.hubs in the current transaction (SPI connected, as a role that
// may write it): one more failure in the streak, unless a later success was recorded.
void WriteHubFailure(const HubFailure& f);

}  // namespace deltasync
