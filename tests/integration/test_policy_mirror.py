"""qtlsctl policy get --out as an exact mirror: two operators working on one daemon, a
directory that is not qtlsctl's, and a 64 MiB policy of real CA bundles, with the real daemon
and the real qtlsctl."""
import filecmp
import os
import time
import unittest

from harness import RemoteTestCase
from test_admin import ctl, policy_pb2, unix_api


class PolicyMirrorTest(RemoteTestCase):
    def test_get_out_mirrors_removals_and_refuses_foreign_directories(self):
        # A policy with one more file, so that the mirror is never empty.
        self.home.write("tlspolicy", "example.test may\n")
        self.start_daemon()
        sock = self.daemon.admin_socket
        # Two operators. A mirrors the policy (with notlshosts/mirror.test); B removes that
        # file; A gets the policy again into the same directory and applies it: B's removal
        # holds, because `get --out` is an exact mirror (a file that is gone leaves the copy).
        empty = os.path.join(self.dir, "empty")
        open(empty, "w").close()
        rc, out, err = ctl(sock, "policy", "apply", "--put", "notlshosts/mirror.test=" + empty)
        self.assertEqual(rc, 0, err)
        mirror = os.path.join(self.dir, "operator-a")
        rc, out, err = ctl(sock, "policy", "get", "--out", mirror)
        self.assertEqual(rc, 0, err)
        self.assertTrue(os.path.exists(os.path.join(mirror, "notlshosts", "mirror.test")))
        rc, out, err = ctl(sock, "policy", "apply", "--remove", "notlshosts/mirror.test")
        self.assertEqual(rc, 0, err)
        rc, out, err = ctl(sock, "policy", "get", "--out", mirror)
        self.assertEqual(rc, 0, err)
        self.assertRegex(err, r"removed notlshosts/mirror\.test: not in generation \d+")
        self.assertFalse(os.path.exists(os.path.join(mirror, "notlshosts", "mirror.test")))
        rc, out, err = ctl(sock, "policy", "apply", "--from", mirror)
        self.assertEqual(rc, 0, err)
        self.assertNotIn("notlshosts/mirror.test", [
            it.path for it in unix_api(sock).policy.GetPolicy(policy_pb2.GetPolicyRequest()).items])
        # A directory that holds other things is not overwritten.
        foreign = os.path.join(self.dir, "foreign")
        os.makedirs(foreign)
        open(os.path.join(foreign, "notes.txt"), "w").close()
        rc, out, err = ctl(sock, "policy", "get", "--out", foreign)
        self.assertEqual(rc, 2)
        self.assertIn("is not empty and was not written by `qtlsctl policy get --out`", err)
        self.assertEqual(os.listdir(foreign), ["notes.txt"])

    def test_a_64_mib_policy_goes_both_ways(self):
        # 305 copies of Debian's CA bundle (219,597 bytes, 144 certificates each): 63.9 MiB.
        bundle = "/etc/ssl/certs/ca-certificates.crt"
        with open(bundle) as f:
            pem = f.read()
        copies = (64 << 20) // len(pem)
        staged = os.path.join(self.dir, "staged")
        os.makedirs(os.path.join(staged, "tlshosts"))
        for i in range(copies):
            with open(os.path.join(staged, "tlshosts", "mx%03d.example.pem" % i), "w") as f:
                f.write(pem)
        self.start_daemon()
        sock = self.daemon.admin_socket
        start = time.monotonic()
        rc, out, err = ctl(sock, "policy", "apply", "--from", staged, "--expect-generation", "1")
        applied = time.monotonic() - start
        self.assertEqual(rc, 0, err)
        self.assertIn("applied: generation 1 -> 2", out)
        start = time.monotonic()
        mirror = os.path.join(self.dir, "mirror")
        rc, out, err = ctl(sock, "policy", "get", "--out", mirror)
        got = time.monotonic() - start
        self.assertEqual(rc, 0, err)
        same = filecmp.dircmp(os.path.join(staged, "tlshosts"), os.path.join(mirror, "tlshosts"))
        self.assertEqual((same.left_only, same.right_only, same.diff_files), ([], [], []))
        self.assertEqual(len(same.same_files), copies)
        print("\n%d files, %d bytes: apply --from %.1f s, get --out %.1f s"
              % (copies, copies * len(pem), applied, got))
        # One more and it is over the limit: refused with the size and what to do instead.
        with open(os.path.join(staged, "tlshosts", "one-more.example.pem"), "w") as f:
            f.write(pem)
        rc, out, err = ctl(sock, "policy", "apply", "--from", staged, "--expect-generation", "2")
        self.assertEqual(rc, 4, err)
        self.assertIn("INVALID_ARGUMENT: the policy would be 67", err)
        self.assertIn("the limit is 67108864", err)


if __name__ == "__main__":
    unittest.main()
