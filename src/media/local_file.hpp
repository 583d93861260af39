// Files in the media folder, one owner per file descriptor: read, written
// at an offset, flushed to disk; directories flushed after a rename; a
// rename that never replaces a file already there. Errors are
// LocalFileError naming the path and what the system said.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "lestash_sync/common/error.hpp"

namespace lestash {

// A media file could not be read or written (permissions, a full disk...):
// recorded on the file and retried, never fatal for the daemon.
class LocalFileError : public Error {
  public:
    using Error::Error;
};

class LocalFile {
  public:
    static LocalFile open_for_reading(const std::filesystem::path& path);
    // Creates the file when it does not exist (mode 0666 less the umask).
    static LocalFile open_for_writing(const std::filesystem::path& path);
    ~LocalFile();
    LocalFile(LocalFile&& other) noexcept;
    LocalFile& operator=(LocalFile&&) = delete;
    LocalFile(const LocalFile&) = delete;

    struct Stat {
        std::int64_t size = 0;
        std::int64_t mtime_ns = 0;
        bool operator==(const Stat&) const = default;
    };
    Stat stat() const;
    // Up to `n` bytes from `offset` into `buffer` (resized to what was read;
    // fewer at the end of the file).
    void read_at(std::int64_t offset, std::size_t n, std::string& buffer) const;
    void write_at(std::int64_t offset, std::string_view bytes);
    void truncate(std::int64_t size);
    void sync();
    const std::filesystem::path& path() const { return path_; }

  private:
    LocalFile(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
    [[noreturn]] void fail(const char* doing) const;

    int fd_ = -1;
    std::filesystem::path path_;
};

// fsync of a directory, so a rename or a new entry in it survives a crash.
void sync_directory(const std::filesystem::path& dir);
// Renames `from` to `to` unless something is at `to` already; returns false
// then (and leaves both as they are).
bool rename_no_replace(const std::filesystem::path& from, const std::filesystem::path& to);
// Removes the file if it is there; false when it was not.
bool remove_file(const std::filesystem::path& path);
// The directories from `dir` up to (not including) `root` that are empty.
void remove_empty_directories(std::filesystem::path dir, const std::filesystem::path& root);

}  // namespace lestash
