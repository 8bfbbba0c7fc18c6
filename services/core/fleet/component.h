// A daemon's component name in the fleet: the one mapping, used by keys and metrics.
#pragma once

#include <string>

namespace qtls::fleet {

// "remote" for qtls-remoted, "smtpd" for qtls-smtpd.
inline std::string componentOf(const std::string& daemon) {
  if (daemon == "qtls-remoted") return "remote";
  if (daemon == "qtls-smtpd") return "smtpd";
  return daemon;
}

inline bool validComponent(const std::string& component) {
  return component == "remote" || component == "smtpd";
}

}  // namespace qtls::fleet
