#pragma once
// Long-poll support: pull requests that wait for a node's news. A push tells the node's
// waiters; a waiter wakes, pulls again, and waits on if what came is not news for it (its
// own push). Waiters are bounded per node and per process, and released on shutdown.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace deltasync::hub {

class NodeNews {
 public:
  NodeNews(size_t max_waiters, size_t max_waiters_per_node)
      : max_waiters_(max_waiters), max_per_node_(max_waiters_per_node) {}

  // A push changed the node.
  void Notify(int64_t node);

  // The node's news counter, to pass to Wait: a push after Generation() wakes Wait at once.
  uint64_t Generation(int64_t node);

  // A waiter's place, bounded; false from Admitted() when the bounds are reached.
  class Slot {
   public:
    Slot(NodeNews& news, int64_t node);
    ~Slot();
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    bool Admitted() const { return admitted_; }

   private:
    NodeNews& news_;
    int64_t node_;
    bool admitted_ = false;
  };

  // Waits until the node's generation moves past `seen`, `until` passes or Shutdown();
  // true when there is news. `recheck` bounds one wait (other hub processes on a shared
  // store do not notify this one, so the caller pulls again at least that often).
  bool Wait(int64_t node, uint64_t seen, std::chrono::steady_clock::time_point until,
            std::chrono::milliseconds recheck);

  // Wakes every waiter for good (the hub is stopping).
  void Shutdown();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<int64_t, uint64_t> generation_;
  std::unordered_map<int64_t, size_t> waiting_;
  size_t total_ = 0;
  size_t max_waiters_, max_per_node_;
  bool stopping_ = false;
};

}  // namespace deltasync::hub
