// RAII wrappers over the SQLite C API (see include/lestash_sync/common/sqlite.hpp).
#include "lestash_sync/common/sqlite.hpp"

#include <algorithm>
#include <string>

namespace lestash::sqlite {

StorageClass storage_class(const Value& v) {
    switch (v.index()) {
        case 0:
            return StorageClass::null;
        case 1:
            return StorageClass::integer;
        case 2:
            return StorageClass::real;
        case 3:
            return StorageClass::text;
        default:
            return StorageClass::blob;
    }
}

const char* storage_class_name(StorageClass c) {
    switch (c) {
        case StorageClass::null:
            return "null";
        case StorageClass::integer:
            return "integer";
        case StorageClass::real:
            return "real";
        case StorageClass::text:
            return "text";
        case StorageClass::blob:
            return "blob";
    }
    return "?";
}

std::string quote_identifier(std::string_view name) {
    std::string out = "\"";
    for (char c : name) {
        if (c == '"')
            out += '"';
        out += c;
    }
    return out + '"';
}

std::string quote_literal(std::string_view text) {
    std::string out = "'";
    for (char c : text) {
        if (c == '\'')
            out += '\'';
        out += c;
    }
    return out + '\'';
}

// ---- Connection -------------------------------------------------------------

namespace {

// Whether `sql` is one statement: nothing but blanks and semicolons after
// where sqlite3_prepare_v2 stopped (`tail`).
bool nothing_after(std::string_view sql, const char* tail) {
    return sql.substr(static_cast<size_t>(tail - sql.data())).find_first_not_of(" \t\r\n;") ==
           std::string_view::npos;
}

}  // namespace

Connection::Connection(const std::string& path, int flags) : path_(path) {
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
        std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close_v2(db_);
        db_ = nullptr;
        throw LocalDatabaseError("cannot open " + path + ": " + msg);
    }
    sqlite3_extended_result_codes(db_, 1);
}

Connection::~Connection() {
    pool_.reset();  // finalizes the kept statements; ones still in use finalize themselves
    if (db_)
        sqlite3_close_v2(db_);
}

void Connection::fail(std::string_view doing) const {
    throw LocalDatabaseError(std::string(doing) + " failed on " + path_ + ": " +
                             sqlite3_errmsg(db_));
}

void Connection::exec(std::string_view sql) {
    sqlite3_stmt* stmt = pool_ ? pool_->take(sql) : nullptr;
    if (!stmt && pool_) {
        const char* tail = nullptr;
        if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, &tail) !=
            SQLITE_OK)
            throw LocalDatabaseError("SQL failed on " + path_ + ": " + sqlite3_errmsg(db_));
        if (!stmt || !nothing_after(sql, tail)) {
            sqlite3_finalize(stmt);  // several statements (or none): sqlite3_exec below
            stmt = nullptr;
        }
    }
    if (stmt) {
        Statement st(*this, std::string(sql), stmt);
        int rc;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        }
        if (rc != SQLITE_DONE) {
            std::string msg = sqlite3_errmsg(db_);
            sqlite3_reset(stmt);
            throw LocalDatabaseError("SQL failed on " + path_ + ": " + msg);
        }
        return;
    }
    std::string owned(sql);
    char* err = nullptr;
    if (sqlite3_exec(db_, owned.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : sqlite3_errmsg(db_);
        sqlite3_free(err);
        throw LocalDatabaseError("SQL failed on " + path_ + ": " + msg);
    }
}

std::int64_t Connection::query_int(std::string_view sql) {
    Statement st(*this, sql);
    return st.step() ? st.integer(0) : 0;
}

std::optional<std::string> Connection::query_text(std::string_view sql) {
    Statement st(*this, sql);
    if (!st.step() || st.is_null(0))
        return std::nullopt;
    return st.text(0);
}

std::int64_t Connection::last_insert_rowid() const {
    return sqlite3_last_insert_rowid(db_);
}
int Connection::changes() const {
    return sqlite3_changes(db_);
}

// ---- Statement --------------------------------------------------------------

// ---- StatementPool ----------------------------------------------------------

namespace detail {

StatementPool::~StatementPool() {
    for (const auto& e : entries_) sqlite3_finalize(e.stmt);
}

sqlite3_stmt* StatementPool::take(std::string_view sql) {
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        if (it->sql.size() != sql.size() || it->sql != sql)
            continue;
        sqlite3_stmt* stmt = it->stmt;
        *it = std::move(entries_.back());
        entries_.pop_back();
        return stmt;
    }
    return nullptr;
}

void StatementPool::give(std::string sql, sqlite3_stmt* stmt) noexcept {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    try {
        if (entries_.size() >= kCapacity) {
            auto oldest = entries_.begin();
            for (auto it = entries_.begin(); it != entries_.end(); ++it)
                if (it->given_at < oldest->given_at)
                    oldest = it;
            sqlite3_finalize(oldest->stmt);
            *oldest = Entry{std::move(sql), stmt, ++clock_};
            return;
        }
        entries_.push_back(Entry{std::move(sql), stmt, ++clock_});
    } catch (...) {
        sqlite3_finalize(stmt);  // out of memory: not kept
    }
}

}  // namespace detail

Statement::Statement(Connection& db, std::string_view sql) : db_(&db), pool_(db.pool_) {
    if (db.pool_)
        stmt_ = db.pool_->take(sql);
    if (stmt_) {
        sql_ = std::string(sql);
        return;
    }
    const char* tail = nullptr;
    if (sqlite3_prepare_v2(db.handle(), sql.data(), static_cast<int>(sql.size()), &stmt_, &tail) !=
        SQLITE_OK) {
        sqlite3_finalize(stmt_);
        stmt_ = nullptr;
        db.fail("preparing \"" + std::string(sql.substr(0, 80)) + "\"");
    }
    // Kept only when the text is this one statement: exec of the same text
    // must not take a handle that runs only its first.
    if (stmt_ && nothing_after(sql, tail))
        sql_ = std::string(sql);
}

Statement::Statement(Connection& db, std::string sql, sqlite3_stmt* stmt)
    : db_(&db), pool_(db.pool_), sql_(std::move(sql)), stmt_(stmt) {}

Statement::~Statement() {
    if (!stmt_)
        return;
    if (const auto pool = pool_.lock(); pool && !sql_.empty())
        pool->give(std::move(sql_), stmt_);
    else
        sqlite3_finalize(stmt_);
}

Statement& Statement::bind(int index, const Value& v) {
    int rc = SQLITE_OK;
    switch (v.index()) {
        case 0:
            rc = sqlite3_bind_null(stmt_, index);
            break;
        case 1:
            rc = sqlite3_bind_int64(stmt_, index, std::get<1>(v));
            break;
        case 2:
            rc = sqlite3_bind_double(stmt_, index, std::get<2>(v));
            break;
        case 3: {
            const auto& s = std::get<3>(v);
            rc = sqlite3_bind_text64(stmt_, index, s.data(), s.size(), SQLITE_TRANSIENT,
                                     SQLITE_UTF8);
            break;
        }
        default: {
            const auto& b = std::get<4>(v).bytes;
            rc = sqlite3_bind_blob64(stmt_, index, b.data(), b.size(), SQLITE_TRANSIENT);
        }
    }
    if (rc != SQLITE_OK)
        db_->fail("binding a parameter");
    return *this;
}

Statement& Statement::bind(int index, std::int64_t v) {
    return bind(index, Value{v});
}
Statement& Statement::bind(int index, std::string_view v) {
    return bind(index, Value{std::string(v)});
}
Statement& Statement::bind_null(int index) {
    return bind(index, Value{});
}

bool Statement::step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW)
        return true;
    if (rc == SQLITE_DONE)
        return false;
    std::string sql = sqlite3_sql(stmt_) ? sqlite3_sql(stmt_) : "";
    sqlite3_reset(stmt_);
    db_->fail("running \"" + sql.substr(0, 80) + "\"");
}

void Statement::run() {
    while (step()) {
    }
    reset();
}

void Statement::reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}

int Statement::column_count() const {
    return sqlite3_column_count(stmt_);
}
std::string Statement::column_name(int i) const {
    return sqlite3_column_name(stmt_, i);
}
bool Statement::is_null(int i) const {
    return sqlite3_column_type(stmt_, i) == SQLITE_NULL;
}
std::int64_t Statement::integer(int i) const {
    return sqlite3_column_int64(stmt_, i);
}
double Statement::real(int i) const {
    return sqlite3_column_double(stmt_, i);
}

std::string Statement::text(int i) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, i))) : std::string();
}

Value Statement::value(int i) const {
    switch (sqlite3_column_type(stmt_, i)) {
        case SQLITE_INTEGER:
            return integer(i);
        case SQLITE_FLOAT:
            return real(i);
        case SQLITE_TEXT:
            return text(i);
        case SQLITE_BLOB: {
            const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, i));
            return Blob{p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, i)))
                          : std::string()};
        }
        default:
            return std::monostate{};
    }
}

// ---- Transaction ------------------------------------------------------------

Transaction::Transaction(Connection& db, Mode mode) : db_(db) {
    db_.exec(mode == Mode::immediate ? "BEGIN IMMEDIATE" : "BEGIN");
}

Transaction::~Transaction() {
    if (open_)
        sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
    db_.exec("COMMIT");
    open_ = false;
}

// The engine's connection is at FULL (or EXTRA) from its open on: a lower
// level read here is one a failed restore left, and FULL is what goes back.
DiskDeferredTransaction::Relaxed::Relaxed(Connection& c, bool defer)
    : db(c), saved(defer ? std::max<std::int64_t>(2, c.query_int("PRAGMA synchronous")) : 0) {
    if (saved > 1)
        db.exec("PRAGMA synchronous = NORMAL");
}

bool DiskDeferredTransaction::Relaxed::restore() noexcept {
    if (saved <= 1)
        return true;
    const char* sql = saved == 3 ? "PRAGMA synchronous = EXTRA" : "PRAGMA synchronous = FULL";
    bool back = sqlite3_exec(db.handle(), sql, nullptr, nullptr, nullptr) == SQLITE_OK;
    // Refused inside a transaction, and a failure must not pass unseen: read it back.
    sqlite3_stmt* st = nullptr;
    if (back &&
        sqlite3_prepare_v2(db.handle(), "PRAGMA synchronous", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        back = sqlite3_column_int64(st, 0) == saved;
    else
        back = false;
    sqlite3_finalize(st);
    if (back)
        saved = 0;
    return back;
}

DiskDeferredTransaction::DiskDeferredTransaction(Connection& db, bool defer)
    : relaxed_(db, defer), txn_(db) {}

// The transaction ends (txn_ first, members in reverse) before the level is restored.
DiskDeferredTransaction::~DiskDeferredTransaction() = default;

void DiskDeferredTransaction::commit() {
    txn_.commit();
    if (!relaxed_.restore())
        throw LocalDatabaseError(
            "could not set PRAGMA synchronous back after a commit on " + relaxed_.db.path() +
            ": the engine's next commits would not wait for the disk; restart the daemon");
}

}  // namespace lestash::sqlite
