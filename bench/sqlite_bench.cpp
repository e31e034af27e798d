// deltasync_bench_sqlite: the SQLite targets of SPEC section 7, measured in one run.
//
//   1. INSERT of N rows (default 100,000) in one transaction, plain table vs tracked table.
//   2. UPDATE of one column of those rows in one transaction, plain vs tracked.
//   3. deltasync_changes(0) after the insert, and deltasync_apply of that payload into an
//      empty tracked replica, checked row for row against the source.
//   4. Wire size of that payload per row: raw JSON and zstd levels 3 and 19; the same model
//      in the binary codec, raw and zstd; and both codecs' encode/decode times.
//
// Every workload runs on fresh file databases in a temporary directory, with SQLite's
// default PRAGMAs (journal_mode=delete, synchronous=full, default cache) for plain and tracked
// alike; each time is the best (minimum) of DELTASYNC_BENCH_REPS repetitions (default 3).
// A benchmark is not a test: it exits 0 whatever the timings, and non-zero only when
// something does not work at all (SQL error, replica differs from the source).
//
// Usage: deltasync_bench_sqlite [--rows N] [--shuffled] [--cache-kib K] [--dir DIR]
//   --rows N       rows per workload (default 100,000)
//   --shuffled     insert ids in shuffled order (default: sequential, id-00000000 upwards)
//   --cache-kib K  PRAGMA cache_size = -K on every connection (default: SQLite's default)
//   --dir DIR      where the databases go (default: a fresh directory under $TMPDIR or /tmp)
#include <sqlite3.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "common/compress.hpp"
#include "common/payload.hpp"
#include "common/payload_binary.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// ---------------------------------------------------------------------------------------
// A connection with deltasync.so loaded (plain and tracked databases both load it, so the
// only difference between them is deltasync_enable).

int g_cache_kib = 0;  // 0: SQLite's default cache_size

class Db {
 public:
  explicit Db(const std::string& path) : path_(path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) throw std::runtime_error("cannot open " + path);
    sqlite3_enable_load_extension(db_, 1);
    char* err = nullptr;
    if (sqlite3_load_extension(db_, DELTASYNC_SQLITE_EXT, "sqlite3_deltasync_init", &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      throw std::runtime_error("cannot load " DELTASYNC_SQLITE_EXT ": " + msg);
    }
    if (g_cache_kib > 0) Exec("PRAGMA cache_size = -" + std::to_string(g_cache_kib));
  }
  ~Db() {
    if (db_) sqlite3_close(db_);
  }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  sqlite3* get() const { return db_; }

  void Exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      throw std::runtime_error(sql.substr(0, 60) + ": " + msg);
    }
  }

  sqlite3_stmt* Prepare(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
      throw std::runtime_error(sql.substr(0, 60) + ": " + sqlite3_errmsg(db_));
    return st;
  }

  // The first column of the first row as text; text_param (if given) is bound to ?1.
  std::string Text(const std::string& sql, const std::string* text_param = nullptr) {
    sqlite3_stmt* st = Prepare(sql);
    if (text_param)
      sqlite3_bind_text64(st, 1, text_param->data(), text_param->size(), SQLITE_STATIC, SQLITE_UTF8);
    int rc = sqlite3_step(st);
    std::string out;
    if (rc == SQLITE_ROW) {
      auto p = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
      out.assign(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(st, 0)));
    }
    std::string err = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? "" : sqlite3_errmsg(db_);
    sqlite3_finalize(st);
    if (!err.empty()) throw std::runtime_error(sql.substr(0, 60) + ": " + err);
    return out;
  }

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

void RemoveDbFiles(const std::string& path) {
  for (const char* suffix : {"", "-journal", "-wal", "-shm"}) unlink((path + suffix).c_str());
}

// ---------------------------------------------------------------------------------------
// The data set: deterministic, generated once, bound by the INSERT from memory.

struct Rows {
  std::vector<std::string> id, a;
  std::vector<int64_t> b;
};

uint64_t Next(uint64_t& s) {  // splitmix64
  uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// a: two pronounceable pseudo-words of 2-4 syllables ("kotare mubi"), 9-17 characters;
// b: an integer in [0, 1,000,000).
Rows MakeRows(int n, bool shuffled) {
  static const char kCons[] = "bcdfghjklmnprstvwxyz";
  static const char kVow[] = "aeiou";
  uint64_t s = 42;
  Rows r;
  r.id.resize(n);
  r.a.resize(n);
  r.b.resize(n);
  std::vector<int> order(n);
  for (int k = 0; k < n; ++k) order[k] = k;
  if (shuffled)
    for (int k = n - 1; k > 0; --k) std::swap(order[k], order[Next(s) % static_cast<uint64_t>(k + 1)]);
  for (int k = 0; k < n; ++k) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "id-%08d", order[k]);
    r.id[k] = buf;
    std::string a;
    for (int w = 0; w < 2; ++w) {
      if (w) a.push_back(' ');
      int syl = 2 + static_cast<int>(Next(s) % 3);
      for (int y = 0; y < syl; ++y) {
        a.push_back(kCons[Next(s) % 20]);
        a.push_back(kVow[Next(s) % 5]);
      }
    }
    r.a[k] = a;
    r.b[k] = static_cast<int64_t>(Next(s) % 1000000);
  }
  return r;
}

const char* kSchema = "CREATE TABLE t(id TEXT PRIMARY KEY, a TEXT, b INTEGER)";

double TimedInsert(Db& db, const Rows& rows) {
  auto t0 = Clock::now();
  db.Exec("BEGIN");
  sqlite3_stmt* st = db.Prepare("INSERT INTO t(id, a, b) VALUES (?1, ?2, ?3)");
  for (size_t k = 0; k < rows.id.size(); ++k) {
    sqlite3_bind_text(st, 1, rows.id[k].data(), static_cast<int>(rows.id[k].size()), SQLITE_STATIC);
    sqlite3_bind_text(st, 2, rows.a[k].data(), static_cast<int>(rows.a[k].size()), SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, rows.b[k]);
    if (sqlite3_step(st) != SQLITE_DONE) {
      std::string err = sqlite3_errmsg(db.get());
      sqlite3_finalize(st);
      throw std::runtime_error("insert: " + err);
    }
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  db.Exec("COMMIT");
  return MsSince(t0);
}

double TimedUpdate(Db& db) {
  auto t0 = Clock::now();
  db.Exec("BEGIN");
  db.Exec("UPDATE t SET b = b + 1");
  db.Exec("COMMIT");
  return MsSince(t0);
}

// Count and an exact, order-independent-of-storage digest of t (rows read in id order,
// FNV-1a over storage class and bytes of every value), plus two readable aggregates.
struct Digest {
  int64_t count = 0, sum_len_a = 0, sum_b = 0;
  uint64_t fnv = 1469598103934665603ULL;
  bool operator==(const Digest& o) const {
    return count == o.count && sum_len_a == o.sum_len_a && sum_b == o.sum_b && fnv == o.fnv;
  }
};

Digest DigestOf(Db& db) {
  Digest d;
  auto mix = [&d](const void* p, size_t n) {
    auto c = static_cast<const unsigned char*>(p);
    for (size_t k = 0; k < n; ++k) d.fnv = (d.fnv ^ c[k]) * 1099511628211ULL;
  };
  sqlite3_stmt* st = db.Prepare("SELECT id, a, b FROM t ORDER BY id");
  while (sqlite3_step(st) == SQLITE_ROW) {
    d.count++;
    for (int c = 0; c < 3; ++c) {
      int type = sqlite3_column_type(st, c);
      mix(&type, sizeof type);
      if (type == SQLITE_INTEGER) {
        int64_t v = sqlite3_column_int64(st, c);
        mix(&v, sizeof v);
        if (c == 2) d.sum_b += v;
      } else if (type != SQLITE_NULL) {
        const void* p = sqlite3_column_blob(st, c);
        int n = sqlite3_column_bytes(st, c);
        mix(p, static_cast<size_t>(n));
        if (c == 1) d.sum_len_a += n;
      }
    }
  }
  sqlite3_finalize(st);
  return d;
}

int64_t JsonInt(const std::string& json, const char* key) {
  std::string k = std::string("\"") + key + "\":";
  size_t p = json.find(k);
  if (p == std::string::npos) return -1;
  return std::strtoll(json.c_str() + p + k.size(), nullptr, 10);
}

struct Best {
  double ms = std::numeric_limits<double>::infinity();
  void Add(double v) { ms = std::min(ms, v); }
};

struct Line {
  std::string name, value, target, verdict;
};

std::string Fmt(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

int Run(int n, bool shuffled, int reps, std::string dir) {
  const int64_t expected_changes = 2LL * n;
  std::printf("deltasync SQLite benchmark: SQLite %s, extension %s\n", sqlite3_libversion(), DELTASYNC_SQLITE_EXT);
  std::printf("rows=%d (ids 'id-%%08d' in %s order; a = two pseudo-words, 9-17 chars; b = int in [0,1e6))\n", n,
              shuffled ? "shuffled" : "sequential");
  std::printf("reps=%d (best of), temp dir %s\n", reps, dir.c_str());

  Rows rows = MakeRows(n, shuffled);

  Best ins_plain, ins_tracked, upd_plain, upd_tracked, changes_ms, apply_ms, decode_ms, encode_ms;
  Best bin_encode_ms, bin_decode_ms, bin_unzstd_decode_ms;
  std::string payload, binary, binary_z3;
  bool binary_ok = true;
  std::string apply_result;
  bool all_matched = true;
  Digest src_digest, rep_digest;
  std::string pragmas;

  for (int rep = 0; rep < reps; ++rep) {
    double cur_ins[2] = {0, 0}, cur_upd[2] = {0, 0}, cur_changes = 0, cur_apply = 0;
    // Alternate which side runs first so that neither always gets the warmer machine.
    for (int side = 0; side < 2; ++side) {
      bool tracked = (side == 0) == (rep % 2 == 1);
      std::string path = dir + (tracked ? "/tracked.db" : "/plain.db");
      RemoveDbFiles(path);
      {
        Db db(path);
        db.Exec(kSchema);
        if (pragmas.empty())
          pragmas = "journal_mode=" + db.Text("PRAGMA journal_mode") + " synchronous=" + db.Text("PRAGMA synchronous") +
                    " page_size=" + db.Text("PRAGMA page_size") + " cache_size=" + db.Text("PRAGMA cache_size");
        if (tracked) db.Text("SELECT deltasync_enable('t')");
        double ins = TimedInsert(db, rows);
        (tracked ? ins_tracked : ins_plain).Add(ins);
        cur_ins[tracked] = ins;
        if (tracked) {
          auto t0 = Clock::now();
          std::string p = db.Text("SELECT deltasync_changes(0)");
          cur_changes = MsSince(t0);
          changes_ms.Add(cur_changes);
          src_digest = DigestOf(db);
          payload = std::move(p);
        }
        double upd = TimedUpdate(db);
        (tracked ? upd_tracked : upd_plain).Add(upd);
        cur_upd[tracked] = upd;
      }
      RemoveDbFiles(path);
    }

    // Apply the insert's payload into an empty tracked replica.
    std::string rpath = dir + "/replica.db";
    RemoveDbFiles(rpath);
    {
      Db db(rpath);
      db.Exec(kSchema);
      db.Text("SELECT deltasync_enable('t')");
      auto t0 = Clock::now();
      db.Exec("BEGIN");
      apply_result = db.Text("SELECT deltasync_apply(?1)", &payload);
      db.Exec("COMMIT");
      cur_apply = MsSince(t0);
      apply_ms.Add(cur_apply);
      rep_digest = DigestOf(db);
      if (!(rep_digest == src_digest)) all_matched = false;
    }
    RemoveDbFiles(rpath);

    // The JSON codec alone (the same common/ code the extension links statically).
    {
      auto t0 = Clock::now();
      deltasync::Payload decoded = deltasync::DecodeJson(payload);
      decode_ms.Add(MsSince(t0));
      t0 = Clock::now();
      std::string again = deltasync::EncodeJson(decoded);
      encode_ms.Add(MsSince(t0));
      if (again.size() != payload.size()) std::printf("note: re-encoded payload differs in size\n");
      // The binary codec of the same model.
      t0 = Clock::now();
      binary = deltasync::EncodeBinary(decoded);
      bin_encode_ms.Add(MsSince(t0));
      t0 = Clock::now();
      deltasync::Payload from_binary = deltasync::DecodeBinary(binary);
      bin_decode_ms.Add(MsSince(t0));
      binary_z3 = deltasync::ZstdCompress(binary, 3);
      t0 = Clock::now();
      deltasync::Payload from_z3 = deltasync::DecodeBinary(deltasync::ZstdDecompress(binary_z3, size_t{1} << 30));
      bin_unzstd_decode_ms.Add(MsSince(t0));
      if (deltasync::EncodeJson(from_binary) != again || deltasync::EncodeBinary(from_z3) != binary) {
        std::printf("binary codec: the round trip differs from the JSON model\n");
        binary_ok = false;
      }
    }
    std::printf("  rep %d: insert plain %.1f tracked %.1f | update plain %.1f tracked %.1f | changes %.1f | "
                "apply %.1f ms\n",
                rep + 1, cur_ins[0], cur_ins[1], cur_upd[0], cur_upd[1], cur_changes, cur_apply);
    std::fflush(stdout);
  }
  std::printf("PRAGMAs (same for plain, tracked, replica): %s\n", pragmas.c_str());

  // Column changes carried by the payload (what the rate is counted in).
  deltasync::Payload decoded = deltasync::DecodeJson(payload);
  int64_t col_changes = 0, payload_rows = 0;
  for (const auto& t : decoded.tables) {
    payload_rows += static_cast<int64_t>(t.rows.size());
    for (const auto& r : t.rows) col_changes += static_cast<int64_t>(r.changes.size());
  }

  // Wire size.
  auto compress = [&](const std::string& in, int level, double* ms) {
    std::string out(ZSTD_compressBound(in.size()), '\0');
    auto t0 = Clock::now();
    size_t z = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), level);
    if (ms) *ms = MsSince(t0);
    if (ZSTD_isError(z)) throw std::runtime_error(std::string("zstd: ") + ZSTD_getErrorName(z));
    return static_cast<double>(z);
  };
  double z3_ms = 0, z19_ms = 0;
  double z3 = compress(payload, 3, &z3_ms);
  double z19 = compress(payload, 19, &z19_ms);
  // Floor for reference: the same rows as bare CSV (no clocks, no names), compressed.
  std::string csv;
  for (int k = 0; k < n; ++k) csv += rows.id[k] + "," + rows.a[k] + "," + std::to_string(rows.b[k]) + "\n";
  double csv_z3 = compress(csv, 3, nullptr);
  double csv_z19 = compress(csv, 19, nullptr);

  double ins_ratio = ins_tracked.ms / ins_plain.ms;
  double upd_ratio = upd_tracked.ms / upd_plain.ms;
  double apply_rate = static_cast<double>(col_changes) / (apply_ms.ms / 1000.0);
  double raw_per_row = static_cast<double>(payload.size()) / n;
  double bin_z3_ms = 0;
  double bin_z3 = compress(binary, 3, &bin_z3_ms);
  double bin_z19 = compress(binary, 19, nullptr);
  double bin_raw_per_row = static_cast<double>(binary.size()) / n;

  std::printf("\n-- 1. insert %d rows, one transaction\n", n);
  std::printf("   plain %.1f ms, tracked %.1f ms, ratio %.2f\n", ins_plain.ms, ins_tracked.ms, ins_ratio);
  std::printf("-- 2. UPDATE t SET b = b + 1 (%d rows), one transaction\n", n);
  std::printf("   plain %.1f ms, tracked %.1f ms, ratio %.2f\n", upd_plain.ms, upd_tracked.ms, upd_ratio);
  std::printf("-- 3. sync of the insert\n");
  std::printf("   deltasync_changes(0): %.1f ms, %zu bytes, %" PRId64 " rows, %" PRId64 " column changes%s\n",
              changes_ms.ms, payload.size(), payload_rows, col_changes,
              col_changes == expected_changes ? "" : " (EXPECTED 2 x rows)");
  std::printf("   of which JSON encode (common/ EncodeJson alone): %.1f ms\n", encode_ms.ms);
  std::printf("   deltasync_apply into empty replica: %.1f ms -> %.0f column changes/s\n", apply_ms.ms, apply_rate);
  std::printf("   of which JSON decode (common/ DecodeJson alone): %.1f ms (%.0f%%)\n", decode_ms.ms,
              100.0 * decode_ms.ms / apply_ms.ms);
  std::printf("   apply result: %s\n", apply_result.c_str());
  if (JsonInt(apply_result, "applied") != col_changes || JsonInt(apply_result, "rows") != n)
    std::printf("   note: apply did not report %" PRId64 " applied changes over %d rows\n", col_changes, n);
  std::printf("   source  : count %" PRId64 " sum(length(a)) %" PRId64 " sum(b) %" PRId64 " fnv %016" PRIx64 "\n",
              src_digest.count, src_digest.sum_len_a, src_digest.sum_b, src_digest.fnv);
  std::printf("   replica : count %" PRId64 " sum(length(a)) %" PRId64 " sum(b) %" PRId64 " fnv %016" PRIx64 "\n",
              rep_digest.count, rep_digest.sum_len_a, rep_digest.sum_b, rep_digest.fnv);
  std::printf("   replica matches source (every rep): %s\n", all_matched ? "yes" : "NO");
  std::printf("-- 4. wire size\n");
  std::printf("   raw JSON %zu bytes = %.1f bytes/row\n", payload.size(), raw_per_row);
  std::printf("   zstd -3  %.0f bytes = %.2f bytes/row (%.0f ms)\n", z3, z3 / n, z3_ms);
  std::printf("   zstd -19 %.0f bytes = %.2f bytes/row (%.0f ms)\n", z19, z19 / n, z19_ms);
  std::printf("   raw binary %zu bytes = %.1f bytes/row\n", binary.size(), bin_raw_per_row);
  std::printf("   binary zstd -3  %.0f bytes = %.2f bytes/row (%.0f ms)\n", bin_z3, bin_z3 / n, bin_z3_ms);
  std::printf("   binary zstd -19 %.0f bytes = %.2f bytes/row\n", bin_z19, bin_z19 / n);
  std::printf("   codec times (common/ alone, best of reps): JSON encode %.1f ms, decode %.1f ms; "
              "binary encode %.1f ms, decode %.1f ms (zstd-3 decompress + decode %.1f ms)\n",
              encode_ms.ms, decode_ms.ms, bin_encode_ms.ms, bin_decode_ms.ms, bin_unzstd_decode_ms.ms);
  std::printf("   reference, the bare rows as CSV (%zu bytes): zstd -3 %.2f, zstd -19 %.2f bytes/row\n", csv.size(),
              csv_z3 / n, csv_z19 / n);

  std::vector<Line> lines;
  auto verdict = [](bool ok) { return std::string(ok ? "meets" : "misses"); };
  lines.push_back({"insert tracked/plain", Fmt("%.2f", ins_ratio), "<= 1.5", verdict(ins_ratio <= 1.5)});
  lines.push_back({"update tracked/plain", Fmt("%.2f", upd_ratio), "<= 2.0", verdict(upd_ratio <= 2.0)});
  lines.push_back({"apply rate (col changes/s)", Fmt("%.0f", apply_rate), ">= 500000", verdict(apply_rate >= 500000)});
  lines.push_back({"replica equals source", all_matched ? "yes" : "no", "yes", verdict(all_matched)});
  lines.push_back({"wire zstd-3 bytes/row", Fmt("%.2f", z3 / n), "<= 20", verdict(z3 / n <= 20)});
  lines.push_back({"wire zstd-19 bytes/row", Fmt("%.2f", z19 / n), "<= 20", verdict(z19 / n <= 20)});
  lines.push_back({"wire raw JSON bytes/row", Fmt("%.1f", raw_per_row), "-", "-"});
  lines.push_back({"wire binary zstd-3 bytes/row", Fmt("%.2f", bin_z3 / n), "<= 20", verdict(bin_z3 / n <= 20)});
  lines.push_back({"wire binary zstd-19 B/row", Fmt("%.2f", bin_z19 / n), "<= 20", verdict(bin_z19 / n <= 20)});
  lines.push_back({"wire raw binary bytes/row", Fmt("%.1f", bin_raw_per_row), "-", "-"});
  lines.push_back({"JSON encode / decode (ms)", Fmt("%.1f", encode_ms.ms) + " / " + Fmt("%.1f", decode_ms.ms), "-", "-"});
  lines.push_back({"binary encode / decode (ms)", Fmt("%.1f", bin_encode_ms.ms) + " / " + Fmt("%.1f", bin_decode_ms.ms),
                   "-", "-"});
  lines.push_back({"changes(0) time (ms)", Fmt("%.1f", changes_ms.ms), "-", "-"});
  lines.push_back({"apply JSON decode share", Fmt("%.0f%%", 100.0 * decode_ms.ms / apply_ms.ms), "-", "-"});

  std::printf("\n%-28s %14s %12s  %s\n", "measure", "value", "target", "verdict");
  std::printf("%s\n", std::string(66, '-').c_str());
  for (const Line& l : lines)
    std::printf("%-28s %14s %12s  %s\n", l.name.c_str(), l.value.c_str(), l.target.c_str(), l.verdict.c_str());
  if (!binary_ok) std::printf("binary codec round trip: FAILED\n");
  return all_matched && binary_ok && col_changes == expected_changes ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 100000;
  bool shuffled = false;
  std::string dir;
  for (int k = 1; k < argc; ++k) {
    std::string arg = argv[k];
    if (arg == "--rows" && k + 1 < argc) {
      n = std::atoi(argv[++k]);
    } else if (arg == "--shuffled") {
      shuffled = true;
    } else if (arg == "--cache-kib" && k + 1 < argc) {
      g_cache_kib = std::atoi(argv[++k]);
    } else if (arg == "--dir" && k + 1 < argc) {
      dir = argv[++k];
    } else {
      std::fprintf(stderr, "usage: %s [--rows N] [--shuffled] [--cache-kib K] [--dir DIR]\n", argv[0]);
      return 2;
    }
  }
  if (n <= 0) {
    std::fprintf(stderr, "--rows must be positive\n");
    return 2;
  }
  int reps = 3;
  if (const char* e = std::getenv("DELTASYNC_BENCH_REPS")) reps = std::max(1, std::atoi(e));

  bool own_dir = dir.empty();
  if (own_dir) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/deltasync-bench-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) {
      std::perror("mkdtemp");
      return 2;
    }
    dir = buf.data();
  }
  int rc;
  try {
    rc = Run(n, shuffled, reps, dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "benchmark failed: %s\n", e.what());
    rc = 1;
  }
  if (own_dir) rmdir(dir.c_str());
  return rc;
}
