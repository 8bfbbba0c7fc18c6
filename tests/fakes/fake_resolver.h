// A resolver with fixed answers, for tests of what a delivery does with DNS (targets.cc): each
// (name, type) answers as set, anything else is NXDOMAIN. Answers come at once, on the
// caller's thread; the awaitable form still posts them to the awaiting executor.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "resolver.h"

namespace qtls::testing {

class FakeResolver final : public remoted::Resolver {
 public:
  void set(const std::string& name, Type type, remoted::DnsResult r) {
    answers_[{name, type}] = std::move(r);
  }
  void mx(const std::string& name, std::vector<remoted::MxRecord> records) {
    remoted::DnsResult r;
    r.status = remoted::DnsStatus::kOk;
    r.mx = std::move(records);
    set(name, Type::kMx, std::move(r));
  }
  void a(const std::string& name, std::vector<std::string> addresses) {
    remoted::DnsResult r;
    r.status = remoted::DnsStatus::kOk;
    for (const auto& s : addresses) r.addresses.push_back(asio::ip::make_address(s));
    set(name, Type::kA, std::move(r));
  }
  void fail(const std::string& name, Type type, remoted::DnsStatus status) {
    remoted::DnsResult r;
    r.status = status;
    set(name, type, std::move(r));
  }

  void query(const std::string& name, Type type, Callback cb) override {
    asked_.emplace_back(name, type);
    auto it = answers_.find({name, type});
    if (it != answers_.end()) return cb(it->second);
    remoted::DnsResult none;
    none.status = remoted::DnsStatus::kHard;
    cb(none);
  }

  const std::vector<std::pair<std::string, Type>>& asked() const { return asked_; }

 private:
  std::map<std::pair<std::string, Type>, remoted::DnsResult> answers_;
  std::vector<std::pair<std::string, Type>> asked_;
};

}  // namespace qtls::testing
