/* A stand-in for qmail-queue as it is installed: setuid to its owner (qmailq in a real qmail,
 * mode 04711). Compiled at test time by test_deploy_sandbox.py, chowned to a user other than
 * the agent's and made setuid.
 *
 * Like qmail-queue (spec 5.1) it reads the message on fd 0 to EOF first, then the envelope on
 * fd 1 to EOF; an incomplete envelope exits 54 without queueing. Then it needs what the setuid
 * bit gives: its effective uid must be the owner of its own file, and it writes the message and
 * the envelope to new files in queue/ (<pid>.msg, <pid>.env; relative to its working
 * directory, the qmail home), a directory only that owner may write, as qmail's queue is. When
 * the exec did not change the effective uid (no_new_privs, a nosuid mount) it exits 62, as
 * qmail-queue does when it cannot create its files: the agent answers
 * "451 qq trouble creating files in queue (#4.3.0)". */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int read_all(int fd, char **out, size_t *len) {
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap);
  if (buf == NULL) return -1;
  for (;;) {
    if (n == cap) {
      char *bigger = realloc(buf, cap *= 2);
      if (bigger == NULL) return -1;
      buf = bigger;
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    n += (size_t)r;
  }
  *out = buf;
  *len = n;
  return 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* queue/<pid>.<kind>: created, never overwritten. 0 on success. */
static int store(const char *kind, const char *data, size_t len) {
  char path[64];
  snprintf(path, sizeof path, "queue/%ld.%s", (long)getpid(), kind);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return -1;
  int bad = write_all(fd, data, len) != 0 || fsync(fd) != 0;
  return (close(fd) != 0 || bad) ? -1 : 0;
}

int main(void) {
  char *msg, *env;
  size_t msglen, envlen;
  if (read_all(0, &msg, &msglen) != 0) return 54;
  if (read_all(1, &env, &envlen) != 0) return 54;
  if (envlen < 3 || env[0] != 'F' || env[envlen - 1] != '\0' || env[envlen - 2] != '\0')
    return 54;

  struct stat self;
  if (stat("/proc/self/exe", &self) != 0) return 81;
  if (geteuid() != self.st_uid) {
    /* fd 2 is the agent's log */
    fprintf(stderr, "setuid_qmail_queue: euid %ld, file owner %ld: setuid bit not honoured\n",
            (long)geteuid(), (long)self.st_uid);
    return 62;
  }
  if (store("msg", msg, msglen) != 0 || store("env", env, envlen) != 0) return 62;
  return 0;
}
