// qtls-remoted's metrics, declared in one place (docs/metrics.md). Labels come from closed sets.
#pragma once

#include "stats/config_metrics.h"
#include "stats/metrics.h"

namespace qtls::remoted {

struct RemoteMetrics {
  explicit RemoteMetrics(stats::Registry& r)
      : deliveries(r.counter("qtls_remote_deliveries_total",
                             "Deliveries by what qmail-send does with the report: result is "
                             "success (K), temporary (Z) or permanent (D); frontend is shim "
                             "(qtls-remote) or rspawn (qtls-rspawn).",
                             {"result", "frontend"})),
        deliverySeconds(r.histogram("qtls_remote_delivery_duration_seconds",
                                    "Time from request to report.", stats::latencyBuckets())),
        handshakes(r.counter("qtls_remote_tls_handshakes_total",
                             "Outbound TLS handshakes: level requested (may, encrypt, verify, "
                             "fingerprint, ...), result ok or failed (a failed certificate or "
                             "name check counts as failed), TLS version or none.",
                             {"level", "result", "version"})),
        handshakeSeconds(r.histogram("qtls_remote_tls_handshake_duration_seconds",
                                     "Outbound TLS handshake time.", stats::latencyBuckets())),
        tlsSessions(r.counter("qtls_remote_tls_sessions_total",
                              "Deliveries that ran over TLS, by requested level, version, "
                              "cipher, session resumed, connection reused.",
                              {"level", "version", "cipher", "resumed", "reused"})),
        tlsFailures(r.counter("qtls_remote_tls_failures_total",
                              "Deliveries deferred for a TLS reason, by requested level and "
                              "reason: no_starttls, starttls_rejected, handshake, untrusted, "
                              "expired, no_certificate, pin_mismatch, name_mismatch, "
                              "ca_unusable, internal.",
                              {"level", "reason"})),
        inFlight(r.gauge("qtls_remote_deliveries_in_flight", "Deliveries in progress.")),
        connCache(r.counter("qtls_remote_connection_cache_total",
                            "Connection cache lookups: hit (an idle connection was reused), "
                            "miss (a new connection), dead (a reused connection was found dead "
                            "before MAIL was accepted; the delivery went on a new one).",
                            {"result"})),
        connEvictions(r.counter("qtls_remote_connection_cache_evictions_total",
                                "Idle connections closed, by reason: idle, lifetime, policy, "
                                "shutdown, closed (by the server), full.",
                                {"reason"})),
        connIdle(r.gauge("qtls_remote_connections_idle", "Idle connections in the cache.")),
        tlsResumptions(r.counter("qtls_remote_tls_resumptions_total",
                                 "New outbound TLS handshakes: resumed (a cached session was "
                                 "accepted), full (none was offered), refused (one was offered, "
                                 "the server did a full handshake).",
                                 {"result"})),
        tcptoSkips(r.counter("qtls_remote_tcpto_skips_total",
                             "Addresses skipped because earlier connects to them timed out "
                             "(qmail-tcpto's rule).")),
        tcptoDead(r.gauge("qtls_remote_tcpto_dead_addresses",
                          "Addresses skipped for now after connect timeouts.")),
        connWaits(r.counter("qtls_remote_connection_waits_total",
                            "Deliveries that had to wait for a connection slot (the per-address "
                            "or overall cap): granted, or timeout (deferred).",
                            {"result"})),
        connOpen(r.gauge("qtls_remote_connections_busy",
                         "Connections in use by deliveries (the capped number).")),
        certExpiry(r.gauge("qtls_tls_cert_expiry_timestamp_seconds",
                           "Earliest notAfter of the certificates in force, Unix time, by cert "
                           "(clientcert, tlshosts_ca); absent when there is none.",
                           {"cert"})),
        config(r, "qtls-remoted") {
    // Known label sets exist from the start, at zero: an alert on a rate sees 0, not nothing.
    for (const char* result : {"success", "temporary", "permanent"})
      for (const char* frontend : {"shim", "rspawn"}) deliveries.with({result, frontend});
    for (const char* level : {"encrypt", "verify", "fingerprint"})
      for (const char* reason : kTlsFailureReasons) tlsFailures.with({level, reason});
    for (const char* r : {"resumed", "full", "refused"}) tlsResumptions.with({r});
    for (const char* r : {"granted", "timeout"}) connWaits.with({r});
    tcptoSkips().add(0);
    tcptoDead().set(0);
    connOpen().set(0);
  }

  // The closed set of tlsFailures' reason label.
  static constexpr const char* kTlsFailureReasons[] = {
      "no_starttls",    "starttls_rejected", "handshake",     "untrusted",   "expired",
      "no_certificate", "pin_mismatch",      "name_mismatch", "ca_unusable", "internal"};

  stats::Family& deliveries;
  stats::Family& deliverySeconds;
  stats::Family& handshakes;
  stats::Family& handshakeSeconds;
  stats::Family& tlsSessions;
  stats::Family& tlsFailures;
  stats::Family& inFlight;
  stats::Family& connCache;
  stats::Family& connEvictions;
  stats::Family& connIdle;
  stats::Family& tlsResumptions;
  stats::Family& tcptoSkips;
  stats::Family& tcptoDead;
  stats::Family& connWaits;
  stats::Family& connOpen;
  stats::Family& certExpiry;
  stats::ConfigMetrics config;
};

}  // namespace qtls::remoted
