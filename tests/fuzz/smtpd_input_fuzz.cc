// Fuzz target: what qtls-smtpd parses from clients: command-line framing with its length bound,
// the verb split, qmail-smtpd's address parser and the DATA decoder. The first byte chooses how
// the rest is cut into reads, so resumption at every split point is exercised.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "smtp_input.h"

using qtls::agent::DataReader;
using qtls::agent::LineReader;

namespace {

// Decodes `in` as DATA, fed in pieces of `step` bytes; returns the stored bytes.
std::string decode(std::string_view in, size_t step, size_t limit, DataReader::State& end) {
  DataReader r(limit);
  std::string out;
  for (size_t pos = 0; pos < in.size() && r.state() == DataReader::State::kMore;) {
    std::string_view piece = in.substr(pos, step);
    size_t used = r.feed(piece);
    if (used > piece.size()) __builtin_trap();
    pos += used;
    out += r.take();
    if (used < piece.size() && r.state() == DataReader::State::kMore) __builtin_trap();
  }
  if (limit != 0 && r.overflow() == false && out.size() > limit) __builtin_trap();
  end = r.state();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = 1 + data[0] % 17;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  LineReader lines(64);
  std::string line, verb, addr, rest;
  std::string_view arg;
  for (size_t pos = 0; pos <= in.size(); pos += step) {
    lines.append(in.substr(pos, step));
    if (lines.buffer().size() > 64 + step) __builtin_trap();  // bounded
    for (;;) {
      auto r = lines.next(line);
      if (r == LineReader::Result::kNeedMore) break;
      if (r != LineReader::Result::kLine) continue;
      if (line.size() > 64 || line.find('\n') != std::string::npos) __builtin_trap();
      qtls::agent::splitCommand(line, verb, arg);
      if (qtls::agent::parseAddress(arg, addr, rest) &&
          (addr.size() > 900 ||
           addr.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos))
        __builtin_trap();
    }
  }

  // The DATA decoder gives the same bytes and the same end however the input is cut.
  DataReader::State a, b;
  std::string whole = decode(in, in.size() + 1, 0, a);
  std::string pieces = decode(in, step, 0, b);
  if (whole != pieces || a != b) __builtin_trap();
  DataReader::State c;
  decode(in, step, 16, c);
  return 0;
}
