// The change log (lestash.change_log, migrations/postgres/002): every write
// to a synced table, whoever makes it, with the writing transaction's xid8.
// Read in (xid, id) order and only below the oldest running transaction, so
// a change whose transaction commits late is never skipped. A replica's
// place in it is a cursor, kept in its meta as "xid:id". Each function runs
// inside the caller's transaction (Upstream::transact).
#pragma once

#include <cstdint>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace lestash {

struct ChangeLogCursor {
    std::string xid;  // xid8, as text
    std::int64_t id = 0;

    // From "xid:id".
    static ChangeLogCursor parse(const std::string& text);
    std::string text() const;
};

struct ChangeLogEntry {
    std::int64_t id = 0;
    std::string xid;
    std::string table;
    std::string row_id;                 // the row's UUID
    std::optional<std::string> origin;  // the pushing replica; none for other writers
};

// What lies after `cursor`, asked once before reading it.
struct ChangeLogAhead {
    // Compaction removed entries after `cursor`: the replica missed changes
    // and must copy every table again.
    bool compacted_past = false;
    // Committed entries after `cursor` are held back: at or above the oldest
    // transaction still running anywhere on the cluster (the horizon is
    // cluster-wide: a transaction open in another database, such as
    // PowerSync's bucket storage, holds it too). read_change_log skips them
    // and nothing announces when the horizon moves on, so a reader that sees
    // this must look again. In a repeatable-read transaction it holds for
    // every read_change_log of the same transaction.
    bool held_back = false;
};
ChangeLogAhead change_log_ahead(pqxx::transaction_base& tx, const ChangeLogCursor& cursor);
// Up to `limit` entries after `cursor`, in order, all below the oldest
// transaction still running.
std::vector<ChangeLogEntry> read_change_log(pqxx::transaction_base& tx,
                                            const ChangeLogCursor& cursor, int limit);
// Where a replica that copies every table in this transaction's snapshot
// continues in the change log. Entries between it and the snapshot are read
// again, which is harmless: pulls apply state.
ChangeLogCursor change_log_horizon(pqxx::transaction_base& tx);

}  // namespace lestash
