// Media files on disk (see local_file.hpp).
#include "local_file.hpp"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace lestash {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail_on(const fs::path& path, const char* doing) {
    throw LocalFileError(std::string("cannot ") + doing + " " + path.string() + ": " +
                         std::strerror(errno));
}

int open_or_fail(const fs::path& path, int flags, const char* doing) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0666);
    if (fd < 0)
        fail_on(path, doing);
    return fd;
}

}  // namespace

LocalFile LocalFile::open_for_reading(const fs::path& path) {
    return LocalFile(open_or_fail(path, O_RDONLY, "open"), path);
}

LocalFile LocalFile::open_for_writing(const fs::path& path) {
    return LocalFile(open_or_fail(path, O_RDWR | O_CREAT, "create"), path);
}

LocalFile::~LocalFile() {
    if (fd_ >= 0)
        ::close(fd_);
}

LocalFile::LocalFile(LocalFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

void LocalFile::fail(const char* doing) const {
    fail_on(path_, doing);
}

LocalFile::Stat LocalFile::stat() const {
    struct stat st {};
    if (::fstat(fd_, &st) != 0)
        fail("stat");
    return {static_cast<std::int64_t>(st.st_size),
            static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

void LocalFile::read_at(std::int64_t offset, std::size_t n, std::string& buffer) const {
    buffer.resize(n);
    std::size_t got = 0;
    while (got < n) {
        const auto r = ::pread(fd_, buffer.data() + got, n - got, offset + static_cast<off_t>(got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            fail("read");
        if (r == 0)
            break;
        got += static_cast<std::size_t>(r);
    }
    buffer.resize(got);
}

void LocalFile::write_at(std::int64_t offset, std::string_view bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
        const auto w = ::pwrite(fd_, bytes.data() + done, bytes.size() - done,
                                offset + static_cast<off_t>(done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            fail("write");
        done += static_cast<std::size_t>(w);
    }
}

void LocalFile::truncate(std::int64_t size) {
    if (::ftruncate(fd_, size) != 0)
        fail("truncate");
}

void LocalFile::sync() {
    if (::fsync(fd_) != 0)
        fail("flush to disk");
}

void sync_directory(const fs::path& dir) {
    const int fd = open_or_fail(dir, O_RDONLY | O_DIRECTORY, "open directory");
    const int rc = ::fsync(fd);
    const int saved = errno;
    ::close(fd);
    errno = saved;
    if (rc != 0)
        fail_on(dir, "flush to disk");
}

bool rename_no_replace(const fs::path& from, const fs::path& to) {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0)
        return true;
    if (errno == EEXIST)
        return false;
    if (errno != EINVAL && errno != ENOSYS)
        fail_on(to, "rename into place");
    // A file system without RENAME_NOREPLACE: a hard link fails on an
    // existing name just the same.
    if (::link(from.c_str(), to.c_str()) != 0) {
        if (errno == EEXIST)
            return false;
        fail_on(to, "link into place");
    }
    ::unlink(from.c_str());
    return true;
}

bool remove_file(const fs::path& path) {
    if (::unlink(path.c_str()) == 0)
        return true;
    if (errno == ENOENT)
        return false;
    fail_on(path, "remove");
}

void remove_empty_directories(fs::path dir, const fs::path& root) {
    while (!dir.empty() && dir != root && dir.string().size() > root.string().size()) {
        if (::rmdir(dir.c_str()) != 0)
            return;  // not empty (or not ours to remove): stop there
        dir = dir.parent_path();
    }
}

}  // namespace lestash
