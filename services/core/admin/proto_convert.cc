// Conversions between the policy store and the admin API (proto_convert.h).
#include "admin/proto_convert.h"

namespace qtls::admin {

grpc::Status toGrpc(const absl::Status& s) {
  grpc::StatusCode c = grpc::StatusCode::INTERNAL;
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return grpc::Status::OK;
    case absl::StatusCode::kInvalidArgument:
      c = grpc::StatusCode::INVALID_ARGUMENT;
      break;
    case absl::StatusCode::kFailedPrecondition:
      c = grpc::StatusCode::FAILED_PRECONDITION;
      break;
    case absl::StatusCode::kAborted:  // compare-and-swap conflict: read again, then retry
      c = grpc::StatusCode::ABORTED;
      break;
    case absl::StatusCode::kNotFound:
      c = grpc::StatusCode::NOT_FOUND;
      break;
    case absl::StatusCode::kPermissionDenied:
      c = grpc::StatusCode::PERMISSION_DENIED;
      break;
    case absl::StatusCode::kUnavailable:  // the store's disk trouble: not "try elsewhere"
      c = grpc::StatusCode::INTERNAL;
      break;
    case absl::StatusCode::kDataLoss:
      c = grpc::StatusCode::DATA_LOSS;
      break;
    default:
      break;
  }
  return grpc::Status(c, std::string(s.message()));
}

std::string utf8(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    const unsigned char c = static_cast<unsigned char>(in[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= in.size();
    for (size_t k = 1; ok && k < len; ++k)
      ok = (static_cast<unsigned char>(in[i + k]) & 0xC0) == 0x80;
    if (ok && len == 2) ok = c >= 0xC2;  // no overlong forms
    if (ok && len == 3) {
      const unsigned char c1 = static_cast<unsigned char>(in[i + 1]);
      ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);  // no overlong, surrogates
    }
    if (ok && len == 4) {
      const unsigned char c1 = static_cast<unsigned char>(in[i + 1]);
      ok = c <= 0xF4 && !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
    }
    if (ok) {
      out.append(in, i, len);
      i += len;
    } else {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
      ++i;
    }
  }
  return out;
}

namespace {

v1::ItemChange::Op opOf(Change::Op op) {
  switch (op) {
    case Change::Op::kAdded:
      return v1::ItemChange::OP_ADDED;
    case Change::Op::kRemoved:
      return v1::ItemChange::OP_REMOVED;
    case Change::Op::kModified:
      return v1::ItemChange::OP_MODIFIED;
  }
  return v1::ItemChange::OP_UNSPECIFIED;
}

}  // namespace

void fillResult(const ChangeResult& r, v1::PolicyChangeResult* out) {
  out->set_applied(r.applied);
  out->set_generation_before(r.generationBefore);
  out->set_generation_after(r.generationAfter);
  out->set_digest_before(r.digestBefore);
  out->set_digest_after(r.digestAfter);
  for (const Change& c : r.changes) {
    v1::ItemChange* ic = out->add_changes();
    ic->set_path(utf8(c.path));
    ic->set_op(opOf(c.op));
    ic->set_kind(static_cast<v1::ItemKind>(c.kind));
    ic->set_old_sha256(c.oldSha256);
    ic->set_new_sha256(c.newSha256);
    ic->set_diff(utf8(c.diff));
  }
}

}  // namespace qtls::admin
