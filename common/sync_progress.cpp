#include "common/sync_progress.hpp"

#include <cmath>
#include <regex>
#include <utility>

namespace deltasync {

const char* ProgressStateName(ProgressState state) {
  switch (state) {
    case ProgressState::kRunning:
      return "running";
    case ProgressState::kDone:
      return "done";
    case ProgressState::kFailed:
      return "failed";
  }
  return "?";
}

nlohmann::json ProgressJson(const SyncProgress& p) {
  using Json = nlohmann::json;
  return Json{{"hub", p.hub},
              {"direction", p.direction},
              {"state", ProgressStateName(p.state)},
              {"since_ms", p.since_ms},
              {"updated_ms", p.updated_ms},
              {"rows_done", p.done},
              {"rows_expected", p.expected ? Json(p.expected) : Json()},
              {"rows_per_s", std::llround(p.rows_per_s)},
              {"eta_ms", p.eta_ms ? Json(*p.eta_ms) : Json()}};
}

std::string ProgressLine(const SyncProgress& p) {
  std::string out = "deltasync " + p.direction + " " + p.hub + ": " + std::to_string(p.done) + " of " +
                    (p.expected ? std::to_string(p.expected) : std::string("?")) + " rows, " +
                    std::to_string(p.elapsed_ms()) + " ms, " + std::to_string(std::llround(p.rows_per_s)) +
                    " rows/s";
  if (p.state != ProgressState::kRunning) return out + ", " + ProgressStateName(p.state);
  if (p.eta_ms) out += ", ETA " + std::to_string(*p.eta_ms) + " ms";
  return out;
}

std::optional<SyncProgress> ParseProgressLine(const std::string& line, int64_t updated_ms) {
  static const std::regex kLine(
      R"(^deltasync (push|pull) (\S+): (\d{1,19}) of (\d{1,19}|\?) rows, (\d{1,19}) ms, (\d{1,19}) rows/s(, ETA (\d{1,19}) ms|, done|, failed)?$)");
  std::smatch m;
  if (!std::regex_match(line, m, kLine)) return std::nullopt;
  SyncProgress p;
  try {
    p.direction = m[1];
    p.hub = m[2];
    p.done = std::stoull(m[3]);
    p.expected = m[4] == "?" ? 0 : std::stoull(m[4]);
    p.updated_ms = updated_ms;
    p.since_ms = updated_ms - std::stoll(m[5]);
    p.rows_per_s = static_cast<double>(std::stoull(m[6]));
    if (m[8].matched) p.eta_ms = std::stoll(m[8]);
  } catch (const std::exception&) {  // out of range
    return std::nullopt;
  }
  p.state = m[7] == ", done"     ? ProgressState::kDone
            : m[7] == ", failed" ? ProgressState::kFailed
                                 : ProgressState::kRunning;
  return p;
}

ProgressMeter::ProgressMeter(std::string hub, std::string direction, int64_t now_ms) {
  p_.hub = std::move(hub);
  p_.direction = std::move(direction);
  p_.since_ms = now_ms;
  p_.updated_ms = now_ms;
}

void ProgressMeter::Measure(int64_t now_ms) {
  p_.updated_ms = now_ms;
  if (p_.expected && p_.expected < p_.done) p_.expected = p_.done;
  const int64_t elapsed = p_.elapsed_ms();
  p_.rows_per_s = elapsed > 0 ? static_cast<double>(p_.done) * 1000.0 / static_cast<double>(elapsed) : 0;
  p_.eta_ms.reset();
  if (p_.state == ProgressState::kRunning && p_.expected && p_.rows_per_s > 0)
    p_.eta_ms = std::llround(static_cast<double>(p_.expected - p_.done) * 1000.0 / p_.rows_per_s);
}

bool ProgressMeter::Advance(uint64_t done, int64_t now_ms) {
  if (done > p_.done) p_.done = done;
  Measure(now_ms);
  if (now_ms - p_.since_ms < kProgressAfterMs) return false;
  if (reported_ && now_ms - last_report_ms_ < kProgressEveryMs) return false;
  reported_ = true;
  last_report_ms_ = now_ms;
  return true;
}

void ProgressMeter::Expect(uint64_t expected) {
  if (expected > p_.expected) p_.expected = expected;
  Measure(p_.updated_ms);
}

bool ProgressMeter::Finish(bool ok, int64_t now_ms) {
  if (!reported_) return false;
  p_.state = ok ? ProgressState::kDone : ProgressState::kFailed;
  if (ok) p_.expected = p_.done;
  Measure(now_ms);
  return true;
}

}  // namespace deltasync
