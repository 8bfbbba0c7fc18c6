"""The README's first command: scripts/demo.py brings up the whole loop on loopback (qtls-smtpd
with a generated certificate, qtls-remoted verifying it through tlshosts/, a message through
the shim and one through qtls-rspawn). With --once it shows everything and stops."""
import os
import re
import subprocess
import unittest

DEMO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "demo.py")


class DemoTest(unittest.TestCase):
    def test_the_loop_delivers_verified_twice_and_stops(self):
        p = subprocess.run(["/usr/bin/python3", DEMO, "--once"], capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        out = p.stdout
        self.assertIn("r\\0K127.0.0.1 accepted message.", out)  # the shim's report
        self.assertRegex(out, r"answer for slot 0\nK127\.0\.0\.1 accepted message\.")
        lines = re.findall(r"^info: delivery id=.*$", out, re.M)
        self.assertEqual(len(lines), 2, out)
        for l in lines:
            self.assertIn("policy=tlshosts level=verify/verify", l)
            self.assertIn(" verify=ok ", l)
            self.assertIn(" status=K ", l)
        self.assertIn("Subject: through the shim", out)
        self.assertIn('qtls_remote_deliveries_total{result="success",frontend="rspawn"} 1', out)
        self.assertIn("tlshosts/mx.demo.test.pem", out)  # qtlsctl policy get
        self.assertIn("stopped; files left in", out)


if __name__ == "__main__":
    unittest.main()
