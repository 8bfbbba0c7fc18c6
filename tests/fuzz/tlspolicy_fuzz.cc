// Fuzz target: control/tlspolicy parser and lookup (operator input, also pushed over the API).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "policy/tlspolicy_table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto t = qtls::policy::TlsPolicyTable::parse(in, "fuzz");
  if (t.ok()) {
    (void)t->lookup("mx.example.com");
    (void)t->lookup(in.substr(0, 64));
  }
  return 0;
}
