#pragma once
// A stand-in for common/http_client.cpp in the hub-answer target: HttpRequest hands out
// answers queued by the target, one per request, instead of talking to a hub.
#include <deque>

#include "common/http_client.hpp"

namespace deltasync::fuzz {

// The answers the next requests get, in order; a request when none is left fails with
// Error(kNetwork), as a dropped connection would.
std::deque<HttpResponse>& QueuedAnswers();

}  // namespace deltasync::fuzz
