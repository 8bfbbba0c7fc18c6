// Runs a fuzz target without libFuzzer (g++ builds): every seed file given on the command line,
// then a fixed number of deterministic random mutations of them. With clang, the same targets
// build against -fsanitize=fuzzer instead (see tests/fuzz/README.md).
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  std::vector<std::string> seeds;
  long iterations = 20000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("-runs=", 0) == 0) {
      iterations = std::stol(a.substr(6));
      continue;
    }
    std::ifstream f(a, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    seeds.push_back(ss.str());
  }
  if (seeds.empty()) seeds.push_back("");
  for (const auto& s : seeds)
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  std::mt19937 rng(12345);
  const char dict[] = "0123456789 -:.,\r\n\0=*/#ab250STARTTLSverifymayca=match=fingerprint";
  for (long i = 0; i < iterations; ++i) {
    std::string s = seeds[rng() % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
      switch (rng() % 4) {
        case 0:
          s.insert(pos, 1, static_cast<char>(rng() % 256));
          break;
        case 1:
          s.insert(pos, 1, dict[rng() % (sizeof dict - 1)]);
          break;
        case 2:
          if (!s.empty() && pos < s.size()) s.erase(pos, 1 + rng() % 4);
          break;
        case 3:
          if (!s.empty() && pos < s.size()) s[pos] = static_cast<char>(rng() % 256);
          break;
      }
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  std::printf("%ld inputs ran\n", iterations + static_cast<long>(seeds.size()));
  return 0;
}
