/* A qmail-remote that delivers nothing: reads no message, prints an accepted report. The
 * ceiling of any qmail-remote run by qmail-rspawn (tests/bench/remote_bench.py). */
#include <unistd.h>

int main(void) {
  static const char report[] = "r\0K127.0.0.1 accepted message.\nRemote host said: 250 ok\n";
  return write(1, report, sizeof report) == (ssize_t)sizeof report ? 0 : 111;
}
