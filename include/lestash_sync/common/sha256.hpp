// SHA-256 through OpenSSL's EVP interface: media files are content-addressed
// by it, streamed through one hasher a chunk at a time. The same digest as
// Postgres' sha256() and `sha256sum`.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace lestash {

class Sha256 {
  public:
    Sha256();
    ~Sha256();
    Sha256(Sha256&&) noexcept;
    Sha256& operator=(Sha256&&) noexcept;

    void update(std::string_view bytes);
    // The lowercase hex digest of everything given so far; the hasher
    // starts over afterwards.
    std::string hex_digest();

  private:
    struct Context;
    std::unique_ptr<Context> context_;
};

// Lowercase hex digest of `bytes`.
std::string sha256_hex(std::string_view bytes);

}  // namespace lestash
