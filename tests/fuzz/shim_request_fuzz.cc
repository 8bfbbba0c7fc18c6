// Fuzz target: the daemon's parser of shim requests (netstrings from local clients).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "intake.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  qtls::remoted::DeliveryRequest req;
  std::string why;
  if (qtls::remoted::parseRequest(in, req, why) && req.recipients.empty()) __builtin_trap();
  return 0;
}
