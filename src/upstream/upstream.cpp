// Connection to Postgres, schema checks, migrations and error classification.
#include "lestash_sync/upstream/upstream.hpp"

#include <libpq-fe.h>

#include <spdlog/spdlog.h>

#include "lestash_sync/common/embedded_sql.hpp"
#include "lestash_sync/common/text.hpp"

namespace lestash {

const UpstreamColumn* UpstreamTable::find(const std::string& column) const {
    for (const auto& c : columns)
        if (c.name == column)
            return &c;
    return nullptr;
}

std::string describe_target(const std::string& conninfo) {
    char* err = nullptr;
    PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
    if (!opts) {
        if (err)
            PQfreemem(err);
        return "(unparseable conninfo)";
    }
    std::map<std::string, std::string> v;
    for (auto* o = opts; o->keyword; ++o)
        if (o->val)
            v[o->keyword] = o->val;
    PQconninfoFree(opts);
    if (v.count("service"))
        return "service=" + v["service"];
    auto env = [](const char* name, const char* fallback) {
        const char* e = std::getenv(name);
        return std::string(e && *e ? e : fallback);
    };
    const std::string host = v.count("host") ? v["host"] : env("PGHOST", "localhost");
    const std::string port = v.count("port") ? v["port"] : env("PGPORT", "5432");
    const std::string user = v.count("user") ? v["user"] : env("PGUSER", "(login user)");
    const std::string db = v.count("dbname") ? v["dbname"] : env("PGDATABASE", user.c_str());
    return user + "@" + host + ":" + port + "/" + db;
}

bool is_transient_sqlstate(const std::string& s) {
    return s == "40001" || s == "40P01" || s.rfind("08", 0) == 0 || s == "57P01" || s == "57P02" ||
           s == "57P03" || s.rfind("53", 0) == 0 || s == "55P03" || s == "57014";
}

void rethrow_as_upstream_error(const std::string& doing) {
    try {
        throw;
    } catch (const UpstreamError&) {
        throw;
    } catch (const pqxx::broken_connection& e) {
        throw UpstreamError(doing + ": connection to Postgres lost: " + e.what(), true, "08006");
    } catch (const pqxx::in_doubt_error& e) {
        throw UpstreamError(
            doing + ": commit outcome unknown (will be retried safely): " + e.what(), true,
            "08007");
    } catch (const pqxx::sql_error& e) {
        const std::string& state = e.sqlstate();
        throw UpstreamError(doing + ": " + e.what(), is_transient_sqlstate(state), state);
    } catch (const pqxx::usage_error& e) {
        throw UpstreamError(doing + ": " + e.what(), false);
    } catch (const pqxx::failure& e) {
        throw UpstreamError(doing + ": " + e.what(), true);
    }
}

namespace {

class NoticesToLog : public pqxx::errorhandler {
  public:
    NoticesToLog(pqxx::connection_base& conn, std::string target)
        : pqxx::errorhandler(conn), target_(std::move(target)) {}
    bool operator()(const char msg[]) noexcept override {
        log_libpq_notice(&target_, msg);
        return false;
    }

  private:
    std::string target_;
};

}  // namespace

void log_libpq_notice(void* target, const char* message) {
    spdlog::debug("Postgres at {} says: {}", *static_cast<const std::string*>(target),
                  trim_end(message));
}

Upstream::Upstream(const std::string& conninfo) : target_(describe_target(conninfo)) {
    try {
        conn_ = std::make_unique<pqxx::connection>(conninfo);
    } catch (const pqxx::broken_connection& e) {
        const std::string msg = trim_end(e.what());
        const bool auth = msg.find("password") != std::string::npos ||
                          msg.find("authentication") != std::string::npos;
        throw UpstreamError("cannot connect to Postgres at " + target_ + ": " + msg +
                                (auth ? " — check the user and the password (~/.pgpass or "
                                        "PGPASSFILE; passwords do not belong in sync.toml)"
                                      : " — check [postgres] conninfo in sync.toml and that "
                                        "the server is running and reachable"),
                            !auth, auth ? "28P01" : "08001");
    } catch (...) {
        rethrow_as_upstream_error("connecting to Postgres at " + target_);
    }
    notices_ = std::make_unique<NoticesToLog>(*conn_, target_);
    // Exact values: every float8 printed with its shortest exact form, bytea as hex.
    // Long values this session writes are compressed with lz4 where the server
    // has it: several times faster than the default pglz, which cost a push
    // of 1-2 KB notes an eighth of its server time (values written before
    // stay readable either way).
    // The connection can drop here too: that is an UpstreamError like any other.
    transact<pqxx::nontransaction>(
        "setting up the session with " + target_, [](pqxx::nontransaction& setup) {
            setup.exec(
                "SET extra_float_digits = 3; SET bytea_output = 'hex'; "
                "SET client_encoding = 'UTF8'; "
                "SELECT set_config('default_toast_compression', 'lz4', false) FROM pg_settings "
                "WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)");
        });
}

int Upstream::schema_version() {
    return transact<pqxx::nontransaction>(
        "reading the upstream schema version", [](pqxx::nontransaction& q) {
            if (q.exec1("SELECT to_regclass('lestash.schema_migrations') IS NULL")[0].as<bool>())
                return 0;
            return q.exec1("SELECT coalesce(max(version), 0) FROM lestash.schema_migrations")[0]
                .as<int>();
        });
}

void Upstream::require_schema() {
    const int version = schema_version();
    if (version >= kRequiredUpstreamVersion)
        return;
    throw UpstreamError(
        version == 0
            ? "Postgres at " + target_ + " has no lestash schema — apply the migrations first: " +
                  kMigrateCommand + " (or start docker/docker-compose.yml, which applies them)"
            : "the lestash schema at " + target_ + " is at version " + std::to_string(version) +
                  ", this daemon needs " + std::to_string(kRequiredUpstreamVersion) +
                  " — upgrade it: " + kMigrateCommand,
        false);
}

UpstreamSchema Upstream::read_schema(const std::vector<std::string>& tables) {
    return transact<pqxx::nontransaction>(
        "reading the upstream tables", [&](pqxx::nontransaction& q) {
            UpstreamSchema out;
            for (const auto& table : tables) {
                UpstreamTable t{table, {}};
                const auto rows = q.exec_params(
                    "SELECT column_name, data_type FROM information_schema.columns WHERE "
                    "table_schema = 'lestash' AND table_name = $1 ORDER BY ordinal_position",
                    table);
                if (rows.empty())
                    throw UpstreamError("Postgres at " + target_ + " has no table lestash." +
                                            table + " — apply the migrations: " + kMigrateCommand,
                                        false);
                for (const auto& r : rows) {
                    const std::string name = r[0].as<std::string>();
                    if (name == "id" || name[0] == '_')
                        continue;
                    t.columns.push_back({name, pg_type_from_name(r[1].as<std::string>())});
                }
                out.emplace(table, std::move(t));
            }
            return out;
        });
}

int apply_migrations(const std::string& conninfo) {
    Upstream up(conninfo);
    for (const auto& m : embedded_sql_under("postgres/")) {
        up.transact("applying migration " + std::string(m.name) + " to " + up.target(),
                    [&](pqxx::work& w) { w.exec(std::string(m.text)); });
    }
    return up.schema_version();
}

}  // namespace lestash
