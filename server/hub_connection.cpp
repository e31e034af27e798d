#include "server/hub_connection.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace deltasync::hub {

namespace {

using Clock = std::chrono::steady_clock;

// Milliseconds left until `until`, rounded up (0 when it passed), for poll().
int MsLeft(Clock::time_point until) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now()).count();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<long long>(left, 1 << 30));
}

// Waits for `events` on sock until `until`: 1 ready, 0 timed out, -1 error.
int WaitFor(socket_t sock, short events, Clock::time_point until) {
  for (;;) {
    pollfd p{sock, events, 0};
    int r = ::poll(&p, 1, MsLeft(until));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    return r == 0 ? 0 : 1;
  }
}

constexpr ssize_t kTimedOut = -2;

// How bytes travel on a connection: plain TCP or TLS. Read and Write wait until `until`;
// they return a byte count, 0 at the peer's end (Read), -1 on an error, kTimedOut.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual ssize_t Read(char* p, size_t n, Clock::time_point until) = 0;
  virtual ssize_t Write(const char* p, size_t n, Clock::time_point until) = 0;
  virtual bool Buffered() const { return false; }  // bytes readable without waiting for the socket
  virtual void ShutdownWrite() = 0;                // no more bytes from us; reading goes on
};

class PlainTransport : public Transport {
 public:
  explicit PlainTransport(socket_t sock) : sock_(sock) {}
  ssize_t Read(char* p, size_t n, Clock::time_point until) override {
    for (;;) {
      int w = WaitFor(sock_, POLLIN, until);
      if (w <= 0) return w == 0 ? kTimedOut : -1;
      ssize_t r = ::recv(sock_, p, n, 0);
      if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      return r;
    }
  }
  ssize_t Write(const char* p, size_t n, Clock::time_point until) override {
    for (;;) {
      int w = WaitFor(sock_, POLLOUT, until);
      if (w <= 0) return w == 0 ? kTimedOut : -1;
      ssize_t r = ::send(sock_, p, n, MSG_NOSIGNAL);
      if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      return r;
    }
  }
  void ShutdownWrite() override { ::shutdown(sock_, SHUT_WR); }

 private:
  socket_t sock_;
};

// TLS on a non-blocking socket, so that every wait (handshake included) has its deadline:
// a partial record never blocks a read past it.
class TlsTransport : public Transport {
 public:
  TlsTransport(socket_t sock, SSL_CTX* ctx) : sock_(sock), ssl_(ctx ? SSL_new(ctx) : nullptr) {
    if (!ssl_) return;
    int flags = ::fcntl(sock_, F_GETFL, 0);
    ::fcntl(sock_, F_SETFL, flags | O_NONBLOCK);
    SSL_set_fd(ssl_, sock_);
  }
  ~TlsTransport() override {
    if (ssl_) SSL_free(ssl_);
    ERR_clear_error();
  }
  bool Handshake(Clock::time_point until) {
    if (!ssl_) return false;
    for (;;) {
      int r = SSL_accept(ssl_);
      if (r == 1) return true;
      if (!Wait(SSL_get_error(ssl_, r), until)) return false;
    }
  }
  ssize_t Read(char* p, size_t n, Clock::time_point until) override {
    for (;;) {
      int r = SSL_read(ssl_, p, static_cast<int>(std::min<size_t>(n, 1 << 30)));
      if (r > 0) return r;
      int err = SSL_get_error(ssl_, r);
      if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0)) return 0;
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) return -1;
      int w = WaitFor(sock_, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, until);
      if (w <= 0) return w == 0 ? kTimedOut : -1;
    }
  }
  ssize_t Write(const char* p, size_t n, Clock::time_point until) override {
    for (;;) {
      int r = SSL_write(ssl_, p, static_cast<int>(std::min<size_t>(n, 1 << 30)));
      if (r > 0) return r;
      int err = SSL_get_error(ssl_, r);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) return -1;
      int w = WaitFor(sock_, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, until);
      if (w <= 0) return w == 0 ? kTimedOut : -1;
    }
  }
  bool Buffered() const override { return SSL_pending(ssl_) > 0; }
  void ShutdownWrite() override { SSL_shutdown(ssl_); }  // sends close_notify; never waits

 private:
  bool Wait(int err, Clock::time_point until) {
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) return false;
    return WaitFor(sock_, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, until) == 1;
  }
  socket_t sock_;
  SSL* ssl_;
};

void NumericAddress(const sockaddr_storage& a, socklen_t len, std::string& ip, int& port) {
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&a), len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
    ip = host;
    port = std::atoi(serv);
  }
}

std::string PeerIp(socket_t sock) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  std::string ip;
  int port = 0;
  if (::getpeername(sock, reinterpret_cast<sockaddr*>(&a), &len) == 0) NumericAddress(a, len, ip, port);
  return ip;
}

bool LoopbackIp(const std::string& ip) {
  in_addr v4{};
  if (::inet_pton(AF_INET, ip.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, ip.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

const char* Reason(int status) {
  switch (status) {
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    default: return "Service Unavailable";
  }
}

// An answer written here rather than by the library: the head never got to it.
std::string CannedAnswer(int status, const ConnectionLimits& l) {
  std::string body = status == 431   ? "{\"error\":\"deltasync: request headers larger than " +
                                         std::to_string(l.max_header_bytes) + " bytes\"}"
                     : status == 408 ? "{\"error\":\"deltasync: the request's headers did not arrive within " +
                                           std::to_string(l.header_timeout_ms) + " ms\"}"
                                     : "{\"error\":\"deltasync: too many connections from this address; retry later\"}";
  return "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         (status == 503 ? "\r\nRetry-After: 1" : "") + "\r\nConnection: close\r\n\r\n" + body;
}

// One connection as the library reads it: bytes of a request's head are counted against
// the cap and read against the head's deadline; after HeadRead() only the read timeout holds.
class GuardedStream : public httplib::Stream {
 public:
  GuardedStream(socket_t sock, Transport& t, const ConnectionLimits& l) : sock_(sock), t_(t), l_(l) {}

  void BeginRequest(Clock::time_point deadline) {
    in_head_ = true;
    head_bytes_ = 0;
    deadline_ = deadline;
    written_ = 0;
    close_after_ = false;
  }
  // Waits for the first byte of the next request: false when none came in time.
  bool WaitForRequest(Clock::time_point until) {
    if (off_ < len_ || t_.Buffered()) return true;
    return WaitFor(sock_, POLLIN, std::min(until, deadline_)) == 1;
  }
  void HeadRead() { in_head_ = false; }
  bool head_screened() const { return !in_head_; }
  int refusal() const { return refusal_; }
  size_t written() const { return written_; }
  void CloseAfter() { close_after_ = true; }
  bool close_after() const { return close_after_; }

  // Writes an answer of our own (a head cut off before the library could answer).
  void WriteAll(const std::string& s) {
    size_t off = 0;
    auto until = Clock::now() + std::chrono::milliseconds(l_.write_timeout_ms);
    while (off < s.size()) {
      ssize_t n = t_.Write(s.data() + off, s.size() - off, until);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }
  // Closes our side after an answer to a request that was not read whole, then reads and
  // drops what the client still sends for a moment, so that the answer reaches it instead
  // of a reset (closing with unread bytes resets the connection).
  void Linger() {
    t_.ShutdownWrite();
    auto end = Clock::now() + std::chrono::milliseconds(1000);
    char scratch[16384];
    for (;;) {
      auto until = std::min(end, Clock::now() + std::chrono::milliseconds(200));
      if (t_.Read(scratch, sizeof scratch, until) <= 0 || Clock::now() >= end) return;
    }
  }

  bool is_readable() const override {
    return off_ < len_ || t_.Buffered() ||
           WaitFor(sock_, POLLIN, Clock::now() + std::chrono::milliseconds(l_.read_timeout_ms)) == 1;
  }
  bool is_writable() const override {
    return WaitFor(sock_, POLLOUT, Clock::now() + std::chrono::milliseconds(l_.write_timeout_ms)) == 1;
  }

  ssize_t read(char* ptr, size_t size) override {
    if (refusal_) return -1;
    if (in_head_ && head_bytes_ >= l_.max_header_bytes) {
      refusal_ = 431;
      return -1;
    }
    if (off_ >= len_) {
      auto until = Clock::now() + std::chrono::milliseconds(l_.read_timeout_ms);
      bool at_deadline = in_head_ && deadline_ <= until;  // the head's deadline comes first
      if (at_deadline) until = deadline_;
      ssize_t n = t_.Read(buf_, sizeof buf_, until);
      if (n == kTimedOut) {
        if (at_deadline) refusal_ = 408;
        return -1;
      }
      if (n <= 0) return n;
      off_ = 0;
      len_ = static_cast<size_t>(n);
    }
    size_t n = std::min(size, len_ - off_);
    if (in_head_) n = std::min(n, l_.max_header_bytes - head_bytes_);
    std::memcpy(ptr, buf_ + off_, n);
    off_ += n;
    if (in_head_) head_bytes_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    ssize_t n = t_.Write(ptr, size, Clock::now() + std::chrono::milliseconds(l_.write_timeout_ms));
    if (n > 0) written_ += static_cast<size_t>(n);
    return n == kTimedOut ? -1 : n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (::getpeername(sock_, reinterpret_cast<sockaddr*>(&a), &len) == 0) NumericAddress(a, len, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (::getsockname(sock_, reinterpret_cast<sockaddr*>(&a), &len) == 0) NumericAddress(a, len, ip, port);
  }
  socket_t socket() const override { return sock_; }

 private:
  socket_t sock_;
  Transport& t_;
  const ConnectionLimits& l_;
  char buf_[16384];
  size_t off_ = 0, len_ = 0;
  bool in_head_ = true;
  size_t head_bytes_ = 0;
  Clock::time_point deadline_;
  int refusal_ = 0;
  size_t written_ = 0;
  bool close_after_ = false;
};

thread_local GuardedStream* t_stream = nullptr;

// The current worker's connection, for the hub's handlers, while it is served.
struct CurrentStream {
  explicit CurrentStream(GuardedStream* s) { t_stream = s; }
  ~CurrentStream() { t_stream = nullptr; }
};

// A connection counted in its address's bound for as long as it is served.
class Admission {
 public:
  Admission(ConnectionGuard& g, socket_t sock) : g_(g) {
    std::string ip = PeerIp(sock);
    const ConnectionLimits& l = g.limits();
    if (l.max_connections_per_address == 0 || (!l.limit_loopback && LoopbackIp(ip))) return;
    key_ = AddressKey(ip);
    admitted_ = g.counts().Enter(key_, l.max_connections_per_address);
    counted_ = admitted_;
  }
  ~Admission() {
    if (counted_) g_.counts().Leave(key_);
  }
  bool admitted() const { return admitted_; }

 private:
  ConnectionGuard& g_;
  std::string key_;
  bool admitted_ = true, counted_ = false;
};

// Over the address's bound: a 503 at once (plain http only: no TLS handshake is spent on
// it), what the client sent is dropped without waiting, and the connection closes.
void Refuse503(ConnectionGuard& g, socket_t sock, bool answer) {
  char scratch[16384];
  for (int k = 0; k < 4 && ::recv(sock, scratch, sizeof scratch, MSG_DONTWAIT) > 0; ++k) {
  }
  if (answer) {
    std::string a = CannedAnswer(503, g.limits());
    (void)::send(sock, a.data(), a.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    ::shutdown(sock, SHUT_WR);
  }
  g.Refused(503);
}

using ProcessFn = std::function<bool(httplib::Stream&, bool close_connection, bool& connection_closed)>;

// The keep-alive loop of one connection (as the library's own, with the guard's stream).
void ServeRequests(ConnectionGuard& g, socket_t sock, Transport& t, Clock::time_point first_deadline,
                   const ProcessFn& process, const std::atomic<socket_t>& listening) {
  const ConnectionLimits& l = g.limits();
  GuardedStream s(sock, t, l);
  CurrentStream current(&s);
  Clock::time_point deadline = first_deadline;
  for (size_t left = l.keep_alive_max_count; left > 0 && listening != INVALID_SOCKET; --left) {
    s.BeginRequest(deadline);
    if (!s.WaitForRequest(Clock::now() + std::chrono::milliseconds(l.keep_alive_timeout_ms))) break;
    bool closed = false;
    bool ok = process(s, left == 1, closed);
    if (int r = s.refusal()) {
      if (s.written() == 0) {
        s.WriteAll(CannedAnswer(r, l));
        g.Refused(r);
      }
      s.Linger();
      break;
    }
    // An answer to a head the hub never screened is the library's own to a head it could
    // not parse (400, 414, 416): where that head ends is unknown, so the rest of it must not
    // be read as further requests (one malformed head gave a 400 per line, each with a
    // fresh cap and deadline, and a proxy in front would pair answers with wrong requests).
    if (s.close_after() || (!s.head_screened() && s.written() > 0)) {
      s.Linger();
      break;
    }
    if (!ok || closed) break;
    deadline = Clock::now() + std::chrono::milliseconds(l.header_timeout_ms);
  }
}

void CloseSocket(socket_t sock) {
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
}

}  // namespace

std::string AddressKey(const std::string& ip) {
  in_addr v4{};
  if (::inet_pton(AF_INET, ip.c_str(), &v4) == 1) return ip;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, ip.c_str(), &v6) != 1) return ip;
  if (IN6_IS_ADDR_V4MAPPED(&v6)) {
    char out[INET_ADDRSTRLEN];
    std::memcpy(&v4, v6.s6_addr + 12, 4);
    return ::inet_ntop(AF_INET, &v4, out, sizeof out) ? out : ip;
  }
  std::memset(v6.s6_addr + 8, 0, 8);
  char out[INET6_ADDRSTRLEN];
  return ::inet_ntop(AF_INET6, &v6, out, sizeof out) ? std::string(out) + "/64" : ip;
}

bool AddressCounts::Enter(const std::string& key, size_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t& n = counts_[key];
  if (limit > 0 && n >= limit) {
    if (n == 0) counts_.erase(key);
    return false;
  }
  ++n;
  return true;
}

void AddressCounts::Leave(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counts_.find(key);
  if (it == counts_.end()) return;
  if (--it->second == 0) counts_.erase(it);  // the map holds only addresses being served
}

size_t AddressCounts::Count(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counts_.find(key);
  return it == counts_.end() ? 0 : it->second;
}

void HeadRead() {
  if (t_stream) t_stream->HeadRead();
}

int HeadRefusal() { return t_stream ? t_stream->refusal() : 0; }

void CloseAfterResponse() {
  if (t_stream) t_stream->CloseAfter();
}

// The library listens with a backlog of 5: a burst of connections (many sites at once, or
// an attacker's) would wait for SYN retransmissions. Linux takes a second listen() as a new
// backlog.
static void Widen(socket_t listening) {
  if (listening != INVALID_SOCKET) ::listen(listening, SOMAXCONN);
}
void GuardedServer::WidenBacklog() { Widen(svr_sock_); }
void GuardedTlsServer::WidenBacklog() { Widen(svr_sock_); }

bool GuardedServer::process_and_close_socket(socket_t sock) {
  auto start = Clock::now();
  {
    Admission admission(guard_, sock);
    if (!admission.admitted()) {
      Refuse503(guard_, sock, /*answer=*/true);
    } else {
      PlainTransport t(sock);
      ServeRequests(
          guard_, sock, t, start + std::chrono::milliseconds(guard_.limits().header_timeout_ms),
          [this](httplib::Stream& s, bool close, bool& closed) { return process_request(s, close, closed, nullptr); },
          svr_sock_);
    }
  }
  CloseSocket(sock);
  return true;
}

bool GuardedTlsServer::process_and_close_socket(socket_t sock) {
  auto start = Clock::now();
  {
    Admission admission(guard_, sock);
    if (!admission.admitted()) {
      Refuse503(guard_, sock, /*answer=*/false);
    } else {
      auto deadline = start + std::chrono::milliseconds(guard_.limits().header_timeout_ms);
      TlsTransport t(sock, ssl_context());
      if (t.Handshake(deadline)) {
        ServeRequests(
            guard_, sock, t, deadline,
            [this](httplib::Stream& s, bool close, bool& closed) { return process_request(s, close, closed, nullptr); },
            svr_sock_);
        t.ShutdownWrite();
      }
    }
  }
  CloseSocket(sock);
  return true;
}

}  // namespace deltasync::hub
