// Long-poll pulls (issue 13): GET /nodes/<node>/pull?...&wait_ms=N answers as soon as the
// node has news for the caller, or with an empty page after N ms; a site's own push is no
// news; waiters are bounded and released when the hub stops; the client option wait_ms.
// Against a real `deltasync serve` on 127.0.0.1.
#include <httplib.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "e2e/hub_process.hpp"
#include "sqlite/sqlite_test_util.hpp"

using deltasync::Value;
using deltasync::test::HubProcess;
using deltasync::test::Site;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kSchema = "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT NOT NULL); SELECT deltasync_enable('t');";

Json Call(Site& s, const std::string& fn, const std::string& url, const Json& options = Json::object()) {
  Json o = {{"timeout_ms", 20000}};
  o.update(options);
  return Json::parse(s.Text("SELECT " + fn + "(?1, ?2)", {Value::Text(url), Value::Text(o.dump())}));
}

// A raw long-poll: (status, rows in the page, milliseconds it took).
struct Polled {
  int status = -1;
  size_t rows = 0;
  int64_t until = 0;
  long ms = 0;
};
Polled LongPoll(const HubProcess& hub, const std::string& node, int64_t since, const std::string& site, int wait_ms) {
  httplib::Client cli("127.0.0.1", hub.port());
  cli.set_read_timeout(60, 0);
  auto start = Clock::now();
  auto r = cli.Get(("/nodes/" + node + "/pull?since=" + std::to_string(since) + "&site=" + site +
                    "&wait_ms=" + std::to_string(wait_ms))
                       .c_str());
  Polled p;
  p.ms = static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
  if (!r) return p;
  p.status = r->status;
  if (r->status == 200) {
    Json j = Json::parse(r->body);
    for (const auto& t : j["tables"]) p.rows += t["rows"].size();
    p.until = j["until"].get<int64_t>();
  }
  return p;
}

int64_t PullCursor(Site& s) {
  return Json::parse(s.Text("SELECT deltasync_status()"))["hubs"][0]["pull_cursor"].get<int64_t>();
}

}  // namespace

TEST(HubLongPoll, AnswersAsSoonAsAnotherSitePushes) {
  HubProcess hub(HubProcess::Options{});
  Site a, b;
  a.Exec(kSchema);
  b.Exec(kSchema);
  a.Exec("INSERT INTO t VALUES (1, 'first')");
  Call(a, "deltasync_sync", hub.url("n"));
  Call(b, "deltasync_sync", hub.url("n"));
  int64_t cursor = PullCursor(b);
  std::string b_site = b.Text("SELECT deltasync_site_id()");
  auto waiting = std::async(std::launch::async, [&] { return LongPoll(hub, "n", cursor, b_site, 20000); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout) << "answered without news";
  a.Exec("INSERT INTO t VALUES (2, 'news')");
  Call(a, "deltasync_push", hub.url("n"));
  Polled p = waiting.get();
  EXPECT_EQ(p.status, 200);
  EXPECT_EQ(p.rows, 1u);
  EXPECT_LT(p.ms, 15000) << "the pull waited out its wait_ms instead of answering on the push";
}

TEST(HubLongPoll, OwnPushIsNoNewsAndAnEmptyPageComesAfterTheWait) {
  HubProcess hub(HubProcess::Options{});
  Site a;
  a.Exec(kSchema);
  Call(a, "deltasync_sync", hub.url("n"));
  int64_t cursor = PullCursor(a);
  std::string a_site = a.Text("SELECT deltasync_site_id()");
  auto waiting = std::async(std::launch::async, [&] { return LongPoll(hub, "n", cursor, a_site, 1500); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  a.Exec("INSERT INTO t VALUES (1, 'mine')");
  Call(a, "deltasync_push", hub.url("n"));
  Polled p = waiting.get();
  EXPECT_EQ(p.status, 200);
  EXPECT_EQ(p.rows, 0u) << "a site's own push came back to it";
  EXPECT_GE(p.ms, 1400) << "an empty page came before wait_ms passed";
}

TEST(HubLongPoll, ClientOptionWaitMs) {
  HubProcess hub(HubProcess::Options{});
  Site a, b;
  a.Exec(kSchema);
  b.Exec(kSchema);
  Call(a, "deltasync_sync", hub.url("n"));
  Call(b, "deltasync_sync", hub.url("n"));
  auto waiting = std::async(std::launch::async, [&] { return Call(b, "deltasync_pull", hub.url("n"), {{"wait_ms", 20000}}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  a.Exec("INSERT INTO t VALUES (7, 'live')");
  auto start = Clock::now();
  Call(a, "deltasync_push", hub.url("n"));
  Json r = waiting.get();
  EXPECT_GE(r["pulled"].get<int64_t>(), 1) << r.dump();
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count(), 15000);
  EXPECT_EQ(b.Text("SELECT a FROM t WHERE id = 7"), "live");
  std::string err;
  try {
    Call(b, "deltasync_pull", hub.url("n"), {{"wait_ms", -1}});
  } catch (const std::exception& e) {
    err = e.what();
  }
  EXPECT_NE(err.find("deltasync: option wait_ms must not be negative"), std::string::npos) << err;
}

TEST(HubLongPoll, WaitersAreBoundedAndReleasedWhenTheHubStops) {
  HubProcess::Options o;
  o.config_json = R"({"worker_threads": 8, "max_waiters": 2, "max_waiters_per_node": 2})";
  HubProcess hub(o);
  Site a;
  a.Exec(kSchema);
  Call(a, "deltasync_sync", hub.url("n"));
  int64_t cursor = PullCursor(a);
  std::string other = "00000000-0000-4000-8000-00000000000b";
  auto w1 = std::async(std::launch::async, [&] { return LongPoll(hub, "n", cursor, other, 30000); });
  auto w2 = std::async(std::launch::async, [&] { return LongPoll(hub, "n", cursor, other, 30000); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // A third waiter is over the bound: its empty page comes at once, while the two still wait.
  Polled third = LongPoll(hub, "n", cursor, other, 30000);
  EXPECT_EQ(third.status, 200);
  EXPECT_EQ(third.rows, 0u);
  EXPECT_EQ(w1.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  EXPECT_EQ(w2.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  // /health is still served while the waiters hold their workers.
  httplib::Client cli("127.0.0.1", hub.port());
  auto health = cli.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  // SIGTERM: the waiters answer and the hub exits cleanly, long before their 30 s.
  EXPECT_EQ(hub.Stop(), 0) << hub.log();
  Polled p1 = w1.get(), p2 = w2.get();
  EXPECT_LT(p1.ms, 20000);
  EXPECT_LT(p2.ms, 20000);
}
