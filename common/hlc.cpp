#include "common/hlc.hpp"

#include <chrono>
#include <string>

#include "common/error.hpp"

namespace deltasync {

uint64_t WallClockMillis() {
  using namespace std::chrono;
  return static_cast<uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

uint64_t HlcClock::Now(uint64_t wall_ms) {
  uint64_t physical = HlcFromMillis(wall_ms);
  // When the wall clock has not moved past what we issued or saw, the logical counter
  // counts on (and carries into the millisecond part, which keeps order).
  last_ = physical > last_ ? physical : last_ + 1;
  return last_;
}

void HlcClock::Observe(uint64_t hlc) {
  if (hlc > last_) last_ = hlc;
}

void CheckClockDrift(uint64_t remote_hlc, uint64_t wall_ms, uint64_t max_drift_ms) {
  uint64_t remote_ms = HlcMillis(remote_hlc);
  if (remote_ms > wall_ms && remote_ms - wall_ms > max_drift_ms) {  // no overflow for a huge limit
    throw Error(ErrorCode::kClockDrift,
                "clock drift: a change carries time " + std::to_string(remote_ms) + " ms, " +
                    std::to_string(remote_ms - wall_ms) +
                    " ms ahead of this site's clock (max_clock_drift_ms is " +
                    std::to_string(max_drift_ms) + "); the whole batch was refused");
  }
}

}  // namespace deltasync
