// The control socket's reader thread (see query_thread.hpp).
#include "query_thread.hpp"

#include "lestash_sync/common/error.hpp"

namespace lestash::control {

QueryThread::QueryThread(std::string path) : path_(std::move(path)), thread_([this] { run(); }) {}

QueryThread::~QueryThread() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
}

void QueryThread::post(Job job) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        jobs_.push_back(std::move(job));
    }
    wake_.notify_one();
}

void QueryThread::run() {
    std::unique_ptr<sqlite::Connection> db;
    for (;;) {
        Job job;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
            if (stop_)
                return;
            job = std::move(jobs_.front());
            jobs_.pop_front();
        }
        std::string error;
        try {
            if (!db) {
                db = std::make_unique<sqlite::Connection>(path_, SQLITE_OPEN_READONLY);
                db->exec("PRAGMA busy_timeout = 5000");
            }
        } catch (const Error& e) {
            error = e.what();
        }
        job(db.get(), error);
    }
}

}  // namespace lestash::control
