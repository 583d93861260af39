// SHA-256 with OpenSSL's EVP digests (see sha256.hpp).
#include "lestash_sync/common/sha256.hpp"

#include <openssl/evp.h>

#include <stdexcept>

namespace lestash {

struct Sha256::Context {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Context() { EVP_MD_CTX_free(ctx); }
    void start() {
        if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1)
            throw std::runtime_error("OpenSSL cannot start a SHA-256 digest");
    }
};

Sha256::Sha256() : context_(std::make_unique<Context>()) {
    context_->start();
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(std::string_view bytes) {
    if (EVP_DigestUpdate(context_->ctx, bytes.data(), bytes.size()) != 1)
        throw std::runtime_error("OpenSSL failed to update a SHA-256 digest");
}

std::string Sha256::hex_digest() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(context_->ctx, digest, &length) != 1)
        throw std::runtime_error("OpenSSL failed to finish a SHA-256 digest");
    static const char* const digits = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < length; ++i) {
        out += digits[digest[i] >> 4];
        out += digits[digest[i] & 15];
    }
    context_->start();
    return out;
}

std::string sha256_hex(std::string_view bytes) {
    Sha256 h;
    h.update(bytes);
    return h.hex_digest();
}

}  // namespace lestash
