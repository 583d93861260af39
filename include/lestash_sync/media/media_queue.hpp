// The media queue (_lestash_sync_media): one row per path an item_media row
// names, with what is to be done with its file (the states are listed in
// migrations/sqlite/daemon-004.sql). The daemon's own triggers on item_media
// fill it as the app (or the engine's apply) writes rows; unlike the capture
// triggers they also fire inside the engine's apply, so a row pulled from
// elsewhere queues a download. This module owns every statement on the
// table, the triggers' included.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lestash_sync/common/sqlite.hpp"

namespace lestash {

struct MediaEntry {
    std::string path;
    std::string state = "new";
    std::string origin = "unknown";  // here | elsewhere | unknown
    std::optional<std::string> sha256;
    std::optional<std::int64_t> size;
    bool owned = false;  // the daemon wrote the file
    std::int64_t attempts = 0;
    std::string last_error;
    double next_attempt_at = 0;  // unix seconds
};

class MediaQueue {
  public:
    explicit MediaQueue(sqlite::Connection& db) : db_(db) {}

    // Whether the app's item_media table exists (it does from schema v7).
    bool item_media_exists();
    // In one transaction: the triggers on item_media made (or made again
    // when their SQL changed), then every path a row names queued if it is
    // not yet, and every queued path checked again; so rows written before
    // the triggers existed (or while another program had dropped them) are
    // not missed. Needs item_media.
    void install_and_reconcile();

    // Queued paths that a deleted or changed row named and that no
    // item_media row names any more (at most `limit`); the others are
    // cleared of their recheck mark.
    std::vector<MediaEntry> unreferenced(int limit);
    std::vector<MediaEntry> in_state(const std::string& state, int limit);
    std::optional<MediaEntry> get(const std::string& path);
    // The transfer to try next: uploads first, then downloads, oldest due
    // first, among entries due at `now`.
    std::optional<MediaEntry> next_due(double now);
    // When the next entry that waits for a retry is due; nothing when none
    // waits.
    std::optional<double> next_retry(double now);
    // Whether anything is to be looked at now (new paths, rechecks, due
    // transfers).
    bool has_work(double now);

    void save(const MediaEntry& entry);
    void remove(const std::string& path);
    // Entries waiting for a retry become due now (a file arrived upstream,
    // `lestash-sync now`).
    void retry_now();
    // Entries waiting for their origin's upload become due now.
    void retry_waiting();
    // Too-large entries that fit under a new limit are uploaded after all.
    void requeue_fitting(std::int64_t max_bytes);
    // Entries per state.
    std::map<std::string, std::int64_t> counts();
    // Every path an item_media row names, sorted, each once.
    std::vector<std::string> referenced_paths();

  private:
    sqlite::Connection& db_;
};

}  // namespace lestash
