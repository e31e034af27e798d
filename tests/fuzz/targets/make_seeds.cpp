// Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/) from the
// project's own encoders, so every seed is a real payload, blob or answer:
//   scripts/fuzz.sh seeds   (runs: make_seeds tests/fuzz/corpus)
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <zstd.h>

#include "common/compress.hpp"
#include "common/key_codec.hpp"
#include "common/payload.hpp"
#include "common/payload_binary.hpp"
#include "common/payload_codec.hpp"
#include "common/row_clocks.hpp"

using namespace deltasync;
namespace fs = std::filesystem;

namespace {

fs::path g_root;

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(g_root / target);
  std::ofstream(g_root / target / name, std::ios::binary) << bytes;
}

SiteId Site(uint8_t b) {
  SiteId s;
  for (size_t k = 0; k < s.bytes.size(); ++k) s.bytes[k] = static_cast<uint8_t>(b + 17 * k);
  return s;
}

constexpr uint64_t kHlc = uint64_t{1764547200000} << 16;  // 2025-12-01, counter 0

ColumnChange Change(uint32_t column, Value v, uint64_t tick, uint32_t site = 0, int64_t cl = 1) {
  return ColumnChange{column, std::move(v), kHlc + tick, site, cl};
}

// A small model of each shape the codecs know.
std::vector<Payload> Samples() {
  std::vector<Payload> out;
  Payload empty;
  empty.site = Site(1);
  out.push_back(empty);

  Payload items;
  items.site = Site(1);
  items.since = 0;
  items.until = 5;
  items.sites = {Site(1), Site(2)};
  TableChanges t{"items", {"id"}, {"name", "qty", "price", "img"}, {}};
  t.rows.push_back(RowChanges{{Value::Integer(1)},
                              1,
                              {Change(0, Value::Text("apple"), 1), Change(1, Value::Integer(3), 1),
                               Change(2, Value::Real(1.25), 1), Change(3, Value::Blob(std::string("\x89PNG\0\1", 6)), 1)}});
  t.rows.push_back(RowChanges{{Value::Integer(2)}, 2, {}});  // deleted
  t.rows.push_back(RowChanges{{Value::Integer(3)}, 3, {Change(0, Value::Null(), 9, 1, 3), Change(1, Value::Integer(-7), 4, 0, 1)}});
  items.tables.push_back(t);
  out.push_back(items);

  Payload odd;
  odd.site = Site(2);
  odd.since = 40;
  odd.until = 41;
  odd.sites = {Site(2)};
  TableChanges o{"orders \"quoted\"", {"shop", "n"}, {"note", "total", "raw"}, {}};
  o.rows.push_back(RowChanges{{Value::Text("caf\xc3\xa9 \xf0\x9f\x8d\xb0"), Value::Integer(std::numeric_limits<int64_t>::min())},
                              5,
                              {Change(0, Value::Text("bad \xff utf-8"), 2, 0, 5), Change(1, Value::Real(NAN), 3, 0, 5),
                               Change(2, Value::Real(-0.0), 4, 0, 3)}});
  o.rows.push_back(RowChanges{{Value::Text("tab\there\n"), Value::Integer(0)}, 1,
                              {Change(1, Value::Real(INFINITY), 5), Change(0, Value::Text(std::string("nul\0in", 6)), 6)}});
  odd.tables.push_back(o);
  odd.tables.push_back(TableChanges{"empty_table", {"k"}, {}, {RowChanges{{Value::Blob("key")}, 1, {}}}});
  out.push_back(odd);
  return out;
}

std::string Zstd(const std::string& body) { return ZstdCompress(body); }

// A frame that does not state its content size, which ZstdDecompress streams.
std::string ZstdUnsized(const std::string& body) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
  std::string out(ZSTD_compressBound(body.size()), '\0');
  size_t n = ZSTD_compress2(cctx, out.data(), out.size(), body.data(), body.size());
  ZSTD_freeCCtx(cctx);
  if (ZSTD_isError(n)) std::abort();
  out.resize(n);
  return out;
}

std::string Limit(uint16_t units) { return std::string{static_cast<char>(units >> 8), static_cast<char>(units & 255)}; }

std::string Answer(int status, const std::string& type, const std::string& encoding, bool more, const std::string& body) {
  return std::to_string(status) + " " + (type.empty() ? "-" : type) + " " + (encoding.empty() ? "-" : encoding) + " " +
         (more ? "1" : "0") + " " + std::to_string(body.size()) + "\n" + body;
}

Payload Page(uint8_t hub, int64_t since, int64_t until) {
  Payload p = Samples()[1];
  p.site = Site(hub);
  p.since = since;
  p.until = until;
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds <corpus root>\n");
    return 2;
  }
  g_root = argv[1];
  const std::vector<Payload> samples = Samples();

  for (size_t k = 0; k < samples.size(); ++k) {
    Write("payload_json", "model-" + std::to_string(k) + ".json", EncodeJson(samples[k]));
    Write("payload_binary", "model-" + std::to_string(k) + ".bin", EncodeBinary(samples[k]));
  }
  // What the fast decoder gives up on and the reference judges: blanks, escapes, unknown
  // fields, fields out of order; and one the reference refuses.
  Write("payload_json", "hand-reference.json",
        "{ \"tables\" : [ {\"rows\":[{\"changes\":[[0,\"\\u00e9\\n\\ud83c\\udf70\",112589990684262400,0,1]],"
        "\"cl\":1,\"key\":[{\"blob\":\"AAE=\"}],\"extra\":{\"a\":[true,false,null,1.5e3]}}],"
        "\"columns\":[\"v\"],\"pk\":[\"k\"],\"name\":\"t\"} ],\n \"sites\" : [\"" +
            Site(3).ToString() + "\"], \"until\": 9, \"since\": 1, \"site\": \"" + Site(3).ToString() +
            "\", \"version\": 1, \"format\": \"deltasync\", \"comment\": \"unknown fields are ignored\" }");
  Write("payload_json", "hand-refused.json", "{\"format\":\"deltasync\",\"version\":2}");

  const std::string items_json = EncodeJson(samples[1]);
  const std::string odd_bin = EncodeBinary(samples[2]);
  Write("zstd", "sized-json", Limit(256) + Zstd(items_json));
  Write("zstd", "sized-binary", Limit(16) + Zstd(odd_bin));
  Write("zstd", "two-frames", Limit(256) + Zstd(items_json) + Zstd(odd_bin));
  Write("zstd", "unsized", Limit(256) + ZstdUnsized(items_json));
  Write("zstd", "unsized-over-limit", Limit(1) + ZstdUnsized(items_json));
  Write("zstd", "over-limit", Limit(1) + Zstd(items_json));

  auto clocks_seed = [](uint64_t hlc, uint32_t site, const RowClocks& rc) {
    std::string out(12, '\0');
    for (int k = 0; k < 8; ++k) out[k] = static_cast<char>(hlc >> (8 * k));
    for (int k = 0; k < 4; ++k) out[8 + k] = static_cast<char>(site >> (8 * k));
    return out + rc.EncodeExtras();
  };
  RowClocks base_only;
  base_only.SetAll(ColClock{kHlc, 0, 12, 3});
  Write("row_clocks", "base", clocks_seed(kHlc, 0, base_only));
  RowClocks overrides;
  overrides.SetAll(ColClock{kHlc, 2, 0, 0});
  overrides.Set(1, ColClock{kHlc + 5, 1, 14, 0});
  overrides.Set(4, ColClock{kHlc + 9, 3, 0, 5});
  overrides.Set(70, ColClock{0, 0, 15, 0});
  Write("row_clocks", "overrides", clocks_seed(kHlc, 2, overrides));

  Write("key_codec", "integer", EncodeKey({Value::Integer(42)}));
  Write("key_codec", "composite", EncodeKey({Value::Text("caf\xc3\xa9"), Value::Integer(-1), Value::Real(2.5),
                                             Value::Blob(std::string("\0\xff", 2)), Value::Null()}));
  Write("key_codec", "extremes", EncodeKey({Value::Integer(std::numeric_limits<int64_t>::min()),
                                            Value::Integer(std::numeric_limits<int64_t>::max()), Value::Real(-0.0)}));

  Write("sync_options", "all", "{\"token\":\"s3cr3t\",\"timeout_ms\":5000,\"connect_timeout_ms\":250,"
                               "\"tables\":[\"items\",\"orders\"],\"batch_rows\":100,\"verify_tls\":false,"
                               "\"ca_file\":\"/etc/ssl/certs/ca.pem\",\"codec\":\"json\"}");
  Write("sync_options", "empty-object", "{}");
  Write("sync_options", "null", "null");
  Write("sync_options", "url", "http://127.0.0.1:8080/nodes/shop1");
  Write("sync_options", "url-prefix", "https://[::1]:443/sync/v1/nodes/node_2.a-b");

  Write("hub_request", "binary-zstd", "application/vnd.deltasync.payload\nzstd\n" + Zstd(EncodeBinary(samples[1])));
  Write("hub_request", "json", "application/json; charset=utf-8\n\n" + items_json);
  Write("hub_request", "binary-identity", "Application/Vnd.Deltasync.Payload\nidentity\n" + odd_bin);
  Write("hub_request", "json-zstd", "application/json\nZSTD\n" + Zstd(EncodeJson(samples[2])));

  const std::string hub = Site(9).ToString();
  const std::string ack = "{\"applied\":2,\"ignored\":0,\"rows\":2,\"seq\":7,\"hub_id\":\"" + hub + "\"}";
  Write("hub_answer", "push", "push\n" + Answer(200, "application/json", "", false, ack) +
                                  Answer(200, "application/json", "", false, ack));
  Write("hub_answer", "push-refused",
        "push\n" + Answer(401, "application/json", "", false, "{\"error\":\"deltasync: unauthorized\"}"));
  Write("hub_answer", "pull-pages",
        "pull\n" +
            Answer(200, "application/vnd.deltasync.payload", "zstd", true, Zstd(EncodeBinary(Page(9, 0, 4)))) +
            Answer(200, "application/vnd.deltasync.payload", "", false, EncodeBinary(Page(9, 4, 9))));
  Write("hub_answer", "pull-hub-replaced",
        "pull\n" + Answer(200, "application/json", "", true, EncodeJson(Page(9, 0, 4))) +
            Answer(200, "application/json", "", false, EncodeJson(Page(10, 4, 6))) +
            Answer(200, "application/json", "", false, EncodeJson(Page(10, 0, 6))));
  Write("hub_answer", "sync-json",
        "sync json\n" + Answer(200, "application/json", "", false, ack) +
            Answer(200, "application/json", "", false, ack) +
            Answer(200, "application/json; charset=utf-8", "", false, EncodeJson(Page(9, 0, 3))));
  return 0;
}
