// LD_PRELOAD shim for the fault tests: fdatasync and fsync fail with EIO,
// without syncing, while the file named by RAFTLINE_TEST_FAIL_SYNC_FILE
// exists; with RAFTLINE_TEST_FAIL_SYNC_ONLY set to one of their names, only
// that one fails (the log syncs files with fdatasync, directories with fsync);
// with RAFTLINE_TEST_FAIL_SYNC_PASSES set to N, the first N of those calls
// succeed, to fail a sync in the middle of one native call.
// That is what a failing disk (or dm-error) shows a process, without needing
// root or a block device; the test turns the fault on and off by creating and
// deleting the file, so the process runs unchanged until then.
// Built by test/support/failsync.ts.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int (*sync_fn)(int);

static const char *trigger;
static const char *only;
static long passes_left;
static sync_fn real_fdatasync;
static sync_fn real_fsync;

// Once, before main: getenv is not safe against a concurrent setenv, and the
// log's writer thread syncs while JavaScript may be changing the environment.
__attribute__((constructor)) static void init(void) {
  trigger = getenv("RAFTLINE_TEST_FAIL_SYNC_FILE");
  only = getenv("RAFTLINE_TEST_FAIL_SYNC_ONLY");
  const char *passes = getenv("RAFTLINE_TEST_FAIL_SYNC_PASSES");
  passes_left = passes ? strtol(passes, NULL, 10) : 0;
  // RTLD_NEXT: libc's own functions, the ones this shim hides.
  real_fdatasync = (sync_fn)dlsym(RTLD_NEXT, "fdatasync");
  real_fsync = (sync_fn)dlsym(RTLD_NEXT, "fsync");
}

// Checked on every call, not once: the test creates the file while the process runs.
static int failing(const char *call) {
  if (trigger == NULL || (only != NULL && strcmp(only, call) != 0) || access(trigger, F_OK) != 0) return 0;
  return __atomic_sub_fetch(&passes_left, 1, __ATOMIC_SEQ_CST) < 0;
}

int fdatasync(int fd) {
  if (failing("fdatasync")) {
    errno = EIO;
    return -1;
  }
  return real_fdatasync(fd);
}

int fsync(int fd) {
  if (failing("fsync")) {
    errno = EIO;
    return -1;
  }
  return real_fsync(fd);
}
