// Command lines as people type them (git, systemctl, docker): a program's
// global options work before or after its subcommand, `--version` prints
// the build's version, usage errors exit 2. Every program's main builds its
// CLI::App with this, so all of them behave alike, and so do the man pages
// and the bash completion generated from their --help (scripts/cli_docs.py).
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

namespace lestash {

class CommandLine {
  public:
    // `program` is the name shown in usage lines and by --version.
    CommandLine(const std::string& program, const std::string& description);

    // Add global options and subcommands here. Global options added before
    // or after the subcommands work in either position.
    CLI::App& app() { return app_; }

    // Parses argv. Returns the exit status when the program is done already:
    // 0 after --help or --version, 2 after a usage error (the message on
    // stderr). With LESTASH_PARSE_ONLY=1 in the environment it also returns
    // 0 right after a successful parse, doing nothing: the docs' command-line
    // test runs every command line the docs show that way.
    std::optional<int> parse(int argc, char** argv);

  private:
    CLI::App app_;
};

}  // namespace lestash
