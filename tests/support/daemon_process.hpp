// A lestash-syncd child process for tests: started with the arguments and
// environment given, its stdout and stderr kept in a log file, and killed by
// pid (SIGKILL) when the object goes, even when the test fails. It also gets
// SIGKILL if the test binary dies (PR_SET_PDEATHSIG; see ChildProcess).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "lestash_sync/common/child_process.hpp"

namespace lestash::test {

class DaemonProcess {
  public:
    // `args` follow the program name; `env` entries (NAME=value) are added to
    // the test's own environment. Output goes to `log_path`.
    DaemonProcess(const std::vector<std::string>& args, const std::string& log_path,
                  const std::vector<std::string>& env = {});
    DaemonProcess(const DaemonProcess&) = delete;
    DaemonProcess& operator=(const DaemonProcess&) = delete;

    pid_t pid() const { return child_.pid(); }
    // False once the process has exited (its status is then kept).
    bool running() { return child_.running(); }
    // Sends `sig` and waits up to `timeout` for the exit; returns the exit
    // status, or 128 + signal number when a signal ended it. Throws when it
    // does not exit in time (the destructor then kills it).
    int stop(int sig, std::chrono::seconds timeout = std::chrono::seconds(120));
    // Waits for an exit the process makes by itself (e.g. --once).
    int wait(std::chrono::seconds timeout = std::chrono::seconds(300));
    void signal(int sig) const { child_.signal(sig); }
    std::string log() const;
    // The last `lines` lines of the log: what a failure prints first, where
    // a truncated CI report still shows it.
    std::string log_tail(std::size_t lines) const;

  private:
    std::string log_path_;
    ChildProcess child_;
};

// Polls `condition` every 50 ms until it holds or `deadline` passes; the
// deadline is for liveness only (generous), never a performance claim.
bool eventually(const std::function<bool()>& condition,
                std::chrono::seconds deadline = std::chrono::seconds(60));

}  // namespace lestash::test
