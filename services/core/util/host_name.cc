// Host-name validation.
#include "util/host_name.h"

namespace qtls::text {

bool validHostName(std::string_view name, HostName rules) {
  if (rules == HostName::kSuffixAllowed && !name.empty() && name[0] == '.') name.remove_prefix(1);
  if (name.empty() || name.size() > 253) return false;
  size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return false;  // leading dot or ".."
      label = 0;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok || ++label > 63) return false;
  }
  return label > 0;  // no trailing dot
}

}  // namespace qtls::text
