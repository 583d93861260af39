// Events: what changed since the last worker cycle, sent to subscribers
// (`lestash-sync log --follow`) and kept for `lestash-sync log`; and the
// `sync.now --wait` callers answered once the daemon has caught up.
#include <vector>

#include "lestash_sync/control/rpc.hpp"
#include "server.hpp"
#include "status_view.hpp"

namespace lestash {

using json = nlohmann::json;

json ControlServer::Impl::status_json(const DaemonStatus& s) const {
    return control::status_json(s, sessions.size());
}

void ControlServer::Impl::status_changed() {
    const DaemonStatus now = status.snapshot();
    std::vector<json> events;
    const auto at = control::iso_time(std::chrono::system_clock::now());
    if (now.state != last.state && now.state != DaemonState::syncing)
        events.push_back({{"type", "state"},
                          {"at", at},
                          {"state", state_name(now.state)},
                          {"previous", state_name(last.state)},
                          {"detail", now.detail}});
    if (now.pushed_total.entries > last.pushed_total.entries) {
        PushStats delta = now.pushed_total;
        delta.entries -= last.pushed_total.entries;
        delta.upserted -= last.pushed_total.upserted;
        delta.deleted -= last.pushed_total.deleted;
        delta.dead_lettered -= last.pushed_total.dead_lettered;
        events.push_back({{"type", "pushed"},
                          {"at", at},
                          {"counts", control::push_json(delta)},
                          {"outbox_depth", now.outbox_depth}});
    }
    if (now.pulled_total.applied + now.pulled_total.deleted >
        last.pulled_total.applied + last.pulled_total.deleted) {
        PullStats delta = now.pulled_total;
        delta.changes -= last.pulled_total.changes;
        delta.applied -= last.pulled_total.applied;
        delta.deleted -= last.pulled_total.deleted;
        delta.deferred -= last.pulled_total.deferred;
        events.push_back({{"type", "pulled"}, {"at", at}, {"counts", control::pull_json(delta)}});
    }
    last = now;
    for (const auto& e : events) {
        recent.push_back(e);
        if (recent.size() > 200)
            recent.pop_front();
    }
    if (!events.empty())
        for (const auto& s :
             std::vector<std::shared_ptr<Session>>(sessions.begin(), sessions.end()))
            if (s->subscribed)
                for (const auto& e : events) s->send(rpc::notification("event", e));

    for (auto it = waiters.begin(); it != waiters.end();) {
        const bool caught_up = now.cycles >= it->target_cycles && now.state == DaemonState::idle &&
                               now.outbox_depth == 0;
        if (!caught_up) {
            ++it;
            continue;
        }
        it->timer->cancel();
        if (auto s = it->session.lock())
            s->send(
                rpc::result_response(it->id, {{"caught_up", true}, {"status", status_json(now)}}));
        it = waiters.erase(it);
    }
}

}  // namespace lestash
