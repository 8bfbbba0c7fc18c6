// Reads qmail control files with qmail's rules: a missing file means "use the default", a file
// that exists but cannot be read is an error, never a silent default.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace qtls::control {

// First line of `path` with trailing spaces, tabs, CR and LF removed; nullopt if the file does
// not exist. Any other open or read error is returned as a Status naming the file.
absl::StatusOr<std::optional<std::string>> readLine(const std::string& path);

// Every line of `path` except empty ones and ones starting with '#', each with trailing
// spaces, tabs and CR removed; nullopt if the file does not exist.
absl::StatusOr<std::optional<std::vector<std::string>>> readList(const std::string& path);

// Leading decimal digits of the first line; `def` if the file is missing or the line does
// not start with a digit (qmail keeps the default for non-numeric content).
absl::StatusOr<long> readInt(const std::string& path, long def);

// Whole file contents; nullopt if the file does not exist.
absl::StatusOr<std::optional<std::string>> readFile(const std::string& path);

// True if `path` exists (any type), as the TLS patch tests with stat().
bool exists(const std::string& path);

}  // namespace qtls::control
