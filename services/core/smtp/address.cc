// RFC 821 quoting of the local part, with qmail's rule for when quoting is needed.
#include "smtp/address.h"

namespace qtls::smtp {
namespace {

bool needsQuoting(std::string_view local) {
  if (local.empty()) return true;
  if (local.front() == '.' || local.back() == '.') return true;
  for (size_t i = 0; i < local.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(local[i]);
    if (c >= 128 || c < 33 || c == 127) return true;
    switch (c) {
      case '"':
      case '(':
      case ')':
      case ',':
      case ':':
      case ';':
      case '<':
      case '>':
      case '@':
      case '[':
      case '\\':
      case ']':
        return true;
      case '.':
        if (i + 1 < local.size() && local[i + 1] == '.') return true;
        break;
      default:
        break;
    }
  }
  return false;
}

}  // namespace

std::string quoteAddress(std::string_view address) {
  size_t at = address.rfind('@');
  if (at == std::string_view::npos) return std::string(address);
  std::string_view local = address.substr(0, at);
  std::string out;
  if (!needsQuoting(local)) {
    out.append(local);
  } else {
    out.push_back('"');
    for (char c : local) {
      if (c == '\r' || c == '\n' || c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.append(address.substr(at));
  return out;
}

}  // namespace qtls::smtp
