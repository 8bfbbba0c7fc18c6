// qtlsctl's printing.
#include "output.h"

#include <google/protobuf/util/json_util.h>

#include <cctype>
#include <cstdio>
#include <sstream>

namespace qtls::ctl {
namespace v1 = qtls::v1;

void printJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  std::fputs(out.c_str(), stdout);
  if (out.empty() || out.back() != '\n') std::fputc('\n', stdout);
}

std::string kindWord(v1::ItemKind k) {
  std::string n = v1::ItemKind_Name(k);
  const std::string prefix = "ITEM_KIND_";
  if (n.rfind(prefix, 0) == 0) n = n.substr(prefix.size());
  for (char& c : n) c = c == '_' ? '-' : static_cast<char>(std::tolower(c));
  return n;
}

// Does `path` match "tlshosts/*.pem"-style `pattern`?
void printChanges(const v1::PolicyChangeResult& r, bool dryRun) {
  if (dryRun)
    std::printf("dry run: %s generation %llu (digest %s -> %s)\n",
                r.changes_size() ? "would change" : "no change to",
                static_cast<unsigned long long>(r.generation_before()), r.digest_before().c_str(),
                r.digest_after().c_str());
  else if (r.applied())
    std::printf("applied: generation %llu -> %llu (digest %s)\n",
                static_cast<unsigned long long>(r.generation_before()),
                static_cast<unsigned long long>(r.generation_after()), r.digest_after().c_str());
  else
    std::printf("no change: generation %llu is already this policy\n",
                static_cast<unsigned long long>(r.generation_before()));
  for (const auto& c : r.changes()) {
    const char* mark = c.op() == v1::ItemChange::OP_ADDED     ? "+"
                       : c.op() == v1::ItemChange::OP_REMOVED ? "-"
                                                              : "~";
    std::printf("  %s %s (%s)\n", mark, c.path().c_str(), kindWord(c.kind()).c_str());
    if (c.diff().empty() && c.op() == v1::ItemChange::OP_MODIFIED)
      std::printf("      contents hold a private key: sha256 %.12s -> %.12s\n",
                  c.old_sha256().c_str(), c.new_sha256().c_str());
    std::istringstream lines(c.diff());
    for (std::string l; std::getline(lines, l);) std::printf("      %s\n", l.c_str());
  }
}

}  // namespace qtls::ctl
