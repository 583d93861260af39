// A small RAII layer over the SQLite C API: one owner for each sqlite3* and
// sqlite3_stmt*, errors raised as LocalDatabaseError naming the database file.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "lestash_sync/common/error.hpp"

namespace lestash::sqlite {

// One SQLite value with its storage class, kept exactly as stored.
struct Blob {
    std::string bytes;
    bool operator==(const Blob&) const = default;
};
using Value = std::variant<std::monostate, std::int64_t, double, std::string, Blob>;

enum class StorageClass { null, integer, real, text, blob };
StorageClass storage_class(const Value& v);
const char* storage_class_name(StorageClass c);

// Quotes an identifier for SQL ("name" with inner quotes doubled). Every
// identifier that reaches generated SQL goes through this function.
std::string quote_identifier(std::string_view name);
// Quotes a string literal for generated trigger SQL ('text', quotes doubled).
std::string quote_literal(std::string_view text);

class Connection;

namespace detail {

// The prepared statements a connection keeps after use, by SQL text, so
// that the next Statement with the same text skips SQLite's parser
// (preparing was a quarter of a receiving daemon's CPU: issue 17). Each
// handle belongs to one Statement at a time; one given back is reset with
// its bindings cleared. SQLite prepares a kept one again by itself after a
// schema change. The least recently given back goes when it is full.
class StatementPool {
  public:
    StatementPool() = default;
    ~StatementPool();
    StatementPool(const StatementPool&) = delete;
    StatementPool& operator=(const StatementPool&) = delete;

    // A kept handle for exactly this text, or nullptr.
    sqlite3_stmt* take(std::string_view sql);
    void give(std::string sql, sqlite3_stmt* stmt) noexcept;

  private:
    struct Entry {
        std::string sql;
        sqlite3_stmt* stmt;
        std::uint64_t given_at;
    };
    static constexpr std::size_t kCapacity = 128;
    std::vector<Entry> entries_;
    std::uint64_t clock_ = 0;
};

}  // namespace detail

class Statement {
  public:
    Statement(Connection& db, std::string_view sql);
    ~Statement();
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    Statement(Statement&& other) noexcept
        : db_(other.db_),
          pool_(std::move(other.pool_)),
          sql_(std::move(other.sql_)),
          stmt_(std::exchange(other.stmt_, nullptr)) {}

    Statement& bind(int index, const Value& v);
    Statement& bind(int index, std::int64_t v);
    Statement& bind(int index, std::string_view v);
    Statement& bind(int index, const std::string& v) { return bind(index, std::string_view(v)); }
    Statement& bind(int index, const char* v) { return bind(index, std::string_view(v)); }
    Statement& bind_null(int index);
    template <typename... Args>
    Statement& bind_all(const Args&... args) {
        int i = 1;
        (bind(i++, args), ...);
        return *this;
    }

    // Returns true while a row is available.
    bool step();
    // Runs to completion, for statements that return no rows.
    void run();
    void reset();

    int column_count() const;
    std::string column_name(int i) const;
    bool is_null(int i) const;
    std::int64_t integer(int i) const;
    double real(int i) const;
    std::string text(int i) const;
    Value value(int i) const;

    sqlite3_stmt* handle() const { return stmt_; }

  private:
    friend class Connection;
    // A handle Connection::exec prepared (and found to be one statement).
    Statement(Connection& db, std::string sql, sqlite3_stmt* stmt);

    Connection* db_;
    std::weak_ptr<detail::StatementPool> pool_;  // where the handle goes back
    std::string sql_;  // the pool's key; empty: not kept (a text of several statements)
    sqlite3_stmt* stmt_ = nullptr;
};

class Connection {
  public:
    // Opens path with the given sqlite3_open_v2 flags; raises
    // LocalDatabaseError naming the file on failure.
    Connection(const std::string& path, int flags);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    Connection(Connection&& other) noexcept
        : path_(std::move(other.path_)),
          db_(std::exchange(other.db_, nullptr)),
          pool_(std::move(other.pool_)) {}

    // One statement runs as a kept prepared one (see detail::StatementPool);
    // several, through sqlite3_exec.
    void exec(std::string_view sql);
    std::int64_t query_int(std::string_view sql);
    std::optional<std::string> query_text(std::string_view sql);
    std::int64_t last_insert_rowid() const;
    int changes() const;

    const std::string& path() const { return path_; }
    sqlite3* handle() const { return db_; }

    // Raises LocalDatabaseError with the current error, what was being done,
    // and the database path.
    [[noreturn]] void fail(std::string_view doing) const;

  private:
    friend class Statement;
    std::string path_;
    sqlite3* db_ = nullptr;
    std::shared_ptr<detail::StatementPool> pool_ = std::make_shared<detail::StatementPool>();
};

// BEGIN IMMEDIATE ... COMMIT, rolled back if the scope exits by exception.
class Transaction {
  public:
    enum class Mode { deferred, immediate };
    explicit Transaction(Connection& db, Mode mode = Mode::immediate);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit();

  private:
    Connection& db_;
    bool open_ = true;
};

// BEGIN IMMEDIATE ... COMMIT on the engine's own connection, whose COMMIT
// does not wait for the disk: PRAGMA synchronous = NORMAL for this
// transaction alone (the level cannot change inside one), the saved
// level (FULL or EXTRA) again after. In WAL mode a crash of the process
// loses nothing; a power loss may lose this transaction and what committed
// after it, never part of it, until the next commit that waits for the disk (any connection's,
// the app's included) or a checkpoint. Only for transactions whose loss
// the protocol recovers (docs/architecture.md, "Durability of the
// engine's own transactions"): the push's bookkeeping and every apply
// (ApplyScope) but verify --repair's. The app's connection is never touched.
// With `defer` false it is an ordinary transaction that waits for the disk,
// for callers that choose per transaction (ApplyScope). The commit checks
// that the saved level is back and raises LocalDatabaseError if it is not.
class DiskDeferredTransaction {
  public:
    explicit DiskDeferredTransaction(Connection& db, bool defer = true);
    ~DiskDeferredTransaction();
    DiskDeferredTransaction(const DiskDeferredTransaction&) = delete;
    DiskDeferredTransaction& operator=(const DiskDeferredTransaction&) = delete;
    void commit();

  private:
    struct Relaxed {
        Relaxed(Connection& db, bool defer);
        ~Relaxed() { restore(); }
        // Whether the saved level is back (or nothing was lowered).
        bool restore() noexcept;
        Connection& db;
        std::int64_t saved;
    };
    Relaxed relaxed_;  // before the transaction, restored after it
    Transaction txn_;
};

}  // namespace lestash::sqlite
