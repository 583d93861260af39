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

namespace {

// /proc/<pid>/stat from field 3 (state) on, after "(comm) "; nothing when
// the process is gone.
std::optional<std::istringstream> stat_fields(pid_t pid) {
    std::ifstream in(proc_dir(pid) / "stat");
    std::stringstream text;
    text << in.rdbuf();
    const std::string stat = text.str();
    const auto close = stat.rfind(')');
    if (!in || close == std::string::npos || close + 2 > stat.size())
        return std::nullopt;
    return std::istringstream(stat.substr(close + 2));
}

double ticks_to_ms(long long ticks) {
    return static_cast<double>(ticks) * 1000.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// utime, stime, cutime, cstime (fields 14 to 17) and the parent (field 4).
struct StatTimes {
    pid_t parent = 0;
    long long utime = 0, stime = 0, cutime = 0, cstime = 0;
};

std::optional<StatTimes> stat_times(pid_t pid) {
    auto fields = stat_fields(pid);
    if (!fields)
        return std::nullopt;
    StatTimes t;
    std::string skip;
    *fields >> skip >> t.parent;
    for (int field = 5; field < 14; ++field) *fields >> skip;
    if (!(*fields >> t.utime >> t.stime >> t.cutime >> t.cstime))
        return std::nullopt;
    return t;
}

}  // namespace

double cpu_ms(pid_t pid) {
    const auto t = stat_times(pid);
    if (!t)
        throw std::runtime_error("cannot read " + (proc_dir(pid) / "stat").string());
    return ticks_to_ms(t->utime + t->stime);
}

double tree_cpu_ms(pid_t root) {
    const auto own = stat_times(root);
    if (!own)
        throw std::runtime_error("cannot read " + (proc_dir(root) / "stat").string());
    long long ticks = own->utime + own->stime + own->cutime + own->cstime;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos)
            continue;
        const auto t = stat_times(static_cast<pid_t>(std::stol(name)));
        if (t && t->parent == root)
            ticks += t->utime + t->stime;
    }
    return ticks_to_ms(ticks);
}

}  // namespace lestash::proc
