#pragma once
// `deltasync agent`: keeps SQLite files in sync with their hubs without the application
// calling anything (SPEC section 7, docs/live-sync.md). It runs the schedules stored in each
// file (deltasync_schedule), or one hub given on the command line, through the deltasync
// extension loaded into its own connections: the network is the extension's, so this
// process links libsqlite3 and never libcurl.
#include <set>
#include <string>
#include <vector>

#include "server/agent_progress.hpp"

namespace deltasync::agent {

// What `deltasync agent` was given on its command line.
struct AgentArgs {
  std::vector<std::string> dbs;  // the SQLite files to keep in sync
  std::string url, token;        // one hub for every file instead of their stored schedules
  std::string extension;         // deltasync.so; empty: found next to the binary (ExtensionPath)
  long wait_ms = 0;              // long-poll wait; 0: the schedule's wait_ms, else min(interval_ms, 20 s)
  long poll_ms = 25;             // how often PRAGMA data_version is read for local commits
  long max_backoff_ms = 10000;   // the longest wait between retries while a hub is unreachable
  long rescan_ms = 2000;         // how often each file's schedules are read again
  ProgressMode progress = ProgressMode::kAuto;  // the progress line (agent_progress.hpp)
};

// Reads an agent config file (JSON, docs/live-sync.md): keys "db" (a file name or a list),
// "url", "token", "extension", "wait_ms", "poll_ms", "max_backoff_ms", "rescan_ms",
// "log_level", "progress". A key whose flag is in `given` (the long flag names set on the command line)
// is left as the command line set it. Throws deltasync::Error (kInvalidArgument) naming the
// file and the key for an unreadable file, bad JSON, an unknown key, a wrong type or a value
// out of range.
void ApplyConfigFile(const std::string& path, const std::set<std::string>& given, AgentArgs& args,
                     std::string& log_level);

// The extension to load: `configured` when given, else the first that exists of
// <dir of the binary>/../sqlite_ext/deltasync.so (the build tree) and
// <dir of the binary>/../lib/deltasync/deltasync.so (the install layout).
std::string ExtensionPath(const std::string& configured);

// Runs until SIGINT or SIGTERM; 0 after a clean stop, 2 on bad arguments, 1 when a file
// cannot be opened or the extension cannot be loaded.
int RunAgent(const AgentArgs& args);

}  // namespace deltasync::agent
