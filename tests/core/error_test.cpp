// The project's error type: prefix once, message without it, detail and hint joined for SQLite.
#include "common/error.hpp"

#include <gtest/gtest.h>

namespace deltasync {
namespace {

TEST(Error, CarriesMessageDetailAndHint) {
  Error e(ErrorCode::kConstraint, "cannot apply", "Key (sku)=(A) already exists.", "rename one of the rows");
  EXPECT_STREQ(e.what(), "deltasync: cannot apply");
  EXPECT_STREQ(e.message(), "cannot apply");
  EXPECT_EQ(e.detail(), "Key (sku)=(A) already exists.");
  EXPECT_EQ(e.hint(), "rename one of the rows");
  EXPECT_EQ(e.Joined(), "deltasync: cannot apply; Key (sku)=(A) already exists.; hint: rename one of the rows");
}

TEST(Error, WrappingKeepsOnePrefix) {
  Error inner(ErrorCode::kNetwork, "timed out", "", "raise timeout_ms");
  Error outer(inner.code(), std::string("push failed: ") + inner.message(), inner.detail(), inner.hint());
  EXPECT_STREQ(outer.what(), "deltasync: push failed: timed out");
  EXPECT_EQ(outer.Joined(), "deltasync: push failed: timed out; hint: raise timeout_ms");
  EXPECT_EQ(Error(ErrorCode::kInternal, "plain").Joined(), "deltasync: plain");
}

}  // namespace
}  // namespace deltasync
