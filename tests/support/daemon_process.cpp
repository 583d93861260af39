// A lestash-syncd child process for tests (see daemon_process.hpp).
#include "daemon_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <thread>

#include "temp_dir.hpp"

extern char** environ;

namespace lestash::test {

DaemonProcess::DaemonProcess(const std::vector<std::string>& args, const std::string& log_path,
                             const std::vector<std::string>& env)
    : log_path_(log_path) {
    // Everything the child needs is built before fork: after it, only
    // async-signal-safe calls (the test binary has threads).
    std::vector<std::string> argv_storage{LESTASH_SYNCD_PATH};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_storage;
    for (char** e = environ; *e; ++e) {
        const std::string entry(*e);
        const auto name = entry.substr(0, entry.find('=') + 1);
        bool overridden = false;
        for (const auto& extra : env) overridden |= extra.rfind(name, 0) == 0;
        if (!overridden)
            env_storage.push_back(entry);
    }
    env_storage.insert(env_storage.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (auto& e : env_storage) envp.push_back(e.data());
    envp.push_back(nullptr);

    const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0)
        throw std::runtime_error("cannot open " + log_path + ": " + std::strerror(errno));
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) {
        ::close(log_fd);
        throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
    }
    if (pid_ == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent)
            ::_exit(127);
        ::dup2(log_fd, STDOUT_FILENO);
        ::dup2(log_fd, STDERR_FILENO);
        ::execve(argv[0], argv.data(), envp.data());
        ::_exit(127);
    }
    ::close(log_fd);
}

DaemonProcess::~DaemonProcess() {
    if (pid_ > 0 && status_ < 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
}

bool DaemonProcess::running() {
    if (status_ >= 0)
        return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_)
        return true;
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
}

void DaemonProcess::signal(int sig) const {
    if (status_ < 0)
        ::kill(pid_, sig);
}

int DaemonProcess::wait(std::chrono::seconds timeout) {
    if (!eventually([this] { return !running(); }, timeout))
        throw std::runtime_error("lestash-syncd (pid " + std::to_string(pid_) +
                                 ") did not exit within " + std::to_string(timeout.count()) +
                                 " s; its log:\n" + log());
    return status_;
}

int DaemonProcess::stop(int sig, std::chrono::seconds timeout) {
    signal(sig);
    return wait(timeout);
}

std::string DaemonProcess::log() const {
    return read_file(log_path_);
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
