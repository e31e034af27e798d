#pragma once
// The one error type of the project: every message starts with "deltasync: ",
// and the code lets each engine pick its native error class (SQLSTATE on PostgreSQL).
// An error may carry a detail (what exactly was found) and a hint (what to do): PostgreSQL
// reports them as errdetail and errhint, SQLite joins them into its one message (Joined()).
#include <stdexcept>
#include <string>
#include <utility>

namespace deltasync {

enum class ErrorCode {
  kInvalidArgument,  // bad SQL argument: missing table, no primary key, injection attempt
  kInvalidPayload,   // malformed or unsupported payload
  kClockDrift,       // a payload's clock is too far ahead of ours
  kConstraint,       // a value does not fit its column
  kInternal,         // the engine failed underneath us
  kNetwork,          // the hub could not be reached, timed out, or the transfer failed
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message, std::string detail = {}, std::string hint = {})
      : std::runtime_error("deltasync: " + message),
        code_(code),
        detail_(std::move(detail)),
        hint_(std::move(hint)) {}
  ErrorCode code() const { return code_; }
  // The message without the "deltasync: " prefix, to wrap it in a wider one.
  const char* message() const { return what() + kPrefixLength; }
  const std::string& detail() const { return detail_; }
  const std::string& hint() const { return hint_; }
  // One line for an engine with one error text: the message, then "; <detail>", then "; hint: <hint>".
  std::string Joined() const {
    std::string s = what();
    if (!detail_.empty()) s += "; " + detail_;
    if (!hint_.empty()) s += "; hint: " + hint_;
    return s;
  }

 private:
  static constexpr size_t kPrefixLength = sizeof("deltasync: ") - 1;
  ErrorCode code_;
  std::string detail_, hint_;
};

}  // namespace deltasync
