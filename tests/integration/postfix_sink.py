"""A private Postfix instance on loopback: by default a STARTTLS sink that accepts every message
and discards it; with relay_to, a relay that forwards everything to that host over mandatory
STARTTLS. Nothing system-wide is touched (its own config, queue and data directories)."""
import os
import re
import shutil
import subprocess
import time

from harness import free_port, wait_for


class PostfixSink:
    def __init__(self, root, identity, host="127.0.0.2", relay_to=None):
        self.dir = os.path.join(root, "postfix")
        os.makedirs(self.dir)
        # Postfix's daemons run as user postfix and must reach their directories.
        d = self.dir
        while d not in ("/", "/tmp", ""):
            os.chmod(d, 0o755)
            d = os.path.dirname(d)
        self.host, self.port = host, free_port(host)
        master = open("/etc/postfix/master.cf").read()
        lines = []
        for line in master.splitlines():
            if re.match(r"^smtp\s+inet\s", line):
                continue
            m = re.match(r"^(\S+\s+\S+\s+\S+\s+\S+\s+)(\S+)(\s+.*)$", line)
            if m and not line.startswith("#") and not line.startswith(" "):
                line = m.group(1) + "n" + m.group(3)  # no chroot
            lines.append(line)
        lines.append("%s:%d inet n - n - - smtpd" % (host, self.port))
        with open(os.path.join(self.dir, "master.cf"), "w") as f:
            f.write("\n".join(lines) + "\n")
        shutil.copy(identity.key_path, os.path.join(self.dir, "key.pem"))
        shutil.copy(identity.cert_path, os.path.join(self.dir, "cert.pem"))
        self.maillog = os.path.join(self.dir, "maillog")
        main = {
            "compatibility_level": "3.6",
            "queue_directory": os.path.join(self.dir, "queue"),
            "data_directory": os.path.join(self.dir, "data"),
            "inet_interfaces": "127.0.0.1",  # must be an interface address; master.cf binds host
            "inet_protocols": "ipv4",
            "myhostname": "postfix.test",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": "permit_mynetworks, reject",
            "smtpd_end_of_data_restrictions": "check_client_access static:DISCARD",
            "default_transport": "discard:sink",
            "relay_transport": "discard:sink",
            "local_transport": "discard:sink",
            "virtual_transport": "discard:sink",
            "alias_maps": "", "alias_database": "", "local_recipient_maps": "",
            "smtpd_peername_lookup": "no",
            "smtpd_error_sleep_time": "0",
            "in_flow_delay": "0",
            "smtpd_tls_security_level": "may",
            "smtpd_tls_chain_files": "%s/key.pem, %s/cert.pem" % (self.dir, self.dir),
            "smtpd_tls_received_header": "yes",
            "smtpd_tls_loglevel": "1",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": "/var, /dev/stdout, %s" % self.dir,
            "shlib_directory": "/usr/lib/postfix",
        }
        if relay_to:
            # Forward everything to relay_to = (host, port) with TLS required.
            for k in ("default_transport", "relay_transport", "local_transport",
                      "virtual_transport", "smtpd_end_of_data_restrictions"):
                del main[k]
            main.update({
                "relayhost": "[%s]:%d" % relay_to,
                "smtp_tls_security_level": "encrypt",
                "smtp_tls_loglevel": "1",
                "disable_dns_lookups": "yes",
                "smtp_helo_name": "postfix.test",
            })
        with open(os.path.join(self.dir, "main.cf"), "w") as f:
            for k, v in main.items():
                f.write("%s = %s\n" % (k, v))
        for sub in ("queue", "data"):
            os.makedirs(os.path.join(self.dir, sub))
        subprocess.run(["chown", "postfix", os.path.join(self.dir, "data")], check=True)
        self._postfix("start")
        wait_for(self._listening, timeout=20, what="postfix smtpd")

    def _postfix(self, what):
        # postfix(1) prints its fatal errors only to a terminal: run it under script(1).
        p = subprocess.run(["script", "-qec", "postfix -c %s %s" % (self.dir, what), "/dev/null"],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if p.returncode != 0 and what == "start":
            raise AssertionError("postfix start failed: " + p.stdout + p.stderr)

    def _listening(self):
        import socket
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as s:
                s.recv(100)
            return True
        except OSError:
            return False

    def log(self):
        try:
            with open(self.maillog) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        self._postfix("stop")
        time.sleep(0.2)
