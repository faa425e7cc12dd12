/*
 * plshim: a user-space dm-log-writes. Loaded with LD_PRELOAD into a child
 * process, it logs every mutating file-system call the process makes through
 * libc on files under one directory (PLSHIM_DIR) into a log (PLSHIM_LOG), with
 * offsets and the bytes written, in the order the calls returned. The TS
 * replayer (replay.ts) rebuilds from that log what a power cut at any log
 * position leaves on disk. The real call always runs; the shim only observes.
 *
 * Record: struct rec_head, then path, then path2 (rename target), then data.
 * Logged after the real call returned successfully, under one mutex, so the log
 * order is an order the calls really completed in (an acknowledgement printed
 * by the workload after an awaited write is logged after that write).
 * Built by test/edge/power-loss/shim.ts with the machine's gcc.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { R_CREATE = 1, R_WRITE = 2, R_TRUNC = 3, R_FSYNC = 4, R_RENAME = 5, R_UNLINK = 6, R_MKDIR = 7, R_UNSUPPORTED = 8 };
/* flags */
#define F_DURABLE 1u /* the write was made through an O_SYNC/O_DSYNC descriptor: durable when it returned */
#define F_DIR 2u     /* fsync of a directory */

struct rec_head {
  uint32_t magic;   /* 0x504c5348 'PLSH' */
  uint32_t type;
  uint32_t flags;
  uint32_t path_len;
  uint32_t path2_len;
  uint32_t pad;
  uint64_t ino;
  uint64_t offset;
  uint64_t len; /* bytes of data following (write), or the new size (truncate) */
};

#define MAXFD 65536
struct fdinfo { char *rel; int sync; int isdir; uint64_t ino; };
static struct fdinfo fds[MAXFD];
struct mapinfo { void *addr; size_t len; off_t off; char *rel; uint64_t ino; };
#define MAXMAP 64
static struct mapinfo maps[MAXMAP];

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int logfd = -1;
static char root[PATH_MAX];
static size_t rootlen;
static int inited;

#define REAL(name, ret, ...) static ret (*real_##name)(__VA_ARGS__)
REAL(open, int, const char *, int, ...);
REAL(open64, int, const char *, int, ...);
REAL(openat, int, int, const char *, int, ...);
REAL(openat64, int, int, const char *, int, ...);
REAL(creat, int, const char *, mode_t);
REAL(creat64, int, const char *, mode_t);
REAL(close, int, int);
REAL(write, ssize_t, int, const void *, size_t);
REAL(pwrite, ssize_t, int, const void *, size_t, off_t);
REAL(pwrite64, ssize_t, int, const void *, size_t, off_t);
REAL(writev, ssize_t, int, const struct iovec *, int);
REAL(pwritev, ssize_t, int, const struct iovec *, int, off_t);
REAL(pwritev64, ssize_t, int, const struct iovec *, int, off_t);
REAL(pwritev2, ssize_t, int, const struct iovec *, int, off_t, int);
REAL(ftruncate, int, int, off_t);
REAL(ftruncate64, int, int, off_t);
REAL(truncate, int, const char *, off_t);
REAL(fsync, int, int);
REAL(fdatasync, int, int);
REAL(msync, int, void *, size_t, int);
REAL(mmap, void *, void *, size_t, int, int, int, off_t);
REAL(mmap64, void *, void *, size_t, int, int, int, off_t);
REAL(munmap, int, void *, size_t);
REAL(rename, int, const char *, const char *);
REAL(renameat, int, int, const char *, int, const char *);
REAL(unlink, int, const char *);
REAL(unlinkat, int, int, const char *, int);
REAL(mkdir, int, const char *, mode_t);
REAL(mkdirat, int, int, const char *, mode_t);
REAL(dup, int, int);
REAL(dup2, int, int, int);
REAL(dup3, int, int, int, int);

#define LOAD(name) real_##name = dlsym(RTLD_NEXT, #name)
static void init(void) {
  if (inited) return;
  LOAD(open); LOAD(open64); LOAD(openat); LOAD(openat64); LOAD(creat); LOAD(creat64); LOAD(close);
  LOAD(write); LOAD(pwrite); LOAD(pwrite64); LOAD(writev); LOAD(pwritev); LOAD(pwritev64); LOAD(pwritev2);
  LOAD(ftruncate); LOAD(ftruncate64); LOAD(truncate); LOAD(fsync); LOAD(fdatasync); LOAD(msync);
  LOAD(mmap); LOAD(mmap64); LOAD(munmap); LOAD(rename); LOAD(renameat); LOAD(unlink); LOAD(unlinkat);
  LOAD(mkdir); LOAD(mkdirat); LOAD(dup); LOAD(dup2); LOAD(dup3);
  const char *d = getenv("PLSHIM_DIR");
  const char *l = getenv("PLSHIM_LOG");
  if (d && l && realpath(d, root)) {
    rootlen = strlen(root);
    logfd = (int)syscall(SYS_open, l, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  }
  inited = 1;
}
__attribute__((constructor)) static void ctor(void) { init(); }

static void log_all(const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = syscall(SYS_write, logfd, c, n);
    if (w < 0) { if (errno == EINTR) continue; abort(); }
    c += w; n -= (size_t)w;
  }
}

/* Caller holds mu. */
static void emit(uint32_t type, uint32_t flags, const char *p1, const char *p2, uint64_t ino, uint64_t off, uint64_t len, const struct iovec *iov, int iovcnt) {
  struct rec_head h = { 0x504c5348u, type, flags, p1 ? (uint32_t)strlen(p1) : 0, p2 ? (uint32_t)strlen(p2) : 0, 0, ino, off, len };
  log_all(&h, sizeof h);
  if (p1) log_all(p1, h.path_len);
  if (p2) log_all(p2, h.path2_len);
  for (int i = 0; i < iovcnt; i++) log_all(iov[i].iov_base, iov[i].iov_len);
}

/* The absolute, lexically normalised form of `path` relative to `dirfd`, or NULL. Caller frees. */
static char *absolute(int dirfd, const char *path) {
  char base[PATH_MAX];
  if (path[0] == '/') base[0] = 0;
  else if (dirfd == AT_FDCWD) { if (!getcwd(base, sizeof base)) return NULL; }
  else {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
    ssize_t n = readlink(link, base, sizeof base - 1);
    if (n < 0) return NULL;
    base[n] = 0;
  }
  char *out = malloc(PATH_MAX * 2);
  if (!out) return NULL;
  snprintf(out, PATH_MAX * 2, "%s/%s", base, path);
  /* collapse "//", "/./" and "/x/../" */
  char *parts[512]; int np = 0; char *save = NULL;
  char *copy = strdup(out);
  for (char *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
    if (strcmp(t, ".") == 0) continue;
    if (strcmp(t, "..") == 0) { if (np > 0) np--; continue; }
    if (np < 512) parts[np++] = t;
  }
  out[0] = 0;
  size_t at = 0;
  for (int i = 0; i < np; i++) at += (size_t)snprintf(out + at, PATH_MAX * 2 - at, "/%s", parts[i]);
  if (np == 0) strcpy(out, "/");
  free(copy);
  return out;
}

/* The path relative to the watched root ("" for the root itself), or NULL when outside. Caller frees. */
static char *watched(int dirfd, const char *path) {
  if (logfd < 0 || !path) return NULL;
  char *abs = absolute(dirfd, path);
  if (!abs) return NULL;
  char *rel = NULL;
  if (strncmp(abs, root, rootlen) == 0 && (abs[rootlen] == 0 || abs[rootlen] == '/'))
    rel = strdup(abs[rootlen] == '/' ? abs + rootlen + 1 : "");
  free(abs);
  return rel;
}

static int is_watched(int fd) { return fd >= 0 && fd < MAXFD && fds[fd].rel != NULL; }

static void forget(int fd) {
  if (fd >= 0 && fd < MAXFD && fds[fd].rel) { free(fds[fd].rel); fds[fd].rel = NULL; }
}

static int after_open(int fd, int dirfd, const char *path, int flags, int existed, char *rel) {
  if (fd < 0 || !rel) { free(rel); return fd; }
  struct stat st;
  if (fstat(fd, &st) != 0) { free(rel); return fd; }
  pthread_mutex_lock(&mu);
  forget(fd);
  if (fd < MAXFD) {
    fds[fd].rel = rel;
    fds[fd].sync = (flags & (O_SYNC | O_DSYNC)) != 0;
    fds[fd].isdir = S_ISDIR(st.st_mode);
    fds[fd].ino = st.st_ino;
  }
  if (!existed && (flags & O_CREAT)) emit(R_CREATE, 0, rel, NULL, st.st_ino, 0, 0, NULL, 0);
  else if ((flags & O_TRUNC) && !S_ISDIR(st.st_mode)) emit(R_TRUNC, 0, rel, NULL, st.st_ino, 0, 0, NULL, 0);
  pthread_mutex_unlock(&mu);
  if (fd >= MAXFD) free(rel);
  (void)dirfd; (void)path;
  return fd;
}

static int do_open(int dirfd, const char *path, int flags, mode_t mode, int (*realfn)(int, const char *, int, ...)) {
  init();
  char *rel = watched(dirfd, path);
  int existed = 1;
  if (rel && (flags & O_CREAT)) { struct stat st0; existed = fstatat(dirfd, path, &st0, AT_SYMLINK_NOFOLLOW) == 0; }
  int fd = realfn(dirfd, path, flags, mode);
  return after_open(fd, dirfd, path, flags, existed, rel);
}

static mode_t va_mode(int flags, va_list ap) {
  return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}
int open(const char *path, int flags, ...) { va_list ap; va_start(ap, flags); mode_t m = va_mode(flags, ap); va_end(ap); init(); return do_open(AT_FDCWD, path, flags, m, real_openat); }
int open64(const char *path, int flags, ...) { va_list ap; va_start(ap, flags); mode_t m = va_mode(flags, ap); va_end(ap); init(); return do_open(AT_FDCWD, path, flags, m, real_openat64 ? real_openat64 : real_openat); }
int openat(int dirfd, const char *path, int flags, ...) { va_list ap; va_start(ap, flags); mode_t m = va_mode(flags, ap); va_end(ap); init(); return do_open(dirfd, path, flags, m, real_openat); }
int openat64(int dirfd, const char *path, int flags, ...) { va_list ap; va_start(ap, flags); mode_t m = va_mode(flags, ap); va_end(ap); init(); return do_open(dirfd, path, flags, m, real_openat64 ? real_openat64 : real_openat); }
int creat(const char *path, mode_t mode) { return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode); }
int creat64(const char *path, mode_t mode) { return open64(path, O_CREAT | O_WRONLY | O_TRUNC, mode); }

/*
 * close and dup* run in a forked child before exec (libuv's spawn), where the
 * mutex may be held by a thread that no longer exists: touch it only for
 * descriptors the shim tracks (never the case in such a child).
 */
int close(int fd) {
  init();
  if (!is_watched(fd)) return real_close(fd);
  pthread_mutex_lock(&mu);
  forget(fd);
  pthread_mutex_unlock(&mu);
  return real_close(fd);
}

static int dup_track(int from, int to) {
  if (to < 0 || to >= MAXFD || from < 0 || from >= MAXFD) return to;
  if (!fds[from].rel && !fds[to].rel) return to;
  pthread_mutex_lock(&mu);
  forget(to);
  if (fds[from].rel) { fds[to] = fds[from]; fds[to].rel = strdup(fds[from].rel); }
  pthread_mutex_unlock(&mu);
  return to;
}
int dup(int fd) { init(); return dup_track(fd, real_dup(fd)); }
int dup2(int fd, int to) { init(); int r = real_dup2(fd, to); return r < 0 ? r : dup_track(fd, r); }
int dup3(int fd, int to, int fl) { init(); int r = real_dup3(fd, to, fl); return r < 0 ? r : dup_track(fd, r); }

/* Logs a completed write of `done` bytes from iov at `off` on fd (if watched). */
static void log_write(int fd, const struct iovec *iov, int iovcnt, off_t off, ssize_t done) {
  if (done <= 0 || fd < 0 || fd >= MAXFD) return;
  pthread_mutex_lock(&mu);
  if (fds[fd].rel && !fds[fd].isdir) {
    /* only the bytes actually written */
    struct iovec cut[64];
    int n = 0; size_t left = (size_t)done;
    for (int i = 0; i < iovcnt && left > 0 && n < 64; i++) {
      size_t take = iov[i].iov_len < left ? iov[i].iov_len : left;
      cut[n].iov_base = iov[i].iov_base; cut[n].iov_len = take; n++; left -= take;
    }
    if (left > 0) emit(R_UNSUPPORTED, 0, "writev with more than 64 buffers", NULL, 0, 0, 0, NULL, 0);
    else emit(R_WRITE, fds[fd].sync ? F_DURABLE : 0, fds[fd].rel, NULL, fds[fd].ino, (uint64_t)off, (uint64_t)done, cut, n);
  }
  pthread_mutex_unlock(&mu);
}


/* The offset a positionless write lands at (O_APPEND: the end). */
static off_t position(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && (fl & O_APPEND)) { struct stat st; if (fstat(fd, &st) == 0) return st.st_size; }
  return lseek(fd, 0, SEEK_CUR);
}

ssize_t write(int fd, const void *buf, size_t n) {
  init();
  if (!is_watched(fd)) return real_write(fd, buf, n);
  off_t at = position(fd);
  ssize_t r = real_write(fd, buf, n);
  struct iovec v = { (void *)buf, n };
  log_write(fd, &v, 1, at, r);
  return r;
}
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  init();
  ssize_t r = real_pwrite(fd, buf, n, off);
  struct iovec v = { (void *)buf, n };
  if (is_watched(fd)) log_write(fd, &v, 1, off, r);
  return r;
}
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
  init();
  ssize_t r = real_pwrite64(fd, buf, n, off);
  struct iovec v = { (void *)buf, n };
  if (is_watched(fd)) log_write(fd, &v, 1, off, r);
  return r;
}
ssize_t writev(int fd, const struct iovec *iov, int cnt) {
  init();
  if (!is_watched(fd)) return real_writev(fd, iov, cnt);
  off_t at = position(fd);
  ssize_t r = real_writev(fd, iov, cnt);
  log_write(fd, iov, cnt, at, r);
  return r;
}
ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
  init();
  ssize_t r = real_pwritev(fd, iov, cnt, off);
  if (is_watched(fd)) log_write(fd, iov, cnt, off, r);
  return r;
}
ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off) {
  init();
  ssize_t r = real_pwritev64(fd, iov, cnt, off);
  if (is_watched(fd)) log_write(fd, iov, cnt, off, r);
  return r;
}
ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int fl) {
  init();
  off_t at = off == -1 && is_watched(fd) ? position(fd) : off;
  ssize_t r = real_pwritev2(fd, iov, cnt, off, fl);
  if (is_watched(fd)) {
    if (fl & (RWF_DSYNC | RWF_SYNC)) {
      /* durable like an O_DSYNC descriptor for this call only */
      pthread_mutex_lock(&mu); int s = fds[fd].sync; fds[fd].sync = 1; pthread_mutex_unlock(&mu);
      log_write(fd, iov, cnt, at, r);
      pthread_mutex_lock(&mu); fds[fd].sync = s; pthread_mutex_unlock(&mu);
    } else log_write(fd, iov, cnt, at, r);
  }
  return r;
}

static void log_fd(uint32_t type, int fd, uint64_t len) {
  pthread_mutex_lock(&mu);
  if (is_watched(fd)) emit(type, type == R_FSYNC && fds[fd].isdir ? F_DIR : 0, fds[fd].rel, NULL, fds[fd].ino, 0, len, NULL, 0);
  pthread_mutex_unlock(&mu);
}
int ftruncate(int fd, off_t len) { init(); int r = real_ftruncate(fd, len); if (r == 0) log_fd(R_TRUNC, fd, (uint64_t)len); return r; }
int ftruncate64(int fd, off_t len) { init(); int r = real_ftruncate64(fd, len); if (r == 0) log_fd(R_TRUNC, fd, (uint64_t)len); return r; }
int fsync(int fd) { init(); int r = real_fsync(fd); if (r == 0) log_fd(R_FSYNC, fd, 0); return r; }
int fdatasync(int fd) { init(); int r = real_fdatasync(fd); if (r == 0) log_fd(R_FSYNC, fd, 0); return r; }

int truncate(const char *path, off_t len) {
  init();
  char *rel = watched(AT_FDCWD, path);
  struct stat st;
  int r = real_truncate(path, len);
  if (r == 0 && rel && stat(path, &st) == 0) { pthread_mutex_lock(&mu); emit(R_TRUNC, 0, rel, NULL, st.st_ino, 0, (uint64_t)len, NULL, 0); pthread_mutex_unlock(&mu); }
  free(rel);
  return r;
}

static void *track_map(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (addr == MAP_FAILED || !is_watched(fd) || !(flags & MAP_SHARED) || !(prot & PROT_WRITE)) return addr;
  pthread_mutex_lock(&mu);
  int i = 0;
  while (i < MAXMAP && maps[i].addr) i++;
  if (i == MAXMAP) emit(R_UNSUPPORTED, 0, "more than 64 writable shared mappings", NULL, 0, 0, 0, NULL, 0);
  else maps[i] = (struct mapinfo){ addr, len, off, strdup(fds[fd].rel), fds[fd].ino };
  pthread_mutex_unlock(&mu);
  return addr;
}
void *mmap(void *a, size_t len, int prot, int fl, int fd, off_t off) { init(); return track_map(real_mmap(a, len, prot, fl, fd, off), len, prot, fl, fd, off); }
void *mmap64(void *a, size_t len, int prot, int fl, int fd, off_t off) { init(); return track_map(real_mmap64(a, len, prot, fl, fd, off), len, prot, fl, fd, off); }
int munmap(void *a, size_t len) {
  init();
  pthread_mutex_lock(&mu);
  for (int i = 0; i < MAXMAP; i++) if (maps[i].addr == a) { free(maps[i].rel); maps[i].addr = NULL; }
  pthread_mutex_unlock(&mu);
  return real_munmap(a, len);
}
/*
 * A writable shared mapping's stores reach the file without any call the shim
 * sees; msync(MS_SYNC) is the moment they are known durable. The shim logs the
 * synced range's bytes as a durable write then (stores that the kernel wrote
 * back earlier on its own are not modelled: see docs/testing.md).
 */
int msync(void *a, size_t len, int fl) {
  init();
  int r = real_msync(a, len, fl);
  if (r != 0) return r;
  pthread_mutex_lock(&mu);
  for (int i = 0; i < MAXMAP; i++) {
    struct mapinfo *m = &maps[i];
    if (!m->addr) continue;
    char *lo = a, *hi = (char *)a + len, *mlo = m->addr, *mhi = (char *)m->addr + m->len;
    if (hi <= mlo || lo >= mhi) continue;
    char *s = lo > mlo ? lo : mlo, *e = hi < mhi ? hi : mhi;
    struct iovec v = { s, (size_t)(e - s) };
    emit(R_WRITE, (fl & MS_SYNC) ? F_DURABLE : 0, m->rel, NULL, m->ino, (uint64_t)(m->off + (s - mlo)), v.iov_len, &v, 1);
  }
  pthread_mutex_unlock(&mu);
  return r;
}

static int log_path(uint32_t type, int dirfd, const char *path, uint64_t ino) {
  char *rel = watched(dirfd, path);
  if (!rel) return 0;
  pthread_mutex_lock(&mu);
  emit(type, 0, rel, NULL, ino, 0, 0, NULL, 0);
  pthread_mutex_unlock(&mu);
  free(rel);
  return 1;
}
int unlink(const char *path) { init(); int r = real_unlink(path); if (r == 0) log_path(R_UNLINK, AT_FDCWD, path, 0); return r; }
int unlinkat(int dirfd, const char *path, int fl) { init(); int r = real_unlinkat(dirfd, path, fl); if (r == 0) log_path(R_UNLINK, dirfd, path, 0); return r; }
int mkdir(const char *path, mode_t m) { init(); int r = real_mkdir(path, m); if (r == 0) log_path(R_MKDIR, AT_FDCWD, path, 0); return r; }
int mkdirat(int dirfd, const char *path, mode_t m) { init(); int r = real_mkdirat(dirfd, path, m); if (r == 0) log_path(R_MKDIR, dirfd, path, 0); return r; }

static int do_rename(int fd1, const char *from, int fd2, const char *to, int r) {
  if (r != 0) return r;
  char *a = watched(fd1, from), *b = watched(fd2, to);
  if (a || b) {
    pthread_mutex_lock(&mu);
    if (a && b) emit(R_RENAME, 0, a, b, 0, 0, 0, NULL, 0);
    else emit(R_UNSUPPORTED, 0, "rename across the watched directory's boundary", NULL, 0, 0, 0, NULL, 0);
    pthread_mutex_unlock(&mu);
  }
  free(a); free(b);
  return r;
}
int rename(const char *from, const char *to) { init(); return do_rename(AT_FDCWD, from, AT_FDCWD, to, real_rename(from, to)); }
int renameat(int fd1, const char *from, int fd2, const char *to) { init(); return do_rename(fd1, from, fd2, to, real_renameat(fd1, from, fd2, to)); }
