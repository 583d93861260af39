// The daemon's state as the control API shows it (see status_view.hpp).
#include "status_view.hpp"

#include <ctime>
#include <optional>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "lestash_sync/control/rpc.hpp"
#include "lestash_sync/daemon/version.hpp"

namespace lestash::control {

using json = nlohmann::json;

std::string iso_time(std::chrono::system_clock::time_point t) {
    const std::time_t secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

json push_json(const PushStats& s) {
    return {{"changes", s.entries},
            {"rows", s.upserted},
            {"deleted", s.deleted},
            {"refused", s.dead_lettered}};
}

json pull_json(const PullStats& s) {
    return {{"changes", s.changes},
            {"applied", s.applied},
            {"deleted", s.deleted},
            {"held", s.deferred}};
}

namespace {

json optional_time(const std::optional<std::chrono::system_clock::time_point>& t) {
    return t ? json(iso_time(*t)) : json(nullptr);
}

double epoch_seconds(const std::optional<std::chrono::system_clock::time_point>& t) {
    return t ? std::chrono::duration<double>(t->time_since_epoch()).count() : 0;
}

}  // namespace

namespace {

// The media files by state, as status and metrics name them.
std::vector<std::pair<const char*, std::int64_t>> media_states(const MediaCounts& m) {
    return {{"to_upload", m.to_upload}, {"to_download", m.to_download}, {"waiting", m.waiting},
            {"missing", m.missing},     {"too_large", m.too_large},     {"failed", m.failed},
            {"different", m.different}, {"invalid", m.invalid},         {"synced", m.synced}};
}

}  // namespace

json media_json(const MediaCounts& m) {
    auto known = [](std::int64_t v) { return v < 0 ? json(nullptr) : json(v); };
    json out = json::object();
    for (const auto& [state, n] : media_states(m)) out[state] = n;
    out["max_file_mb"] = m.max_file_bytes >> 20;
    out["upstream_files"] = known(m.upstream_files);
    out["upstream_bytes"] = known(m.upstream_bytes);
    return out;
}

json status_json(const DaemonStatus& s, std::size_t clients) {
    return {
        {"state", state_name(s.state)},
        {"summary", s.summary()},
        {"detail", s.detail},
        {"replica", {{"id", s.replica_id}, {"name", s.replica_name}}},
        {"database", s.database},
        {"postgres",
         {{"target", s.postgres_target.empty() ? json(nullptr) : json(s.postgres_target)},
          {"connected", s.postgres_connected},
          {"schema_version", s.upstream_schema_version}}},
        {"schema",
         {{"daemon_objects", s.objects_version}, {"upstream", s.upstream_schema_version}}},
        {"started_at", iso_time(s.started_at)},
        {"last_cycle_at", optional_time(s.last_cycle_at)},
        {"last_cycle_ms", s.last_cycle_ms},
        {"last_push", {{"at", optional_time(s.last_push_at)}, {"counts", push_json(s.last_push)}}},
        {"last_pull", {{"at", optional_time(s.last_pull_at)}, {"counts", pull_json(s.last_pull)}}},
        {"pushed_total", push_json(s.pushed_total)},
        {"pulled_total", pull_json(s.pulled_total)},
        {"outbox_depth", s.outbox_depth},
        {"lag_seconds", s.lag_seconds},
        {"dead_letters", s.dead_letters},
        {"waiting_tables", s.waiting_tables},
        {"unsynced_tables", s.unsynced_tables},
        {"media", media_json(s.media)},
        {"errors_since_start", s.errors_since_start},
        {"cycles", s.cycles},
        {"clients", clients},
        {"protocol", rpc::kProtocolVersion},
        {"version", build_version()},
    };
}

std::string metrics_text(const DaemonStatus& s, std::size_t clients) {
    std::string out;
    auto metric = [&](const char* name, const char* type, const char* help, double value,
                      const std::string& labels = "") {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
        out += std::string(name) + labels + " " + fmt::format("{}", value) + "\n";
    };
    out +=
        "# HELP lestash_sync_state 1 for the daemon's current state.\n# TYPE lestash_sync_state "
        "gauge\n";
    for (auto st : {DaemonState::starting, DaemonState::syncing, DaemonState::idle,
                    DaemonState::offline, DaemonState::paused, DaemonState::error})
        out += fmt::format("lestash_sync_state{{state=\"{}\"}} {}\n", state_name(st),
                           st == s.state ? 1 : 0);
    metric("lestash_sync_postgres_connected", "gauge", "1 while connected to Postgres.",
           s.postgres_connected);
    metric("lestash_sync_outbox_depth", "gauge", "Local changes not pushed yet.",
           static_cast<double>(s.outbox_depth));
    metric("lestash_sync_lag_seconds", "gauge", "Age of the oldest change not pushed yet.",
           s.lag_seconds);
    metric("lestash_sync_dead_letters", "gauge", "Changes Postgres refused for good.",
           static_cast<double>(s.dead_letters));
    metric("lestash_sync_pushed_changes_total", "counter", "Outbox entries pushed since start.",
           static_cast<double>(s.pushed_total.entries));
    metric("lestash_sync_pulled_changes_total", "counter", "Change-log entries pulled since start.",
           static_cast<double>(s.pulled_total.changes));
    metric("lestash_sync_applied_rows_total", "counter",
           "Rows written locally by pulls since start.",
           static_cast<double>(s.pulled_total.applied));
    metric("lestash_sync_deleted_rows_total", "counter",
           "Rows deleted locally by pulls since start.",
           static_cast<double>(s.pulled_total.deleted));
    metric("lestash_sync_errors_total", "counter", "Errors since start.",
           static_cast<double>(s.errors_since_start));
    metric("lestash_sync_cycles_total", "counter", "Sync cycles since start.",
           static_cast<double>(s.cycles));
    metric("lestash_sync_wakeups_total", "counter", "Times the daemon woke up since start.",
           static_cast<double>(s.wakeups));
    metric("lestash_sync_last_cycle_seconds", "gauge", "Duration of the last sync cycle.",
           s.last_cycle_ms / 1000.0);
    metric("lestash_sync_last_push_timestamp_seconds", "gauge",
           "When changes were last pushed (0: never).", epoch_seconds(s.last_push_at));
    metric("lestash_sync_last_pull_timestamp_seconds", "gauge",
           "When changes were last pulled (0: never).", epoch_seconds(s.last_pull_at));
    metric("lestash_sync_control_clients", "gauge", "Clients connected to the control socket.",
           static_cast<double>(clients));
    out +=
        "# HELP lestash_sync_media_files Media files named by item_media rows, by what is to be "
        "done with them.\n# TYPE lestash_sync_media_files gauge\n";
    const auto& m = s.media;
    for (const auto& [state, n] : media_states(m))
        out += fmt::format("lestash_sync_media_files{{state=\"{}\"}} {}\n", state, n);
    metric("lestash_sync_media_upstream_bytes", "gauge",
           "Bytes of media file contents kept in Postgres (-1: not known yet).",
           static_cast<double>(m.upstream_bytes));
    metric("lestash_sync_media_max_file_bytes", "gauge",
           "Media files larger than this are not uploaded ([media] max_file_mb).",
           static_cast<double>(m.max_file_bytes));
    return out;
}

namespace {

json media_verify_json(const MediaVerifyReport& m) {
    return {{"files", m.files},
            {"matches", m.matches()},
            {"pending", m.pending},
            {"too_large", m.too_large},
            {"missing_locally", m.missing_locally},
            {"missing_upstream", m.missing_upstream},
            {"different", m.different},
            {"unavailable", m.unavailable},
            {"repaired", m.repaired}};
}

}  // namespace

json verify_report_json(const VerifyReport& report, bool repaired, const MediaVerifyReport* media) {
    json tables = json::array();
    for (const auto& t : report.tables)
        tables.push_back({{"table", t.table},
                          {"local_rows", t.local_rows},
                          {"upstream_rows", t.upstream_rows},
                          {"matches", t.matches()},
                          {"missing_locally", t.missing_locally},
                          {"missing_upstream", t.missing_upstream},
                          {"different", t.different},
                          {"repaired", t.repaired},
                          {"pushed", t.pushed},
                          {"fetched", t.fetched}});
    json out = {{"matches", report.matches() && (!media || media->matches())},
                {"repair", repaired},
                {"pending_local_rows", report.pending_local_rows},
                {"tables", std::move(tables)}};
    if (media)
        out["media"] = media_verify_json(*media);
    return out;
}

}  // namespace lestash::control
