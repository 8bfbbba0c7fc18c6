// How qtlsctl prints: JSON for --json, the file kinds' words, and a change's result.
#pragma once

#include <google/protobuf/message.h>

#include <string>

#include "qtls/v1/policy.pb.h"

namespace qtls::ctl {

void printJson(const google::protobuf::Message& m);
std::string kindWord(qtls::v1::ItemKind k);  // ITEM_KIND_TLSHOST_CA -> "tlshost-ca"
void printChanges(const qtls::v1::PolicyChangeResult& r, bool dryRun);

}  // namespace qtls::ctl
