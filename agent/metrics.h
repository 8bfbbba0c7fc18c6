// qtls-smtpd's metrics, declared in one place (docs/metrics.md). Labels come from closed sets.
#pragma once

#include "stats/config_metrics.h"
#include "stats/metrics.h"

namespace qtls::agent {

struct AgentMetrics {
  explicit AgentMetrics(stats::Registry& r)
      : sessions(r.counter("qtls_agent_sessions_total",
                           "Finished inbound sessions by TLS mode (plain, starttls, implicit).",
                           {"tls_mode"})),
        starttls(r.counter("qtls_agent_starttls_total",
                           "STARTTLS and implicit TLS handshakes: result ok or failed.",
                           {"result"})),
        tlsSessions(r.counter("qtls_agent_tls_sessions_total",
                              "Finished inbound sessions that ran over TLS, by mode, version, "
                              "cipher and session resumed.",
                              {"tls_mode", "version", "cipher", "resumed"})),
        certRelay(r.counter("qtls_agent_client_cert_relay_total",
                            "Client-certificate relay checks: decision allowed or refused.",
                            {"decision"})),
        messages(r.counter("qtls_agent_messages_total",
                           "Messages after the final dot: result accepted (qmail-queue exit 0), "
                           "temporary or permanent (refused).",
                           {"result"})),
        sessionsOpen(r.gauge("qtls_agent_sessions_open", "Inbound sessions open now.")),
        closedByLimit(r.counter("qtls_agent_limit_closes_total",
                                "Connections refused or closed by a limit: too_many, "
                                "too_many_from_client, evicted, timeout, shutdown, junk_commands.",
                                {"reason"})),
        certExpiry(r.gauge("qtls_tls_cert_expiry_timestamp_seconds",
                           "notAfter of the server certificate in force, Unix time, by cert "
                           "(servercert); absent when there is none.",
                           {"cert"})),
        config(r, "qtls-smtpd") {
    // Known label sets exist from the start, at zero: an alert on a rate sees 0, not nothing.
    for (const char* mode : {"plain", "starttls", "implicit"}) sessions.with({mode});
    for (const char* result : {"ok", "failed"}) starttls.with({result});
    for (const char* decision : {"allowed", "refused"}) certRelay.with({decision});
    for (const char* result : {"accepted", "temporary", "permanent"}) messages.with({result});
    for (const char* reason :
         {"too_many", "too_many_from_client", "evicted", "timeout", "shutdown", "junk_commands"})
      closedByLimit.with({reason});
  }

  stats::Family& sessions;
  stats::Family& starttls;
  stats::Family& tlsSessions;
  stats::Family& certRelay;
  stats::Family& messages;
  stats::Family& sessionsOpen;
  stats::Family& closedByLimit;
  stats::Family& certExpiry;
  stats::ConfigMetrics config;
};

}  // namespace qtls::agent
