/* Plays qmail-send against a qmail-rspawn (qtls-rspawn): reads its concurrency byte, keeps
 * CONC delivery slots busy with requests for MESSID (relative to queue/mess) until COUNT
 * answers came, then closes fd 0 and waits for it to exit. Prints deliveries/s, latency
 * p50/p99, failures (an answer not starting with K) and the rspawn process's CPU per delivery.
 *
 *   qmail_send_driver CONC COUNT MESSID RECIPIENT PROGRAM [ARGS...]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

int main(int argc, char** argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: qmail_send_driver CONC COUNT MESSID RECIPIENT PROGRAM [ARGS...]\n");
    return 2;
  }
  int conc = atoi(argv[1]), count = atoi(argv[2]);
  const char *messid = argv[3], *recip = argv[4];
  int to[2], from[2];
  if (pipe(to) || pipe(from)) return 111;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(to[0], 0);
    dup2(from[1], 1);
    close(to[0]), close(to[1]), close(from[0]), close(from[1]);
    execv(argv[5], argv + 5);
    _exit(111);
  }
  close(to[0]);
  close(from[1]);
  unsigned char greeting;
  if (read(from[0], &greeting, 1) != 1) return 111;
  if (conc > greeting) conc = greeting;
  char req[512];
  int reqlen = snprintf(req + 1, sizeof req - 1, "%s%ca@sender.test%c%s", messid, 0, 0, recip);
  reqlen += 2; /* the slot byte and the final NUL */
  double* start = calloc(256, sizeof(double));
  double* lat = calloc((size_t)count, sizeof(double));
  int sent = 0, done = 0, failed = 0;
  const double t0 = bench_now();
  for (int s = 0; s < conc && sent < count; ++s, ++sent) {
    req[0] = (char)s;
    start[s] = bench_now();
    if (write(to[1], req, (size_t)reqlen) != reqlen) return 111;
  }
  static char buf[1 << 16];
  size_t have = 0;
  while (done < count) {
    ssize_t r = read(from[0], buf + have, sizeof buf - have);
    if (r <= 0) return 111;
    have += (size_t)r;
    size_t pos = 0;
    for (;;) {
      if (have - pos < 2) break;
      char* nul = memchr(buf + pos + 1, 0, have - pos - 1); /* the slot byte may be 0 itself */
      if (nul == NULL) break;
      int slot = (unsigned char)buf[pos];
      if (buf[pos + 1] != 'K') {
        if (failed < 3)
          fprintf(stderr, "failed: %.*s\n", (int)(nul - buf - pos - 1), buf + pos + 1);
        ++failed;
      }
      lat[done++] = bench_now() - start[slot];
      pos = (size_t)(nul - buf) + 1;
      if (sent < count) {
        req[0] = (char)slot;
        start[slot] = bench_now();
        if (write(to[1], req, (size_t)reqlen) != reqlen) return 111;
        ++sent;
      }
    }
    memmove(buf, buf + pos, have - pos);
    have -= pos;
  }
  const double secs = bench_now() - t0;
  close(to[1]);
  int st;
  waitpid(pid, &st, 0);
  bench_report(count, secs, lat, failed);
  return failed || !WIFEXITED(st) || WEXITSTATUS(st) != 0 ? 1 : 0;
}
