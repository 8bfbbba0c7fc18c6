// Logging: one line per event, a severity word, stable key=value pairs, never multi-line.
// Lines go to stderr (journald or multilog capture it).
#pragma once

#include <string>
#include <string_view>

namespace qtls::log {

enum class Severity { kDebug, kInfo, kWarning, kError, kFatal };

void setMinSeverity(Severity s);
void write(Severity s, std::string_view line);

inline void info(std::string_view l) { write(Severity::kInfo, l); }
inline void warn(std::string_view l) { write(Severity::kWarning, l); }
inline void error(std::string_view l) { write(Severity::kError, l); }

// Quotes a value for a key=value log line: bytes outside 33..126, '"' and '\' are escaped,
// and the value is quoted when it contains a space or is empty.
std::string value(std::string_view v);

}  // namespace qtls::log
