#include "common/schema_rules.hpp"

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/utf8.hpp"

namespace deltasync {

namespace {

struct Bookkeeping {
  const char* table;
  const char* why;
};

// Tables each database must keep for itself. Synced, a migration applied on one site is
// marked applied on the others (whose schema then lacks it), and rows the tool creates per
// database in its own order (content types, permissions) collide on their unique keys.
constexpr Bookkeeping kBookkeeping[] = {
    {"django_migrations", "Django's record of the migrations applied to this database"},
    {"django_content_type", "Django creates its rows per database, in its own id order"},
    {"auth_permission", "Django creates its rows per database, in its own id order"},
    {"django_session", "Django's per-database sessions"},
    {"alembic_version", "Alembic's record of the migration applied to this database"},
    {"schema_migrations", "the migration record of Rails, golang-migrate and others"},
    {"ar_internal_metadata", "Rails' per-database metadata"},
    {"flyway_schema_history", "Flyway's record of the migrations applied to this database"},
    {"knex_migrations", "Knex's record of the migrations applied to this database"},
    {"knex_migrations_lock", "Knex's migration lock"},
    {"__EFMigrationsHistory", "Entity Framework's record of the migrations applied to this database"},
    {"_prisma_migrations", "Prisma's record of the migrations applied to this database"},
    {"goose_db_version", "goose's record of the migrations applied to this database"},
    {"SequelizeMeta", "Sequelize's record of the migrations applied to this database"},
};

// {"<column>": {"uuid": "hex32"} | "counter" | {"policy": "counter", ...}, ...}: per column a
// policy name, or an object with at most one representation and at most one policy.
std::vector<ColumnOption> ParseColumnOptions(const nlohmann::json& j) {
  if (!j.is_object())
    throw Error(ErrorCode::kInvalidArgument,
                "deltasync_enable option columns must be an object such as {\"id\": {\"uuid\": \"hex32\"}} or "
                "{\"stock\": \"counter\"}");
  std::vector<ColumnOption> out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const nlohmann::json& c = it.value();
    ColumnOption o;
    o.column = it.key();
    if (c.is_string()) {
      o.policy = ParsePolicy(c.get<std::string>(), it.key());
      o.has_policy = true;
      out.push_back(o);
      continue;
    }
    bool ok = c.is_object() && !c.empty();
    for (auto m = ok ? c.begin() : c.end(); ok && m != c.end(); ++m) {
      if (!m.value().is_string()) {
        ok = false;
      } else if (m.key() == "policy") {
        o.policy = ParsePolicy(m.value().get<std::string>(), it.key());
        o.has_policy = true;
      } else if (!o.has_repr) {
        o.repr = ParseReprForm(m.key(), m.value().get<std::string>());
        o.has_repr = true;
      } else {
        ok = false;
      }
    }
    if (!ok)
      throw Error(ErrorCode::kInvalidArgument, "the options of column \"" + it.key() +
                                                   "\" must be a policy name such as \"counter\", or an object with "
                                                   "one representation and/or a policy, such as {\"uuid\": \"hex32\"} "
                                                   "or {\"policy\": \"counter\"}");
    out.push_back(o);
  }
  return out;
}

}  // namespace

EnableOptions ParseEnableOptions(std::string_view text) {
  EnableOptions o;
  if (text.empty()) return o;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw Error(ErrorCode::kInvalidArgument, "deltasync_enable options are not valid JSON");
  }
  if (j.is_null()) return o;
  if (!j.is_object()) throw Error(ErrorCode::kInvalidArgument, "deltasync_enable options must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "columns") {
      o.columns = ParseColumnOptions(it.value());
      continue;
    }
    bool* flag = it.key() == "force" ? &o.force : it.key() == "restamp" ? &o.restamp : nullptr;
    if (!flag)
      throw Error(ErrorCode::kInvalidArgument,
                  "unknown deltasync_enable option \"" + it.key() + "\" (known: columns, force, restamp)");
    if (!it.value().is_boolean())
      throw Error(ErrorCode::kInvalidArgument, "deltasync_enable option " + it.key() + " must be true or false");
    *flag = it.value().get<bool>();
  }
  return o;
}

void RefuseBookkeepingTable(const std::string& table, const EnableOptions& options) {
  if (options.force) return;
  for (const Bookkeeping& b : kBookkeeping)
    if (EqualsIgnoreAsciiCase(table, b.table))
      throw Error(ErrorCode::kInvalidArgument,
                  "\"" + table + "\" is " + b.why + ": every database keeps its own, so syncing it breaks the fleet "
                  "(docs/applications.md); pass '{\"force\": true}' as deltasync_enable's options to track it anyway");
}

}  // namespace deltasync
