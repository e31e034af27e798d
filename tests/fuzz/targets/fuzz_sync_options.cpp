// What a caller of deltasync_push/_pull/_sync passes: the options JSON (ParseSyncOptions
// in common/sync_client.cpp) and the hub URL (ParseHubUrl in common/http_client.cpp). Both
// refuse with deltasync::Error (kInvalidArgument) only; what they accept is well formed.
#include <string>

#include "common/http_client.hpp"
#include "common/sync_client.hpp"
#include "fuzz_util.hpp"

using namespace deltasync;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text = fuzz::AsText(data, size);
  try {
    SyncOptions o = ParseSyncOptions(text);
    FUZZ_CHECK(o.batch_rows >= 1);
  } catch (const Error& e) {
    fuzz::CheckRefusal(e);
    FUZZ_CHECK(e.code() == ErrorCode::kInvalidArgument);
  }
  try {
    HubUrl u = ParseHubUrl(std::string(text));
    FUZZ_CHECK(!u.node.empty() && u.node.size() <= 64);
    HubUrl again = ParseHubUrl(u.base + "/nodes/" + u.node);
    FUZZ_CHECK(again.base == u.base && again.node == u.node);
  } catch (const Error& e) {
    fuzz::CheckRefusal(e);
    FUZZ_CHECK(e.code() == ErrorCode::kInvalidArgument);
  }
  return 0;
}
