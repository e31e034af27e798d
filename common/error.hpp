#pragma once
// The one error type of the project: every message starts with "deltasync: ",
// and the code lets each engine pick its native error class (SQLSTATE on PostgreSQL).
#include <stdexcept>
#include <string>

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
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error("deltasync: " + message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace deltasync
