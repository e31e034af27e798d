// The merge decision table of SPEC section 3, case by case, plus convergence properties.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <vector>

#include "common/hlc.hpp"
#include "common/merge.hpp"
#include "test_util.hpp"

namespace deltasync {
namespace {

using dstest::MakeSite;

const SiteId kSiteA = MakeSite(0x10);
const SiteId kSiteB = MakeSite(0x20);  // kSiteA < kSiteB
const uint64_t kT1 = HlcFromMillis(1700000000000);
const uint64_t kT2 = kT1 + 1;
const uint64_t kT3 = HlcFromMillis(1700000000001);

Clock C(int64_t cl, uint64_t hlc, const SiteId& site) {
  Clock c;
  c.cl = cl;
  c.hlc = hlc;
  c.site = site;
  return c;
}
Clock None() { return Clock{}; }

TEST(CompareClocks, EqualClocksCompareEqual) {
  EXPECT_EQ(CompareClocks(C(1, kT1, kSiteA), C(1, kT1, kSiteA)), 0);
  EXPECT_EQ(CompareClocks(None(), None()), 0);
}

TEST(CompareClocks, CausalLengthFirst) {
  // A higher cl wins even against a much later hlc and a greater site.
  EXPECT_GT(CompareClocks(C(2, kT1, kSiteA), C(1, kT3 + 1000000, kSiteB)), 0);
  EXPECT_LT(CompareClocks(C(1, kT3 + 1000000, kSiteB), C(2, kT1, kSiteA)), 0);
  EXPECT_GT(CompareClocks(C(3, kT1, kSiteA), C(2, kT3, kSiteB)), 0);
}

TEST(CompareClocks, ThenHlc) {
  EXPECT_GT(CompareClocks(C(1, kT2, kSiteA), C(1, kT1, kSiteB)), 0);
  EXPECT_LT(CompareClocks(C(1, kT1, kSiteB), C(1, kT2, kSiteA)), 0);
  EXPECT_GT(CompareClocks(C(1, kT3, kSiteA), C(1, kT2, kSiteA)), 0);
}

TEST(CompareClocks, ThenSiteId) {
  EXPECT_GT(CompareClocks(C(1, kT1, kSiteB), C(1, kT1, kSiteA)), 0);
  EXPECT_LT(CompareClocks(C(1, kT1, kSiteA), C(1, kT1, kSiteB)), 0);
  // Site ids compare as unsigned bytes, most significant first.
  EXPECT_GT(CompareClocks(C(1, kT1, MakeSite(0x80)), C(1, kT1, MakeSite(0x7f, 0xff))), 0);
  EXPECT_GT(CompareClocks(C(1, kT1, MakeSite(0, 2)), C(1, kT1, MakeSite(0, 1))), 0);
}

TEST(CompareClocks, NoVersionLosesToAnyReal) {
  EXPECT_LT(CompareClocks(None(), C(1, 1, SiteId{})), 0);
  EXPECT_GT(CompareClocks(C(1, kT1, kSiteA), None()), 0);
}

rc::Gen<Clock> GenClock() {
  return rc::gen::build<Clock>(rc::gen::set(&Clock::cl, rc::gen::inRange<int64_t>(0, 5)),
                               rc::gen::set(&Clock::hlc, rc::gen::inRange<uint64_t>(0, 4)),
                               rc::gen::set(&Clock::site, rc::gen::map(rc::gen::inRange<int>(0, 3), [](int k) {
                                              return MakeSite(static_cast<uint8_t>(k));
                                            })));
}

RC_GTEST_PROP(CompareClocks, IsATotalOrder, ()) {
  Clock a = *GenClock(), b = *GenClock(), c = *GenClock();
  int ab = CompareClocks(a, b), ba = CompareClocks(b, a);
  RC_ASSERT((ab > 0) == (ba < 0));  // antisymmetric
  RC_ASSERT((ab == 0) == (ba == 0));
  RC_ASSERT((ab == 0) == (a.cl == b.cl && a.hlc == b.hlc && a.site == b.site));  // equal only when identical
  if (CompareClocks(a, b) <= 0 && CompareClocks(b, c) <= 0) RC_ASSERT(CompareClocks(a, c) <= 0);  // transitive
  // It is exactly the lexicographic order of (cl, hlc, site).
  auto key = [](const Clock& x) { return std::make_tuple(x.cl, x.hlc, x.site); };
  RC_ASSERT((ab < 0) == (key(a) < key(b)));
}

// Applying column clocks is "keep the max": any order, any repetition, same result.
RC_GTEST_PROP(CompareClocks, KeepMaxIsCommutativeAndIdempotent, ()) {
  std::vector<Clock> xs = *rc::gen::nonEmpty(rc::gen::container<std::vector<Clock>>(GenClock()));
  // Values of the row's current life (cl 1) or of a later one: older ones never win.
  for (Clock& c : xs) c.cl = std::max<int64_t>(c.cl, 1);
  auto fold = [](const std::vector<Clock>& v) {
    Clock s;  // no version yet
    for (const Clock& c : v) {
      RowMerge m = MergeRow(1, 1, {c}, {s});  // one live row, one column
      RC_ASSERT(m.col_wins[0] == (CompareClocks(c, s) > 0));
      if (m.col_wins[0]) s = c;
    }
    return s;
  };
  Clock base = fold(xs);
  std::vector<Clock> shuffled = dstest::Shuffled(xs);
  std::vector<Clock> doubled = xs;
  doubled.insert(doubled.end(), shuffled.begin(), shuffled.end());
  Clock s1 = fold(shuffled), s2 = fold(doubled);
  RC_ASSERT(CompareClocks(base, s1) == 0);
  RC_ASSERT(CompareClocks(base, s2) == 0);
  for (const Clock& c : xs) RC_ASSERT(CompareClocks(base, c) >= 0);  // it is the max
}

// --- MergeRow, case by case ------------------------------------------------------------

TEST(MergeRow, NewRow) {
  RowMerge m = MergeRow(0, 1, {C(1, kT1, kSiteB), C(1, kT1, kSiteB)}, {None(), None()});
  EXPECT_FALSE(m.existed);
  EXPECT_TRUE(m.exists);
  EXPECT_EQ(m.cl, 1);
  EXPECT_TRUE(m.cl_advanced);
  EXPECT_EQ(m.col_wins, (std::vector<bool>{true, true}));
}

TEST(MergeRow, KeyOnlyNewRow) {
  RowMerge m = MergeRow(0, 1, {}, {});
  EXPECT_TRUE(m.exists);
  EXPECT_TRUE(m.cl_advanced);
  EXPECT_TRUE(m.col_wins.empty());
}

TEST(MergeRow, UpdateWithLaterHlcWins) {
  RowMerge m = MergeRow(1, 1, {C(1, kT2, kSiteA)}, {C(1, kT1, kSiteB)});
  EXPECT_TRUE(m.existed);
  EXPECT_TRUE(m.exists);
  EXPECT_EQ(m.cl, 1);
  EXPECT_FALSE(m.cl_advanced);
  EXPECT_EQ(m.col_wins, std::vector<bool>{true});
}

TEST(MergeRow, UpdateWithEarlierHlcLoses) {
  RowMerge m = MergeRow(1, 1, {C(1, kT1, kSiteB)}, {C(1, kT2, kSiteA)});
  EXPECT_TRUE(m.exists);
  EXPECT_FALSE(m.cl_advanced);
  EXPECT_EQ(m.col_wins, std::vector<bool>{false});
}

TEST(MergeRow, TieBrokenBySiteId) {
  RowMerge up = MergeRow(1, 1, {C(1, kT1, kSiteB)}, {C(1, kT1, kSiteA)});
  EXPECT_EQ(up.col_wins, std::vector<bool>{true});
  RowMerge down = MergeRow(1, 1, {C(1, kT1, kSiteA)}, {C(1, kT1, kSiteB)});
  EXPECT_EQ(down.col_wins, std::vector<bool>{false});
}

TEST(MergeRow, ColumnsDecidedIndependently) {
  // Concurrent edits of different columns both survive: each column compares on its own.
  RowMerge m = MergeRow(1, 1, {C(1, kT2, kSiteA), C(1, kT1, kSiteA), C(1, kT1, kSiteA)},
                        {C(1, kT1, kSiteB), C(1, kT2, kSiteB), None()});
  EXPECT_EQ(m.col_wins, (std::vector<bool>{true, false, true}));
}

TEST(MergeRow, DeleteBeatsConcurrentUpdate) {
  // Local: live row (cl 1) whose column was updated late. Incoming: a delete (cl 2) made
  // without seeing that update, with an older hlc.
  RowMerge m = MergeRow(1, 2, {}, {});
  EXPECT_TRUE(m.existed);
  EXPECT_FALSE(m.exists);
  EXPECT_EQ(m.cl, 2);
  EXPECT_TRUE(m.cl_advanced);
  // The other direction: local has the delete, the concurrent update arrives late.
  RowMerge u = MergeRow(2, 1, {C(1, kT3 + 99999, kSiteB)}, {C(1, kT1, kSiteA)});
  EXPECT_FALSE(u.existed);
  EXPECT_FALSE(u.exists);
  EXPECT_EQ(u.cl, 2);
  EXPECT_FALSE(u.cl_advanced);
  EXPECT_EQ(u.col_wins, std::vector<bool>{false});
}

TEST(MergeRow, DeleteOfUnknownRow) {
  RowMerge m = MergeRow(0, 2, {}, {});
  EXPECT_FALSE(m.existed);
  EXPECT_FALSE(m.exists);
  EXPECT_EQ(m.cl, 2);
  EXPECT_TRUE(m.cl_advanced);
}

TEST(MergeRow, ReinsertAfterDeleteBeatsTheDelete) {
  RowMerge m = MergeRow(2, 3, {C(3, kT1, kSiteA)}, {C(1, kT3, kSiteB)});
  EXPECT_FALSE(m.existed);
  EXPECT_TRUE(m.exists);
  EXPECT_EQ(m.cl, 3);
  EXPECT_TRUE(m.cl_advanced);
  EXPECT_EQ(m.col_wins, std::vector<bool>{true});
  // And the delete arriving after the re-insert changes nothing.
  RowMerge d = MergeRow(3, 2, {}, {});
  EXPECT_TRUE(d.existed);
  EXPECT_TRUE(d.exists);
  EXPECT_EQ(d.cl, 3);
  EXPECT_FALSE(d.cl_advanced);
}

TEST(MergeRow, OldLifeColumnChangeLosesToNewLife) {
  // Local row is in its second life (cl 3); an update from the first life (cl 1) arrives
  // with a much later hlc and a greater site: it still loses.
  RowMerge m = MergeRow(3, 1, {C(1, kT3 + 1000000, kSiteB)}, {C(3, kT1, kSiteA)});
  EXPECT_TRUE(m.existed);
  EXPECT_TRUE(m.exists);
  EXPECT_EQ(m.cl, 3);
  EXPECT_FALSE(m.cl_advanced);
  EXPECT_EQ(m.col_wins, std::vector<bool>{false});
  // Even when it travels in a row that claims the new life.
  RowMerge n = MergeRow(3, 3, {C(1, kT3 + 1000000, kSiteB)}, {C(3, kT1, kSiteA)});
  EXPECT_EQ(n.col_wins, std::vector<bool>{false});
}

TEST(MergeRow, NewLifeChangeBeatsOldLifeLocalColumn) {
  RowMerge m = MergeRow(1, 3, {C(3, kT1, kSiteA)}, {C(1, kT3, kSiteB)});
  EXPECT_TRUE(m.existed);
  EXPECT_TRUE(m.exists);
  EXPECT_TRUE(m.cl_advanced);
  EXPECT_EQ(m.col_wins, std::vector<bool>{true});
}

TEST(MergeRow, HigherDeleteBeatsReinsert) {
  // Local re-inserted (cl 3); someone who saw it deleted again (cl 4).
  RowMerge m = MergeRow(3, 4, {}, {});
  EXPECT_TRUE(m.existed);
  EXPECT_FALSE(m.exists);
  EXPECT_EQ(m.cl, 4);
}

TEST(MergeRow, ApplyingTheSameIncomingTwiceIsIdempotent) {
  const std::vector<Clock> in = {C(3, kT2, kSiteB), C(3, kT1, kSiteA)};
  RowMerge first = MergeRow(2, 3, in, {C(1, kT1, kSiteA), None()});
  EXPECT_TRUE(first.cl_advanced);
  EXPECT_EQ(first.col_wins, (std::vector<bool>{true, true}));
  // The local state now holds what won.
  std::vector<Clock> local = {first.col_wins[0] ? in[0] : C(1, kT1, kSiteA), first.col_wins[1] ? in[1] : None()};
  RowMerge second = MergeRow(first.cl, 3, in, local);
  EXPECT_FALSE(second.cl_advanced);
  EXPECT_EQ(second.cl, 3);
  EXPECT_TRUE(second.existed);
  EXPECT_TRUE(second.exists);
  EXPECT_EQ(second.col_wins, (std::vector<bool>{false, false}));
}

TEST(MergeRow, DeleteAppliedTwiceIsIdempotent) {
  RowMerge first = MergeRow(1, 2, {}, {});
  RowMerge second = MergeRow(first.cl, 2, {}, {});
  EXPECT_TRUE(first.cl_advanced);
  EXPECT_FALSE(second.cl_advanced);
  EXPECT_FALSE(second.existed);
  EXPECT_FALSE(second.exists);
  EXPECT_EQ(second.cl, 2);
}

// --- Convergence of whole rows --------------------------------------------------------

// One incoming row: an insert of a life (odd cl, every column), an update within a life
// (odd cl, some columns) or a delete (even cl, no column).
struct Incoming {
  int64_t cl = 1;
  std::vector<uint32_t> cols;
  std::vector<Clock> clocks;
};

struct RowState {
  int64_t cl = 0;
  std::vector<Clock> cols;
};

void Apply(RowState& s, const Incoming& in) {
  std::vector<Clock> local;
  for (uint32_t c : in.cols) local.push_back(s.cols[c]);
  RowMerge m = MergeRow(s.cl, in.cl, in.clocks, local);
  RC_ASSERT(m.col_wins.size() == in.cols.size());
  RC_ASSERT(m.cl == std::max(s.cl, in.cl));
  RC_ASSERT(m.existed == (s.cl % 2 == 1));
  RC_ASSERT(m.exists == (m.cl % 2 == 1));
  s.cl = m.cl;
  for (size_t k = 0; k < in.cols.size(); ++k)
    if (m.col_wins[k]) s.cols[in.cols[k]] = in.clocks[k];
}

// What a user sees: the row's existence and, when it exists, its column versions.
std::vector<std::tuple<int64_t, uint64_t, SiteId>> Visible(const RowState& s) {
  std::vector<std::tuple<int64_t, uint64_t, SiteId>> v;
  v.emplace_back(s.cl, 0, SiteId{});
  if (s.cl % 2 == 1)
    for (const Clock& c : s.cols) v.emplace_back(c.cl, c.hlc, c.site);
  return v;
}

RC_GTEST_PROP(MergeRow, ConvergesInAnyOrderWithDuplicates, ()) {
  const size_t ncols = *rc::gen::inRange<size_t>(1, 4);
  const int64_t lives = *rc::gen::inRange<int64_t>(1, 4);
  auto gen_clock = [&](int64_t cl) {
    return Clock{cl, *rc::gen::inRange<uint64_t>(1, 4),
                 MakeSite(static_cast<uint8_t>(*rc::gen::inRange<int>(0, 3)))};
  };
  std::vector<Incoming> all;
  for (int64_t life = 0; life < lives; ++life) {
    int64_t cl = 2 * life + 1;
    Incoming ins;
    ins.cl = cl;
    for (uint32_t c = 0; c < ncols; ++c) {
      ins.cols.push_back(c);
      ins.clocks.push_back(gen_clock(cl));
    }
    all.push_back(ins);
    size_t nupd = *rc::gen::inRange<size_t>(0, 4);
    for (size_t u = 0; u < nupd; ++u) {
      Incoming up;
      up.cl = cl;
      for (uint32_t c = 0; c < ncols; ++c)
        if (*rc::gen::arbitrary<bool>()) {
          up.cols.push_back(c);
          up.clocks.push_back(gen_clock(cl));
        }
      all.push_back(up);
    }
    if (life + 1 < lives || *rc::gen::arbitrary<bool>()) {
      Incoming del;
      del.cl = cl + 1;
      all.push_back(del);
    }
  }
  auto run = [&](const std::vector<Incoming>& order) {
    RowState s;
    s.cols.assign(ncols, Clock{});
    for (const Incoming& in : order) Apply(s, in);
    return s;
  };
  RowState r1 = run(all);
  std::vector<Incoming> order2 = dstest::Shuffled(all);
  std::vector<Incoming> order3 = dstest::Shuffled(all);
  // Duplicates: replay a random subset again, anywhere.
  std::vector<Incoming> with_dups = order3;
  for (const Incoming& in : all)
    if (*rc::gen::arbitrary<bool>())
      with_dups.insert(with_dups.begin() + *rc::gen::inRange<size_t>(0, with_dups.size() + 1), in);
  RowState r2 = run(order2);
  RowState r3 = run(with_dups);
  RC_ASSERT(Visible(r1) == Visible(r2));
  RC_ASSERT(Visible(r1) == Visible(r3));

  // And the result is the expected one: the highest cl; when live, per column the greatest
  // clock written in that last life.
  int64_t max_cl = 0;
  for (const Incoming& in : all) max_cl = std::max(max_cl, in.cl);
  RC_ASSERT(r2.cl == max_cl);
  if (max_cl % 2 == 1) {
    for (uint32_t c = 0; c < ncols; ++c) {
      Clock best;
      for (const Incoming& in : all)
        for (size_t k = 0; k < in.cols.size(); ++k)
          if (in.cols[k] == c && CompareClocks(in.clocks[k], best) > 0) best = in.clocks[k];
      RC_ASSERT(best.cl == max_cl);
      RC_ASSERT(CompareClocks(r2.cols[c], best) == 0);
    }
  }

  // Applying everything once more changes nothing and advances no cl.
  RowState again = r2;
  for (const Incoming& in : all) {
    std::vector<Clock> local;
    for (uint32_t c : in.cols) local.push_back(again.cols[c]);
    RowMerge m = MergeRow(again.cl, in.cl, in.clocks, local);
    RC_ASSERT(!m.cl_advanced);
    for (bool w : m.col_wins) RC_ASSERT(!w);
  }
}

}  // namespace
// A value from an older life of the row loses even where no local value stands against it,
// so applying the same history twice gives the same row (found by review: a payload holding
// a key's first life, its delete and a partial re-insert, re-sent, brought values back).
TEST(MergeRow, ValueFromAnOlderLifeLosesEvenWithoutALocalValue) {
  RowMerge m = MergeRow(3, 1, {C(1, kT3, kSiteA)}, {None()});
  EXPECT_EQ(m.cl, 3);
  EXPECT_FALSE(m.col_wins[0]);
  EXPECT_EQ(m.applied, 0u);
  RowMerge same_life = MergeRow(3, 3, {C(3, kT1, kSiteA)}, {None()});
  EXPECT_TRUE(same_life.col_wins[0]);
}

}  // namespace deltasync
