// A program run as a child process and owned by one object: its output
// appended to a log file, SIGKILL if its parent dies (PR_SET_PDEATHSIG), and
// killed (SIGKILL) and reaped by pid when the object goes if it still runs.
// Tests and lestash-bench run lestash-syncd this way.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace lestash {

class ChildProcess {
  public:
    // argv[0] is the program's path. `env` entries (NAME=value) are added to
    // our own environment, replacing a variable of the same name.
    ChildProcess(const std::vector<std::string>& argv, const std::string& log_path,
                 const std::vector<std::string>& env = {});
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const { return pid_; }
    // False once it has exited; the exit status is then kept.
    bool running();
    // The exit status, or 128 + the signal number that ended it; nothing
    // while it runs.
    std::optional<int> exit_status() const;
    // Sends `sig` unless it has already been reaped.
    void signal(int sig) const;
    // Waits up to `timeout` for it to exit; its exit status, or nothing.
    std::optional<int> wait_exit(std::chrono::milliseconds timeout);

  private:
    pid_t pid_ = -1;
    int status_ = -1;  // once reaped
};

}  // namespace lestash
