#include "common/compaction.hpp"

#include <algorithm>
#include <limits>

#include "common/error.hpp"

namespace deltasync {

HubFrontier AdvanceFrontier(HubFrontier h, const PulledPage& page, int64_t until) {
  if (page.frontier < 0) return h;  // a hub that tells no frontier confirms nothing
  h.frontier = page.frontier;
  // A frontier at or past a mark's sequence: every active site has pulled past the sequence
  // at which every version of the mark was held by the hub.
  auto confirm = [&] {
    if (h.mark_ver > h.safe_ver && page.frontier >= h.mark_seq) {
      h.safe_ver = h.mark_ver;
      h.mark_ver = h.mark_seq = 0;
    }
  };
  confirm();
  // A new mark only when none is pending (a pending one would never be reached if each
  // pull replaced it by a later one); it can be confirmed by this very answer.
  if (page.last && h.mark_ver <= h.safe_ver && page.push_cursor > h.safe_ver) {
    h.mark_ver = page.push_cursor;
    h.mark_seq = until;
    confirm();
  }
  return h;
}

CompactOptions ParseCompactOptions(std::string_view text) {
  CompactOptions o;
  if (text.empty()) return o;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) throw Error(ErrorCode::kInvalidArgument, "compact options are not valid JSON");
  if (j.is_null()) return o;
  if (!j.is_object()) throw Error(ErrorCode::kInvalidArgument, "compact options must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "direct_up_to") {
      if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0)
        throw Error(ErrorCode::kInvalidArgument,
                    "option direct_up_to must be a db_version (a whole number >= 0)");
      o.direct_up_to = it.value().get<int64_t>();
    } else {
      throw Error(ErrorCode::kInvalidArgument, "unknown compact option \"" + it.key() + "\"");
    }
  }
  return o;
}

CompactBound CompactionBound(const std::vector<HubCoverage>& hubs, const CompactOptions& options) {
  CompactBound b;
  if (hubs.empty() && !options.direct_up_to) {
    b.held_by = "no hub";  // direct exchange only: nothing says what the peers have seen
    return b;
  }
  b.up_to = std::numeric_limits<int64_t>::max();
  if (options.direct_up_to) {
    b.up_to = *options.direct_up_to;
    b.held_by = "direct_up_to";
  }
  for (const HubCoverage& h : hubs) {
    // safe_ver came from a push cursor, but a hub whose cursors were reset since is held
    // at its (new) push cursor too.
    int64_t covered = std::min(h.frontier.safe_ver, h.push_cursor);
    if (covered < b.up_to) {
      b.up_to = covered;
      b.held_by = h.hub;
    }
  }
  return b;
}

nlohmann::json CompactResultJson(const CompactBound& bound, uint64_t graves,
                                 const std::vector<std::pair<std::string, uint64_t>>& tables) {
  nlohmann::json t = nlohmann::json::object();
  for (const auto& [name, n] : tables) t[name] = n;
  return {{"up_to", bound.up_to},
          {"held_by", bound.held_by.empty() ? nlohmann::json() : nlohmann::json(bound.held_by)},
          {"graves", graves},
          {"tables", t}};
}

}  // namespace deltasync
