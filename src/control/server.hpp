// The control server's state, shared by its parts (private to the room):
// control_server.cpp listens and accepts, session.cpp frames a client's
// messages, dispatch.cpp routes a request to its method, methods.cpp
// answers it, events.cpp tells subscribers and sync.now waiters what
// changed, status_view.cpp renders status and metrics.
#pragma once

#include <asio.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "lestash_sync/control/calls.hpp"
#include "lestash_sync/control/control_server.hpp"
#include "query_thread.hpp"
#include "session.hpp"

namespace lestash {

struct ControlServer::Impl : std::enable_shared_from_this<ControlServer::Impl> {
    using json = nlohmann::json;
    using Session = control::Session;
    // A request being answered: where it came from, and its id.
    struct Caller {
        const std::shared_ptr<Session>& session;
        const rpc::Request& request;
    };

    Impl(asio::io_context& io, ControlOptions options, StatusBoard& status, SyncWorker& worker)
        : io(io),
          options(std::move(options)),
          status(status),
          worker(worker),
          acceptor(io),
          queries(this->options.database_path),
          last(status.snapshot()) {}

    void accept();
    // Checks the call, then runs its method (or answers the error).
    void dispatch(const std::shared_ptr<Session>& session, rpc::Request request);
    // Sends events to subscribers and answers sync.now waiters caught up.
    void status_changed();
    json status_json(const DaemonStatus& s) const;

    // The methods, one per typed call (methods.cpp).
    void run(const rpc::HelloCall&, const Caller& caller);
    void run(const rpc::StatusCall&, const Caller& caller);
    void run(const rpc::MetricsCall&, const Caller& caller);
    void run(const rpc::PauseCall&, const Caller& caller);
    void run(const rpc::ResumeCall&, const Caller& caller);
    void run(const rpc::SyncNowCall& call, const Caller& caller);
    void run(const rpc::SearchCall& call, const Caller& caller);
    void run(const rpc::ItemCall& call, const Caller& caller);
    void run(const rpc::ListConflictsCall& call, const Caller& caller);
    void run(const rpc::ResolveConflictCall& call, const Caller& caller);
    void run(const rpc::ListDeadLettersCall& call, const Caller& caller);
    void run(const rpc::VerifyCall& call, const Caller& caller);
    void run(const rpc::SubscribeCall&, const Caller& caller);

    // The result of a request (nothing for a notification).
    void reply(const Caller& caller, json result);
    // Runs `work` on the query thread and sends what it returns (or the
    // error it raises) as the response to `request`.
    void on_query_thread(const std::shared_ptr<Session>& session, const rpc::Request& request,
                         std::function<json(sqlite::Connection&)> work);
    // The same on the sync worker, which holds the Postgres connection.
    void on_worker(
        const std::shared_ptr<Session>& session, const rpc::Request& request,
        std::function<json(SyncEngine&, Replica&, const std::function<void(json)>& notify)> work);

    asio::io_context& io;
    ControlOptions options;
    StatusBoard& status;
    SyncWorker& worker;
    control::stream::acceptor acceptor;
    control::QueryThread queries;
    std::set<std::shared_ptr<Session>> sessions;
    DaemonStatus last;
    std::deque<json> recent;  // the last events, for `lestash-sync log`
    bool stopping = false;
    std::uint64_t next_session = 1;
    // Counts the sockets listened on: an accept of the previous one that
    // completes after a move to a new path does not re-arm.
    std::uint64_t listening = 0;

    // A `sync.now --wait` client waiting to be caught up.
    struct Waiter {
        std::weak_ptr<Session> session;
        json id;
        std::int64_t target_cycles;
        std::shared_ptr<asio::steady_timer> timer;
    };
    std::list<Waiter> waiters;
};

}  // namespace lestash
