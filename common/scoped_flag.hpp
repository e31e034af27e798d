#pragma once
// Sets a flag for the lifetime of the object and restores its old value afterwards, on
// every path (the engines' "now applying" flag, which keeps merges from being captured).
namespace deltasync {

class ScopedFlag {
 public:
  explicit ScopedFlag(bool& flag) : flag_(flag), old_(flag) { flag_ = true; }
  ~ScopedFlag() { flag_ = old_; }
  ScopedFlag(const ScopedFlag&) = delete;
  ScopedFlag& operator=(const ScopedFlag&) = delete;

 private:
  bool& flag_;
  bool old_;
};

}  // namespace deltasync
