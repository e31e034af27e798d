// deltasync_checksum's digest (common/checksum): the row encoding pinned by a vector computed
// apart from this code, order independence of rows and columns, every value change showing,
// storage classes kept apart, NULL equal to absent, and the sum carrying past 64 bits.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/checksum.hpp"
#include "common/error.hpp"

namespace deltasync {
namespace {

struct Row {
  std::vector<Value> key;
  std::vector<std::pair<std::string, Value>> cols;
};

void AddRow(TableDigest& d, const Row& r) {
  std::vector<DigestColumn> cols;
  for (const auto& [name, value] : r.cols) cols.push_back(DigestColumn{name, &value});
  d.AddRow(r.key, cols);
}

std::string DigestOf(const std::vector<Row>& rows) {
  TableDigest d;
  for (const Row& r : rows) AddRow(d, r);
  return d.Hex();
}

TEST(Checksum, RowEncodingIsPinned) {
  // sha256(b"deltasync-checksum-1\0" 01 01 02 01 "b" 03 01 "x") and of the key 2 alone,
  // computed with Python's hashlib; their sum mod 2^256.
  TableDigest one;
  AddRow(one, {{Value::Integer(1)}, {{"b", Value::Text("x")}}});
  EXPECT_EQ(one.Hex(), "406459b700534f61afc1242785a8e14d931fe412c5557b6281d4f604f597f8ea");
  TableDigest two = one;
  AddRow(two, {{Value::Integer(2)}, {}});
  EXPECT_EQ(two.Hex(), "741755ff6cea0ee742df870e8169b5aca97d3f288f92156c42351b1011c7080a");
  EXPECT_EQ(two.rows(), 2u);
  EXPECT_EQ(two.Json(), nlohmann::json({{"rows", 2}, {"digest", two.Hex()}}));
}

TEST(Checksum, EmptyTableIsZeros) {
  TableDigest d;
  EXPECT_EQ(d.Hex(), std::string(64, '0'));
  EXPECT_EQ(d.rows(), 0u);
}

TEST(Checksum, RowOrderAndColumnOrderDoNotMatter) {
  std::vector<Row> rows;
  for (int k = 0; k < 50; ++k)
    rows.push_back({{Value::Integer(k), Value::Text("p" + std::to_string(k % 3))},
                    {{"a", Value::Integer(k * 7)}, {"b", Value::Real(k / 3.0)}, {"c", Value::Blob(std::string(k % 5, '\0'))}}});
  std::string base = DigestOf(rows);
  std::mt19937 rng(7);
  for (int round = 0; round < 5; ++round) {
    std::shuffle(rows.begin(), rows.end(), rng);
    for (Row& r : rows) std::shuffle(r.cols.begin(), r.cols.end(), rng);
    EXPECT_EQ(DigestOf(rows), base);
  }
  // Read in two parts and added: the same.
  TableDigest a, b;
  for (size_t k = 0; k < rows.size(); ++k) AddRow(k % 2 ? a : b, rows[k]);
  a.Add(b);
  EXPECT_EQ(a.Hex(), base);
  EXPECT_EQ(a.rows(), rows.size());
}

TEST(Checksum, EveryChangeShows) {
  std::vector<Row> rows = {{{Value::Integer(1)}, {{"a", Value::Integer(1)}, {"b", Value::Text("x")}}},
                           {{Value::Integer(2)}, {{"a", Value::Integer(2)}, {"b", Value::Text("y")}}}};
  std::string base = DigestOf(rows);
  auto changed = [&](auto edit) {
    std::vector<Row> copy = rows;
    edit(copy);
    return DigestOf(copy);
  };
  EXPECT_NE(changed([](auto& r) { r[0].cols[0].second = Value::Integer(3); }), base);           // a value
  EXPECT_NE(changed([](auto& r) { r[0].cols[0].second = Value::Real(1.0); }), base);            // its storage class
  EXPECT_NE(changed([](auto& r) { r[0].cols[1].second = Value::Blob("x"); }), base);            // text vs blob
  EXPECT_NE(changed([](auto& r) { r[0].cols[1].first = "c"; }), base);                          // a column's name
  EXPECT_NE(changed([](auto& r) { r[0].key[0] = Value::Integer(3); }), base);                   // a key
  EXPECT_NE(changed([](auto& r) { r[0].key[0] = Value::Text("1"); }), base);                    // a key's class
  EXPECT_NE(changed([](auto& r) { r.pop_back(); }), base);                                      // a row gone
  EXPECT_NE(changed([](auto& r) { r.push_back(r[0]); }), base);                                 // a row twice
  EXPECT_NE(changed([](auto& r) { std::swap(r[0].cols[0].second, r[1].cols[0].second); }), base);  // values swapped between rows
  // A value moved from a column into the key is another row.
  EXPECT_NE(DigestOf({{{Value::Integer(1), Value::Integer(2)}, {}}}), DigestOf({{{Value::Integer(1)}, {{"a", Value::Integer(2)}}}}));
  // -0.0 and 0.0 are different values (bit-exact reals).
  EXPECT_NE(DigestOf({{{Value::Integer(1)}, {{"a", Value::Real(-0.0)}}}}), DigestOf({{{Value::Integer(1)}, {{"a", Value::Real(0.0)}}}}));
}

TEST(Checksum, NullIsAbsent) {
  EXPECT_EQ(DigestOf({{{Value::Integer(1)}, {{"a", Value::Null()}, {"b", Value::Integer(2)}}}}),
            DigestOf({{{Value::Integer(1)}, {{"b", Value::Integer(2)}}}}));
  // A NULL in the key is part of the key.
  EXPECT_NE(DigestOf({{{Value::Integer(1), Value::Null()}, {}}}), DigestOf({{{Value::Integer(1)}, {}}}));
}

TEST(Checksum, DuplicateColumnRefused) {
  Value v = Value::Integer(1);
  std::vector<DigestColumn> cols = {{"a", &v}, {"a", &v}};
  TableDigest d;
  EXPECT_THROW(d.AddRow({Value::Integer(1)}, cols), Error);
}

TEST(Checksum, SumCarriesAcrossLimbs) {
  // Many rows: the sum wraps its low limbs many times; adding parts in any grouping agrees.
  std::vector<Row> rows;
  for (int k = 0; k < 2000; ++k) rows.push_back({{Value::Integer(k)}, {}});
  TableDigest all, evens, odds;
  for (const Row& r : rows) AddRow(all, r);
  for (size_t k = 0; k < rows.size(); ++k) AddRow(k % 2 ? odds : evens, rows[k]);
  odds.Add(evens);
  EXPECT_EQ(odds.Hex(), all.Hex());
  EXPECT_NE(all.Hex(), std::string(64, '0'));
}

RC_GTEST_PROP(Checksum, AnyOrderOfAnyRowsAgrees, (const std::vector<std::pair<int64_t, std::string>>& raw)) {
  std::vector<Row> rows;
  for (const auto& [k, s] : raw) rows.push_back({{Value::Integer(k)}, {{"s", Value::Text(s)}, {"n", Value::Integer(k ^ 5)}}});
  std::string base = DigestOf(rows);
  std::vector<Row> shuffled = rows;
  std::mt19937 rng(static_cast<unsigned>(raw.size()));
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  RC_ASSERT(DigestOf(shuffled) == base);
  if (!rows.empty()) {
    shuffled.back().cols[0].second.s += "!";
    RC_ASSERT(DigestOf(shuffled) != base);
  }
}

TEST(Checksum, SplitTableList) {
  EXPECT_EQ(SplitTableList("a,b"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(SplitTableList(",a,,b,"), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(SplitTableList("").empty());
}

}  // namespace
}  // namespace deltasync
