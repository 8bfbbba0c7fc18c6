/* Drives a qmail-remote the way qmail-rspawn does: one fork and exec per delivery, fd 0 the
 * message file opened read-only, fd 1 and fd 2 one pipe read to EOF, then waitpid; up to CONC
 * deliveries at once. Prints deliveries/s, latency p50/p99, failures (a report that does not
 * start with r\0K or K) and the children's CPU per delivery.
 *
 *   rspawn_driver CONC COUNT MESSAGE PROGRAM [ARGS...]
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

struct slot {
  pid_t pid;
  int fd;
  double start;
  char report[512];
  size_t len;
};

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: rspawn_driver CONC COUNT MESSAGE PROGRAM [ARGS...]\n");
    return 2;
  }
  int conc = atoi(argv[1]), count = atoi(argv[2]);
  const char* message = argv[3];
  char** prog = argv + 4;
  struct slot* slots = calloc((size_t)conc, sizeof *slots);
  double* lat = calloc((size_t)count, sizeof *lat);
  int started = 0, done = 0, failed = 0, running = 0;
  for (int i = 0; i < conc; ++i) slots[i].pid = 0;
  const double t0 = bench_now();
  while (done < count) {
    for (int i = 0; i < conc && started < count; ++i) {
      if (slots[i].pid) continue;
      int p[2];
      if (pipe(p) != 0) return 111;
      int m = open(message, O_RDONLY);
      if (m < 0) return 111;
      slots[i].start = bench_now();
      pid_t pid = fork();
      if (pid == 0) {
        dup2(m, 0);
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        close(m);
        execv(prog[0], prog);
        _exit(111);
      }
      close(m);
      close(p[1]);
      slots[i].pid = pid;
      slots[i].fd = p[0];
      slots[i].len = 0;
      ++started;
      ++running;
    }
    struct pollfd fds[1024];
    int idx[1024], n = 0;
    for (int i = 0; i < conc; ++i)
      if (slots[i].pid) {
        fds[n].fd = slots[i].fd;
        fds[n].events = POLLIN;
        idx[n++] = i;
      }
    if (poll(fds, (nfds_t)n, -1) < 0 && errno != EINTR) return 111;
    for (int k = 0; k < n; ++k) {
      if (!fds[k].revents) continue;
      struct slot* s = &slots[idx[k]];
      char buf[4096];
      ssize_t r = read(s->fd, buf, sizeof buf);
      if (r > 0) {
        size_t room = sizeof s->report - s->len;
        size_t take = (size_t)r < room ? (size_t)r : room;
        memcpy(s->report + s->len, buf, take);
        s->len += take;
        continue;
      }
      close(s->fd);
      int st;
      waitpid(s->pid, &st, 0);
      lat[done++] = bench_now() - s->start;
      int ok = (s->len >= 3 && memcmp(s->report, "r\0K", 3) == 0) ||
               (s->len >= 1 && s->report[0] == 'K');
      if (!ok || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        if (failed < 3) fprintf(stderr, "delivery failed: %.*s\n", (int)s->len, s->report);
        ++failed;
      }
      s->pid = 0;
      --running;
    }
  }
  const double secs = bench_now() - t0;
  bench_report(count, secs, lat, failed);
  return failed ? 1 : 0;
}
