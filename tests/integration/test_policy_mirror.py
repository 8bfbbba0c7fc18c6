"""qtlsctl policy get --out as an exact mirror: two operators working on one daemon, and a
directory that is not qtlsctl's, with the real daemon and the real qtlsctl."""
import os
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


if __name__ == "__main__":
    unittest.main()
