// The control socket's reader: one thread with its own read-only connection
// to the replica, for queries (search, items, history) that must not wait
// behind a sync cycle (WAL lets it read while the worker writes).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "lestash_sync/common/sqlite.hpp"

namespace lestash::control {

class QueryThread {
  public:
    // A job gets the connection, or nullptr and why it could not be opened.
    using Job = std::function<void(sqlite::Connection*, const std::string& error)>;
    explicit QueryThread(std::string path);
    ~QueryThread();
    QueryThread(const QueryThread&) = delete;
    QueryThread& operator=(const QueryThread&) = delete;

    void post(Job job);

  private:
    void run();

    std::string path_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Job> jobs_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace lestash::control
