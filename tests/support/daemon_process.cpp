// A lestash-syncd child process for tests (see daemon_process.hpp).
#include "daemon_process.hpp"

#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "temp_dir.hpp"

namespace lestash::test {

namespace {
// LESTASH_SYNCD=PATH runs another build (a long soak keeps its own copy
// while the tree is rebuilt).
std::vector<std::string> syncd_argv(const std::vector<std::string>& args) {
    const char* other = std::getenv("LESTASH_SYNCD");
    std::vector<std::string> argv{other && *other ? other : LESTASH_SYNCD_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}
}  // namespace

DaemonProcess::DaemonProcess(const std::vector<std::string>& args, const std::string& log_path,
                             const std::vector<std::string>& env)
    : log_path_(log_path), child_(syncd_argv(args), log_path, env) {}

int DaemonProcess::wait(std::chrono::seconds timeout) {
    if (const auto status = child_.wait_exit(timeout))
        return *status;
    throw std::runtime_error("lestash-syncd (pid " + std::to_string(pid()) +
                             ") did not exit within " + std::to_string(timeout.count()) +
                             " s; its log:\n" + log());
}

int DaemonProcess::stop(int sig, std::chrono::seconds timeout) {
    signal(sig);
    return wait(timeout);
}

std::string DaemonProcess::log() const {
    return read_file(log_path_);
}

std::string DaemonProcess::log_tail(std::size_t lines) const {
    const std::string text = log();
    std::size_t start = text.size();
    // A final newline ends the last line; it does not begin another.
    if (start > 0 && text[start - 1] == '\n')
        --start;
    for (std::size_t seen = 0; start > 0 && seen < lines; --start)
        if (text[start - 1] == '\n' && ++seen == lines)
            break;
    return text.substr(start);
}

bool eventually(const std::function<bool()>& condition, std::chrono::seconds deadline) {
    const auto end = std::chrono::steady_clock::now() + deadline;
    for (;;) {
        if (condition())
            return true;
        if (std::chrono::steady_clock::now() > end)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

}  // namespace lestash::test
