"""qtls-smtpd against real clients (swaks, openssl s_client, Python's ssl on raw sockets) with
the fake qmail-queue recording what would have been queued."""
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest

from harness import wait_for
from smtpd_harness import RECEIVED_DATE, SmtpdTestCase, client_context


def received_re(helo, ip, protocol):
    helo_part = " \\(HELO %s\\)" % re.escape(helo) if helo else ""
    return ("^Received: from unknown%s \\(%s\\)\n  by mx\\.agent\\.test with %s; %s\n"
            % (helo_part, re.escape(ip), protocol, RECEIVED_DATE))


class SwaksTest(SmtpdTestCase):
    def test_plain(self):
        self.start()
        rc, out = self.swaks("--body", "hello")
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"<-  250 ok \d+ qp \d+")
        [(msg, env)] = self.records()
        self.assertEqual(env, b"Fa@b.test\0Tu@agent.test\0\0")
        self.assertRegex(msg.decode(), received_re("client.test", "127.0.0.1", "SMTP"))
        self.assertIn(b"\n\nhello\n", msg)

    def test_starttls_verified(self):
        self.start()
        rc, out = self.swaks("--tls", "--tls-verify", "--tls-ca-path", self.certs.ca.cert_path)
        self.assertEqual(rc, 0, out)
        [(msg, env)] = self.records()
        # After STARTTLS the remembered HELO is forgotten (RFC 3207); swaks greets again.
        self.assertRegex(msg.decode(), received_re(
            "client.test", "127.0.0.1", r"ESMTPS \(TLS_AES_256_GCM_SHA384 encrypted\)"))
        # The session's log line is written as it ends, after swaks has its 221: wait for it.
        wait_for(lambda: "tls=TLSv1.3/TLS_AES_256_GCM_SHA384" in self.agent.read_log(),
                 what="the session's log line")

    def test_implicit_tls(self):
        self.start()
        rc, out = self.swaks("--tlsc", "--tls-verify", "--tls-ca-path", self.certs.ca.cert_path,
                             port=self.agent.tls_port)
        self.assertEqual(rc, 0, out)
        self.assertEqual(len(self.records()), 1)

    def test_pipelining(self):
        self.start()
        # ".sub.agent.test" in rcpthosts covers subdomains only: v@sub.agent.test is refused.
        rc, out = self.swaks("--pipeline", "--to", "u@agent.test,v@sub.agent.test,w@x.sub.agent.test")
        self.assertIn("553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", out)
        [(msg, env)] = self.records()
        self.assertEqual(env, b"Fa@b.test\0Tu@agent.test\0Tw@x.sub.agent.test\0\0")

    def test_ehlo_advertises(self):
        self.home.write("databytes", "100000\n")
        self.start()
        c = self.connect()
        self.assertEqual(c.reply(), "220 mx.agent.test ESMTP")
        self.assertEqual(c.cmd("EHLO x"), "250-mx.agent.test\r\n250-STARTTLS\r\n250-PIPELINING\r\n"
                                          "250-8BITMIME\r\n250 SIZE 100000")

    def test_no_servercert_no_starttls(self):
        self.home.remove("servercert.pem")
        self.start(tls_port=False)
        c = self.connect()
        c.reply()
        # control/databytes is 0: the limit in force is --max-message (64 MiB by default).
        self.assertEqual(c.cmd("EHLO x"), "250-mx.agent.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                                          "250 SIZE 67108864")
        self.assertEqual(c.cmd("STARTTLS"), "454 TLS missing certificate (#4.3.0)")


class ListenerTest(SmtpdTestCase):
    def test_ipv6_listener(self):
        from harness import free_port
        port = free_port("::1")
        self.start(["--listen", "[::1]:%d" % port], tls_port=False)
        rc, out = self.swaks("--server", "[::1]:%d" % port)
        self.assertEqual(rc, 0, out)
        [(msg, env)] = self.records()
        self.assertRegex(msg.decode(), received_re("client.test", "::1", "SMTP"))

    def test_systemd_socket_activation(self):
        # Two sockets passed as fds 3 and 4, the second named "smtps": implicit TLS.
        import subprocess as sp
        from smtpd_harness import FAKEQ, SMTPD
        plain = socket.socket()
        plain.bind(("127.0.0.1", 0))
        plain.listen(16)
        tls = socket.socket()
        tls.bind(("127.0.0.1", 0))
        tls.listen(16)
        log = open(os.path.join(self.dir, "activated.log"), "wb")
        script = ('exec 3<&%d 4<&%d; LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=smtp:smtps '
                  'exec %s --qmail-home %s --qmail-queue %s --state-dir %s --admin-listen none --user root'
                  % (plain.fileno(), tls.fileno(), SMTPD, self.home.path, FAKEQ,
                     os.path.join(self.dir, "activated-state")))
        env = dict(os.environ, FAKEQ_DIR=self.qdir)
        proc = sp.Popen(["sh", "-c", script], pass_fds=(plain.fileno(), tls.fileno()),
                        stdout=log, stderr=log, env=env)
        self.addCleanup(lambda: (proc.terminate(), proc.wait()))
        logpath = os.path.join(self.dir, "activated.log")
        wait_for(lambda: "started" in open(logpath).read(), what="activated agent")
        self.assertIn("(tls)", open(logpath).read())
        rc, out = self.swaks(port=plain.getsockname()[1])
        self.assertEqual(rc, 0, out)
        rc, out = self.swaks("--tlsc", port=tls.getsockname()[1])
        self.assertEqual(rc, 0, out)
        self.assertEqual(len(self.records()), 2)

    def test_per_listener_cipher_override(self):
        from harness import free_port
        port = free_port("127.0.0.1")
        self.home.write("tlsserverciphers", "TLS_AES_256_GCM_SHA384\n")
        self.start(["--listen", "127.0.0.1:%d,ciphers=TLS_CHACHA20_POLY1305_SHA256" % port])
        for p, want in ((self.agent.port, "TLS_AES_256_GCM_SHA384"),
                        (port, "TLS_CHACHA20_POLY1305_SHA256")):
            c = self.connect(port=p)
            c.reply()
            c.cmd("STARTTLS")
            c.starttls(client_context(self.certs.ca.cert_path))
            self.assertEqual(c.sock.cipher()[0], want)

    def test_sighup_right_after_start_does_not_kill(self):
        agent = self.start()
        agent.proc.send_signal(signal.SIGHUP)
        rc, out = self.swaks()
        self.assertEqual(rc, 0, out)
        self.assertIsNone(agent.proc.poll())

    def test_invalid_listener_option(self):
        with self.assertRaises(AssertionError) as e:
            self.start(["--listen", "127.0.0.1:0,starttls"])
        self.assertIn('unknown option "starttls"', str(e.exception))


class CommandsTest(SmtpdTestCase):
    def test_reply_texts(self):
        self.home.write("badmailfrom", "spam@bad.test\n@worse.test\n")
        self.start()
        c = self.connect()
        c.reply()
        self.assertEqual(c.cmd("HELO client"), "250 mx.agent.test")
        self.assertEqual(c.cmd("RCPT TO:<u@agent.test>"), "503 MAIL first (#5.5.1)")
        self.assertEqual(c.cmd("DATA"), "503 MAIL first (#5.5.1)")
        self.assertEqual(c.cmd("MAIL FROM:<a@b.test>"), "250 ok")
        self.assertEqual(c.cmd("DATA"), "503 RCPT first (#5.5.1)")
        self.assertEqual(c.cmd("RCPT TO:<u@elsewhere.test>"),
                         "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)")
        self.assertEqual(c.cmd("RCPT TO:<u@AGENT.TEST>"), "250 ok")
        self.assertEqual(c.cmd("RCPT TO:<" + "x" * 901 + ">"), "555 syntax error (#5.5.4)")
        self.assertEqual(c.cmd("RSET"), "250 flushed")
        self.assertEqual(c.cmd("NOOP"), "250 ok")
        self.assertEqual(c.cmd("VRFY u"), "252 send some mail, i'll try my best")
        self.assertTrue(c.cmd("HELP").startswith("214 "))
        self.assertEqual(c.cmd("MAIL FROM:<Spam@Bad.test>"), "250 ok")
        self.assertEqual(c.cmd("RCPT TO:<u@agent.test>"),
                         "553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)")
        self.assertEqual(c.cmd("MAIL FROM:<x@worse.test>"), "250 ok")
        self.assertEqual(c.cmd("RCPT TO:<u@agent.test>"),
                         "553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)")
        self.assertEqual(c.cmd("BOGUS"), "502 unimplemented (#5.5.1)")
        self.assertEqual(c.cmd("STARTTLS now"), "501 Syntax error (no parameters allowed) (#5.5.4)")
        self.assertEqual(c.cmd("QUIT"), "221 mx.agent.test")

    def test_lenient_address_forms(self):
        self.start()
        c = self.connect()
        c.reply()
        c.cmd("MAIL FROM: a@b.test")
        self.assertEqual(c.cmd('RCPT TO:<@relay.test,@r2.test:"u"@agent.test>'), "250 ok")
        self.assertEqual(c.cmd("DATA"), "354 go ahead")
        self.assertRegex(c.cmd("x\r\n."), r"^250 ok \d+ qp \d+$")
        [(msg, env)] = self.records()
        self.assertEqual(env, b"Fa@b.test\0Tu@agent.test\0\0")

    def test_relayclients(self):
        self.home.write("relayclients", "10.0.0.0/8\n127.0.0.0/8\n")
        self.start()
        c = self.connect()
        c.reply()
        c.cmd("MAIL FROM:<a@b.test>")
        self.assertEqual(c.cmd("RCPT TO:<u@elsewhere.test>"), "250 ok")

    def test_invalid_relayclients_refuses_to_start(self):
        self.home.write("relayclients", "10.0.0.0/33\n")
        with self.assertRaises(AssertionError) as e:
            self.start()
        self.assertIn('relayclients: invalid address or range "10.0.0.0/33"', str(e.exception))

    def test_dot_stuffing_crlf_and_bare_cr(self):
        self.start()
        c = self.connect()
        c.reply()
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("RCPT TO:<u@agent.test>")
        c.cmd("DATA")
        self.assertRegex(c.cmd("Subject: s\r\n\r\n..dot\r\na\rb\r\n..\r\n."), r"^250 ok")
        [(msg, env)] = self.records()
        self.assertTrue(msg.endswith(b"Subject: s\n\n.dot\na\rb\n.\n"), msg)

    def test_bare_lf_is_refused(self):
        self.start()
        c = self.connect()
        c.reply()
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("RCPT TO:<u@agent.test>")
        c.cmd("DATA")
        c.send("Subject: s\n\nbody\r\n.\r\n")
        self.assertEqual(c.reply(), "451 See http://pobox.com/~djb/docs/smtplf.html.")
        self.assertEqual(self.records(), [])

    def test_too_many_hops(self):
        self.start()
        c = self.connect()
        c.reply()
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("RCPT TO:<u@agent.test>")
        c.cmd("DATA")
        hops = "".join("Received: hop %d\r\n" % i for i in range(99)) + "Delivered-To: x\r\n"
        self.assertEqual(c.cmd(hops + "\r\nbody\r\n."),
                         "554 too many hops, this message is looping (#5.4.6)")
        self.assertEqual(self.records(), [])

    def test_databytes(self):
        self.home.write("databytes", "1000\n")
        self.start()
        c = self.connect()
        c.reply()
        self.assertEqual(c.cmd("MAIL FROM:<a@b.test> SIZE=5000"),
                         "552 sorry, that message size exceeds my databytes limit (#5.3.4)")
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("RCPT TO:<u@agent.test>")
        c.cmd("DATA")
        self.assertEqual(c.cmd("x" * 50 + ("\r\n" + "y" * 70) * 20 + "\r\n."),
                         "552 sorry, that message size exceeds my databytes limit (#5.3.4)")
        self.assertEqual(self.records(), [])  # refused, never truncated
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("RCPT TO:<u@agent.test>")
        c.cmd("DATA")
        self.assertRegex(c.cmd("small\r\n."), r"^250 ok")

    def test_too_many_recipients(self):
        self.start(["--max-recipients", "2"])
        c = self.connect()
        c.reply()
        c.cmd("MAIL FROM:<a@b.test>")
        self.assertEqual(c.cmd("RCPT TO:<a@agent.test>"), "250 ok")
        self.assertEqual(c.cmd("RCPT TO:<b@agent.test>"), "250 ok")
        self.assertEqual(c.cmd("RCPT TO:<c@agent.test>"), "452 too many recipients (#4.5.3)")


class QueueTest(SmtpdTestCase):
    CODES = {
        11: "554 envelope address too long for qq (#5.1.3)",
        31: "554 mail server permanently rejected message (#5.3.0)",
        20: "554 qq permanent problem (#5.3.0)",
        51: "451 qq out of memory (#4.3.0)",
        52: "451 qq timeout (#4.3.0)",
        53: "451 qq write error or disk full (#4.3.0)",
        54: "451 qq read error (#4.3.0)",
        55: "451 qq unable to read configuration (#4.3.0)",
        56: "451 qq trouble making network connection (#4.3.0)",
        61: "451 qq trouble in home directory (#4.3.0)",
        64: "451 qq trouble creating files in queue (#4.3.0)",
        71: "451 mail server temporarily rejected message (#4.3.0)",
        72: "451 connection to mail server timed out (#4.4.1)",
        73: "451 connection to mail server rejected (#4.4.1)",
        74: "451 communication with mail server failed (#4.4.2)",
        81: "451 qq internal bug (#4.3.0)",
        91: "451 qq internal bug (#4.3.0)",
        120: "451 unable to exec qq (#4.3.0)",
        99: "451 qq temporary problem (#4.3.0)",
    }

    def send_one(self, c):
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("RCPT TO:<u@agent.test>")
        c.cmd("DATA")
        return c.cmd("body\r\n.")

    def test_every_exit_code(self):
        self.start()
        c = self.connect()
        c.reply()
        for code, text in self.CODES.items():
            with self.subTest(code=code):
                self.set_queue_exit(code)
                self.assertEqual(self.send_one(c), text)
                self.assertEqual(self.records(), [])
        self.set_queue_exit(0)
        self.assertRegex(self.send_one(c), r"^250 ok \d+ qp \d+$")
        self.assertEqual(len(self.records()), 1)

    def test_qmail_queue_cannot_run(self):
        self.start(queue="/nonexistent/qmail-queue")
        c = self.connect()
        c.reply()
        self.assertEqual(self.send_one(c), "451 unable to exec qq (#4.3.0)")

    def test_qmail_queue_crash(self):
        crash = os.path.join(self.dir, "crash.sh")
        with open(crash, "w") as f:
            f.write("#!/bin/sh\nkill -9 $$\n")
        os.chmod(crash, 0o755)
        self.start(queue=crash)
        c = self.connect()
        c.reply()
        self.assertEqual(self.send_one(c), "451 qq crashed (#4.3.0)")


class TlsTest(SmtpdTestCase):
    def test_openssl_s_client_starttls(self):
        self.start()
        p = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                            "127.0.0.1:%d" % self.agent.port, "-CAfile", self.certs.ca.cert_path,
                            "-verify_return_error", "-ign_eof"],
                           input="EHLO x\r\nQUIT\r\n", capture_output=True, text=True, timeout=30)
        self.assertIn("Verify return code: 0 (ok)", p.stdout)
        self.assertIn("250-mx.agent.test", p.stdout)
        self.assertNotIn("STARTTLS", p.stdout)  # not offered again inside TLS
        self.assertIn("221 mx.agent.test", p.stdout)

    def test_session_resumption(self):
        self.start()
        sess = os.path.join(self.dir, "sess.pem")
        base = ["openssl", "s_client", "-ign_eof", "-starttls", "smtp", "-connect",
                "127.0.0.1:%d" % self.agent.port, "-CAfile", self.certs.ca.cert_path]
        subprocess.run(base + ["-sess_out", sess], input="QUIT\r\n", capture_output=True,
                       text=True, timeout=30)
        p = subprocess.run(base + ["-sess_in", sess], input="QUIT\r\n", capture_output=True,
                           text=True, timeout=30)
        self.assertIn("Reused, TLSv1.3", p.stdout)

    def test_session_id_resumption_survives_an_eof_without_quit(self):
        # A client that drops the connection after its work, without QUIT or close_notify,
        # leaves its TLS 1.2 session ID resumable (OpenSSL would drop it from the cache).
        self.start()
        ctx = client_context(self.certs.ca.cert_path)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.options |= ssl.OP_NO_TICKET

        def starttls(session=None):
            c = self.connect()
            c.reply()
            c.cmd("EHLO client.test")
            self.assertEqual(c.cmd("STARTTLS"), "220 ready for tls")
            c.sock = ctx.wrap_socket(c.sock, server_hostname="agent.test", session=session)
            c.buf = b""
            self.assertTrue(c.cmd("EHLO client.test").startswith("250"))
            return c

        first = starttls()
        session = first.sock.session
        first.sock.close()  # no QUIT, no close_notify
        wait_for(lambda: "end=eof" in self.agent.read_log(), what="the session's end")
        second = starttls(session)
        self.assertTrue(second.sock.session_reused)

    def test_sni_certificate(self):
        os.makedirs(os.path.join(self.home.control, "servercerts", "other.test"))
        self.home.write("servercerts/other.test/servercert.pem",
                        open(self.rsa_free_alt.pem_path).read(), 0o600)
        self.start()
        for name, want in (("other.test", "other.test"), ("agent.test", "agent.test")):
            c = self.connect()
            c.reply()
            c.cmd("EHLO x")
            self.assertEqual(c.cmd("STARTTLS"), "220 ready for tls")
            c.starttls(client_context(self.certs.ca.cert_path), hostname=name)
            self.assertEqual(c.sock.getpeercert()["subjectAltName"][0], ("DNS", want))

    def test_injection_after_starttls_is_discarded(self):
        self.start()
        c = self.connect()
        c.reply()
        c.cmd("EHLO x")
        c.send("STARTTLS\r\nMAIL FROM:<x@y.test>\r\n")
        self.assertEqual(c.reply(), "220 ready for tls")
        c.starttls(client_context(self.certs.ca.cert_path))
        # Had the pipelined MAIL run, RCPT would be accepted.
        self.assertEqual(c.cmd("RCPT TO:<u@agent.test>"), "503 MAIL first (#5.5.1)")
        c.cmd("QUIT")
        wait_for(lambda: "injected_bytes=22" in self.agent.read_log(), what="injection log")

    def test_state_reset_after_starttls(self):
        self.start()
        c = self.connect()
        c.reply()
        c.cmd("EHLO x")
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("STARTTLS")
        c.starttls(client_context(self.certs.ca.cert_path))
        self.assertEqual(c.cmd("RCPT TO:<u@agent.test>"), "503 MAIL first (#5.5.1)")
        self.assertEqual(c.cmd("STARTTLS"), "502 unimplemented (#5.5.1)")

    def test_tls12_minimum(self):
        self.start()
        ctx = client_context(verify=False)
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        c = self.connect()
        c.reply()
        c.cmd("STARTTLS")
        with self.assertRaises((ssl.SSLError, OSError)):
            c.starttls(ctx)

    def test_rsa_and_ecdsa_together_key_first_or_last(self):
        rsa = self.certs.rsa_leaf("rsa", dns=["agent.test"], ips=["127.0.0.1"])
        pem = open(self.server.cert_path).read() + open(self.server.key_path).read() + \
            open(rsa.key_path).read() + open(rsa.cert_path).read()
        self.home.write("servercert.pem", pem, 0o600)
        self.start()
        for sigalgs, want in (("ECDSA+SHA256", "ec"), ("RSA-PSS+SHA256:RSA+SHA256", "rsa")):
            p = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                                "127.0.0.1:%d" % self.agent.port, "-sigalgs", sigalgs,
                                "-tls1_2", "-CAfile", self.certs.ca.cert_path],
                               input="QUIT\r\n", capture_output=True, text=True, timeout=30)
            self.assertIn("Verify return code: 0 (ok)", p.stdout)
            key = re.search(r"Server public key is (\d+) bit", p.stdout).group(1)
            self.assertEqual(key, "256" if want == "ec" else "2048")

    def test_open_session_keeps_its_snapshot_across_reload(self):
        agent = self.start()
        old = self.connect()
        old.reply()
        self.home.write("servercert.pem", open(self.rsa_free_alt.pem_path).read(), 0o600)
        agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "generation 2" in agent.read_log(), what="reload")
        new = self.connect()
        new.reply()
        for c, name in ((old, b"agent.test"), (new, b"other.test")):
            self.assertEqual(c.cmd("STARTTLS"), "220 ready for tls")
            c.starttls(client_context(verify=False))
            self.assertIn(name, c.sock.getpeercert(binary_form=True))

    def test_hand_edits_apply_by_themselves_and_losing_the_key_warns(self):
        agent = self.start(["--watch-control", "200"])
        c = self.connect()
        c.reply()
        c.cmd("MAIL FROM:<a@b.test>")
        self.assertTrue(c.cmd("RCPT TO:<u@other.test>").startswith("553 "))
        self.home.write("rcpthosts", "agent.test\nother.test\n")
        wait_for(lambda: "loaded, generation 2 (inotify)" in agent.read_log(), what="reload")
        c = self.connect()
        c.reply()
        c.cmd("MAIL FROM:<a@b.test>")
        self.assertEqual(c.cmd("RCPT TO:<u@other.test>"), "250 ok")
        self.home.remove("servercert.pem")
        wait_for(lambda: "loaded, generation 3 (inotify)" in agent.read_log(), what="reload")
        self.assertIn("warning: policy: generation 3 has no servercert.pem: STARTTLS is no "
                      "longer offered", agent.read_log())
        c = self.connect()
        c.reply()
        self.assertNotIn("STARTTLS", c.cmd("EHLO client.test"))
        self.assertEqual(c.cmd("STARTTLS"), "454 TLS missing certificate (#4.3.0)")

    def test_reload_certificate_and_refuse_invalid(self):
        agent = self.start()
        self.home.write("servercert.pem", open(self.rsa_free_alt.pem_path).read(), 0o600)
        agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "generation 2" in agent.read_log(), what="reload")
        c = self.connect()
        c.reply()
        c.cmd("STARTTLS")
        c.starttls(client_context(verify=False))
        self.assertEqual(c.sock.getpeercert(binary_form=False), {})  # unverified: no dict
        der = c.sock.getpeercert(binary_form=True)
        self.assertIn(b"other.test", der)
        self.home.write("servercert.pem", "garbage\n", 0o600)
        agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload: keeping generation 2" in agent.read_log(), what="refusal")
        c2 = self.connect()
        c2.reply()
        c2.cmd("STARTTLS")
        c2.starttls(client_context(verify=False))
        self.assertIn(b"other.test", c2.sock.getpeercert(binary_form=True))


class CertRelayTest(SmtpdTestCase):
    def setUp(self):
        super().setUp()
        self.home.write("clientca.pem", open(self.certs.ca.cert_path).read())
        self.home.write("clientcrl.pem", open(self.crl).read())
        self.home.write("tlsclients", "Relay@Client.test\n")
        self.start()

    def relay_attempt(self, cert, rcpt="u@elsewhere.test"):
        c = self.connect()
        c.reply()
        c.cmd("EHLO x")
        c.cmd("STARTTLS")
        c.starttls(client_context(self.certs.ca.cert_path, cert=cert))
        c.cmd("EHLO x")
        c.cmd("MAIL FROM:<a@b.test>")
        return c, c.cmd("RCPT TO:<%s>" % rcpt)

    def refused(self, reason):
        return ("553 sorry, that domain isn't in my list of allowed rcpthosts; no valid cert for "
                "gatewaying%s (#5.7.1)" % (": " + reason if reason else ""))

    def test_listed_certificate_relays(self):
        c, r = self.relay_attempt(self.client)
        self.assertEqual(r, "250 ok")
        self.assertEqual(c.cmd("RCPT TO:<v@another.test>"), "250 ok")
        c.cmd("DATA")
        self.assertRegex(c.cmd("hi\r\n."), r"^250 ok")
        [(msg, env)] = self.records()
        self.assertRegex(msg.decode(), received_re(
            "x", "127.0.0.1",
            r"ESMTPS \(TLS_AES_256_GCM_SHA384 encrypted\)\n  \(cert relay@client\.test\)"))
        self.assertEqual(c.cmd("QUIT"), "221 mx.agent.test")
        wait_for(lambda: "relay=cert" in self.agent.read_log(), what="log")

    def test_refusals(self):
        cases = [(self.unlisted, "email address not in my list of tlsclients"),
                 (self.noemail, "contains no email address"),
                 (self.foreign, "unable to verify the first certificate"),
                 (self.expired, "certificate has expired"),
                 (self.revoked, "certificate revoked"),
                 (None, "")]
        for cert, reason in cases:
            with self.subTest(reason=reason):
                c, r = self.relay_attempt(cert)
                self.assertEqual(r, self.refused(reason))
                # Local recipients are still fine.
                self.assertEqual(c.cmd("RCPT TO:<u@agent.test>"), "250 ok")

    def test_no_tls_no_certificate_relay(self):
        c = self.connect()
        c.reply()
        c.cmd("MAIL FROM:<a@b.test>")
        self.assertEqual(c.cmd("RCPT TO:<u@elsewhere.test>"),
                         "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)")

    def test_swaks_with_client_certificate(self):
        rc, out = self.swaks("--tls", "--tls-cert", self.client.cert_path, "--tls-key",
                             self.client.key_path, "--to", "far@elsewhere.test")
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.records()[0][1], b"Fa@b.test\0Tfar@elsewhere.test\0\0")


class PostfixRelayTest(SmtpdTestCase):
    def test_postfix_relays_to_the_agent_over_starttls(self):
        from postfix_sink import PostfixSink
        self.start()
        pf = PostfixSink(self.dir, self.server, relay_to=("127.0.0.1", self.agent.port))
        self.addCleanup(pf.stop)
        p = subprocess.run(["swaks", "--server", "127.0.0.2:%d" % pf.port, "--from", "a@b.test",
                            "--to", "u@agent.test", "--body", "via postfix"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        wait_for(lambda: self.records(), timeout=30, what="the relayed message")
        [(msg, env)] = self.records()
        self.assertEqual(env, b"Fa@b.test\0Tu@agent.test\0\0")
        self.assertRegex(msg.decode(), received_re(
            "postfix.test", "127.0.0.1", r"ESMTPS \(TLS_AES_256_GCM_SHA384 encrypted\)"))
        self.assertIn("via postfix", msg.decode())
        wait_for(lambda: "status=sent" in pf.log(), what="postfix delivery log")
        self.assertRegex(pf.log(), r"Untrusted TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: TLSv1\.3")


if __name__ == "__main__":
    unittest.main()
