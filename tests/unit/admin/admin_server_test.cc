// Every admin RPC through a real gRPC server on a Unix socket, with the generated C++ client.
#include <grp.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "admin/server.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "policy_store_fixture.h"
#include "qtls/v1/metrics.grpc.pb.h"
#include "qtls/v1/policy.grpc.pb.h"
#include "remote_config.h"

namespace qtls::admin {
namespace {

namespace fs = std::filesystem;

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/qtls-admin-XXXXXX";
    root_ = mkdtemp(tmpl);
    fs::create_directories(root_ + "/qmail/control");
    std::ofstream(root_ + "/qmail/control/tlspolicy") << "example.com encrypt\n";
    std::ofstream(root_ + "/qmail/control/me") << "mx.example.org\n";
    store_ = std::make_unique<PolicyStore>(remotedSchema(), root_ + "/qmail", root_ + "/state",
                                           remoteCompiler());
    ASSERT_TRUE(store_->open().ok());
    deliveries_ = &registry_.counter("qtls_test_deliveries_total", "test", {"result"});
    deliveries_->with({"success"}).add(3);
    server_ = std::make_unique<AdminServer>(
        *store_, registry_, hub_,
        [](const v1::ResolvePolicyRequest& req, v1::ResolvePolicyResponse* out) -> std::string {
          if (req.domain().empty()) return "domain: required";
          out->set_level(v1::TLS_LEVEL_ENCRYPT);
          out->set_source("tlspolicy");
          return "";
        });
    AdminOptions o;
    o.listen = {"unix:" + root_ + "/admin.sock"};
    o.socketGroup = getgrgid(getgid())->gr_name;  // 0660 needs a named group
    auto where = server_->start(o);
    ASSERT_TRUE(where.ok()) << where.status().message();
    auto ch =
        grpc::CreateChannel("unix:" + root_ + "/admin.sock", grpc::InsecureChannelCredentials());
    policy_ = v1::PolicyService::NewStub(ch);
    metrics_ = v1::TlsMetricsService::NewStub(ch);
    health_ = grpc::health::v1::Health::NewStub(ch);
  }
  void TearDown() override {
    server_->stop();
    fs::remove_all(root_);
  }

  uint64_t generation() {
    grpc::ClientContext ctx;
    v1::GetPolicyResponse r;
    EXPECT_TRUE(policy_->GetPolicy(&ctx, {}, &r).ok());
    return r.generation();
  }

  std::string root_;
  stats::Registry registry_;
  stats::Family* deliveries_ = nullptr;
  EventHub hub_;
  std::unique_ptr<PolicyStore> store_;
  std::unique_ptr<AdminServer> server_;
  std::unique_ptr<v1::PolicyService::Stub> policy_;
  std::unique_ptr<v1::TlsMetricsService::Stub> metrics_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

TEST_F(AdminServerTest, SocketIsMode0660) {
  struct stat st;
  ASSERT_EQ(stat((root_ + "/admin.sock").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST_F(AdminServerTest, GetPolicy) {
  grpc::ClientContext ctx;
  v1::GetPolicyResponse r;
  ASSERT_TRUE(policy_->GetPolicy(&ctx, {}, &r).ok());
  EXPECT_EQ(r.generation(), 1u);
  EXPECT_EQ(r.daemon(), "qtls-remoted");
  EXPECT_EQ(r.digest(), store_->current().digest);
  ASSERT_EQ(r.items_size(), 1);
  EXPECT_EQ(r.items(0).path(), "tlspolicy");
  EXPECT_EQ(r.items(0).kind(), v1::ITEM_KIND_TLSPOLICY);
  EXPECT_EQ(r.items(0).content(), "example.com encrypt\n");
  EXPECT_NE(std::find(r.owned_patterns().begin(), r.owned_patterns().end(), "tlshosts/*.pem"),
            r.owned_patterns().end());
}

TEST_F(AdminServerTest, ApplyPolicyDryRunThenApplyThenConflict) {
  v1::ApplyPolicyRequest req;
  req.set_expected_generation(1);
  req.set_dry_run(true);
  auto* it = req.add_put();
  it->set_path("notlshosts/old.example");
  {
    grpc::ClientContext ctx;
    v1::PolicyChangeResult r;
    ASSERT_TRUE(policy_->ApplyPolicy(&ctx, req, &r).ok());
    EXPECT_FALSE(r.applied());
    ASSERT_EQ(r.changes_size(), 1);
    EXPECT_EQ(r.changes(0).op(), v1::ItemChange::OP_ADDED);
    EXPECT_EQ(r.changes(0).kind(), v1::ITEM_KIND_NOTLSHOST);
    EXPECT_FALSE(fs::exists(root_ + "/qmail/control/notlshosts/old.example"));
  }
  req.set_dry_run(false);
  {
    grpc::ClientContext ctx;
    v1::PolicyChangeResult r;
    ASSERT_TRUE(policy_->ApplyPolicy(&ctx, req, &r).ok());
    EXPECT_TRUE(r.applied());
    EXPECT_EQ(r.generation_after(), 2u);
    EXPECT_TRUE(fs::exists(root_ + "/qmail/control/notlshosts/old.example"));
  }
  {
    grpc::ClientContext ctx;
    v1::PolicyChangeResult r;
    grpc::Status s = policy_->ApplyPolicy(&ctx, req, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
    EXPECT_NE(s.error_message().find("generation 2 is in force"), std::string::npos);
  }
}

TEST_F(AdminServerTest, ApplyPolicyByExpectedDigest) {
  std::string digest;
  {
    grpc::ClientContext ctx;
    v1::GetPolicyRequest g;
    v1::GetPolicyResponse p;
    ASSERT_TRUE(policy_->GetPolicy(&ctx, g, &p).ok());
    digest = p.digest();
  }
  v1::ApplyPolicyRequest req;  // no expected_generation: the content decides
  req.set_expected_digest("sha256:stale");
  req.add_put()->set_path("notlshosts/by-digest.example");
  {
    grpc::ClientContext ctx;
    v1::PolicyChangeResult r;
    grpc::Status s = policy_->ApplyPolicy(&ctx, req, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
    EXPECT_NE(s.error_message().find("content conflict"), std::string::npos) << s.error_message();
  }
  req.set_expected_digest(digest);
  grpc::ClientContext ctx;
  v1::PolicyChangeResult r;
  ASSERT_TRUE(policy_->ApplyPolicy(&ctx, req, &r).ok());
  EXPECT_TRUE(r.applied());
  EXPECT_EQ(r.generation_after(), 2u);
}

TEST_F(AdminServerTest, ApplyPolicyInvalidArgumentNamesTheItem) {
  v1::ApplyPolicyRequest req;
  req.set_expected_generation(1);
  auto* it = req.add_put();
  it->set_path("tlshosts/../../../etc/cron.d/x.pem");
  it->set_content("x");
  grpc::ClientContext ctx;
  v1::PolicyChangeResult r;
  grpc::Status s = policy_->ApplyPolicy(&ctx, req, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("put tlshosts/../../../etc/cron.d/x.pem"), std::string::npos)
      << s.error_message();
  EXPECT_EQ(generation(), 1u);
}

TEST_F(AdminServerTest, RollbackAndItsErrors) {
  {
    v1::RollbackRequest req;
    req.set_expected_generation(1);
    grpc::ClientContext ctx;
    v1::PolicyChangeResult r;
    EXPECT_EQ(policy_->Rollback(&ctx, req, &r).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  v1::ApplyPolicyRequest req;
  req.set_expected_generation(1);
  req.add_remove("tlspolicy");
  {
    grpc::ClientContext ctx;
    v1::PolicyChangeResult r;
    ASSERT_TRUE(policy_->ApplyPolicy(&ctx, req, &r).ok());
  }
  v1::RollbackRequest rb;
  rb.set_expected_generation(2);
  grpc::ClientContext ctx;
  v1::PolicyChangeResult r;
  ASSERT_TRUE(policy_->Rollback(&ctx, rb, &r).ok());
  EXPECT_EQ(r.generation_after(), 3u);
  ASSERT_EQ(r.changes_size(), 1);
  EXPECT_EQ(r.changes(0).op(), v1::ItemChange::OP_ADDED);
  EXPECT_TRUE(fs::exists(root_ + "/qmail/control/tlspolicy"));
}

TEST_F(AdminServerTest, ResolvePolicy) {
  v1::ResolvePolicyRequest req;
  req.set_domain("example.com");
  grpc::ClientContext ctx;
  v1::ResolvePolicyResponse r;
  ASSERT_TRUE(policy_->ResolvePolicy(&ctx, req, &r).ok());
  EXPECT_EQ(r.level(), v1::TLS_LEVEL_ENCRYPT);
  grpc::ClientContext ctx2;
  EXPECT_EQ(policy_->ResolvePolicy(&ctx2, {}, &r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(AdminServerTest, GetStats) {
  v1::GetStatsRequest req;
  req.set_name_prefix("qtls_test_");
  grpc::ClientContext ctx;
  v1::GetStatsResponse r;
  ASSERT_TRUE(metrics_->GetStats(&ctx, req, &r).ok());
  ASSERT_EQ(r.families_size(), 1);
  EXPECT_EQ(r.families(0).type(), v1::MetricFamily::TYPE_COUNTER);
  ASSERT_EQ(r.families(0).samples_size(), 1);
  EXPECT_EQ(r.families(0).samples(0).labels(0).value(), "success");
  EXPECT_EQ(r.families(0).samples(0).value(), 3);
  EXPECT_EQ(r.policy_generation(), 1u);
}

TEST_F(AdminServerTest, WatchSessionsStreamsEachRecord) {
  grpc::ClientContext ctx;
  v1::WatchSessionsRequest req;
  req.set_direction(v1::WatchSessionsRequest::DIRECTION_OUTBOUND);
  auto reader = metrics_->WatchSessions(&ctx, req);
  reader->WaitForInitialMetadata();
  for (int i = 0; i < 100 && hub_.watchers() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  SessionEvent in;
  in.direction = "inbound";  // filtered out
  hub_.publish(in);
  SessionEvent out;
  out.direction = "outbound";
  out.domain = "example.com";
  out.tlsVersion = "TLSv1.3";
  out.outcome = "K";
  hub_.publish(out);
  v1::SessionRecord rec;
  ASSERT_TRUE(reader->Read(&rec));
  EXPECT_EQ(rec.direction(), "outbound");
  EXPECT_EQ(rec.domain(), "example.com");
  EXPECT_EQ(rec.tls_version(), "TLSv1.3");
  EXPECT_EQ(rec.outcome(), "K");
  ctx.TryCancel();
}

TEST_F(AdminServerTest, HealthServingThenNotServingWhileDrainingAndWritesUnavailable) {
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse r;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(health_->Check(&ctx, req, &r).ok());
    EXPECT_EQ(r.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
  server_->setServing(false);
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(health_->Check(&ctx, req, &r).ok());
    EXPECT_EQ(r.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  }
  v1::ApplyPolicyRequest ap;
  ap.set_expected_generation(1);
  ap.add_remove("tlspolicy");
  grpc::ClientContext ctx;
  v1::PolicyChangeResult res;
  EXPECT_EQ(policy_->ApplyPolicy(&ctx, ap, &res).error_code(), grpc::StatusCode::UNAVAILABLE);
}

// A server that is only started, never served: for the refusals at start.
class AdminServerStart : public ::testing::Test {
 protected:
  void TearDown() override { fs::remove_all(root_); }
  absl::StatusOr<std::vector<std::string>> start(const AdminOptions& o) { return server_.start(o); }

  std::string root_ = [] {
    char tmpl[] = "/tmp/qtls-admin-XXXXXX";
    return std::string(mkdtemp(tmpl));
  }();
  PolicyStore store_{remotedSchema(), root_, root_ + "/state", nullptr};
  stats::Registry registry_;
  EventHub hub_;
  AdminServer server_{store_, registry_, hub_, nullptr};
};

TEST_F(AdminServerStart, AnUnknownGroupIsRefusedBeforeAnySocketExists) {
  AdminOptions o;
  o.listen = {"unix:" + root_ + "/admin.sock"};
  o.socketGroup = "qtls-no-such-group";
  auto where = start(o);
  ASSERT_FALSE(where.ok());
  EXPECT_EQ(where.status().message(), "--admin-group: no such group: qtls-no-such-group");
  EXPECT_FALSE(fs::exists(root_ + "/admin.sock"));
}

TEST_F(AdminServerStart, TcpWithoutMutualTlsIsRefused) {
  AdminOptions o;
  o.listen = {"127.0.0.1:0"};
  auto where = start(o);
  ASSERT_FALSE(where.ok());
  EXPECT_NE(where.status().message().find("refusing to serve the admin API on TCP 127.0.0.1:0 "
                                          "without mutual TLS"),
            std::string::npos)
      << where.status().message();
}

}  // namespace
}  // namespace qtls::admin
