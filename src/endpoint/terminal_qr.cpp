// QR codes for the terminal with libqrencode (see terminal_qr.hpp).
#include "lestash_sync/endpoint/terminal_qr.hpp"

#include <qrencode.h>

#include <memory>
#include <stdexcept>

namespace lestash {

std::string terminal_qr(const std::string& text) {
    std::unique_ptr<QRcode, decltype(&QRcode_free)> qr(
        QRcode_encodeString8bit(text.c_str(), 0, QR_ECLEVEL_M), QRcode_free);
    if (!qr)
        throw std::runtime_error("cannot make a QR code of " + std::to_string(text.size()) +
                                 " bytes");
    constexpr int quiet = 2;
    const int width = qr->width, size = width + 2 * quiet;
    auto dark = [&](int x, int y) {
        x -= quiet;
        y -= quiet;
        return x >= 0 && y >= 0 && x < width && y < width && (qr->data[y * width + x] & 1);
    };
    std::string out;
    for (int y = 0; y < size; y += 2) {
        for (int x = 0; x < size; ++x) {
            const bool top = !dark(x, y), bottom = y + 1 < size && !dark(x, y + 1);
            out += top && bottom ? "\u2588" : top ? "\u2580" : bottom ? "\u2584" : " ";
        }
        out += '\n';
    }
    return out;
}

}  // namespace lestash
