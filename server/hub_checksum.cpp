#include "server/hub_checksum.hpp"

#include <algorithm>
#include <map>

#include "common/checksum.hpp"
#include "common/counter.hpp"
#include "common/json_merge.hpp"
#include "common/key_codec.hpp"
#include "sqlite_common/sqlite_util.hpp"
#include "server/hub_store.hpp"

namespace deltasync::hub {

namespace {

// hub_merge.cpp's name of a counter contribution's cell: "<column>\x1f<site id>".
constexpr char kContributionMark = '\x1f';
// ... and of a json member's: "<column>\x1e<path>" (common/json_merge).
constexpr char kMemberMark = '\x1e';

Value StoredValue(std::string_view bytes) {
  ByteReader in(bytes, "stored value");
  Value v = DecodeValue(in);
  if (!in.AtEnd()) in.Fail("trailing bytes");
  return v;
}

// Adds one live row: plain cells are columns with their value; a counter column is the sum
// of its contributions of the row's current life (common/counter), as every site shows it.
void AddStoredRow(TableDigest& digest, const std::string& table, const ChecksumRow& row, std::vector<Value>& values,
                  std::vector<std::string>& names, std::vector<DigestColumn>& cols) {
  values.clear();
  names.clear();
  std::map<std::string, int64_t> counters;
  std::map<std::string, JsonMembers> documents;
  for (const StoredCell& cell : row.cells) {
    size_t member = cell.col.find(kMemberMark);
    if (member != std::string::npos) {
      // A json member of the row's current life; the site's ordinal stands for its id (it only
      // orders two members of one clock on one path's prefix, never written so by any site).
      JsonMembers& doc = documents[cell.col.substr(0, member)];
      Value v = StoredValue(cell.value);
      JsonMember m;
      std::string error;
      if (cell.cl != row.cl || v.type != ValueType::kText ||
          !DecodeMemberChange(v.s, m.path, m.present, m.value, error))
        continue;
      m.clock.cl = cell.cl;
      m.clock.hlc = cell.hlc;
      for (int b = 0; b < 8; ++b) m.clock.site.bytes[15 - b] = static_cast<uint8_t>(cell.site >> (8 * b));
      PutMember(doc, std::move(m));
      continue;
    }
    size_t mark = cell.col.find(kContributionMark);
    if (mark == std::string::npos) {
      names.push_back(cell.col);
      values.push_back(StoredValue(cell.value));
      continue;
    }
    std::string column = cell.col.substr(0, mark);
    int64_t& sum = counters[column];
    if (cell.cl == row.cl) sum = CounterAdd(sum, CounterValue(StoredValue(cell.value), table, column), table, column);
  }
  for (const auto& [column, sum] : counters) {
    names.push_back(column);
    values.push_back(Value::Integer(sum));
  }
  for (auto& [column, members] : documents) {
    names.push_back(column);
    values.push_back(Value::Text(CanonicalJson(RenderJson(members))));
  }
  cols.clear();
  for (size_t k = 0; k < names.size(); ++k) cols.push_back(DigestColumn{names[k], &values[k]});
  digest.AddRow(DecodeKey(row.key), cols);
}

}  // namespace

nlohmann::json NodeChecksum(ChecksumSource& src, const std::vector<std::string>& tables) {
  std::vector<ChecksumTable> held = src.Tables();
  std::vector<std::pair<std::string, TableDigest>> out;
  std::vector<Value> values;
  std::vector<std::string> names;
  std::vector<DigestColumn> cols;
  for (const ChecksumTable& t : held) {
    if (!tables.empty() && std::find(tables.begin(), tables.end(), t.name) == tables.end()) continue;
    TableDigest digest;
    std::string last;
    bool first = true;
    for (;;) {
      std::vector<ChecksumRow> rows = src.LiveRows(t.id, first ? nullptr : &last, kChecksumChunkRows);
      for (const ChecksumRow& row : rows) AddStoredRow(digest, t.name, row, values, names, cols);
      if (rows.size() < kChecksumChunkRows) break;
      last = rows.back().key;
      first = false;
    }
    out.emplace_back(t.name, digest);
  }
  for (const std::string& name : tables)
    if (std::none_of(out.begin(), out.end(), [&](const auto& e) { return e.first == name; }))
      out.emplace_back(name, TableDigest());
  return ChecksumDocument(out);
}

// The embedded store: a chunk per lock, so pushes go on between chunks.
nlohmann::json SqliteHubStore::Checksum(int64_t node, const std::vector<std::string>& tables) {
  class Source : public ChecksumSource {
   public:
    explicit Source(SqliteHubStore& s, int64_t node) : s_(s), node_(node) {}
    std::vector<ChecksumTable> Tables() override {
      std::lock_guard<std::mutex> lock(s_.mu_);
      std::vector<ChecksumTable> out;
      Stmt q(s_.db_, "SELECT id, name FROM hub_tables WHERE node = ?1 ORDER BY name");
      q.BindInt(1, node_);
      while (q.Step()) out.push_back(ChecksumTable{q.Int(0), std::string(q.Text(1))});
      return out;
    }
    std::vector<ChecksumRow> LiveRows(int64_t tbl, const std::string* after, size_t limit) override {
      std::lock_guard<std::mutex> lock(s_.mu_);
      Exec(s_.db_, "BEGIN");  // the chunk's rows and cells from one snapshot
      try {
        std::vector<ChecksumRow> out;
        Stmt rows(s_.db_, std::string("SELECT key, cl FROM hub_rows WHERE tbl = ?1 AND (cl & 1) = 1") +
                              (after ? " AND key > ?3" : "") + " ORDER BY key LIMIT ?2");
        rows.BindInt(1, tbl);
        rows.BindInt(2, static_cast<int64_t>(limit));
        if (after) rows.BindBlob(3, *after);
        Stmt cells(s_.db_, "SELECT col, value, cl FROM hub_cells WHERE tbl = ?1 AND key = ?2");
        while (rows.Step()) {
          ChecksumRow r{std::string(rows.Blob(0)), rows.Int(1), {}};
          cells.BindInt(1, tbl);
          cells.BindBlob(2, r.key);
          while (cells.Step()) {
            StoredCell c;
            c.col = std::string(cells.Text(0));
            c.value = std::string(cells.Blob(1));
            c.cl = cells.Int(2);
            r.cells.push_back(std::move(c));
          }
          cells.Reset();
          out.push_back(std::move(r));
        }
        rows.Reset();
        Exec(s_.db_, "COMMIT");
        return out;
      } catch (...) {
        sqlite3_exec(s_.db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
      }
    }

   private:
    SqliteHubStore& s_;
    int64_t node_;
  } src(*this, node);
  return NodeChecksum(src, tables);
}

}  // namespace deltasync::hub
