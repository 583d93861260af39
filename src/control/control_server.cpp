// The control socket and its methods (see include/lestash_sync/control/control_server.hpp
// and docs/protocol.md).
#include "lestash_sync/control/control_server.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <list>
#include <map>
#include <set>
#include <thread>

#include "lestash_sync/common/error.hpp"
#include "lestash_sync/control/calls.hpp"
#include "lestash_sync/control/queries.hpp"
#include "lestash_sync/control/rpc.hpp"

#ifndef LESTASH_VERSION
#define LESTASH_VERSION "0.0.0"
#endif

namespace lestash {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using stream = asio::local::stream_protocol;

// The socket's directory must be ours and private: created 0700, or an
// existing one we own tightened to 0700. A directory someone else owns
// (say /tmp/lestash-1000 made by another user first) is refused.
void prepare_socket_directory(const std::string& socket_path) {
    const fs::path dir = fs::path(socket_path).parent_path();
    if (dir.empty())
        return;
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0) {
        std::error_code ec;
        fs::create_directories(dir.parent_path(), ec);
        if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
            throw ConfigError("cannot create the control socket's directory " + dir.string() +
                              ": " + std::strerror(errno) +
                              " — set [control] socket or --socket to a path you can write");
        if (::lstat(dir.c_str(), &st) != 0)
            throw ConfigError("cannot use " + dir.string() + ": " + std::strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        throw ConfigError("the control socket's directory " + dir.string() + " is not a directory");
    if (st.st_uid != ::geteuid())
        throw ConfigError("the control socket's directory " + dir.string() + " belongs to uid " +
                          std::to_string(st.st_uid) +
                          ", not to you — choose another path with --socket or [control] socket");
    if ((st.st_mode & 077) != 0 && ::chmod(dir.c_str(), 0700) != 0)
        throw ConfigError("cannot make " + dir.string() +
                          " private (chmod 0700): " + std::strerror(errno));
}

// A socket file left by a daemon that died is removed; a live one is not.
void remove_stale_socket(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0)
        return;
    if (!S_ISSOCK(st.st_mode))
        throw ConfigError(path +
                          " exists and is not a socket — remove it or choose another --socket");
    asio::io_context probe_io;
    stream::socket probe(probe_io);
    std::error_code ec;
    probe.connect(stream::endpoint(path), ec);
    if (!ec)
        throw ConfigError("another lestash-syncd is already listening on " + path +
                          " — stop it first, or give this one another --socket");
    ::unlink(path.c_str());
}

// One thread with its own read-only connection, for queries that must not
// wait behind a sync cycle (WAL lets it read while the worker writes).
class QueryThread {
  public:
    using Job = std::function<void(sqlite::Connection*, const std::string& error)>;
    explicit QueryThread(std::string path) : path_(std::move(path)), thread_([this] { run(); }) {}
    ~QueryThread() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
        }
        wake_.notify_one();
        thread_.join();
    }
    void post(Job job) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            jobs_.push_back(std::move(job));
        }
        wake_.notify_one();
    }

  private:
    void run() {
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

    std::string path_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Job> jobs_;
    bool stop_ = false;
    std::thread thread_;
};

std::string iso_time(std::chrono::system_clock::time_point t) {
    const std::time_t secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

json optional_time(const std::optional<std::chrono::system_clock::time_point>& t) {
    return t ? json(iso_time(*t)) : json(nullptr);
}

json push_json(const PushStats& s) {
    return {{"changes", s.entries},
            {"rows", s.upserted},
            {"deleted", s.deleted},
            {"refused", s.dead_lettered}};
}

json pull_json(const PullStats& s) {
    return {{"changes", s.changes},
            {"applied", s.applied},
            {"deleted", s.deleted},
            {"held", s.deferred}};
}

double epoch_seconds(const std::optional<std::chrono::system_clock::time_point>& t) {
    return t ? std::chrono::duration<double>(t->time_since_epoch()).count() : 0;
}

}  // namespace

struct Session;

struct ControlServer::Impl : std::enable_shared_from_this<ControlServer::Impl> {
    Impl(asio::io_context& io, ControlOptions options, StatusBoard& status, SyncWorker& worker)
        : io(io),
          options(std::move(options)),
          status(status),
          worker(worker),
          acceptor(io),
          queries(this->options.database_path),
          last(status.snapshot()) {}

    void accept();
    void dispatch(const std::shared_ptr<Session>& session, rpc::Request request);
    void status_changed();
    json status_json(const DaemonStatus& s) const;
    std::string metrics(const DaemonStatus& s) const;

    // Runs `work` on the query thread and sends what it returns (or the
    // error it raises) as the response to `request`.
    void on_query_thread(const std::shared_ptr<Session>& session, const rpc::Request& request,
                         std::function<json(sqlite::Connection&)> work);
    // The same on the sync worker, which holds the Postgres connection.
    void on_worker(
        const std::shared_ptr<Session>& session, const rpc::Request& request,
        std::function<json(SyncEngine&, Replica&, const std::function<void(json)>& notify)> work);

    asio::io_context& io;
    ControlOptions options;
    StatusBoard& status;
    SyncWorker& worker;
    stream::acceptor acceptor;
    QueryThread queries;
    std::set<std::shared_ptr<Session>> sessions;
    DaemonStatus last;
    std::deque<json> recent;  // the last events, for `lestash-sync log`
    bool stopping = false;
    std::uint64_t next_session = 1;

    struct Waiter {
        std::weak_ptr<Session> session;
        json id;
        std::int64_t target_cycles;
        std::shared_ptr<asio::steady_timer> timer;
    };
    std::list<Waiter> waiters;
};

struct Session : std::enable_shared_from_this<Session> {
    Session(std::shared_ptr<ControlServer::Impl> server, stream::socket socket,
            std::uint64_t number)
        : server(std::move(server)),
          socket(std::move(socket)),
          read_timer(this->socket.get_executor()),
          number(number) {}

    void start() { read(); }

    void read() {
        if (!open)
            return;
        if (!subscribed) {
            read_timer.expires_after(server->options.read_timeout);
            read_timer.async_wait([weak = weak_from_this()](std::error_code ec) {
                auto self = weak.lock();
                if (ec || !self || !self->open)
                    return;
                self->cut_off(
                    rpc::error_response(
                        nullptr, rpc::invalid_request,
                        "no complete request within " +
                            std::to_string(self->server->options.read_timeout.count() / 1000) +
                            " s: closing the connection"),
                    "read timeout");
            });
        }
        asio::async_read_until(socket, asio::dynamic_buffer(inbuf, rpc::kMaxRequestBytes + 1), '\n',
                               [self = shared_from_this()](std::error_code ec, std::size_t n) {
                                   self->on_read(ec, n);
                               });
    }

    void on_read(std::error_code ec, std::size_t n) {
        read_timer.cancel();
        if (!open)
            return;
        if (ec == asio::error::not_found) {  // the buffer filled without a newline
            cut_off(
                rpc::error_response(nullptr, rpc::too_large,
                                    "request longer than " + std::to_string(rpc::kMaxRequestBytes) +
                                        " bytes: closing the connection"),
                "request too large");
            return;
        }
        if (ec) {
            close();
            return;
        }
        std::string line = inbuf.substr(0, n - 1);
        inbuf.erase(0, n);
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        if (line.find_first_not_of(" \t") != std::string::npos) {
            auto parsed = rpc::parse_request(line);
            if (auto* rejection = std::get_if<rpc::Rejection>(&parsed))
                send(rejection->response);
            else
                server->dispatch(shared_from_this(), std::move(std::get<rpc::Request>(parsed)));
        }
        read();
    }

    void send(const json& message) {
        if (!open)
            return;
        std::string line = rpc::frame(message);
        if (queued + line.size() > server->options.max_queued_bytes) {
            spdlog::warn("control client {} reads too slowly ({} bytes unread): disconnected",
                         number, queued);
            close();
            return;
        }
        queued += line.size();
        out.push_back(std::move(line));
        if (!writing)
            write_next();
    }

    void write_next() {
        writing = true;
        asio::async_write(socket, asio::buffer(out.front()),
                          [self = shared_from_this()](std::error_code ec, std::size_t) {
                              self->queued -= self->out.front().size();
                              self->out.pop_front();
                              if (ec)
                                  return self->close();
                              if (!self->out.empty())
                                  return self->write_next();
                              self->writing = false;
                              if (self->closing)
                                  self->close();
                          });
    }

    // Sends a last error, then closes once it is written.
    void cut_off(const json& error, const char* why) {
        spdlog::info("control client {} cut off: {}", number, why);
        send(error);
        closing = true;
        if (!writing)
            close();
    }

    void close() {
        if (!open)
            return;
        open = false;
        std::error_code ignored;
        read_timer.cancel();
        socket.shutdown(stream::socket::shutdown_both, ignored);
        socket.close(ignored);
        server->sessions.erase(shared_from_this());
    }

    std::shared_ptr<ControlServer::Impl> server;
    stream::socket socket;
    asio::steady_timer read_timer;
    std::uint64_t number;
    std::string inbuf;
    std::deque<std::string> out;
    std::size_t queued = 0;
    bool writing = false, open = true, closing = false, subscribed = false;
};

void ControlServer::Impl::accept() {
    acceptor.async_accept([self = shared_from_this()](std::error_code ec, stream::socket socket) {
        if (ec == asio::error::operation_aborted || !self->acceptor.is_open())
            return;
        if (!ec) {
            const auto number = self->next_session++;
            ucred peer{};
            socklen_t len = sizeof peer;
            const bool known =
                ::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0;
            auto session = std::make_shared<Session>(self, std::move(socket), number);
            self->sessions.insert(session);
            if (!known || peer.uid != ::geteuid()) {
                spdlog::warn("control client {} refused: it runs as uid {}, this daemon as uid {}",
                             number, known ? std::to_string(peer.uid) : "unknown", ::geteuid());
                session->cut_off(
                    rpc::error_response(nullptr, rpc::permission_denied,
                                        "permission denied: this daemon serves only uid " +
                                            std::to_string(::geteuid())),
                    "another user");
            } else if (self->sessions.size() > self->options.max_clients) {
                session->cut_off(rpc::error_response(nullptr, rpc::unavailable,
                                                     "too many clients (" +
                                                         std::to_string(self->options.max_clients) +
                                                         "): try again shortly"),
                                 "too many clients");
            } else {
                session->start();
            }
        } else {
            spdlog::warn("control socket: accept failed: {}", ec.message());
        }
        self->accept();
    });
}

void ControlServer::Impl::on_query_thread(const std::shared_ptr<Session>& session,
                                          const rpc::Request& request,
                                          std::function<json(sqlite::Connection&)> work) {
    queries.post([this, weak = std::weak_ptr<Session>(session), id = request.id,
                  work = std::move(work)](sqlite::Connection* db, const std::string& error) {
        json response;
        try {
            if (!db)
                throw rpc::Failure(rpc::unavailable, "cannot read the database: " + error);
            response = rpc::result_response(id, work(*db));
        } catch (const rpc::Failure& f) {
            response = rpc::error_response(id, f.code, f.what(), f.data);
        } catch (const std::exception& e) {
            response = rpc::error_response(id, rpc::internal_error, e.what());
        }
        asio::post(io, [weak, response = std::move(response)] {
            if (auto s = weak.lock())
                s->send(response);
        });
    });
}

void ControlServer::Impl::on_worker(
    const std::shared_ptr<Session>& session, const rpc::Request& request,
    std::function<json(SyncEngine&, Replica&, const std::function<void(json)>&)> work) {
    worker.run_job(
        [this, weak = std::weak_ptr<Session>(session), id = request.id, work = std::move(work)](
            SyncEngine* engine, Replica& replica, const std::string& offline) {
            auto notify = [&](json message) {
                asio::post(io, [weak, message = std::move(message)] {
                    if (auto s = weak.lock())
                        s->send(message);
                });
            };
            json response;
            try {
                if (!engine)
                    throw rpc::Failure(rpc::unavailable, offline);
                response = rpc::result_response(id, work(*engine, replica, notify));
            } catch (const rpc::Failure& f) {
                response = rpc::error_response(id, f.code, f.what(), f.data);
            } catch (const UpstreamError& e) {
                response = rpc::error_response(id, rpc::unavailable, e.what());
            } catch (const std::exception& e) {
                response = rpc::error_response(id, rpc::internal_error, e.what());
            }
            notify(std::move(response));
        });
}

json ControlServer::Impl::status_json(const DaemonStatus& s) const {
    return {
        {"state", state_name(s.state)},
        {"summary", s.summary()},
        {"detail", s.detail},
        {"replica", {{"id", s.replica_id}, {"name", s.replica_name}}},
        {"database", s.database},
        {"postgres",
         {{"target", s.postgres_target.empty() ? json(nullptr) : json(s.postgres_target)},
          {"connected", s.postgres_connected},
          {"schema_version", s.upstream_schema_version}}},
        {"schema",
         {{"daemon_objects", s.objects_version}, {"upstream", s.upstream_schema_version}}},
        {"started_at", iso_time(s.started_at)},
        {"last_cycle_at", optional_time(s.last_cycle_at)},
        {"last_cycle_ms", s.last_cycle_ms},
        {"last_push", {{"at", optional_time(s.last_push_at)}, {"counts", push_json(s.last_push)}}},
        {"last_pull", {{"at", optional_time(s.last_pull_at)}, {"counts", pull_json(s.last_pull)}}},
        {"pushed_total", push_json(s.pushed_total)},
        {"pulled_total", pull_json(s.pulled_total)},
        {"outbox_depth", s.outbox_depth},
        {"lag_seconds", s.lag_seconds},
        {"dead_letters", s.dead_letters},
        {"errors_since_start", s.errors_since_start},
        {"cycles", s.cycles},
        {"clients", sessions.size()},
        {"protocol", rpc::kProtocolVersion},
        {"version", LESTASH_VERSION},
    };
}

std::string ControlServer::Impl::metrics(const DaemonStatus& s) const {
    std::string out;
    auto metric = [&](const char* name, const char* type, const char* help, double value,
                      const std::string& labels = "") {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
        out += std::string(name) + labels + " " + fmt::format("{}", value) + "\n";
    };
    out +=
        "# HELP lestash_sync_state 1 for the daemon's current state.\n# TYPE lestash_sync_state "
        "gauge\n";
    for (auto st : {DaemonState::starting, DaemonState::syncing, DaemonState::idle,
                    DaemonState::offline, DaemonState::paused, DaemonState::error})
        out += fmt::format("lestash_sync_state{{state=\"{}\"}} {}\n", state_name(st),
                           st == s.state ? 1 : 0);
    metric("lestash_sync_postgres_connected", "gauge", "1 while connected to Postgres.",
           s.postgres_connected);
    metric("lestash_sync_outbox_depth", "gauge", "Local changes not pushed yet.",
           static_cast<double>(s.outbox_depth));
    metric("lestash_sync_lag_seconds", "gauge", "Age of the oldest change not pushed yet.",
           s.lag_seconds);
    metric("lestash_sync_dead_letters", "gauge", "Changes Postgres refused for good.",
           static_cast<double>(s.dead_letters));
    metric("lestash_sync_pushed_changes_total", "counter", "Outbox entries pushed since start.",
           static_cast<double>(s.pushed_total.entries));
    metric("lestash_sync_pulled_changes_total", "counter", "Change-log entries pulled since start.",
           static_cast<double>(s.pulled_total.changes));
    metric("lestash_sync_applied_rows_total", "counter",
           "Rows written locally by pulls since start.",
           static_cast<double>(s.pulled_total.applied));
    metric("lestash_sync_deleted_rows_total", "counter",
           "Rows deleted locally by pulls since start.",
           static_cast<double>(s.pulled_total.deleted));
    metric("lestash_sync_errors_total", "counter", "Errors since start.",
           static_cast<double>(s.errors_since_start));
    metric("lestash_sync_cycles_total", "counter", "Sync cycles since start.",
           static_cast<double>(s.cycles));
    metric("lestash_sync_wakeups_total", "counter", "Times the daemon woke up since start.",
           static_cast<double>(s.wakeups));
    metric("lestash_sync_last_cycle_seconds", "gauge", "Duration of the last sync cycle.",
           s.last_cycle_ms / 1000.0);
    metric("lestash_sync_last_push_timestamp_seconds", "gauge",
           "When changes were last pushed (0: never).", epoch_seconds(s.last_push_at));
    metric("lestash_sync_last_pull_timestamp_seconds", "gauge",
           "When changes were last pulled (0: never).", epoch_seconds(s.last_pull_at));
    metric("lestash_sync_control_clients", "gauge", "Clients connected to the control socket.",
           static_cast<double>(sessions.size()));
    return out;
}

void ControlServer::Impl::status_changed() {
    const DaemonStatus now = status.snapshot();
    std::vector<json> events;
    const auto at = iso_time(std::chrono::system_clock::now());
    if (now.state != last.state && now.state != DaemonState::syncing)
        events.push_back({{"type", "state"},
                          {"at", at},
                          {"state", state_name(now.state)},
                          {"previous", state_name(last.state)},
                          {"detail", now.detail}});
    if (now.pushed_total.entries > last.pushed_total.entries) {
        PushStats delta = now.pushed_total;
        delta.entries -= last.pushed_total.entries;
        delta.upserted -= last.pushed_total.upserted;
        delta.deleted -= last.pushed_total.deleted;
        delta.dead_lettered -= last.pushed_total.dead_lettered;
        events.push_back({{"type", "pushed"},
                          {"at", at},
                          {"counts", push_json(delta)},
                          {"outbox_depth", now.outbox_depth}});
    }
    if (now.pulled_total.applied + now.pulled_total.deleted >
        last.pulled_total.applied + last.pulled_total.deleted) {
        PullStats delta = now.pulled_total;
        delta.changes -= last.pulled_total.changes;
        delta.applied -= last.pulled_total.applied;
        delta.deleted -= last.pulled_total.deleted;
        delta.deferred -= last.pulled_total.deferred;
        events.push_back({{"type", "pulled"}, {"at", at}, {"counts", pull_json(delta)}});
    }
    last = now;
    for (const auto& e : events) {
        recent.push_back(e);
        if (recent.size() > 200)
            recent.pop_front();
    }
    if (!events.empty())
        for (const auto& s :
             std::vector<std::shared_ptr<Session>>(sessions.begin(), sessions.end()))
            if (s->subscribed)
                for (const auto& e : events) s->send(rpc::notification("event", e));

    for (auto it = waiters.begin(); it != waiters.end();) {
        const bool caught_up = now.cycles >= it->target_cycles && now.state == DaemonState::idle &&
                               now.outbox_depth == 0;
        if (!caught_up) {
            ++it;
            continue;
        }
        it->timer->cancel();
        if (auto s = it->session.lock())
            s->send(
                rpc::result_response(it->id, {{"caught_up", true}, {"status", status_json(now)}}));
        it = waiters.erase(it);
    }
}

void ControlServer::Impl::dispatch(const std::shared_ptr<Session>& session, rpc::Request request) {
    auto reply = [&](json result) {
        if (!request.notification)
            session->send(rpc::result_response(request.id, std::move(result)));
    };
    // One visitor arm per method; what each accepts is decided in calls.cpp.
    struct Run {
        Impl& self;
        const std::shared_ptr<Session>& session;
        const rpc::Request& request;
        const std::function<void(json)>& reply;

        void operator()(const rpc::HelloCall&) const {
            reply({{"protocol", rpc::kProtocolVersion},
                   {"version", LESTASH_VERSION},
                   {"daemon", "lestash-syncd"},
                   {"methods", rpc::method_names()}});
        }
        void operator()(const rpc::StatusCall&) const {
            reply(self.status_json(self.status.snapshot()));
        }
        void operator()(const rpc::MetricsCall&) const {
            reply({{"content_type", "text/plain; version=0.0.4"},
                   {"text", self.metrics(self.status.snapshot())}});
        }
        void operator()(const rpc::PauseCall&) const {
            self.worker.pause();
            reply({{"paused", true}});
        }
        void operator()(const rpc::ResumeCall&) const {
            self.worker.resume();
            reply({{"paused", false}});
        }
        void operator()(const rpc::SyncNowCall& c) const {
            const auto s = self.status.snapshot();
            if (s.state == DaemonState::paused)
                throw rpc::Failure(rpc::paused, "sync is paused — run `lestash-sync resume` first");
            self.worker.sync_now();
            if (!c.wait)
                return reply({{"requested", true}});
            if (request.notification)
                return;
            // A cycle already under way may have started before the caller's
            // last write: wait for the one after it.
            Waiter w{session, request.id, s.cycles + (s.state == DaemonState::syncing ? 2 : 1),
                     std::make_shared<asio::steady_timer>(self.io)};
            w.timer->expires_after(std::chrono::milliseconds(c.timeout_ms));
            self.waiters.push_back(w);
            auto it = std::prev(self.waiters.end());
            w.timer->async_wait([impl = self.shared_from_this(), it,
                                 timeout = c.timeout_ms](std::error_code ec) {
                if (ec)
                    return;
                const auto now = impl->status.snapshot();
                if (auto s = it->session.lock())
                    s->send(rpc::error_response(
                        it->id, rpc::timed_out,
                        "not caught up after " + std::to_string(timeout) + " ms: " + now.summary(),
                        impl->status_json(now)));
                impl->waiters.erase(it);
            });
        }
        void operator()(const rpc::SearchCall& c) const {
            self.on_query_thread(session, request, [o = c.options](sqlite::Connection& db) {
                return queries::search(db, o);
            });
        }
        void operator()(const rpc::ItemCall& c) const {
            self.on_query_thread(session, request, [c](sqlite::Connection& db) {
                return c.history ? queries::item_history(db, c.id, c.limit)
                                 : queries::get_item(db, c.id);
            });
        }
        void operator()(const rpc::ListConflictsCall& c) const {
            self.on_worker(session, request, [c](SyncEngine& engine, Replica&, const auto&) {
                return engine.list_conflicts(c.all, c.limit);
            });
        }
        void operator()(const rpc::ResolveConflictCall& c) const {
            self.on_worker(
                session, request,
                [c, &worker = self.worker](SyncEngine& engine, Replica&, const auto&) {
                    json result = engine.resolve_conflict(c.id, c.keep_loser);
                    worker.sync_now();  // a restored value comes back through the change log
                    return result;
                });
        }
        void operator()(const rpc::VerifyCall& c) const {
            self.on_worker(
                session, request,
                [c](SyncEngine& engine, Replica&, const std::function<void(json)>& notify) {
                    const auto report =
                        engine.verify(c.repair, [&](const std::string& table, int done, int total) {
                            notify(rpc::notification(
                                "verify.progress",
                                {{"table", table}, {"done", done}, {"total", total}}));
                        });
                    return verify_report_json(report, c.repair);
                });
        }
        void operator()(const rpc::SubscribeCall&) const {
            session->subscribed = true;
            session->read_timer.cancel();
            reply({{"subscribed", true},
                   {"status", self.status_json(self.status.snapshot())},
                   {"recent", json(self.recent)}});
        }
    };
    try {
        const rpc::Call call = rpc::parse_call(request);
        if (stopping)
            throw rpc::Failure(rpc::unavailable, "the daemon is stopping");
        const std::function<void(json)> send_reply = reply;
        std::visit(Run{*this, session, request, send_reply}, call);
    } catch (const rpc::Failure& f) {
        if (!request.notification)
            session->send(rpc::error_response(request.id, f.code, f.what(), f.data));
    }
}

ControlServer::ControlServer(asio::io_context& io, ControlOptions options, StatusBoard& status,
                             SyncWorker& worker)
    : impl_(std::make_shared<Impl>(io, std::move(options), status, worker)) {
    const std::string& path = impl_->options.socket_path;
    if (path.size() >= sizeof(sockaddr_un{}.sun_path))
        throw ConfigError("control socket path too long for a Unix socket: " + path);
    prepare_socket_directory(path);
    remove_stale_socket(path);
    auto& acceptor = impl_->acceptor;
    acceptor.open(stream());
    // Created 0600 from the start: no moment where others could connect.
    const mode_t old_mask = ::umask(0177);
    std::error_code ec;
    acceptor.bind(stream::endpoint(path), ec);
    ::umask(old_mask);
    if (ec)
        throw ConfigError("cannot create the control socket " + path + ": " + ec.message() +
                          " — set [control] socket or --socket to a path you can write");
    acceptor.listen(asio::socket_base::max_listen_connections);
    impl_->accept();
    spdlog::info("control socket at {}", path);
}

ControlServer::~ControlServer() {
    std::error_code ignored;
    impl_->acceptor.close(ignored);
    for (const auto& s :
         std::vector<std::shared_ptr<Session>>(impl_->sessions.begin(), impl_->sessions.end()))
        s->close();
    for (auto& w : impl_->waiters) w.timer->cancel();
    impl_->waiters.clear();
    ::unlink(impl_->options.socket_path.c_str());
}

void ControlServer::status_changed() {
    impl_->status_changed();
}

void ControlServer::shutting_down() {
    impl_->stopping = true;
    for (auto& w : impl_->waiters) {
        w.timer->cancel();
        if (auto s = w.session.lock())
            s->send(rpc::error_response(w.id, rpc::unavailable, "the daemon is stopping"));
    }
    impl_->waiters.clear();
}

}  // namespace lestash
