// LD_PRELOAD shim for `npm run bench:election`: every fdatasync and fsync
// sleeps RAFTLINE_BENCH_SYNC_DELAY_MS milliseconds before syncing, as on a
// slow or overloaded disk. Built by bench/election-bench.ts.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef int (*sync_fn)(int);

static struct timespec delay;
static sync_fn real_fdatasync;
static sync_fn real_fsync;

// Once, before main: the log's writer thread syncs while JavaScript may be
// changing the environment.
__attribute__((constructor)) static void init(void) {
  const char *ms = getenv("RAFTLINE_BENCH_SYNC_DELAY_MS");
  long delay_ms = ms != NULL ? atol(ms) : 0;
  delay.tv_sec = delay_ms / 1000;
  delay.tv_nsec = (delay_ms % 1000) * 1000000L;
  // RTLD_NEXT: libc's own functions, the ones this shim wraps.
  real_fdatasync = (sync_fn)dlsym(RTLD_NEXT, "fdatasync");
  real_fsync = (sync_fn)dlsym(RTLD_NEXT, "fsync");
}

static void wait_as_a_slow_disk(void) {
  int saved = errno;
  struct timespec left = delay;
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
  errno = saved;
}

int fdatasync(int fd) {
  wait_as_a_slow_disk();
  return real_fdatasync(fd);
}

int fsync(int fd) {
  wait_as_a_slow_disk();
  return real_fsync(fd);
}
