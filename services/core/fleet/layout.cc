// The fleet's key layout and bundles in etcd (layout.h).
#include "fleet/layout.h"

#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <ctime>

#include "qtls/v1/fleet.pb.h"
#include "util/host_name.h"
#include "util/text.h"

namespace qtls::fleet {

namespace {
constexpr size_t kChunkBytes = 1 << 20;  // etcd refuses requests over 1.5 MiB by default
}

bool validNodeName(const std::string& node) { return text::validHostName(node); }

Layout::Layout(std::string prefix) : prefix_(std::move(prefix)) {
  while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
}

std::string Layout::bundle(const std::string& c, const std::string& digest) const {
  return bundles(c) + digest;
}
std::string Layout::bundleChunk(const std::string& c, const std::string& digest,
                                unsigned index) const {
  char n[16];
  std::snprintf(n, sizeof n, "%04u", index);
  return text::cat(bundle(c, digest), "/", n);
}
std::string Layout::nodes(const std::string& c) const {
  return text::cat(prefix_, "/nodes/", c, "/");
}
std::string Layout::node(const std::string& c, const std::string& n) const {
  return text::cat(nodes(c), n, "/");
}
std::string Layout::target(const std::string& c, const std::string& n) const {
  return node(c, n) + "target";
}
std::string Layout::candidate(const std::string& c, const std::string& n) const {
  return node(c, n) + "candidate";
}
std::string Layout::statuses(const std::string& c) const {
  return text::cat(prefix_, "/status/", c, "/");
}
std::string Layout::status(const std::string& c, const std::string& node) const {
  return statuses(c) + node;
}
std::string Layout::bundles(const std::string& c) const {
  return text::cat(prefix_, "/bundles/", c, "/");
}
std::string Layout::rollout(const std::string& c) const {
  return text::cat(prefix_, "/rollouts/", c);
}
std::string Layout::finishedRollouts(const std::string& c) const {
  return text::cat(prefix_, "/history/", c, "/");
}
std::string Layout::finishedRollout(const std::string& c, const std::string& id) const {
  return finishedRollouts(c) + id;
}
std::string Layout::lock(const std::string& c) const {
  return text::cat(prefix_, "/locks/rollout/", c);
}
std::string Layout::nodeOf(const std::string& c, const std::string& key) const {
  for (const std::string& base : {nodes(c), statuses(c)})
    if (key.rfind(base, 0) == 0) {
      std::string rest = key.substr(base.size());
      return rest.substr(0, rest.find('/'));
    }
  return "";
}

std::string toJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

absl::Status fromJson(const std::string& json, google::protobuf::Message* m,
                      const std::string& what) {
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = true;  // a newer qtls may add fields
  auto s = google::protobuf::util::JsonStringToMessage(json, m, o);
  if (!s.ok()) return absl::DataLossError(text::cat(what, ": not a valid value: ", s.ToString()));
  return absl::OkStatus();
}

absl::StatusOr<std::string> putBundle(Etcd& etcd, const Layout& layout,
                                      const std::string& component, const admin::Items& items,
                                      const std::string& createdBy) {
  const std::string digest = admin::PolicyStore::digestOf(items);
  auto have = etcd.get(layout.bundle(component, digest));
  if (!have.ok()) return have.status();
  if (*have) return digest;
  const std::string data = admin::encodeGeneration(items);
  unsigned chunks = 0;
  for (size_t off = 0; off < data.size() || chunks == 0; off += kChunkBytes, ++chunks)
    if (auto s =
            etcd.put(layout.bundleChunk(component, digest, chunks), data.substr(off, kChunkBytes));
        !s.ok())
      return s;
  v1::FleetBundle manifest;
  manifest.set_digest(digest);
  manifest.set_bytes(data.size());
  manifest.set_chunks(chunks);
  manifest.set_created(static_cast<double>(std::time(nullptr)));
  manifest.set_created_by(createdBy);
  auto created = etcd.create(layout.bundle(component, digest), toJson(manifest));
  if (!created.ok()) return created.status();
  return digest;
}

absl::StatusOr<admin::Items> getBundle(Etcd& etcd, const Layout& layout,
                                       const std::string& component, const std::string& digest) {
  const std::string key = layout.bundle(component, digest);
  auto m = etcd.get(key);
  if (!m.ok()) return m.status();
  if (!*m) return absl::NotFoundError(text::cat("bundle ", digest, " is not in etcd (", key, ")"));
  v1::FleetBundle manifest;
  if (auto s = fromJson((*m)->value, &manifest, key); !s.ok()) return s;
  std::string data;
  for (unsigned i = 0; i < manifest.chunks(); ++i) {
    auto c = etcd.get(layout.bundleChunk(component, digest, i));
    if (!c.ok()) return c.status();
    if (!*c) return absl::DataLossError(text::cat(key, ": chunk ", i, " is missing"));
    data += (*c)->value;
  }
  auto items = admin::decodeGeneration(data, key);
  if (!items.ok()) return items.status();
  if (admin::PolicyStore::digestOf(*items) != digest)
    return absl::DataLossError(text::cat(key, ": the content's digest is ",
                                         admin::PolicyStore::digestOf(*items),
                                         ", not the one it is stored under"));
  return items;
}

}  // namespace qtls::fleet
