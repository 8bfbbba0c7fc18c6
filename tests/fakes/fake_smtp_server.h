// A scripted SMTP server on one end of a socketpair, on a thread of its own: the fake peer of
// the outbound dialogue's unit tests (the daemon's side gets the other end through
// DeliveryDeps::connector). It answers like a normal server unless told otherwise and records
// what it was sent, read by read, so a test can see pipelining, reuse and QUIT.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace qtls::testing {

struct SmtpScript {
  bool pipelining = true;
  std::map<std::string, std::string> replies;  // by verb: GREETING, MAIL, DATA, DOT, EHLO, HELO
  std::vector<std::string> rcpt;               // reply to the n-th RCPT of a transaction
  // From the n-th transaction (1 = the first) on, MAIL gets this reply ("" = never).
  int mailOverrideFrom = 0;
  std::string mailOverride;
  bool closeAfterTransaction = false;  // hang up after the reply to the dot
};

class FakeSmtpServer {
 public:
  FakeSmtpServer(int fd, SmtpScript script) : fd_(fd), s_(std::move(script)) {
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeSmtpServer() {
    ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }

  // Commands received, and how many arrived in each read (pipelining puts several in one).
  std::vector<std::string> commands() {
    std::lock_guard<std::mutex> l(mu_);
    return commands_;
  }
  std::vector<int> perRead() {
    std::lock_guard<std::mutex> l(mu_);
    return perRead_;
  }
  int messages() const { return messages_; }
  bool quitSeen() const { return quit_; }
  bool closed() const { return closed_; }
  void waitClosed() {
    for (int i = 0; i < 500 && !closed_; ++i) usleep(10000);
  }

 private:
  void send(const std::string& s) {
    std::string line = s + "\r\n";
    // MSG_NOSIGNAL: the client may have closed its end (after a refusal); a loaded machine
    // lets this thread run after that, and SIGPIPE would kill the whole test binary.
    (void)::send(fd_, line.data(), line.size(), MSG_NOSIGNAL);
  }
  void serve() {
    send(reply("GREETING", "220 fake.test ESMTP"));
    std::string buf;
    int transaction = 0, rcptN = 0;
    bool inData = false;
    char chunk[65536];
    for (;;) {
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n <= 0) break;
      buf.append(chunk, static_cast<size_t>(n));
      int count = 0;
      for (;;) {
        if (inData) {
          size_t end = buf.find("\r\n.\r\n");
          if (end == std::string::npos) break;
          buf.erase(0, end + 5);
          inData = false;
          ++messages_;
          send(reply("DOT", "250 ok queued"));
          if (s_.closeAfterTransaction) {
            closed_ = true;
            ::shutdown(fd_, SHUT_RDWR);
            record(count);
            return;
          }
          continue;
        }
        size_t eol = buf.find("\r\n");
        if (eol == std::string::npos) break;
        std::string cmd = buf.substr(0, eol);
        buf.erase(0, eol + 2);
        ++count;
        {
          std::lock_guard<std::mutex> l(mu_);
          commands_.push_back(cmd);
        }
        std::string verb = cmd.substr(0, cmd.find(' '));
        if (verb == "EHLO") {
          send(reply("EHLO", s_.pipelining ? "250-fake.test\r\n250-PIPELINING\r\n250 8BITMIME"
                                           : "250-fake.test\r\n250 8BITMIME"));
        } else if (verb == "HELO") {
          send(reply("HELO", "250 fake.test"));
        } else if (verb == "MAIL") {
          ++transaction;
          rcptN = 0;
          if (s_.mailOverrideFrom > 0 && transaction >= s_.mailOverrideFrom)
            send(s_.mailOverride);
          else
            send(reply("MAIL", "250 ok"));
        } else if (verb == "RCPT") {
          send(rcptN < static_cast<int>(s_.rcpt.size()) ? s_.rcpt[rcptN] : "250 ok");
          ++rcptN;
        } else if (verb == "DATA") {
          std::string r = reply("DATA", "354 go ahead");
          send(r);
          if (r.rfind("354", 0) == 0) inData = true;
        } else if (verb == "RSET") {
          send("250 ok");
        } else if (verb == "QUIT") {
          quit_ = true;
          send("221 bye");
          record(count);
          closed_ = true;
          ::shutdown(fd_, SHUT_RDWR);
          return;
        } else {
          send("502 unimplemented");
        }
      }
      record(count);
    }
    closed_ = true;
  }
  void record(int count) {
    if (count == 0) return;
    std::lock_guard<std::mutex> l(mu_);
    perRead_.push_back(count);
  }
  std::string reply(const std::string& verb, const std::string& dflt) {
    auto it = s_.replies.find(verb);
    return it == s_.replies.end() ? dflt : it->second;
  }

  int fd_;
  SmtpScript s_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> commands_;
  std::vector<int> perRead_;
  std::atomic<int> messages_{0};
  std::atomic<bool> quit_{false}, closed_{false};
};

}  // namespace qtls::testing
