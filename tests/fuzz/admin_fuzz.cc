// Fuzz target: the admin plane's parsers and text transforms: the policy snapshot format
// (round trip), private-key redaction (no key line may survive) and the unified diff.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "admin/policy_store.h"
#include "admin/text_diff.h"

using qtls::admin::PolicyStore;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);

  auto items = qtls::admin::decodeGeneration(in, "fuzz");
  if (items.ok()) {
    auto again = qtls::admin::decodeGeneration(qtls::admin::encodeGeneration(*items), "fuzz");
    if (!again.ok() || *again != *items) std::abort();
  }

  bool redacted = false;
  const std::string shown = PolicyStore::redactKeys(in, &redacted);
  if (shown.size() > in.size()) std::abort();
  for (size_t i = 0; i < shown.size();) {
    size_t nl = shown.find('\n', i);
    const size_t end = nl == std::string::npos ? shown.size() : nl + 1;
    const std::string line = shown.substr(i, end - i);
    if (line.rfind("-----BEGIN ", 0) == 0 && line.find("PRIVATE KEY") != std::string::npos)
      std::abort();
    i = end;
  }

  const size_t half = size / 2;
  const std::string a = in.substr(0, half), b = in.substr(half);
  const std::string d = qtls::admin::unifiedDiff(a, b, "f");
  if ((a == b) != d.empty()) std::abort();
  return 0;
}
