// A private PostgreSQL server (see include/lestash_sync/upstream/local_postgres.hpp).
#include "lestash_sync/upstream/local_postgres.hpp"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

namespace lestash {
namespace fs = std::filesystem;

namespace {

std::string find_bin_dir() {
    std::vector<fs::path> candidates;
    for (int v = 17; v >= 13; --v)
        candidates.emplace_back("/usr/lib/postgresql/" + std::to_string(v) + "/bin");
    for (const auto& c : candidates)
        if (fs::exists(c / "initdb") && fs::exists(c / "postgres"))
            return c.string();
    throw std::runtime_error(
        "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin — install them "
        "(apt-get install postgresql-15)");
}

int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        ::close(fd);
        throw std::runtime_error("cannot find a free port on 127.0.0.1");
    }
    ::close(fd);
    return ntohs(addr.sin_port);
}

// The unprivileged account servers run as when the tests run as root.
const passwd* server_account() {
    if (::geteuid() != 0)
        return nullptr;
    const passwd* pw = ::getpwnam("postgres");
    if (!pw)
        pw = ::getpwnam("nobody");
    if (!pw)
        throw std::runtime_error("running as root and no 'postgres' or 'nobody' user exists");
    return pw;
}

// Forks and execs argv as the server account; the child dies with us.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log_path) {
    const passwd* pw = server_account();
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0)
        throw std::runtime_error("fork failed");
    if (pid > 0)
        return pid;
    if (pw && (::setgid(pw->pw_gid) != 0 || ::setuid(pw->pw_uid) != 0))
        _exit(126);
    ::prctl(PR_SET_PDEATHSIG, SIGQUIT);  // set after setuid, which clears it
    if (::getppid() != parent)
        _exit(125);
    ::setsid();
    std::FILE* log = std::fopen(log_path.c_str(), "a");
    if (log) {
        ::dup2(::fileno(log), 1);
        ::dup2(::fileno(log), 2);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    _exit(127);
}

int wait_for(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string tail_of(const std::string& path) {
    std::ifstream in(path);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
}

}  // namespace

LocalPostgres::LocalPostgres(LocalPostgresOptions options)
    : options_(std::move(options)), bin_dir_(find_bin_dir()) {
    if (options_.data_dir.empty()) {
        std::string tmpl = (fs::temp_directory_path() / "lestash-pg-XXXXXX").string();
        if (!::mkdtemp(tmpl.data()))
            throw std::runtime_error("cannot create a temp dir for Postgres");
        temp_dir_ = tmpl;
        data_dir_ = (temp_dir_ / "data").string();
        socket_dir_ = temp_dir_.string();
    } else {
        data_dir_ = options_.data_dir;
        socket_dir_ = (fs::path(data_dir_).parent_path() / "socket").string();
        fs::create_directories(socket_dir_);
    }
    const passwd* pw = server_account();
    for (const auto& dir : {fs::path(socket_dir_), fs::path(data_dir_).parent_path()}) {
        if (pw && ::chown(dir.c_str(), pw->pw_uid, pw->pw_gid) != 0)
            throw std::runtime_error("cannot hand " + dir.string() + " to the server account");
        fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
    }
    if (!fs::exists(fs::path(data_dir_) / "PG_VERSION")) {
        const std::string log = (fs::path(data_dir_).parent_path() / "initdb.log").string();
        const int rc = wait_for(spawn({bin_dir_ + "/initdb", "-D", data_dir_, "-U", "postgres",
                                       "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"},
                                      log));
        if (rc != 0)
            throw std::runtime_error("initdb failed (" + std::to_string(rc) + "):\n" +
                                     tail_of(log));
        // Unix socket and the superuser over loopback: trust. Every other
        // role over TCP must authenticate with its password.
        std::ofstream(data_dir_ + "/pg_hba.conf") << "local all all trust\n"
                                                     "host all postgres 127.0.0.1/32 trust\n"
                                                     "host all all 127.0.0.1/32 scram-sha-256\n";
    }
    if (options_.listen_tcp)
        port_ = free_port();
    start();
}

void LocalPostgres::start() {
    const std::string log = (fs::path(data_dir_).parent_path() / "server.log").string();
    pid_ = spawn(
        {bin_dir_ + "/postgres", "-D", data_dir_, "-p", std::to_string(port_), "-k", socket_dir_,
         "-c", std::string("listen_addresses=") + (options_.listen_tcp ? "127.0.0.1" : ""), "-c",
         std::string("fsync=") + (options_.durable ? "on" : "off"), "-c", "max_connections=200",
         "-c", "shared_buffers=32MB",
         // What PowerSync's service needs (docs/mobile.md): logical WAL,
         // replication slots, a cap on the WAL an abandoned slot keeps. Given
         // at every start, so a data directory made by an older build gets
         // them too.
         "-c", "wal_level=logical", "-c", "max_replication_slots=8", "-c", "max_wal_senders=8",
         "-c", "max_slot_wal_keep_size=2GB"},
        log);
    const std::string ci = conninfo() + " connect_timeout=2";
    for (int i = 0; i < 300; ++i) {
        if (PQping(ci.c_str()) == PQPING_OK)
            return;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("postgres exited at start:\n" + tail_of(log));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    stop("immediate");
    throw std::runtime_error("postgres did not accept connections within 15 s:\n" + tail_of(log));
}

void LocalPostgres::stop(const std::string& mode) {
    if (pid_ <= 0)
        return;
    const int sig = mode == "smart" ? SIGTERM : mode == "immediate" ? SIGQUIT : SIGINT;
    ::kill(pid_, sig);
    wait_for(pid_);
    pid_ = -1;
}

LocalPostgres::~LocalPostgres() {
    try {
        stop(temp_dir_.empty() ? "fast" : "immediate");
    } catch (...) {
    }
    std::error_code ignored;
    if (!temp_dir_.empty())
        fs::remove_all(temp_dir_, ignored);
}

std::string LocalPostgres::conninfo(const std::string& dbname) const {
    const std::string host = options_.listen_tcp ? "127.0.0.1" : socket_dir_;
    return "host=" + host + " port=" + std::to_string(port_) + " user=postgres dbname=" + dbname;
}

std::string LocalPostgres::conninfo_as(const std::string& user, const std::string& password,
                                       const std::string& dbname) const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " user=" + user +
           " password=" + password + " dbname=" + dbname;
}

void LocalPostgres::exec(const std::string& sql, const std::string& dbname) const {
    std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(conninfo(dbname).c_str()),
                                                      &PQfinish);
    if (PQstatus(conn.get()) != CONNECTION_OK)
        throw std::runtime_error(std::string("cannot connect: ") + PQerrorMessage(conn.get()));
    std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn.get(), sql.c_str()), &PQclear);
    const auto st = PQresultStatus(res.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        throw std::runtime_error("SQL failed: " + std::string(PQerrorMessage(conn.get())) + "\n" +
                                 sql.substr(0, 200));
}

std::string LocalPostgres::create_database(const std::string& prefix) {
    const std::string name =
        prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(next_db_++);
    exec("CREATE DATABASE " + name);
    return name;
}

}  // namespace lestash
