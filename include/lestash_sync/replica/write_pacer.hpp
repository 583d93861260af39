// Paces the engine's write transactions so the app is never starved.
// SQLite's busy handler polls instead of queueing (Python's sqlite3 retries
// after 1, 2, 5 ... 50, then every 100 ms), so a writer that takes the lock
// again right after releasing it can keep the app waiting until its 5 s
// timeout ends in "database is locked". Before a write transaction that
// follows closely on the previous one, the pacer leaves a gap as long as the
// previous one held the lock (1 to 110 ms): longer than the app's longest
// poll interval, so a waiting app always gets in within one engine
// transaction plus one gap. Writes that come later than that pay nothing.
#pragma once

#include <chrono>

namespace lestash {

class WritePacer {
  public:
    // Call before BEGIN: sleeps only when the last write ended too recently.
    void before_write();
    // Call after COMMIT (or ROLLBACK) with how long the lock was held.
    void after_write(std::chrono::steady_clock::duration held);
    // How long an engine write transaction should hold the lock at most.
    static constexpr std::chrono::milliseconds kTargetHold{500};

  private:
    std::chrono::steady_clock::time_point next_write_{};
};

}  // namespace lestash
