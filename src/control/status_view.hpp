// The daemon's state as the control API shows it: the status document, the
// Prometheus metrics text, push and pull counts, a verify report, and the
// ISO-8601 times they use (docs/protocol.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>

#include "lestash_sync/daemon/status.hpp"

namespace lestash::control {

std::string iso_time(std::chrono::system_clock::time_point t);
nlohmann::json push_json(const PushStats& s);
nlohmann::json pull_json(const PullStats& s);
// `clients`: how many are connected to the control socket.
nlohmann::json status_json(const DaemonStatus& s, std::size_t clients);
std::string metrics_text(const DaemonStatus& s, std::size_t clients);
nlohmann::json media_json(const MediaCounts& m);
// The rows' report, with the files' (`media`, when they were verified) as
// its "media" section; "matches" covers both.
nlohmann::json verify_report_json(const VerifyReport& report, bool repaired,
                                  const MediaVerifyReport* media = nullptr);

}  // namespace lestash::control
