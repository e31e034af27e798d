#pragma once
// Hybrid logical clock: 48 bits of wall-clock milliseconds, 16 bits of logical counter.
#include <cstdint>

namespace deltasync {

inline constexpr int kHlcLogicalBits = 16;
inline constexpr uint64_t kDefaultMaxClockDriftMs = 5 * 60 * 1000;

inline uint64_t HlcFromMillis(uint64_t ms) { return ms << kHlcLogicalBits; }
inline uint64_t HlcMillis(uint64_t hlc) { return hlc >> kHlcLogicalBits; }

// Milliseconds since the Unix epoch from the system clock.
uint64_t WallClockMillis();

// One site's clock: every Now() is greater than every earlier Now() and every Observe()d value.
class HlcClock {
 public:
  uint64_t Now(uint64_t wall_ms);
  // Advance past a clock seen in a remote change (or persisted by an earlier session).
  void Observe(uint64_t hlc);
  uint64_t Last() const { return last_; }

 private:
  uint64_t last_ = 0;
};

// Refuses (throws kClockDrift) a remote clock more than max_drift_ms ahead of wall_ms.
void CheckClockDrift(uint64_t remote_hlc, uint64_t wall_ms, uint64_t max_drift_ms);

}  // namespace deltasync
