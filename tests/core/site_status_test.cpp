// The status document built once in common/site_status against a fake engine.
#include <gtest/gtest.h>

#include "common/site_status.hpp"
#include "common/version.hpp"

namespace deltasync {
namespace {

// An engine with fixed facts: tables, their shadow rows, hubs.
class FakeStatus : public StatusPort {
 public:
  std::vector<Table> tables;
  std::vector<std::vector<ShadowRow>> shadow;
  std::vector<Hub> hubs;
  int64_t counted_since = -1;
  uint64_t kept = 0;

  std::vector<Table> Tables() override { return tables; }
  void ScanShadowRows(size_t table, const std::function<void(const ShadowRow&)>& row) override {
    for (const ShadowRow& s : shadow.at(table)) row(s);
  }
  std::vector<Hub> Hubs() override { return hubs; }
  uint64_t CountChangesSince(int64_t since) override {
    counted_since = since;
    return 7;
  }
  uint64_t QuarantinedRows() override { return 0; }
  uint64_t KeptChanges() override { return kept; }
  std::string SiteIdText() override { return "site"; }
  int64_t DbVersion() override { return 42; }
};

// A live shadow row whose first `with_clock` of `ncols` columns carry a clock.
ShadowRow Live(uint32_t with_clock) {
  ShadowRow s;
  s.cl = 1;
  s.ver = 3;
  for (uint32_t c = 0; c < with_clock; ++c) s.clocks.Set(c, ColClock{100, 0, 3, 1});
  return s;
}

ShadowRow Deleted() {
  ShadowRow s;
  s.cl = 2;
  s.ver = 4;
  return s;
}

TEST(SiteStatus, StateNamesAreTheDocumentedOnes) {
  EXPECT_STREQ(TableStateName(TableState::kTracked), "tracked");
  EXPECT_STREQ(TableStateName(TableState::kDropped), "dropped");
  EXPECT_STREQ(TableStateName(TableState::kNeedsEnable), "needs_enable");
  EXPECT_STREQ(TableStateName(TableState::kBroken), "broken");
}

TEST(SiteStatus, ABrokenTableIsListedWithItsError) {
  FakeStatus port;
  port.tables = {{"t", TableState::kBroken, {"id"}, {"a"}}, {"u", TableState::kTracked, {"id"}, {"b"}}};
  port.tables[0].error = "its column \"a\" is gone";
  port.shadow = {{Live(1)}, {Live(1)}};
  auto doc = StatusDocument(port);
  EXPECT_EQ(doc["tables"][0]["state"], "broken");
  EXPECT_EQ(doc["tables"][0]["error"], "its column \"a\" is gone");
  EXPECT_FALSE(doc["tables"][1].contains("error"));
}

TEST(SiteStatus, CountsRowsAndPendingChangesWithNoHub) {
  FakeStatus port;
  port.tables = {{"t", TableState::kTracked, {"id"}, {"a", "b"}}, {"gone", TableState::kDropped, {"id"}, {"x"}}};
  port.shadow = {{Live(2), Live(0), Deleted()}, {}};
  nlohmann::json doc = StatusDocument(port);
  EXPECT_EQ(doc["version"], kVersion);
  EXPECT_EQ(doc["site_id"], "site");
  EXPECT_EQ(doc["db_version"], 42);
  EXPECT_EQ(doc["kept"], 0);
  port.kept = 5;
  EXPECT_EQ(StatusDocument(port)["kept"], 5);
  ASSERT_EQ(doc["tables"].size(), 2u);
  EXPECT_EQ(doc["tables"][0],
            (nlohmann::json{{"table", "t"}, {"state", "tracked"}, {"pk", {"id"}}, {"columns", {"a", "b"}},
                            {"rows", 2}, {"deleted", 1}}));
  EXPECT_EQ(doc["tables"][1], (nlohmann::json{{"table", "gone"}, {"state", "dropped"}}));
  // 2 column changes, 1 existence change for the row without clocks, 1 for the delete.
  EXPECT_EQ(doc["pending_changes"], 4);
  EXPECT_EQ(doc["hubs"], nlohmann::json::array());
  EXPECT_EQ(port.counted_since, -1);
}

TEST(SiteStatus, PendingChangesAreWhatTheLeastAdvancedHubLacks) {
  FakeStatus port;
  port.hubs = {{"http://a", 10, 5, 1234, {}, 40, 9}, {"http://b", 3, 0, std::nullopt, {}, std::nullopt, std::nullopt}};
  port.hubs[0].health.last_success_ms = 1234;
  port.hubs[1].health = HubHealth{"unreachable", 2000, 1000, std::nullopt, 3};
  nlohmann::json doc = StatusDocument(port);
  EXPECT_EQ(port.counted_since, 3);
  EXPECT_EQ(doc["pending_changes"], 7);
  ASSERT_EQ(doc["hubs"].size(), 2u);
  EXPECT_EQ(doc["hubs"][0]["last_sync_ms"], 1234);
  EXPECT_EQ(doc["hubs"][0]["last_success_ms"], 1234);
  EXPECT_TRUE(doc["hubs"][0]["last_error"].is_null());
  EXPECT_TRUE(doc["hubs"][0]["last_error_ms"].is_null());
  EXPECT_TRUE(doc["hubs"][0]["failing_since_ms"].is_null());
  EXPECT_EQ(doc["hubs"][0]["failures"], 0);
  EXPECT_EQ(doc["hubs"][0]["frontier"], 40);
  EXPECT_EQ(doc["hubs"][0]["compactable_to"], 9);
  EXPECT_TRUE(doc["hubs"][1]["frontier"].is_null());
  EXPECT_TRUE(doc["hubs"][1]["compactable_to"].is_null());
  EXPECT_TRUE(doc["hubs"][1]["last_sync_ms"].is_null());
  EXPECT_EQ(doc["hubs"][1]["last_error"], "unreachable");
  EXPECT_EQ(doc["hubs"][1]["last_error_ms"], 2000);
  EXPECT_EQ(doc["hubs"][1]["failing_since_ms"], 1000);
  EXPECT_TRUE(doc["hubs"][1]["last_success_ms"].is_null());
  EXPECT_EQ(doc["hubs"][1]["failures"], 3);
}

TEST(SiteStatus, AHubThatNeverReceivedAnythingCountsEveryChange) {
  FakeStatus port;
  port.tables = {{"t", TableState::kTracked, {"id"}, {"a"}}};
  port.shadow = {{Live(1)}};
  port.hubs = {{"http://a", 0, 0, std::nullopt, {}, std::nullopt, std::nullopt}};
  EXPECT_EQ(StatusDocument(port)["pending_changes"], 1);
  EXPECT_EQ(port.counted_since, -1);
}

}  // namespace
}  // namespace deltasync
