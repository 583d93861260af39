// A temporary directory removed with everything in it when the test ends.
#pragma once

#include <filesystem>
#include <string>

namespace lestash::test {

class TempDir {
  public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::string file(const std::string& name) const { return (path_ / name).string(); }

  private:
    std::filesystem::path path_;
};

// The path of a Le Stash schema fixture in ../shared/lestash-schema.
std::string schema_fixture(int version);
// Creates a database at `path` exactly as the Le Stash CLI would at that
// schema version (1 or 11).
void create_lestash_db(const std::string& path, int version);
std::string read_file(const std::string& path);

// Runs a shell command; returns its exit status and combined output.
struct CommandResult {
    int status = -1;
    std::string output;
};
CommandResult run_command(const std::string& command);

}  // namespace lestash::test
