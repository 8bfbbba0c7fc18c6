// Command-line flags of the daemons: "--name value" or "--name=value". Errors go to a fail
// function that does not return (the daemon's die()).
#pragma once

#include <string>

namespace qtls {

class FlagReader {
 public:
  using Fail = void (*)(const std::string& message);  // must not return

  FlagReader(int argc, char** argv, Fail fail) : argc_(argc), argv_(argv), fail_(fail) {}

  // Moves to the next argument; false when none is left.
  bool next() {
    if (++i_ >= argc_) return false;
    name_ = argv_[i_];
    inlineValue_ = false;
    size_t eq = name_.find('=');
    if (name_.rfind("--", 0) == 0 && eq != std::string::npos) {
      value_ = name_.substr(eq + 1);
      name_.resize(eq);
      inlineValue_ = true;
    }
    return true;
  }
  const std::string& name() const { return name_; }

  std::string value() {
    if (inlineValue_) return value_;
    if (i_ + 1 >= argc_) fail_(name_ + " needs a value");
    return argv_[++i_];
  }

  // A decimal number within [min, max].
  long number(long min = 0, long max = 1L << 40) {
    std::string v = value();
    if (v.empty() || v.size() > 12 || v.find_first_not_of("0123456789") != std::string::npos)
      fail_(name_ + ": not a number: " + v);
    long n = std::stol(v);
    if (n < min || n > max)
      fail_(name_ + ": " + v + " is out of range (" + std::to_string(min) + " to " +
            std::to_string(max) + ")");
    return n;
  }

 private:
  int argc_;
  char** argv_;
  Fail fail_;
  int i_ = 0;
  std::string name_, value_;
  bool inlineValue_ = false;
};

}  // namespace qtls
