/* A qmail-queue stand-in for benchmarks: reads the message (fd 0) and the envelope (fd 1) to
   EOF, as qmail-queue does, queues nothing, exits 0. */
#include <unistd.h>

int main(void) {
  char buf[65536];
  while (read(0, buf, sizeof buf) > 0) {
  }
  while (read(1, buf, sizeof buf) > 0) {
  }
  return 0;
}
