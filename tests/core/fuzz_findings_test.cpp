// Regression tests for what the fuzz targets (tests/fuzz, docs/fuzzing.md) found in the
// decoders of untrusted input: each input here once crashed, hit undefined behaviour or
// escaped as a foreign exception.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <string>
#include <thread>

#include "common/compress.hpp"
#include "common/payload.hpp"
#include "common/payload_binary.hpp"
#include "common/payload_codec.hpp"
#include "common/sync_client.hpp"
#include "server/hub_codec.hpp"
#include "test_util.hpp"

namespace deltasync {
namespace {

using dstest::ThrowsDeltasync;

Payload OneRow() {
  Payload p;
  p.site = SiteId::Parse("00112233-4455-6677-8899-aabbccddeeff");
  p.since = 0;
  p.until = 1;
  p.sites = {p.site};
  p.tables.push_back(TableChanges{
      "items", {"id"}, {"name"}, {RowChanges{{Value::Integer(1)}, 1, {ColumnChange{0, Value::Text("a"), 1u << 20, 0, 1}}}}});
  return p;
}

// fuzz_sync_options: nlohmann's get<long> casts a real, so {"timeout_ms": 1e300} was
// undefined behaviour (UBSan: outside the range of long), and get<size_t> wrapped -1 into a
// batch of 2^64 - 1 rows. Options take whole numbers in range only.
TEST(FuzzFindings, SyncOptionsTakeWholeNumbersInRange) {
  EXPECT_TRUE(ThrowsDeltasync([] { ParseSyncOptions(R"({"timeout_ms": 1e300})"); }, ErrorCode::kInvalidArgument,
                              "option timeout_ms must be a whole number"));
  EXPECT_TRUE(ThrowsDeltasync([] { ParseSyncOptions(R"({"connect_timeout_ms": -1e300})"); },
                              ErrorCode::kInvalidArgument, "must be a whole number"));
  EXPECT_TRUE(ThrowsDeltasync([] { ParseSyncOptions(R"({"batch_rows": 1.5})"); }, ErrorCode::kInvalidArgument,
                              "option batch_rows must be a whole number"));
  EXPECT_TRUE(ThrowsDeltasync([] { ParseSyncOptions(R"({"batch_rows": -1})"); }, ErrorCode::kInvalidArgument,
                              "option batch_rows is out of range"));
  EXPECT_TRUE(ThrowsDeltasync([] { ParseSyncOptions(R"({"timeout_ms": 9223372036854775808})"); },
                              ErrorCode::kInvalidArgument, "option timeout_ms is out of range"));
  EXPECT_TRUE(ThrowsDeltasync([] { ParseSyncOptions(R"({"batch_rows": "10"})"); }, ErrorCode::kInvalidArgument,
                              "must be a whole number"));
  // What was valid stays valid: a non-positive timeout means no limit.
  SyncOptions o = ParseSyncOptions(R"({"timeout_ms": -1, "connect_timeout_ms": 0, "batch_rows": 18446744073709551615})");
  EXPECT_EQ(o.http.timeout_ms, -1);
  EXPECT_EQ(o.http.connect_timeout_ms, 0);
  EXPECT_EQ(o.batch_rows, SIZE_MAX);
}

// fuzz_hub_request: the hub judged Content-Encoding by its media type (cut at ';') but
// handed the raw header to DecodeAny, which refused ";" or "zstd;x" as a plain error: a
// 400 for a body the hub had let through, where an encoding it does not speak is a 415.
TEST(FuzzFindings, HubDecodesTheEncodingItAccepted) {
  const Payload p = OneRow();
  const std::string json = EncodeJson(p);
  EXPECT_EQ(EncodeJson(hub::DecodeRequestBody(json, "application/json", ";", 1 << 20)), json);
  EXPECT_EQ(EncodeJson(hub::DecodeRequestBody(ZstdCompress(EncodeBinary(p)), std::string(kContentTypeBinary),
                                              "ZSTD; level=3", 1 << 20)),
            json);
  EXPECT_THROW(hub::DecodeRequestBody(json, "application/json", "gzip", 1 << 20), hub::UnsupportedMediaType);
  EXPECT_THROW(hub::DecodeRequestBody(json, "text/plain", "", 1 << 20), hub::UnsupportedMediaType);
}

// Review of the decoders while writing the targets: ValidatePayload, which every decoder
// runs, cleared a bitmap as wide as the table for every row, so a wide table with many rows
// cost columns x rows: this payload (1,000,000 columns, 500,000 deleted rows: 11 MB in the
// binary form, far less under zstd) took 7.5 s, and a hub's decoded limit allowed minutes.
TEST(FuzzFindings, ValidationCostsTheRowsNotTheirWidth) {
  auto payload = [](int rows) {
    Payload p = OneRow();
    TableChanges wide{"wide", {"k"}, {}, {}};
    for (int c = 0; c < 1000000; ++c) wide.columns.push_back("c" + std::to_string(c));
    for (int r = 0; r < rows; ++r) wide.rows.push_back(RowChanges{{Value::Integer(r)}, 2, {}});
    wide.rows.back().changes.push_back(ColumnChange{999999, Value::Integer(1), 1u << 20, 0, 1});
    p.tables.push_back(std::move(wide));
    return p;
  };
  auto seconds_to_validate = [](const Payload& p) {
    const auto start = std::chrono::steady_clock::now();
    ValidatePayload(p);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  // Checking the million column names costs the same either way; the rows must add little.
  const double one_row = seconds_to_validate(payload(1));
  Payload many = payload(500000);
  const double many_rows = seconds_to_validate(many);
  EXPECT_LT(many_rows - one_row, 2.0) << one_row << " s for one row, " << many_rows << " s for 500,000";
  // The check it does per row is unchanged.
  many.tables.back().rows.back().changes.push_back(ColumnChange{999999, Value::Integer(2), 1u << 20, 0, 1});
  EXPECT_TRUE(ThrowsDeltasync([&] { ValidatePayload(many); }, ErrorCode::kInvalidPayload, "a column changes twice"));
}

// A site with one row to push and nothing else.
class OneRowSite : public SyncSite {
 public:
  SiteId LocalSite() override { return OneRow().site; }
  HubRecord LoadHub(const std::string&) override { return hub_; }
  void SetHubId(const std::string&, const std::string& id, bool) override { hub_.hub_id = id; }
  VersionRanges EchoRanges(const std::string&, int64_t) override { return {}; }
  int64_t CollectBatches(int64_t, int64_t, const CollectPosition&, const VersionRanges&, const BatchLimits&,
                         const std::function<bool(Payload&, const CollectPosition&)>& batch) override {
    Payload p = OneRow();
    batch(p, CollectPosition{p.tables[0].name, p.tables[0].rows.back().key});
    return p.until;
  }
  void PushProgressed(const std::string&, int64_t, const CollectPosition&) override {}
  void PushDone(const std::string&, int64_t until) override { hub_.push_cursor = until; }
  ApplyResult ApplyPage(const std::string&, const Payload&, bool) override { return {}; }
  void RecordOutcome(const std::string&, const std::string&, int64_t) override {}
  bool ForgetHub(const std::string&) override { return false; }

 private:
  HubRecord hub_;
};

// fuzz_hub_answer: a push acknowledgement that is JSON but not an object ([], 5), or whose
// "seq" is not a number, escaped from deltasync_push as nlohmann's type_error instead of a
// deltasync error naming the hub.
TEST(FuzzFindings, PushAnswerOfTheWrongShape) {
  httplib::Server server;
  std::string answer;
  server.Post("/nodes/n1/push", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(answer, "application/json");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread thread([&] { server.listen_after_bind(); });  // bound and listening already
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/nodes/n1";
  SyncOptions options;
  options.binary = false;

  for (const char* shape : {"[]", "5", "\"ok\"", "null"}) {
    answer = shape;
    OneRowSite site;
    HubLink link(site, url, options);
    EXPECT_TRUE(ThrowsDeltasync([&] { link.Push(); }, ErrorCode::kNetwork, "malformed response")) << shape;
  }
  answer = R"({"seq": "7", "hub_id": 5})";  // wrongly typed fields are ignored, as unknown ones are
  OneRowSite site;
  HubLink link(site, url, options);
  nlohmann::json r = link.Push();
  EXPECT_EQ(r["hub_seq"], 0);
  EXPECT_EQ(r["cursor"], 1);

  server.stop();
  thread.join();
}

}  // namespace
}  // namespace deltasync
