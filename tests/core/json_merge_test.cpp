// The json policy's core (common/json_value, common/json_merge): the canonical text, the
// diff of a local write, the merge decision table, and a property test — replicas writing
// random documents and exchanging their members in random order end with one document.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "common/json_merge.hpp"
#include "common/json_value.hpp"

namespace deltasync {
namespace {

JsonValue Parse(const std::string& text) {
  JsonValue v;
  std::string error;
  EXPECT_TRUE(ParseJson(text, v, error)) << text << ": " << error;
  return v;
}

std::string Canon(const std::string& text) { return CanonicalJson(Parse(text)); }

std::string Refusal(const std::string& text) {
  JsonValue v;
  std::string error;
  EXPECT_FALSE(ParseJson(text, v, error)) << text;
  return error;
}

SiteId Site(uint8_t b) {
  SiteId s;
  s.bytes.fill(b);
  return s;
}

Clock At(uint64_t hlc, uint8_t site = 1, int64_t cl = 1) { return Clock{cl, hlc, Site(site)}; }

TEST(JsonCanonical, SortsKeysDropsSpacesAndKeepsTheLastOfADuplicateKey) {
  EXPECT_EQ(Canon(" { \"b\" : 1 , \"a\" : [ true , null , false ] } "), "{\"a\":[true,null,false],\"b\":1}");
  EXPECT_EQ(Canon("{\"k\":1,\"k\":2}"), "{\"k\":2}");
  // Keys sort by their UTF-8 bytes (jsonb's length-first order is not text order).
  EXPECT_EQ(Canon("{\"bb\":1,\"a\":2,\"\xc3\xa9\":3,\"B\":4}"), "{\"B\":4,\"a\":2,\"bb\":1,\"\xc3\xa9\":3}");
  EXPECT_EQ(Canon("{\"o\":{\"z\":{},\"y\":[]}}"), "{\"o\":{\"y\":[],\"z\":{}}}");
}

TEST(JsonCanonical, NumbersAreWrittenAsNumericWritesThem) {
  EXPECT_EQ(Canon("[1.50, 1e2, 1.5e1, 1.50e1, -0, -0.0, 0.000e2, 1E-3, -12.5e-1, 120e-1, 0]"),
            "[1.50,100,15,15.0,0,0.0,0.0,0.001,-1.25,12.0,0]");
  EXPECT_EQ(Canon("123456789012345678901234567890"), "123456789012345678901234567890");
  EXPECT_NE(Refusal("1e2000").find("1000 digits"), std::string::npos);
  EXPECT_NE(Refusal(std::string(1001, '7')).find("1000 digits"), std::string::npos);
}

TEST(JsonCanonical, StringsTakeTheShortestEscapes) {
  EXPECT_EQ(Canon("\"\\u00e9\\/\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001F\""), "\"\xc3\xa9/\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f\"");
  EXPECT_EQ(Canon("\"\\ud83d\\ude00\""), "\"\xf0\x9f\x98\x80\"");
  EXPECT_EQ(Canon("\"\xf0\x9f\x98\x80\""), "\"\xf0\x9f\x98\x80\"");
}

TEST(JsonCanonical, RefusesWhatIsNotJsonOrCannotBeStoredEverywhere) {
  for (const char* bad : {"", "{", "{\"a\":}", "{\"a\":1,}", "[1,]", "01", "1.", ".5", "+1", "-", "1e", "tru",
                          "{\"a\" 1}", "{a:1}", "'x'", "\"\\x\"", "[1] 2", "\"\\u12\"", "NaN", "Infinity"})
    EXPECT_FALSE(Refusal(bad).empty()) << bad;
  EXPECT_NE(Refusal("\"\\u0000\"").find("\\u0000"), std::string::npos);
  EXPECT_NE(Refusal("\"\\ud83d\"").find("surrogate"), std::string::npos);
  EXPECT_NE(Refusal("\"\\ude00\"").find("surrogate"), std::string::npos);
  EXPECT_NE(Refusal("\"\xc3\"").find("UTF-8"), std::string::npos);
  EXPECT_NE(Refusal("\"a\nb\"").find("control"), std::string::npos);
  std::string deep(kMaxJsonDepth + 1, '[');
  deep += std::string(kMaxJsonDepth + 1, ']');
  EXPECT_NE(Refusal(deep).find("deep"), std::string::npos);
  std::string ok(kMaxJsonDepth, '[');
  ok += std::string(kMaxJsonDepth, ']');
  Parse(ok);
}

std::string Edits(const std::string& from, const std::string& to) {
  std::string out;
  for (const JsonEdit& e : DiffJson(Parse(from), Parse(to)))
    out += PathText(e.path) + (e.present ? "=" + e.value : std::string(" removed")) + ";";
  return out;
}

TEST(JsonDiff, FindsTheMembersAWriteChanged) {
  EXPECT_EQ(Edits("{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1}"), "");
  EXPECT_EQ(Edits("{\"a\":1,\"b\":2}", "{\"a\":1,\"b\":3}"), "[\"b\"]=3;");
  EXPECT_EQ(Edits("{\"a\":1,\"b\":2}", "{\"a\":1}"), "[\"b\"] removed;");
  EXPECT_EQ(Edits("{}", "{\"o\":{\"x\":1,\"y\":{\"z\":[1]}}}"), "[\"o\",\"x\"]=1;[\"o\",\"y\",\"z\"]=[1];");
  // A removed object is removed once, at its own path.
  EXPECT_EQ(Edits("{\"o\":{\"x\":1,\"y\":2}}", "{}"), "[\"o\"] removed;");
  // An object that becomes a leaf, a leaf that becomes an object, an object emptied.
  EXPECT_EQ(Edits("{\"o\":{\"x\":1}}", "{\"o\":5}"), "[\"o\"]=5;");
  EXPECT_EQ(Edits("{\"o\":5}", "{\"o\":{\"x\":1}}"), "[\"o\",\"x\"]=1;");
  EXPECT_EQ(Edits("{\"o\":{\"x\":1}}", "{\"o\":{}}"), "[\"o\"]={};");
  EXPECT_EQ(Edits("{\"o\":{}}", "{\"o\":{\"x\":1}}"), "[\"o\",\"x\"]=1;");
  // Arrays are leaves: written whole.
  EXPECT_EQ(Edits("{\"l\":[1,2]}", "{\"l\":[1,2,3]}"), "[\"l\"]=[1,2,3];");
  EXPECT_EQ(Edits("{\"n\":1.0}", "{\"n\":1}"), "[\"n\"]=1;");
}

// One replica: its members and the document they show.
struct Replica {
  JsonMembers members;
  std::string doc = "{}";
  void Write(const std::string& to, const Clock& c) {
    LocalJsonWrite(members, Parse(doc), Parse(to), c, 0, 0);
    doc = CanonicalJson(RenderJson(members));
    EXPECT_EQ(doc, Canon(to));
  }
  // Receives every member `from` holds, as a payload would carry them.
  void Receive(const Replica& from, int64_t cl = 1) {
    for (const JsonMember& m : from.members)
      if (MemberWins(cl, FindMember(members, m.path), m.clock)) PutMember(members, m);
    doc = CanonicalJson(RenderJson(members));
  }
};

std::string Merged(Replica a, Replica b) {
  Replica a2 = a, b2 = b;
  a.Receive(b2);
  b.Receive(a2);
  EXPECT_EQ(a.doc, b.doc);
  return a.doc;
}

// The decision table: two sites start from one document and write concurrently.
TEST(JsonMerge, DecisionTable) {
  Replica base;
  base.Write("{\"name\":\"x\",\"o\":{\"p\":1,\"q\":2},\"n\":0}", At(10, 1));
  struct Case {
    const char* what;
    const char* a;
    uint64_t ta;
    const char* b;
    uint64_t tb;
    const char* merged;
  };
  const Case cases[] = {
      {"different members both survive", "{\"name\":\"y\",\"o\":{\"p\":1,\"q\":2},\"n\":0}", 20,
       "{\"name\":\"x\",\"o\":{\"p\":1,\"q\":2},\"n\":5}", 21, "{\"n\":5,\"name\":\"y\",\"o\":{\"p\":1,\"q\":2}}"},
      {"different nested members both survive", "{\"name\":\"x\",\"o\":{\"p\":7,\"q\":2},\"n\":0}", 20,
       "{\"name\":\"x\",\"o\":{\"p\":1,\"q\":8},\"n\":0}", 21, "{\"n\":0,\"name\":\"x\",\"o\":{\"p\":7,\"q\":8}}"},
      {"one member: the later write wins", "{\"name\":\"a\",\"o\":{\"p\":1,\"q\":2},\"n\":0}", 22,
       "{\"name\":\"b\",\"o\":{\"p\":1,\"q\":2},\"n\":0}", 21, "{\"n\":0,\"name\":\"a\",\"o\":{\"p\":1,\"q\":2}}"},
      {"an added member and a removed one", "{\"name\":\"x\",\"o\":{\"p\":1,\"q\":2},\"n\":0,\"new\":true}", 20,
       "{\"name\":\"x\",\"o\":{\"p\":1,\"q\":2}}", 21, "{\"name\":\"x\",\"new\":true,\"o\":{\"p\":1,\"q\":2}}"},
      {"a removal later than an edit of the member removes it", "{\"name\":\"x\",\"o\":{\"p\":1,\"q\":2},\"n\":9}",
       20, "{\"name\":\"x\",\"o\":{\"p\":1,\"q\":2}}", 21, "{\"name\":\"x\",\"o\":{\"p\":1,\"q\":2}}"},
      {"an edit later than the removal of the member stays", "{\"name\":\"x\",\"o\":{\"p\":1,\"q\":2},\"n\":9}", 22,
       "{\"name\":\"x\",\"o\":{\"p\":1,\"q\":2}}", 21, "{\"n\":9,\"name\":\"x\",\"o\":{\"p\":1,\"q\":2}}"},
      {"an object removed later than an edit inside it is gone", "{\"name\":\"x\",\"o\":{\"p\":3,\"q\":2},\"n\":0}",
       20, "{\"name\":\"x\",\"n\":0}", 21, "{\"n\":0,\"name\":\"x\"}"},
      {"an edit inside an object later than its removal keeps only what is newer",
       "{\"name\":\"x\",\"o\":{\"p\":3,\"q\":2},\"n\":0}", 22, "{\"name\":\"x\",\"n\":0}", 21,
       "{\"n\":0,\"name\":\"x\",\"o\":{\"p\":3}}"},
      {"an object replaced by a scalar later than an edit inside it", "{\"name\":\"x\",\"o\":{\"p\":3,\"q\":2},\"n\":0}",
       20, "{\"name\":\"x\",\"o\":\"flat\",\"n\":0}", 21, "{\"n\":0,\"name\":\"x\",\"o\":\"flat\"}"},
      {"an edit inside an object later than its replacement by a scalar",
       "{\"name\":\"x\",\"o\":{\"p\":3,\"q\":2},\"n\":0}", 22, "{\"name\":\"x\",\"o\":\"flat\",\"n\":0}", 21,
       "{\"n\":0,\"name\":\"x\",\"o\":{\"p\":3}}"},
      {"an emptied object and a later member added to it", "{\"name\":\"x\",\"o\":{},\"n\":0}", 20,
       "{\"name\":\"x\",\"o\":{\"p\":1,\"q\":2,\"r\":3},\"n\":0}", 21, "{\"n\":0,\"name\":\"x\",\"o\":{\"r\":3}}"},
      {"the same write on both sites", "{\"name\":\"z\"}", 20, "{\"name\":\"z\"}", 21, "{\"name\":\"z\"}"},
  };
  for (const Case& c : cases) {
    Replica a = base, b = base;
    a.Write(c.a, At(c.ta, 2));
    b.Write(c.b, At(c.tb, 3));
    EXPECT_EQ(Merged(a, b), c.merged) << c.what;
  }
  // Equal clocks from two sites: the greater site id wins, on both.
  Replica a = base, b = base;
  a.Write("{\"name\":\"from2\"}", At(30, 2));
  b.Write("{\"name\":\"from3\"}", At(30, 3));
  EXPECT_EQ(Merged(a, b), "{\"name\":\"from3\"}");
}

TEST(JsonMerge, AnOlderLifesMembersAreStale) {
  Replica a;
  a.Write("{\"k\":1}", At(10, 1, 1));
  Replica b;  // the row in its next life
  EXPECT_FALSE(MemberWins(3, nullptr, a.members[0].clock));
  EXPECT_TRUE(MemberWins(1, nullptr, a.members[0].clock));
  JsonMembers m = a.members;
  PutMember(m, JsonMember{{"j"}, true, "2", At(20, 1, 3), 0, 0});
  DropMembersBefore(m, 3);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].path, JsonPath{"j"});
}

TEST(JsonMerge, WritesOfOneTransactionShareAClockAndTheLastStands) {
  Replica r;
  r.Write("{\"a\":5}", At(10));
  r.Write("{\"a\":{\"b\":1}}", At(10));
  r.Write("{\"a\":{\"b\":1,\"c\":2}}", At(10));
  r.Write("{\"a\":7,\"d\":{}}", At(10));
  r.Write("{\"a\":{\"x\":[1]},\"d\":{\"e\":null}}", At(10));
  Replica other;
  other.Receive(r);
  EXPECT_EQ(other.doc, "{\"a\":{\"x\":[1]},\"d\":{\"e\":null}}");
}

TEST(JsonMerge, MembersThatDoNotShowTheOldDocumentAreRewrittenWhole) {
  JsonMembers m = MembersOf(Parse("{\"a\":1,\"b\":{\"c\":2}}"), At(10), 0, 0);
  // The document was changed while nobody captured it: the write starts from the new text.
  LocalJsonWrite(m, Parse("{\"a\":9}"), Parse("{\"a\":9,\"z\":1}"), At(20), 0, 0);
  EXPECT_EQ(CanonicalJson(RenderJson(m)), "{\"a\":9,\"z\":1}");
}

TEST(JsonWire, MemberChangesRoundTripAndRefuseOtherText) {
  EXPECT_EQ(EncodeMemberChange({"a", "b\""}, true, "[1]"), "[[\"a\",\"b\\\"\"],[1]]");
  EXPECT_EQ(EncodeMemberChange({"a"}, false, ""), "[[\"a\"]]");
  JsonPath p;
  bool present;
  std::string value, error;
  ASSERT_TRUE(DecodeMemberChange("[[\"a\",\"b\\\"\"],[1]]", p, present, value, error)) << error;
  EXPECT_EQ(p, (JsonPath{"a", "b\""}));
  EXPECT_TRUE(present);
  EXPECT_EQ(value, "[1]");
  ASSERT_TRUE(DecodeMemberChange("[[\"a\"]]", p, present, value, error)) << error;
  EXPECT_FALSE(present);
  EXPECT_EQ(MemberChangePath("[[\"a\",\"]\\\"\"],{}]"), "[\"a\",\"]\\\"\"]");
  for (const char* bad : {"[]", "[[]]", "[[1]]", "[[\"a\"],{\"x\":1}]", "[[\"a\"],1,2]", "{\"a\":1}",
                          "[[\"a\"], 1]", "[[\"a\"],1.0e0]", "x"})
    EXPECT_FALSE(DecodeMemberChange(bad, p, present, value, error)) << bad;
}

// A random document edit: set a path (up to three deep, keys a..c) to a random value, remove
// a path, or replace the document.
std::string RandomWrite(const std::string& doc_text, std::mt19937& rng) {
  JsonValue doc = Parse(doc_text);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  auto leaf = [&]() {
    switch (pick(6)) {
      case 0: return Parse(std::to_string(pick(10)));
      case 1: return Parse("\"s" + std::to_string(pick(3)) + "\"");
      case 2: return Parse("[" + std::to_string(pick(3)) + "]");
      case 3: return Parse("{}");
      case 4: return Parse("{\"c\":" + std::to_string(pick(3)) + "}");
      default: return Parse("null");
    }
  };
  if (pick(12) == 0) return "{\"a\":" + std::to_string(pick(5)) + "}";
  JsonPath path;
  int depth = 1 + pick(3);
  for (int d = 0; d < depth; ++d) path.push_back(std::string(1, static_cast<char>('a' + pick(3))));
  bool remove = pick(3) == 0;
  JsonValue* at = &doc;
  for (size_t d = 0; d < path.size(); ++d) {
    bool last = d + 1 == path.size();
    auto it = std::lower_bound(at->members.begin(), at->members.end(), path[d],
                               [](const auto& m, const std::string& k) { return m.first < k; });
    bool found = it != at->members.end() && it->first == path[d];
    if (remove && (!found || last)) {
      if (found) at->members.erase(it);
      break;
    }
    if (!found) it = at->members.insert(it, {path[d], Parse("{}")});
    if (last) {
      it->second = leaf();
      break;
    }
    if (!it->second.IsObject()) it->second = Parse("{}");
    at = &it->second;
  }
  return CanonicalJson(doc);
}

TEST(JsonMerge, RandomWritesAndExchangesInAnyOrderConverge) {
  for (unsigned seed = 1; seed <= 300; ++seed) {
    std::mt19937 rng(seed);
    const int kSites = 3;
    std::vector<Replica> r(kSites);
    std::vector<uint64_t> hlc(kSites, 100);
    std::vector<JsonMember> everything;  // every edit any write made, never reduced
    for (int step = 0; step < 40; ++step) {
      int s = static_cast<int>(rng() % kSites);
      if (rng() % 3 != 0) {
        std::string to = RandomWrite(r[s].doc, rng);
        Clock c = At(++hlc[s], static_cast<uint8_t>(s + 1));
        for (JsonEdit& e : DiffJson(Parse(r[s].doc), Parse(to)))
          everything.push_back(JsonMember{e.path, e.present, e.value, c, 0, 0});
        r[s].Write(to, c);
      } else {
        int from = static_cast<int>(rng() % kSites);
        r[s].Receive(r[from]);
        hlc[s] = std::max(hlc[s], hlc[from]);
      }
    }
    for (int round = 0; round < 2; ++round)
      for (int s = 0; s < kSites; ++s)
        for (int from = 0; from < kSites; ++from) r[s].Receive(r[from]);
    // The same document as a replica that received every member ever written, unreduced.
    Replica all;
    std::shuffle(everything.begin(), everything.end(), rng);
    for (const JsonMember& m : everything)
      if (MemberWins(1, FindMember(all.members, m.path), m.clock)) PutMember(all.members, m);
    all.doc = CanonicalJson(RenderJson(all.members));
    for (int s = 0; s < kSites; ++s) ASSERT_EQ(r[s].doc, r[0].doc) << "seed " << seed;
    ASSERT_EQ(all.doc, r[0].doc) << "seed " << seed;
  }
}

}  // namespace
}  // namespace deltasync
