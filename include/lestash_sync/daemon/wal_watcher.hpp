// Notices writes to a SQLite database by other processes without polling:
// inotify on the database's directory, filtered to the database file and its
// -wal file (which SQLite deletes at the last close and creates again, so a
// watch on the file itself would go deaf), delivered on an asio io_context.
// It only says "something was written"; the daemon confirms with
// PRAGMA data_version (its own writes wake it too) and debounces.
#pragma once

#include <asio.hpp>
#include <functional>
#include <memory>
#include <string>

namespace lestash {

class WalWatcher {
  public:
    // Starts watching now: writes made after the constructor returns are
    // reported once `io` runs. `on_change` runs on the io_context's thread,
    // once per batch of events read together. Raises LocalDatabaseError
    // when the directory cannot be watched.
    WalWatcher(asio::io_context& io, const std::string& database_path,
               std::function<void()> on_change);
    // Stops watching and closes the inotify descriptor; `on_change` is not
    // called afterwards. Destroy it on the io_context's thread (or while
    // the io_context is not running).
    ~WalWatcher();
    WalWatcher(const WalWatcher&) = delete;
    WalWatcher& operator=(const WalWatcher&) = delete;

    // The directory being watched (symbolic links resolved, as SQLite does).
    const std::string& directory() const;

  private:
    struct State;
    std::shared_ptr<State> state_;  // shared with the read in flight
};

}  // namespace lestash
