// The control methods themselves, one per typed call (calls.hpp decides
// what each accepts; docs/protocol.md says what each answers).
#include <chrono>
#include <iterator>
#include <optional>

#include "lestash_sync/control/queries.hpp"
#include "lestash_sync/control/rpc.hpp"
#include "lestash_sync/daemon/version.hpp"
#include "server.hpp"
#include "status_view.hpp"

namespace lestash {

using json = nlohmann::json;

void ControlServer::Impl::run(const rpc::HelloCall&, const Caller& caller) {
    reply(caller, {{"protocol", rpc::kProtocolVersion},
                   {"version", build_version()},
                   {"daemon", "lestash-syncd"},
                   {"methods", rpc::method_names()}});
}

void ControlServer::Impl::run(const rpc::StatusCall&, const Caller& caller) {
    reply(caller, status_json(status.snapshot()));
}

void ControlServer::Impl::run(const rpc::MetricsCall&, const Caller& caller) {
    reply(caller, {{"content_type", "text/plain; version=0.0.4"},
                   {"text", control::metrics_text(status.snapshot(), sessions.size())}});
}

void ControlServer::Impl::run(const rpc::PauseCall&, const Caller& caller) {
    worker.pause();
    reply(caller, {{"paused", true}});
}

void ControlServer::Impl::run(const rpc::ResumeCall&, const Caller& caller) {
    worker.resume();
    reply(caller, {{"paused", false}});
}

void ControlServer::Impl::run(const rpc::SyncNowCall& c, const Caller& caller) {
    const auto s = status.snapshot();
    // Waiting could only end in the timeout: say why at once.
    if (c.wait && s.postgres_target.empty())
        throw rpc::Failure(rpc::unavailable, kNoPostgresConfigured);
    if (s.state == DaemonState::paused)
        throw rpc::Failure(rpc::paused, "sync is paused — run `lestash-sync resume` first");
    worker.sync_now();
    if (!c.wait)
        return reply(caller, {{"requested", true}});
    if (caller.request.notification)
        return;
    // A cycle already under way may have started before the caller's last
    // write: wait for the one after it.
    Waiter w{caller.session, caller.request.id,
             s.cycles + (s.state == DaemonState::syncing ? 2 : 1),
             std::make_shared<asio::steady_timer>(io)};
    w.timer->expires_after(std::chrono::milliseconds(c.timeout_ms));
    waiters.push_back(w);
    auto it = std::prev(waiters.end());
    w.timer->async_wait(
        [impl = shared_from_this(), it, timeout = c.timeout_ms](std::error_code ec) {
            if (ec)
                return;
            const auto now = impl->status.snapshot();
            if (auto s = it->session.lock())
                s->send(rpc::error_response(
                    it->id, rpc::timed_out,
                    "not caught up after " + std::to_string(timeout) + " ms: " + now.summary(),
                    impl->status_json(now)));
            impl->waiters.erase(it);
        });
}

void ControlServer::Impl::run(const rpc::SearchCall& c, const Caller& caller) {
    on_query_thread(caller.session, caller.request,
                    [o = c.options](sqlite::Connection& db) { return queries::search(db, o); });
}

void ControlServer::Impl::run(const rpc::ItemCall& c, const Caller& caller) {
    on_query_thread(caller.session, caller.request, [c](sqlite::Connection& db) {
        return c.history ? queries::item_history(db, c.id, c.limit) : queries::get_item(db, c.id);
    });
}

void ControlServer::Impl::run(const rpc::ListConflictsCall& c, const Caller& caller) {
    on_worker(caller.session, caller.request, [c](SyncEngine& engine, Replica&, const auto&) {
        return engine.list_conflicts(c.all, c.limit);
    });
}

void ControlServer::Impl::run(const rpc::ResolveConflictCall& c, const Caller& caller) {
    on_worker(caller.session, caller.request,
              [c, &worker = worker](SyncEngine& engine, Replica&, const auto&) {
                  json result = engine.resolve_conflict(c.id, c.keep_loser);
                  worker.sync_now();  // a restored value comes back through the change log
                  return result;
              });
}

void ControlServer::Impl::run(const rpc::ListDeadLettersCall& c, const Caller& caller) {
    on_worker(caller.session, caller.request, [c](SyncEngine& engine, Replica&, const auto&) {
        return engine.list_dead_letters(c.limit);
    });
}

void ControlServer::Impl::run(const rpc::VerifyCall& c, const Caller& caller) {
    on_worker(caller.session, caller.request,
              [c, &worker = worker](SyncEngine& engine, Replica&,
                                    const std::function<void(json)>& notify) {
                  const auto report = engine.verify(c.repair, [&](const std::string& table,
                                                                  int done, int total) {
                      notify(rpc::notification(
                          "verify.progress", {{"table", table}, {"done", done}, {"total", total}}));
                  });
                  std::optional<MediaVerifyReport> media;
                  if (auto* m = worker.media())
                      media = m->verify(c.repair);
                  return control::verify_report_json(report, c.repair, media ? &*media : nullptr);
              });
}

void ControlServer::Impl::run(const rpc::SubscribeCall&, const Caller& caller) {
    caller.session->subscribed = true;
    caller.session->read_timer.cancel();
    reply(caller, {{"subscribed", true},
                   {"status", status_json(status.snapshot())},
                   {"recent", json(recent)}});
}

}  // namespace lestash
