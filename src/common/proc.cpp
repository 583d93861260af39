// Reading /proc (see include/lestash_sync/common/proc.hpp).
#include "lestash_sync/common/proc.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace lestash::proc {
namespace fs = std::filesystem;

namespace {

fs::path proc_dir(pid_t pid) {
    return fs::path("/proc") / std::to_string(pid);
}

}  // namespace

std::optional<Memory> memory(pid_t pid) {
    std::ifstream status(proc_dir(pid) / "status");
    if (!status)
        return std::nullopt;
    Memory m;
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0)
            m.rss_kb = std::stoll(line.substr(6));
        else if (line.rfind("VmHWM:", 0) == 0)
            m.peak_rss_kb = std::stoll(line.substr(6));
    }
    return m;
}

std::int64_t context_switches(pid_t pid) {
    std::int64_t total = 0;
    std::error_code ec;
    for (const auto& task : fs::directory_iterator(proc_dir(pid) / "task", ec)) {
        std::ifstream status(task.path() / "status");
        std::string line;
        while (std::getline(status, line))
            if (line.rfind("voluntary_ctxt_switches:", 0) == 0 ||
                line.rfind("nonvoluntary_ctxt_switches:", 0) == 0)
                total += std::stoll(line.substr(line.find(':') + 1));
    }
    return total;
}

double cpu_ms(pid_t pid) {
    const fs::path path = proc_dir(pid) / "stat";
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    const std::string stat = text.str();
    // Fields after "(comm) ": state is field 3, utime 14, stime 15.
    const auto close = stat.rfind(')');
    if (close == std::string::npos)
        throw std::runtime_error("cannot read " + path.string());
    std::istringstream fields(stat.substr(close + 2));
    std::string skip;
    for (int field = 3; field < 14; ++field) fields >> skip;
    long long utime = 0, stime = 0;
    fields >> utime >> stime;
    return static_cast<double>(utime + stime) * 1000.0 /
           static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace lestash::proc
