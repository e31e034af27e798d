#pragma once
// The hub's own connection handling, under cpp-httplib's request parsing (issue 11): the
// library (Debian's 0.11, a compiled library) reads a request's line and headers whole, with
// no total limit, and lets a client that sends a byte within each read timeout hold a worker
// for as long as it likes. Here each connection is read through a stream that counts the
// bytes of a request's head and gives it a deadline, and the connections of each client
// address are counted (docs/security.md, "Connections").
#include <httplib.h>

#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <string>

namespace deltasync::hub {

struct ConnectionLimits {
  size_t max_header_bytes = 16u << 10;   // request line and headers, as sent: 431 past it
  int header_timeout_ms = 10000;         // a whole head must arrive within this: 408 after it
  int read_timeout_ms = 5000;            // one read (head or body)
  int write_timeout_ms = 5000;           // one write
  int keep_alive_timeout_ms = 1000;      // an idle connection waits this long for its next request
  size_t keep_alive_max_count = 1000;    // requests on one connection
  size_t max_connections_per_address = 16;  // connections served at once per client address (0: no bound)
  bool limit_loopback = false;           // loopback clients are exempt unless true
};

// The key connections are counted by: an IPv4 address, or an IPv6 address's /64 (one
// subscriber's network); "" when the address cannot be read.
std::string AddressKey(const std::string& ip);

// Connections served at once, per address key.
class AddressCounts {
 public:
  // Counts a connection in, unless `limit` are already in (0: no limit).
  bool Enter(const std::string& key, size_t limit);
  void Leave(const std::string& key);
  size_t Count(const std::string& key) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, size_t> counts_;
};

// For the hub's handlers, about the connection of the request the calling worker serves:
// - HeadRead(): the pre-routing screen has the request's line and headers; reads from now on
//   are the body's (no head cap, no head deadline).
// - HeadRefusal(): 431 or 408 when the head was cut off at the cap or the deadline (the
//   library then answers 400, which the error handler turns into this), else 0.
// - CloseAfterResponse(): the connection closes once the answer is written.
void HeadRead();
int HeadRefusal();
void CloseAfterResponse();

// Serves one accepted connection for `server` (a GuardedServer or GuardedTlsServer).
class ConnectionGuard {
 public:
  ConnectionGuard(ConnectionLimits limits, std::function<void(int status)> on_refusal)
      : limits_(limits), on_refusal_(std::move(on_refusal)) {}
  const ConnectionLimits& limits() const { return limits_; }
  AddressCounts& counts() { return counts_; }
  void Refused(int status) const {
    if (on_refusal_) on_refusal_(status);
  }

 private:
  ConnectionLimits limits_;
  std::function<void(int status)> on_refusal_;  // answers written here, not by the library (metrics)
  AddressCounts counts_;
};

// A plain http server whose connections go through the guard.
class GuardedServer : public httplib::Server {
 public:
  explicit GuardedServer(ConnectionGuard& guard) : guard_(guard) {}
  void WidenBacklog();  // after binding: a listen backlog for bursts of connections

 private:
  bool process_and_close_socket(socket_t sock) override;
  ConnectionGuard& guard_;
};

// The same for https: the TLS handshake also has the head's deadline, and a connection over
// its address's bound is closed before any handshake.
class GuardedTlsServer : public httplib::SSLServer {
 public:
  GuardedTlsServer(ConnectionGuard& guard, const char* cert, const char* key)
      : httplib::SSLServer(cert, key), guard_(guard) {}
  void WidenBacklog();

 private:
  bool process_and_close_socket(socket_t sock) override;
  ConnectionGuard& guard_;
};

}  // namespace deltasync::hub
