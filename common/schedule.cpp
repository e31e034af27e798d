#include "common/schedule.hpp"

#include <algorithm>

#include "common/error.hpp"

namespace deltasync {

using Json = nlohmann::json;

ScheduleOptions SplitScheduleOptions(std::string_view text, const char* fn) {
  ScheduleOptions out;
  out.sync_options = Json::object();
  if (text.empty()) return out;
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception&) {
    throw Error(ErrorCode::kInvalidArgument, std::string(fn) + ": options are not valid JSON");
  }
  if (!j.is_object()) throw Error(ErrorCode::kInvalidArgument, std::string(fn) + ": options must be a JSON object");
  auto it = j.find("interval_ms");
  if (it != j.end()) {
    if (!it->is_number_integer())
      throw Error(ErrorCode::kInvalidArgument, std::string(fn) + ": option interval_ms must be a whole number");
    out.interval_ms = it->get<int64_t>();
    if (out.interval_ms < kMinScheduleIntervalMs || out.interval_ms > kMaxScheduleIntervalMs)
      throw Error(ErrorCode::kInvalidArgument, std::string(fn) + ": option interval_ms must be between " +
                                                   std::to_string(kMinScheduleIntervalMs) + " and " +
                                                   std::to_string(kMaxScheduleIntervalMs));
    j.erase(it);
  }
  out.sync_options = std::move(j);
  return out;
}

std::string LongPollOptions(const std::string& stored_options, int64_t interval_ms, int64_t wait_override_ms) {
  Json o = stored_options.empty() ? Json::object() : Json::parse(stored_options);
  int64_t wait = wait_override_ms > 0
                     ? wait_override_ms
                     : o.value("wait_ms", std::min<int64_t>(interval_ms, kMaxDefaultWaitMs));
  o["wait_ms"] = wait;
  if (o.value("timeout_ms", int64_t{30000}) < wait + 10000) o["timeout_ms"] = wait + 15000;
  return o.dump();
}

int64_t Backoff::Next() {
  ++failures_;
  double d = 250.0 * static_cast<double>(int64_t{1} << std::min(failures_ - 1, 20));
  d = std::min<double>(d, static_cast<double>(cap_ms_));
  return static_cast<int64_t>(d * std::uniform_real_distribution<double>(0.5, 1.0)(rng_));
}

}  // namespace deltasync
