// Site ids a payload lists but no change uses are dropped as it enters (DecodeAny), with the
// changes renumbered onto the sites that remain.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/hlc.hpp"
#include "common/payload.hpp"
#include "common/payload_binary.hpp"
#include "common/payload_codec.hpp"
#include "test_util.hpp"

namespace deltasync {
namespace {

SiteId Site(int n) {
  std::string bytes(16, '\0');
  bytes[0] = static_cast<char>(n >> 8);
  bytes[1] = static_cast<char>(n);
  bytes[6] = 0x40;
  bytes[8] = static_cast<char>(0x80);
  return SiteId::FromBytes(bytes);
}

// Three rows whose changes use sites 3, 7 and 3 of a list of `listed` sites.
Payload Listing(int listed) {
  Payload p;
  p.site = Site(9999);
  for (int k = 0; k < listed; ++k) p.sites.push_back(Site(k));
  TableChanges t;
  t.name = "t";
  t.pk = {"id"};
  t.columns = {"a", "b"};
  for (int id = 0; id < 3; ++id) {
    RowChanges r;
    r.key = {Value::Integer(id)};
    r.cl = 1;
    r.changes.push_back(ColumnChange{0, Value::Integer(id), HlcFromMillis(1700000000000) + id, id == 1 ? 7u : 3u, 1});
    if (id == 2) r.changes.push_back(ColumnChange{1, Value::Text("x"), HlcFromMillis(1700000000000), 7u, 1});
    t.rows.push_back(r);
  }
  RowChanges gone;  // a delete uses no site
  gone.key = {Value::Integer(9)};
  gone.cl = 2;
  t.rows.push_back(gone);
  p.tables.push_back(t);
  return p;
}

TEST(UnusedSites, DroppedAndTheChangesRenumbered) {
  Payload p = Listing(30000);
  ValidatePayload(p);
  DropUnusedSites(p);
  ASSERT_EQ(p.sites, (std::vector<SiteId>{Site(3), Site(7)}));
  const auto& rows = p.tables[0].rows;
  EXPECT_EQ(rows[0].changes[0].site, 0u);
  EXPECT_EQ(rows[1].changes[0].site, 1u);
  EXPECT_EQ(rows[2].changes[0].site, 0u);
  EXPECT_EQ(rows[2].changes[1].site, 1u);
  EXPECT_NO_THROW(ValidatePayload(p));
  Payload again = p;
  DropUnusedSites(again);  // nothing left to drop
  EXPECT_EQ(again.sites, p.sites);
  // A payload without changes keeps no site at all.
  Payload empty;
  empty.sites = {Site(1), Site(2)};
  DropUnusedSites(empty);
  EXPECT_TRUE(empty.sites.empty());
}

TEST(UnusedSites, DecodeAnyDropsThemForBothCodecs) {
  Payload p = Listing(30000);
  for (bool binary : {false, true}) {
    SCOPED_TRACE(binary ? "binary" : "JSON");
    std::string body = binary ? EncodeBinary(p) : EncodeJson(p);
    Payload q = DecodeAny(body, binary ? kContentTypeBinary : kContentTypeJson, "", body.size());
    ASSERT_EQ(q.sites, (std::vector<SiteId>{Site(3), Site(7)}));
    EXPECT_EQ(q.tables[0].rows[1].changes[0].site, 1u);
    EXPECT_EQ(q.tables[0].rows[1].changes[0].value, Value::Integer(1));
  }
}

}  // namespace
}  // namespace deltasync
