// SHA-256 as lowercase hex: policy digests, item fingerprints, TLS context keys.
#pragma once

#include <string>
#include <string_view>

namespace qtls::text {

std::string sha256Hex(std::string_view data);

}  // namespace qtls::text
