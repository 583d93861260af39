// LISTEN/NOTIFY receiver on its own connection (see listener.hpp).
#include "lestash_sync/upstream/listener.hpp"

#include "lestash_sync/common/text.hpp"
#include "lestash_sync/upstream/upstream.hpp"

namespace lestash {

ChangeListener::ChangeListener(const std::string& conninfo) : target_(describe_target(conninfo)) {
    conn_ = PQconnectdb(conninfo.c_str());
    if (PQstatus(conn_) != CONNECTION_OK) {
        const std::string msg = trim_end(PQerrorMessage(conn_));
        PQfinish(conn_);
        conn_ = nullptr;
        throw UpstreamError("cannot listen for changes at " + target_ + ": " + msg, true, "08001");
    }
    PQsetNoticeProcessor(conn_, log_libpq_notice, &target_);
    PGresult* res = PQexec(conn_, "LISTEN lestash_changes");
    const bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok) {
        const std::string msg = PQerrorMessage(conn_);
        PQfinish(conn_);
        conn_ = nullptr;
        throw UpstreamError("LISTEN failed at " + target_ + ": " + msg, true);
    }
    PQsetnonblocking(conn_, 1);
}

ChangeListener::~ChangeListener() {
    if (conn_)
        PQfinish(conn_);
}

int ChangeListener::socket() const {
    return PQsocket(conn_);
}

int ChangeListener::drain(const std::string& own_replica_id) {
    if (PQconsumeInput(conn_) == 0 || PQstatus(conn_) != CONNECTION_OK)
        throw UpstreamError(
            "lost the notification connection to " + target_ + ": " + PQerrorMessage(conn_), true,
            "08006");
    int n = 0;
    while (PGnotify* note = PQnotifies(conn_)) {
        if (own_replica_id != note->extra)
            ++n;
        PQfreemem(note);
    }
    return n;
}

}  // namespace lestash
