// The deltasync command: `deltasync serve` runs a hub, `deltasync agent` keeps SQLite files in sync.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <pthread.h>
#include <set>
#include <thread>

#include "common/error.hpp"
#include "common/version.hpp"
#include "server/agent.hpp"
#include "server/hub_server.hpp"

using namespace deltasync;
using namespace deltasync::hub;

namespace {

// "HOST:PORT" or "[v6]:PORT".
bool SplitListen(const std::string& listen, std::string& host, int& port) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  std::string p = listen.substr(colon + 1);
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) return false;
  port = std::stoi(p);
  return port >= 0 && port < 65536;  // 0: any free port, reported in the log
}

// What `deltasync serve` was given on its command line.
struct ServeArgs {
  std::string db, listen = "127.0.0.1:8080", config, log_level = "info", tls_cert, tls_key;
  bool auto_create = false, allow_unauthenticated = false, allow_plaintext = false, new_hub_id = false;
  // Connection limits over the config file's (-1: the file's, or the default).
  int header_timeout_ms = -1;
  long long max_connections_per_address = -1;
  bool limit_loopback_connections = false;
};

// The config file with the command line's overrides: at start, and again on SIGHUP.
HubConfig LoadConfig(const ServeArgs& args) {
  HubConfig config;
  if (!args.config.empty()) config = HubConfig::Load(args.config);
  config.auto_create_nodes |= args.auto_create;
  config.allow_unauthenticated = args.allow_unauthenticated;
  if (!args.tls_cert.empty()) config.tls_cert = args.tls_cert;
  if (!args.tls_key.empty()) config.tls_key = args.tls_key;
  if (args.header_timeout_ms >= 0) config.header_timeout_ms = args.header_timeout_ms;
  if (args.max_connections_per_address >= 0)
    config.max_connections_per_address = static_cast<size_t>(args.max_connections_per_address);
  config.limit_loopback_connections |= args.limit_loopback_connections;
  config.CheckConnectionLimits();
  return config;
}

// SIGHUP: the config file again, for its tokens, JWT keys, admin token and quotas. A file that fails
// to load changes nothing. The warning stops before the parser's quote of the file, which
// may hold a token.
void Reload(Hub& hub, const ServeArgs& args) {
  if (args.config.empty()) return Log(LogLevel::kWarn, "SIGHUP: there is no --config file to reload");
  try {
    hub.Reload(LoadConfig(args));
    Log(LogLevel::kInfo, "SIGHUP: reloaded tokens, keys and quotas from " + args.config);
  } catch (const std::exception& e) {
    std::string why = e.what();
    why = why.substr(0, why.find("; last read"));
    Log(LogLevel::kWarn, "SIGHUP: cannot reload " + args.config + ", keeping the config in use: " + why);
  }
}

int Serve(const ServeArgs& args) {
  const std::string &db = args.db, &listen = args.listen, &log_level = args.log_level;
  bool allow_unauthenticated = args.allow_unauthenticated;
  SetLogLevel(log_level == "debug" ? LogLevel::kDebug : log_level == "warn" ? LogLevel::kWarn
              : log_level == "error"  ? LogLevel::kError
                                      : LogLevel::kInfo);
  std::string host;
  int port = 0;
  if (!SplitListen(listen, host, port)) {
    std::fprintf(stderr, "deltasync: --listen expects HOST:PORT, got \"%s\"\n", listen.c_str());
    return 2;
  }
  HubConfig config = LoadConfig(args);
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    std::fprintf(stderr, "deltasync: --tls-cert and --tls-key go together\n");
    return 2;
  }
  bool loopback = IsLoopback(host);
  // Tokens travel in headers: over plain http only where nobody else can listen, or behind
  // a proxy that terminates TLS (--allow-plaintext).
  if (!loopback && config.tls_cert.empty() && !args.allow_plaintext) {
    std::fprintf(stderr,
                 "deltasync: refusing to serve plain http on %s; give --tls-cert and --tls-key, listen on "
                 "127.0.0.1, or pass --allow-plaintext behind a TLS-terminating proxy\n",
                 host.c_str());
    return 2;
  }
  bool any_token = !config.default_tokens.empty() || config.jwt.Enabled();
  for (auto& [name, node] : config.nodes) any_token |= !node.tokens.empty();
  if (!loopback && !any_token && !allow_unauthenticated) {
    std::fprintf(stderr,
                 "deltasync: refusing to listen on %s without any token configured; add tokens to --config, "
                 "listen on 127.0.0.1, or pass --allow-unauthenticated\n",
                 host.c_str());
    return 2;
  }

  // Signals are taken by a dedicated thread, which stops the server cleanly (SIGINT,
  // SIGTERM) or reloads the config (SIGHUP).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::unique_ptr<HubStore> store = OpenStore(db);
  if (args.new_hub_id) {
    store->NewIdentity();
    Log(LogLevel::kInfo, "the store has a new identity: every site pushes and pulls everything again");
  }
  std::string hub_id = store->hub_id().ToString();
  Hub hub(std::move(config), std::move(store));
  std::thread waiter([&] {
    int sig = 0;
    while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) Reload(hub, args);
    Log(LogLevel::kInfo, std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ", shutting down");
    hub.Stop();
  });
  bool ok;
  if (port == 0) {
    port = hub.BindToAnyPort(host);
    ok = port > 0;
  } else {
    ok = hub.Bind(host, port);
  }
  if (ok) {
    Log(LogLevel::kInfo, "deltasync " + std::string(kVersion) + " hub " + hub_id + " serving " + db +
                             " listening on " + host + ":" + std::to_string(port) + (hub.Tls() ? " (https)" : ""));
    ok = hub.ListenAfterBind();
  }
  if (!ok) {
    Log(LogLevel::kError, "cannot listen on " + listen);
    pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
    return 1;
  }
  waiter.join();
  Log(LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"deltasync: sync SQLite and PostgreSQL databases through a hub", "deltasync"};
  app.set_version_flag("--version", std::string("deltasync ") + kVersion);
  app.require_subcommand(1);
  ServeArgs a;
  CLI::App* serve = app.add_subcommand("serve", "run a hub");
  serve->add_option("--db", a.db, "hub store: a SQLite file, :memory:, or postgresql://... (shared by several hubs)")->required();
  serve->add_option("--listen", a.listen, "HOST:PORT to listen on")->capture_default_str();
  serve->add_option("--config", a.config, "JSON config: nodes, tokens, limits")->check(CLI::ExistingFile);
  serve->add_option("--tls-cert", a.tls_cert, "PEM certificate (chain): serve https")->check(CLI::ExistingFile);
  serve->add_option("--tls-key", a.tls_key, "PEM private key of --tls-cert")->check(CLI::ExistingFile);
  serve->add_flag("--allow-plaintext", a.allow_plaintext,
                  "serve plain http on a non-loopback address (behind a TLS-terminating proxy)");
  serve->add_flag("--auto-create-nodes", a.auto_create, "create a node on first use");
  serve->add_option("--header-timeout-ms", a.header_timeout_ms,
                    "a request's line and headers (and a TLS handshake) must arrive within this (default 10000)")
      ->check(CLI::Range(100, 3600000));
  serve->add_option("--max-connections-per-address", a.max_connections_per_address,
                    "connections served at once per client address, an IPv6 /64 counting as one (default 16, 0: no bound)")
      ->check(CLI::Range(0LL, 1000000LL));
  serve->add_flag("--limit-loopback-connections", a.limit_loopback_connections,
                  "apply --max-connections-per-address to loopback clients too (they are exempt by default)");
  serve->add_flag("--new-hub-id", a.new_hub_id,
                  "give the store a new identity first (after restoring it from a backup; docs/operations.md)");
  serve->add_flag("--allow-unauthenticated", a.allow_unauthenticated,
                  "serve nodes without tokens on a non-loopback address");
  serve->add_option("--log-level", a.log_level, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
  agent::AgentArgs g;
  std::string agent_log_level = "info";
  CLI::App* agent_cmd = app.add_subcommand("agent", "keep SQLite files in sync with their hubs (docs/live-sync.md)");
  std::string agent_config;
  agent_cmd->add_option("--config", agent_config,
                        "JSON file with any of these options (keys as the flags: \"db\", \"token\", \"poll_ms\", ...); "
                        "flags given here win")
      ->check(CLI::ExistingFile);
  agent_cmd->add_option("--db", g.dbs, "a SQLite file whose schedules to run (repeatable)");
  agent_cmd->add_option("--url", g.url, "one hub for every file instead of their stored schedules");
  agent_cmd->add_option("--token", g.token, "bearer token for --url");
  agent_cmd->add_option("--extension", g.extension,
                        "deltasync.so to load (default: ../sqlite_ext/ or ../lib/deltasync/ next to this binary)");
  agent_cmd->add_option("--wait-ms", g.wait_ms, "long-poll wait (default: the schedule's wait_ms, else min(interval_ms, 20000))")
      ->check(CLI::Range(100L, 600000L));
  agent_cmd->add_option("--poll-ms", g.poll_ms, "how often PRAGMA data_version is read for local commits")
      ->check(CLI::Range(1L, 10000L))
      ->capture_default_str();
  agent_cmd->add_option("--max-backoff-ms", g.max_backoff_ms, "longest wait between retries while a hub is unreachable")
      ->check(CLI::Range(250L, 3600000L))
      ->capture_default_str();
  agent_cmd->add_option("--rescan-ms", g.rescan_ms, "how often each file's schedules are read again")
      ->check(CLI::Range(100L, 3600000L))
      ->capture_default_str();
  agent_cmd->add_option("--log-level", agent_log_level, "debug (every sync), info (syncs that moved rows), warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
  std::string agent_progress = "auto";
  agent_cmd->add_option("--progress", agent_progress,
                        "progress line for pushes and pulls over a second: auto (when stderr is a terminal), always or never")
      ->check(CLI::IsMember({"auto", "always", "never"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    if (*serve) return Serve(a);
    if (*agent_cmd) {
      g.progress = *agent::ParseProgressMode(agent_progress);
      if (!agent_config.empty()) {
        std::set<std::string> given;
        for (const CLI::Option* o : agent_cmd->get_options())
          if (o->count() > 0) given.insert(o->get_name());
        try {
          agent::ApplyConfigFile(agent_config, given, g, agent_log_level);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "%s\n", e.what());
          return 2;
        }
      }
      SetLogLevel(agent_log_level == "debug" ? LogLevel::kDebug : agent_log_level == "warn" ? LogLevel::kWarn
                  : agent_log_level == "error"                  ? LogLevel::kError
                                                                : LogLevel::kInfo);
      return agent::RunAgent(g);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
