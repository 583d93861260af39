// The Postgres side: one connection to the upstream database, the check that
// its schema is what this daemon needs, the migrations runner, and the
// mapping of libpqxx failures to typed, classified errors. The connection
// itself is not handed out: Upstream::transact is the only way to the
// server, so every failure on the way is translated, whoever calls.
#pragma once

#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <type_traits>
#include <vector>

#include "lestash_sync/common/error.hpp"
#include "lestash_sync/upstream/value_codec.hpp"

namespace lestash {

// The upstream schema version (migrations/postgres) this build needs.
inline constexpr int kRequiredUpstreamVersion = 9;

// What to run when the upstream schema is missing or too old: the daemon's
// own role cannot change it, so the command names an owner role.
inline constexpr const char* kMigrateCommand =
    "`lestash-syncd migrate --postgres '<conninfo of an owner role>'`";

struct UpstreamColumn {
    std::string name;
    PgType type;
};

struct UpstreamTable {
    std::string name;
    std::vector<UpstreamColumn> columns;  // data columns: no id, no _bookkeeping
    const UpstreamColumn* find(const std::string& column) const;
};
using UpstreamSchema = std::map<std::string, UpstreamTable>;

// "user@host:port/dbname" for messages and status; never the password.
std::string describe_target(const std::string& conninfo);

// Raises the exception being handled (call inside a catch block) as an
// UpstreamError saying what was being done, classified transient or not.
[[noreturn]] void rethrow_as_upstream_error(const std::string& doing);
bool is_transient_sqlstate(const std::string& sqlstate);
// A libpq notice processor logging at debug; `target` is a std::string*
// naming the server (see describe_target).
void log_libpq_notice(void* target, const char* message);

class Upstream {
  public:
    // Connects; raises UpstreamError naming the target (password hidden)
    // and what to check.
    explicit Upstream(const std::string& conninfo);

    const std::string& target() const { return target_; }
    // The connection's socket, for watching (see ResponseGuard).
    int socket() const { return conn_->sock(); }

    // Runs `work(tx)` in a transaction of type Tx (pqxx::work by default;
    // pqxx::read_transaction, pqxx::nontransaction, a repeatable-read one)
    // and commits it when `work` returns; returns what `work` returns.
    // Whatever libpqxx raises on the way leaves as an UpstreamError saying
    // what was being done (`doing`), classified transient or not, so a
    // dropped connection reads as "Postgres unavailable" everywhere and
    // never as a bug. What `work` raises itself passes through unchanged:
    // an UpstreamError (a refusal to show as the server words it), or a
    // LocalDatabaseError from the SQLite work it does meanwhile.
    template <typename Tx = pqxx::work, typename Work>
    auto transact(const std::string& doing, Work&& work) {
        try {
            Tx tx(*conn_);
            if constexpr (std::is_void_v<std::invoke_result_t<Work&, Tx&>>) {
                work(tx);
                tx.commit();
            } else {
                auto result = work(tx);
                tx.commit();
                return result;
            }
        } catch (...) {
            rethrow_as_upstream_error(doing);
        }
    }

    // 0 when the lestash schema is missing.
    int schema_version();
    // Raises a permanent UpstreamError telling to run `lestash-syncd migrate`
    // when the upstream schema is older than this daemon needs.
    void require_schema();
    // Column types of the named tables upstream (lestash.<name>).
    UpstreamSchema read_schema(const std::vector<std::string>& tables);

  private:
    std::string target_;
    std::unique_ptr<pqxx::connection> conn_;
    // Server notices (e.g. "terminating connection") to the log at debug
    // rather than raw on stderr; declared after conn_ so it goes first.
    std::unique_ptr<pqxx::errorhandler> notices_;
};

// Applies every migration in migrations/postgres (built in) in order, each
// in its own transaction; all are idempotent. Returns the resulting version.
int apply_migrations(const std::string& conninfo);

}  // namespace lestash
