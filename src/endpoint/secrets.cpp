// Random secrets and their hashes (see secrets.hpp).
#include "lestash_sync/endpoint/secrets.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdexcept>

#include "lestash_sync/endpoint/tokens.hpp"

namespace lestash {

namespace {
constexpr char kCrockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
}

std::string random_bytes(std::size_t n) {
    std::string out(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
        throw std::runtime_error("the system's random number generator failed");
    return out;
}

std::string sha256(std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(data.data(), data.size(), out, &n, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("SHA-256 failed");
    return std::string(reinterpret_cast<const char*>(out), n);
}

std::string new_device_credential() {
    return base64url_encode(random_bytes(32));
}

std::string new_pairing_code() {
    const std::string bytes = random_bytes(12);
    std::string code;
    for (std::size_t i = 0; i < 12; ++i) {
        if (i > 0 && i % 4 == 0)
            code += '-';
        code += kCrockford[static_cast<unsigned char>(bytes[i]) & 31];
    }
    return code;
}

std::string normalized_pairing_code(std::string_view typed) {
    std::string out;
    for (char c : typed) {
        if (c == '-' || c == ' ')
            continue;
        if (c >= 'a' && c <= 'z')
            c = static_cast<char>(c - 'a' + 'A');
        if (c == 'O')
            c = '0';
        if (c == 'I' || c == 'L')
            c = '1';
        out += c;
    }
    return out;
}

}  // namespace lestash
