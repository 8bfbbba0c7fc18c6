// Reading the qmail-tls policy directories into a snapshot.
#include "policy/qmail_files.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "control/control_files.h"
#include "util/host_name.h"
#include "util/text.h"

namespace qtls::policy {
namespace fs = std::filesystem;

absl::StatusOr<QmailFiles> QmailFiles::read(const std::string& controlDir) {
  QmailFiles f;
  auto names = [&](const std::string& sub) -> absl::StatusOr<std::set<std::string>> {
    std::set<std::string> out;
    std::error_code ec;
    fs::directory_iterator it(controlDir + "/" + sub, ec);
    if (ec == std::errc::no_such_file_or_directory) return out;
    if (ec)
      return absl::UnavailableError(
          text::cat(controlDir, "/", sub, ": cannot list: ", ec.message()));
    for (const auto& e : it) out.insert(e.path().filename().string());
    return out;
  };
  auto tls = names("tlshosts");
  if (!tls.ok()) return tls.status();
  for (const auto& n : *tls) {
    if (n == "exhaustivelist") {
      f.exhaustiveList = true;
      continue;
    }
    if (n.size() <= 4 || n.compare(n.size() - 4, 4, ".pem") != 0) continue;
    const std::string fqdn = n.substr(0, n.size() - 4);
    if (!text::validHostName(fqdn)) continue;
    Pem& p = f.tlshosts[fqdn];
    auto content = control::readFile(controlDir + "/tlshosts/" + n);
    if (!content.ok())
      p.error = std::string(content.status().message());
    else if (content->has_value())
      p.content = **content;
  }
  auto no = names("notlshosts");
  if (!no.ok()) return no.status();
  for (const auto& n : *no)
    if (text::validHostName(n)) f.notlshosts.insert(n);
  return f;
}

Inputs QmailFiles::inputs(const std::string& fqdn) const {
  Inputs in;
  in.targetHasName = !fqdn.empty();
  if (!in.targetHasName || !text::validHostName(fqdn)) return in;
  in.tlshostsPem = tlshosts.count(fqdn) > 0;
  in.exhaustiveList = exhaustiveList;
  in.notlshosts = notlshosts.count(fqdn) > 0;
  return in;
}

const QmailFiles::Pem* QmailFiles::pem(const std::string& fqdn) const {
  auto it = tlshosts.find(fqdn);
  return it == tlshosts.end() ? nullptr : &it->second;
}

}  // namespace qtls::policy
