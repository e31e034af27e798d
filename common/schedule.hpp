#pragma once
// What a stored schedule (deltasync_schedule, SPEC section 7) means, once for every runner:
// the options it is stored with, the long-poll options its pull side uses, and the retry
// delays while its hub is unreachable. Used by sqlite_ext and pg_ext (to store schedules),
// `deltasync agent` and the PostgreSQL schedule workers (to run them). docs/live-sync.md.
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace deltasync {

inline constexpr int64_t kDefaultScheduleIntervalMs = 10000;
inline constexpr int64_t kMinScheduleIntervalMs = 50;
inline constexpr int64_t kMaxScheduleIntervalMs = 86400000;
// The longest a schedule's long-poll waits unless its options say otherwise.
inline constexpr int64_t kMaxDefaultWaitMs = 20000;

// A schedule's options split: interval_ms taken out (checked, default applied) and the rest,
// which the caller checks as deltasync_sync options. `text` empty means no options. Throws
// Error(kInvalidArgument) naming `fn` on text that is not a JSON object or a bad interval_ms.
struct ScheduleOptions {
  nlohmann::json sync_options;  // a JSON object
  int64_t interval_ms = kDefaultScheduleIntervalMs;
};
ScheduleOptions SplitScheduleOptions(std::string_view text, const char* fn);

// The options of a schedule's long-poll: wait_ms set (`wait_override_ms` > 0, else the
// options' own wait_ms, else min(interval_ms, kMaxDefaultWaitMs)) and a timeout that outlasts it.
std::string LongPollOptions(const std::string& stored_options, int64_t interval_ms, int64_t wait_override_ms);

// Retry delays: 250 ms * 2^(failures-1), capped at `cap_ms`, times a random factor in [0.5, 1).
class Backoff {
 public:
  explicit Backoff(int64_t cap_ms) : cap_ms_(cap_ms), rng_(std::random_device{}()) {}
  // The delay before the next retry; counts one more failure.
  int64_t Next();
  // A success: the next failure starts from the shortest delay.
  void Reset() { failures_ = 0; }
  int failures() const { return failures_; }

 private:
  int64_t cap_ms_;
  int failures_ = 0;
  std::mt19937 rng_;
};

}  // namespace deltasync
