#pragma once
// Progress of a long push or pull, once for every engine (docs/live-sync.md, "Progress"):
// HubLink measures it batch by batch and page by page, and hands a SyncProgress to the
// engine (SyncSite::ReportProgress) once the call has run a second, then every half second,
// and once more when it ends. Short calls report nothing and cost nothing.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace deltasync {

// The first report after this long, then at most one per kProgressEveryMs.
inline constexpr int64_t kProgressAfterMs = 1000;
inline constexpr int64_t kProgressEveryMs = 500;

enum class ProgressState { kRunning, kDone, kFailed };
const char* ProgressStateName(ProgressState state);

struct SyncProgress {
  std::string hub;        // the hub's key (base + "/nodes/" + node)
  std::string direction;  // "push" or "pull"
  ProgressState state = ProgressState::kRunning;
  int64_t since_ms = 0;    // when the call began (wall clock)
  int64_t updated_ms = 0;  // when this report was made
  // Rows: a push counts rows sent; a pull counts positions of the node's sequence passed (a
  // page's rows and the rows it skipped), so done reaches expected when the pull is through.
  uint64_t done = 0;
  uint64_t expected = 0;          // 0: not known (yet); never below done; equal to done when done
  double rows_per_s = 0;          // done over the time so far
  std::optional<int64_t> eta_ms;  // while running with expected known and a rate

  int64_t elapsed_ms() const { return updated_ms - since_ms; }
};

// The report as a JSON object: {hub, direction, state, since_ms, updated_ms, rows_done,
// rows_expected, rows_per_s, eta_ms} (eta_ms and rows_expected null when unknown).
nlohmann::json ProgressJson(const SyncProgress& p);

// One line for people and logs, also what PostgreSQL shows in pg_stat_activity:
// "deltasync push HUB: 40000 of 100000 rows, 1600 ms, 25000 rows/s, ETA 2400 ms"
// ("… of ? rows", no ETA when expected is unknown; "done" or "failed" instead of the ETA at
// the end). ParseProgressLine reads it back (nullopt for any other text).
std::string ProgressLine(const SyncProgress& p);
std::optional<SyncProgress> ParseProgressLine(const std::string& line, int64_t updated_ms);

// Measures one direction of one call and says when a report is due.
class ProgressMeter {
 public:
  ProgressMeter(std::string hub, std::string direction, int64_t now_ms);
  // The new total after a batch or page; true when a report is due (then progress() holds it).
  bool Advance(uint64_t done, int64_t now_ms);
  // What the call expects in all (0: not known); it only grows, and is never below done.
  void Expect(uint64_t expected);
  // The call ended: true when reports were made (a last one is then due: done, or failed;
  // when done, expected becomes done: what more arrived meanwhile is the next call's).
  bool Finish(bool ok, int64_t now_ms);
  // True once the first report was due (the call ran longer than kProgressAfterMs).
  bool reporting() const { return reported_; }
  const SyncProgress& progress() const { return p_; }

 private:
  void Measure(int64_t now_ms);
  SyncProgress p_;
  bool reported_ = false;
  int64_t last_report_ms_ = 0;
};

}  // namespace deltasync
