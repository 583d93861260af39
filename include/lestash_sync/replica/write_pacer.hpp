// Paces the engine's write transactions so the app is never starved.
// SQLite's busy handler polls instead of queueing (Python's sqlite3 retries
// after 1, 2, 5 ... 50, then every 100 ms), so a writer that takes the lock
// again right after releasing it can keep the app waiting until its 5 s
// timeout ends in "database is locked". Before a write transaction that
// follows closely on the previous one, the pacer leaves a gap as long as the
// previous one held the lock (1 to 110 ms): longer than the app's longest
// poll interval, so a waiting app always gets in within one engine
// transaction plus one gap. Writes that come later than that pay nothing.
//
// Nobody can be waiting when no other process has the database open, so the
// gap is skipped then: every connection to a WAL database holds a POSIX read
// lock on byte 128 of its -shm file from its first statement until it
// closes (also while it waits for the write lock), and the kernel tells
// whether another process holds one (F_GETLK on SQLite's own descriptor of
// the -shm). When that cannot be asked, the gap is kept. A process that
// opens the database during a gapless run waits through at most one engine
// transaction and is seen before the next: the guarantee above holds.
#pragma once

#include <chrono>
#include <string>

namespace lestash {

// Whether a process other than this one has the WAL database at `db_path`
// open, asked of the kernel through the descriptor of its -shm file that
// this process's own connection holds. True whenever that cannot be told:
// no -shm file, or this process has none of it open.
bool other_process_has_open(const std::string& db_path);

class WritePacer {
  public:
    // `db_path` empty: always leave the gap.
    explicit WritePacer(std::string db_path = {}) : db_path_(std::move(db_path)) {}
    // Call before BEGIN: sleeps only when the last write ended too recently
    // and another process has the database open.
    void before_write();
    // Call after COMMIT (or ROLLBACK) with how long the lock was held.
    void after_write(std::chrono::steady_clock::duration held);
    // How long an engine write transaction should hold the lock at most.
    static constexpr std::chrono::milliseconds kTargetHold{500};

  private:
    std::string db_path_;
    std::chrono::steady_clock::time_point next_write_{};
};

}  // namespace lestash
