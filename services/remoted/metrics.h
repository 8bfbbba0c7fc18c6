// qtls-remoted's metrics, declared in one place (docs/metrics.md). Labels come from closed sets.
#pragma once

#include "stats/config_metrics.h"
#include "stats/metrics.h"

namespace qtls::remoted {

struct RemoteMetrics {
  explicit RemoteMetrics(stats::Registry& r)
      : deliveries(r.counter("qtls_remote_deliveries_total",
                             "Deliveries by what qmail-send does with the report: result is "
                             "success (K), temporary (Z) or permanent (D).",
                             {"result"})),
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
        certExpiry(r.gauge("qtls_tls_cert_expiry_timestamp_seconds",
                           "Earliest notAfter of the certificates in force, Unix time, by cert "
                           "(clientcert, tlshosts_ca); absent when there is none.",
                           {"cert"})),
        config(r, "qtls-remoted") {
    // Known label sets exist from the start, at zero: an alert on a rate sees 0, not nothing.
    for (const char* result : {"success", "temporary", "permanent"}) deliveries.with({result});
    for (const char* level : {"encrypt", "verify", "fingerprint"})
      for (const char* reason : kTlsFailureReasons) tlsFailures.with({level, reason});
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
  stats::Family& certExpiry;
  stats::ConfigMetrics config;
};

}  // namespace qtls::remoted
