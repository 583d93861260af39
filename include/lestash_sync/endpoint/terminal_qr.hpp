// A QR code drawn with Unicode half blocks, two modules per character row,
// light modules as blocks (for a dark terminal; a light one shows it
// inverted, which phone scanners read as well), with the quiet zone.
#pragma once

#include <string>

namespace lestash {

// Raises std::runtime_error when the text does not fit a QR code.
std::string terminal_qr(const std::string& text);

}  // namespace lestash
