// Policy directories on local disk.
#include "policy_dir.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

#include "cli.h"

namespace qtls::ctl {
namespace v1 = qtls::v1;
namespace {

bool matches(const std::string& pattern, const std::string& path) {
  size_t star = pattern.find('*');
  if (star == std::string::npos) return pattern == path;
  const std::string pre = pattern.substr(0, star), suf = pattern.substr(star + 1);
  if (path.size() <= pre.size() + suf.size()) return false;
  if (path.compare(0, pre.size(), pre) != 0) return false;
  if (path.compare(path.size() - suf.size(), suf.size(), suf) != 0) return false;
  return path.find('/', pre.size()) == std::string::npos;
}

}  // namespace

// The files under `dir` (control/ layout) that the daemon's policy owns.
std::map<std::string, std::string> collect(const std::string& dir,
                                           const v1::GetPolicyResponse& current) {
  std::map<std::string, std::string> out;
  std::vector<std::string> candidates;
  auto listDir = [&](const std::string& sub) {
    DIR* d = opendir((dir + "/" + sub).c_str());
    if (d == nullptr) return;
    while (struct dirent* e = readdir(d)) {
      std::string n = e->d_name;
      // Dotfiles (.qtls-generation, editor swap files) and backups~ are not policy.
      if (n.empty() || n[0] == '.' || n.back() == '~') continue;
      struct stat st;
      std::string rel = sub.empty() ? n : sub + "/" + n;
      if (stat((dir + "/" + rel).c_str(), &st) == 0 && S_ISREG(st.st_mode))
        candidates.push_back(rel);
    }
    closedir(d);
  };
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    usage("--from " + dir + ": not a directory");
  listDir("");
  std::map<std::string, bool> subdirs;
  for (const auto& p : current.owned_patterns())
    if (p.find('/') != std::string::npos) subdirs[p.substr(0, p.find('/'))] = true;
  for (const auto& [s, _] : subdirs) listDir(s);
  int skipped = 0;
  for (const auto& rel : candidates) {
    bool owned = false;
    for (const auto& p : current.owned_patterns()) owned = owned || matches(p, rel);
    if (owned)
      out[rel] = readFile(dir + "/" + rel);
    else
      ++skipped;
  }
  if (skipped > 0)
    std::fprintf(stderr, "qtlsctl: %d file(s) in %s are not part of %s's policy; ignored\n",
                 skipped, dir.c_str(), current.daemon().c_str());
  return out;
}

// Makes `dir` an exact mirror of the policy: a directory made by an earlier `get --out` loses
// the files this generation no longer has (else an `apply --from` of it would bring back a
// file someone else removed); any other non-empty directory is refused.
int mirrorInto(const std::string& dir, const v1::GetPolicyResponse& r) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string marker = dir + "/.qtls-generation";
  if (fs::exists(dir, ec) && !fs::is_empty(dir, ec) && !fs::exists(marker, ec)) {
    std::fprintf(stderr,
                 "qtlsctl: %s is not empty and was not written by `qtlsctl policy get --out`; "
                 "give a new or empty directory\n",
                 dir.c_str());
    return kUsage;
  }
  std::set<std::string> keep = {".qtls-generation"};
  for (const auto& it : r.items()) keep.insert(it.path());
  std::vector<fs::path> stale;
  for (auto i = fs::recursive_directory_iterator(dir, ec); !ec && i != fs::end(i); i.increment(ec))
    if (!i->is_directory() && !keep.count(fs::relative(i->path(), dir).string()))
      stale.push_back(i->path());
  for (const auto& p : stale) {
    fs::remove(p, ec);
    std::fprintf(stderr, "qtlsctl: removed %s: not in generation %llu\n",
                 fs::relative(p, dir).c_str(), static_cast<unsigned long long>(r.generation()));
  }
  fs::create_directories(dir, ec);
  {
    std::ofstream g(marker, std::ios::trunc);
    g << r.generation() << "\n";
  }
  for (const auto& it : r.items()) {
    const fs::path path = fs::path(dir) / it.path();
    fs::create_directories(path.parent_path(), ec);
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << it.content();
    if (!f) {
      std::fprintf(stderr, "qtlsctl: cannot write %s\n", path.c_str());
      return kOther;
    }
    if (it.redacted())
      std::fprintf(stderr, "qtlsctl: %s: private key left out; the file is incomplete\n",
                   it.path().c_str());
  }
  // Directories the removals left empty go too.
  for (bool again = true; again;) {
    again = false;
    for (auto i = fs::recursive_directory_iterator(dir, ec); !ec && i != fs::end(i);
         i.increment(ec))
      if (i->is_directory() && fs::is_empty(i->path())) {
        fs::remove(i->path(), ec);
        again = true;
        break;
      }
  }
  return kOk;
}

}  // namespace qtls::ctl
