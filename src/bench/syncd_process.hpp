// A lestash-syncd child process for the benchmarks that run real daemons,
// and what /proc says about its memory.
#pragma once

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "lestash_sync/common/child_process.hpp"
#include "lestash_sync/common/proc.hpp"

namespace lestash::bench {

inline std::string read_text(const std::filesystem::path& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A lestash-syncd child writing to a log file, stopped by pid at the end:
// SIGTERM, then SIGKILL (by ChildProcess) if it has not exited within 10 s.
class SyncdProcess {
  public:
    SyncdProcess(std::string name, const std::string& binary, const std::vector<std::string>& args,
                 std::filesystem::path log_path)
        : name_(std::move(name)),
          log_path_(std::move(log_path)),
          child_(argv(binary, args), log_path_) {}
    ~SyncdProcess() {
        if (child_.running())
            stop();
    }
    SyncdProcess(const SyncdProcess&) = delete;
    SyncdProcess& operator=(const SyncdProcess&) = delete;

    const std::string& name() const { return name_; }
    pid_t pid() const { return child_.pid(); }
    bool running() { return child_.running(); }
    std::optional<int> exit_status() const { return child_.exit_status(); }
    // SIGTERM, as systemd stops it; its exit status (0 when it closed cleanly).
    std::optional<int> stop() {
        child_.signal(SIGTERM);
        return child_.wait_exit(std::chrono::seconds(10));
    }
    // Exit status once it has exited; raises with its log after `timeout`.
    int wait_exit(std::chrono::seconds timeout) {
        if (const auto status = child_.wait_exit(timeout))
            return *status;
        throw std::runtime_error(name_ + " did not exit within " + std::to_string(timeout.count()) +
                                 " s; its log:\n" + log_tail());
    }
    std::string log() const { return read_text(log_path_); }
    std::string log_tail() const {
        const std::string all = log();
        return all.size() > 8000 ? "...\n" + all.substr(all.size() - 8000) : all;
    }
    const std::filesystem::path& log_path() const { return log_path_; }

  private:
    static std::vector<std::string> argv(const std::string& binary,
                                         const std::vector<std::string>& args) {
        std::vector<std::string> all{binary};
        all.insert(all.end(), args.begin(), args.end());
        return all;
    }

    std::string name_;
    std::filesystem::path log_path_;
    ChildProcess child_;
};

struct Memory {
    double rss_mib = 0, peak_rss_mib = 0;  // VmRSS, VmHWM
};

inline Memory memory_of(pid_t pid) {
    const auto m = proc::memory(pid).value_or(proc::Memory{});
    return {static_cast<double>(m.rss_kb) / 1024.0, static_cast<double>(m.peak_rss_kb) / 1024.0};
}

}  // namespace lestash::bench
