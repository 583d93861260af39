// What Linux says about a running process in /proc: its memory, its wake-ups
// and its CPU time. For lestash-syncd's own report, the benchmarks, the soak
// and the tests.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace lestash::proc {

// VmRSS and its peak VmHWM from /proc/<pid>/status, in kB. Unlike
// getrusage, the peak does not count the pages a fork started with.
struct Memory {
    std::int64_t rss_kb = 0, peak_rss_kb = 0;
};
// Nothing when the process is gone.
std::optional<Memory> memory(pid_t pid);
// Context switches, voluntary or not, of all the process's threads: each is
// a wake-up or a preemption. 0 when the process is gone.
std::int64_t context_switches(pid_t pid);
// CPU time, user plus system. Raises std::runtime_error when
// /proc/<pid>/stat cannot be read.
double cpu_ms(pid_t pid);
// CPU time of `root`, of its children that are running (direct ones only)
// and of those it has waited for (Postgres: the postmaster, its backends
// and background workers, and the backends that have ended). Raises as
// cpu_ms for `root`.
double tree_cpu_ms(pid_t root);

}  // namespace lestash::proc
