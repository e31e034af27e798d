// The agent's progress line (agent_progress.hpp). The watcher thread looks every 100 ms at the
// calls that have run about a second and reads each one's latest report from its file;
// drawing and log lines share one mutex, so a log line never lands in the middle of the
// progress line. Only carriage returns and spaces move the cursor: no escape sequence, no
// colour (NO_COLOR has nothing to turn off).
#include "server/agent_progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "server/hub_server.hpp"

namespace deltasync::agent {

namespace {

constexpr long kWatchEveryMs = 100;
// A call is looked at once it has run this long (its first report comes at kProgressAfterMs).
constexpr int64_t kLookAfterMs = kProgressAfterMs - 100;
constexpr size_t kBarWidth = 20;

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "3s", "2m05s", "1h07m".
std::string Duration(int64_t ms) {
  int64_t s = (ms + 999) / 1000;
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  else std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s / 60 % 60));
  return buf;
}

// One call's text, with kBar where its bar goes (calls whose expected rows are unknown have none).
constexpr char kBar = '\x01';
std::string OneCall(const ShownCall& c) {
  const SyncProgress& p = c.p;
  std::string file = c.file.substr(c.file.rfind('/') == std::string::npos ? 0 : c.file.rfind('/') + 1);
  size_t at = p.hub.rfind("/nodes/");
  std::string node = at == std::string::npos ? p.hub : p.hub.substr(at + 7);
  std::string out = file + " " + p.direction + " " + node + " ";
  if (p.expected > 0) {
    uint64_t done = std::min(p.done, p.expected);
    out += std::string(1, kBar) + std::to_string(done * 100 / p.expected) + "% " + std::to_string(p.done) + "/" +
           std::to_string(p.expected) + " rows";
  } else {
    out += std::to_string(p.done) + "/? rows";
  }
  out += ", " + std::to_string(static_cast<long long>(p.rows_per_s + 0.5)) + " rows/s";
  if (p.state == ProgressState::kRunning && p.eta_ms) out += ", ETA " + Duration(*p.eta_ms);
  if (p.state != ProgressState::kRunning) out += std::string(", ") + ProgressStateName(p.state);
  for (char& ch : out)
    if (ch != kBar && (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) > 0x7e)) ch = '?';
  return out;
}

size_t TerminalWidth() {
  struct winsize ws {};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  if (const char* columns = std::getenv("COLUMNS")) {
    long n = std::strtol(columns, nullptr, 10);
    if (n > 0 && n < 10000) return static_cast<size_t>(n);
  }
  return 80;
}

void Write(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

std::atomic<ProgressView*> g_view{nullptr};  // the one whose WriteLog takes the log, while it exists

void LogThroughView(const std::string& line) {
  if (ProgressView* view = g_view) view->WriteLog(line);
  else Write(line);
}

}  // namespace

std::optional<ProgressMode> ParseProgressMode(const std::string& text) {
  if (text == "auto") return ProgressMode::kAuto;
  if (text == "always") return ProgressMode::kAlways;
  if (text == "never") return ProgressMode::kNever;
  return std::nullopt;
}

bool ShouldDrawProgress(ProgressMode mode, bool stderr_is_tty, const char* term) {
  if (mode != ProgressMode::kAuto) return mode == ProgressMode::kAlways;
  return stderr_is_tty && !(term && std::string(term) == "dumb");
}

std::string ProgressBarLine(const std::vector<ShownCall>& calls, size_t width) {
  std::vector<std::string> texts;
  size_t length = 0, bars = 0;
  for (const ShownCall& c : calls) {
    texts.push_back(OneCall(c));
    length += texts.back().size() + (texts.size() > 1 ? 3 : 0);
    if (texts.back().find(kBar) != std::string::npos) {
      ++bars;
      --length;  // the mark itself takes no room
    }
  }
  const size_t room = width > 1 ? width - 1 : 1;
  // Each bar takes "[" + cells + "] ": as wide as the room left allows, up to kBarWidth cells;
  // none when fewer than 5 cells fit.
  size_t cells = 0;
  if (bars > 0 && room > length) {
    size_t per_bar = (room - length) / bars;
    if (per_bar >= 3 + 5) cells = std::min(kBarWidth, per_bar - 3);
  }
  std::string line;
  for (size_t k = 0; k < texts.size(); ++k) {
    const ShownCall& c = calls[k];
    std::string& t = texts[k];
    size_t mark = t.find(kBar);
    if (mark != std::string::npos) {
      std::string bar;
      if (cells > 0) {
        size_t filled = static_cast<size_t>(std::min(c.p.done, c.p.expected) * cells / c.p.expected);
        bar = "[" + std::string(filled, '#') + std::string(cells - filled, '-') + "] ";
      }
      t.replace(mark, 1, bar);
    }
    line += (k ? " | " : "") + t;
  }
  if (line.size() > room) line.resize(room);
  return line;
}

ProgressView::ProgressView(bool draw) : draw_(draw) {
  if (!draw_) return;
  g_view = this;
  hub::SetLogWriter(LogThroughView);
  watcher_ = std::thread([this] { Watch(); });
}

ProgressView::~ProgressView() {
  if (!draw_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  watcher_.join();
  for (auto& [path, db] : dbs_) sqlite3_close_v2(db);
  std::lock_guard<std::mutex> lock(mu_);
  Clear();
  hub::SetLogWriter(nullptr);
  g_view = nullptr;
}

uint64_t ProgressView::Begin(const std::string& path, const std::string& hub, const std::string& direction) {
  if (!draw_) return 0;
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t id = next_id_++;
  calls_[id] = Call{path, hub, direction, WallMs(), std::nullopt};
  return id;
}

void ProgressView::End(uint64_t id) {
  if (!draw_) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (calls_.erase(id)) Redraw();
}

void ProgressView::WriteLog(const std::string& line) {
  if (!draw_) return Write(line);
  std::lock_guard<std::mutex> lock(mu_);
  Clear();
  Write(line);
  Redraw();
}

void ProgressView::Watch() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(kWatchEveryMs), [&] { return stop_; });
    if (stop_) break;
    // The reads run without the lock: a log line or a call's end never waits for a file.
    std::map<uint64_t, Call> due;
    int64_t now = WallMs();
    for (const auto& [id, call] : calls_)
      if (now - call.start_ms >= kLookAfterMs) due.emplace(id, call);
    if (due.empty()) continue;
    lock.unlock();
    std::map<uint64_t, SyncProgress> seen;
    for (const auto& [id, call] : due)
      if (std::optional<SyncProgress> p = Read(call)) seen.emplace(id, std::move(*p));
    lock.lock();
    bool changed = false;
    for (auto& [id, p] : seen) {
      auto it = calls_.find(id);
      if (it == calls_.end()) continue;  // it ended meanwhile
      it->second.shown = std::move(p);
      changed = true;
    }
    if (changed) Redraw();
  }
}

// The call's latest report: the file's row for its hub and direction, if it began with this
// call (an older row is an earlier call's).
std::optional<SyncProgress> ProgressView::Read(const Call& call) {
  sqlite3*& db = dbs_[call.path];
  if (!db) {
    if (sqlite3_open_v2(call.path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      sqlite3_close_v2(db);
      db = nullptr;
      return std::nullopt;
    }
    sqlite3_busy_timeout(db, 200);
  }
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db,
                         "SELECT state, since_ms, updated_ms, rows_done, rows_expected, rows_per_s, eta_ms"
                         " FROM deltasync_sync_progress WHERE hub = ?1 AND direction = ?2",
                         -1, &st, nullptr) != SQLITE_OK) {
    sqlite3_finalize(st);  // no table yet: the extension makes it with its first report
    return std::nullopt;
  }
  sqlite3_bind_text(st, 1, call.hub.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, call.direction.c_str(), -1, SQLITE_TRANSIENT);
  std::optional<SyncProgress> out;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 1) >= call.start_ms) {
    SyncProgress p;
    p.hub = call.hub;
    p.direction = call.direction;
    std::string state = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    p.state = state == "done" ? ProgressState::kDone : state == "failed" ? ProgressState::kFailed : ProgressState::kRunning;
    p.since_ms = sqlite3_column_int64(st, 1);
    p.updated_ms = sqlite3_column_int64(st, 2);
    p.done = static_cast<uint64_t>(sqlite3_column_int64(st, 3));
    p.expected = static_cast<uint64_t>(sqlite3_column_int64(st, 4));  // NULL: 0, not known
    p.rows_per_s = static_cast<double>(sqlite3_column_int64(st, 5));
    if (sqlite3_column_type(st, 6) != SQLITE_NULL) p.eta_ms = sqlite3_column_int64(st, 6);
    out = p;
  }
  sqlite3_finalize(st);
  return out;
}

void ProgressView::Redraw() {
  std::vector<ShownCall> shown;
  for (const auto& [id, call] : calls_)
    if (call.shown) shown.push_back(ShownCall{call.path, *call.shown});
  if (shown.empty()) return Clear();
  std::string line = ProgressBarLine(shown, TerminalWidth());
  if (line == on_screen_) return;
  std::string pad(on_screen_.size() > line.size() ? on_screen_.size() - line.size() : 0, ' ');
  Write("\r" + line + pad);
  on_screen_ = line;
}

void ProgressView::Clear() {
  if (on_screen_.empty()) return;
  Write("\r" + std::string(on_screen_.size(), ' ') + "\r");
  on_screen_.clear();
}

}  // namespace deltasync::agent
