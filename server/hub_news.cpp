#include "server/hub_news.hpp"

#include <algorithm>

namespace deltasync::hub {

void NodeNews::Notify(int64_t node) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++generation_[node];
  }
  cv_.notify_all();
}

uint64_t NodeNews::Generation(int64_t node) {
  std::lock_guard<std::mutex> lock(mu_);
  return generation_[node];
}

NodeNews::Slot::Slot(NodeNews& news, int64_t node) : news_(news), node_(node) {
  std::lock_guard<std::mutex> lock(news_.mu_);
  size_t& here = news_.waiting_[node];
  if (news_.stopping_ || news_.total_ >= news_.max_waiters_ || here >= news_.max_per_node_) return;
  ++here;
  ++news_.total_;
  admitted_ = true;
}

NodeNews::Slot::~Slot() {
  if (!admitted_) return;
  std::lock_guard<std::mutex> lock(news_.mu_);
  --news_.waiting_[node_];
  --news_.total_;
}

bool NodeNews::Wait(int64_t node, uint64_t seen, std::chrono::steady_clock::time_point until,
                    std::chrono::milliseconds recheck) {
  std::unique_lock<std::mutex> lock(mu_);
  auto deadline = std::min(until, std::chrono::steady_clock::now() + recheck);
  cv_.wait_until(lock, deadline, [&] { return stopping_ || generation_[node] != seen; });
  return !stopping_ && generation_[node] != seen;
}

void NodeNews::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

}  // namespace deltasync::hub
