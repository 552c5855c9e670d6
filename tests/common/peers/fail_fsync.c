/*
 * An LD_PRELOAD shim that makes fsync and fdatasync fail with EIO, the way a failing
 * disk does, for the tests of what the daemon does then.
 *
 *   VELLUM_FAIL_FSYNC_MATCH  substring of the file path (from /proc/self/fd) to fail on
 *   VELLUM_FAIL_FSYNC_COUNT  how many matching calls fail; later ones succeed
 *   VELLUM_FAIL_FSYNC_LOG    optional file: one line per failure injected
 *
 * A failed fsync is emulated as Linux does it at its worst (the "fsyncgate" behaviour):
 * the dirty pages are dropped, so what was written since the file's last successful
 * fsync is gone, and a later fsync reports success without it. The shim cuts the file
 * back to its length at its last successful fsync (0 for a file never synced), which is
 * what a reader finds once the page cache has let go.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SLOTS 256

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char path[512];
    off_t synced;
} slots[SLOTS];
static int used;
static long failures = -1;

static int path_of(int fd, char *out, size_t size) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, size - 1);
    if (n < 0)
        return -1;
    out[n] = '\0';
    return 0;
}

static int slot_of(const char *path) {
    for (int i = 0; i < used; i++)
        if (strcmp(slots[i].path, path) == 0)
            return i;
    if (used == SLOTS)
        return -1;
    strncpy(slots[used].path, path, sizeof slots[used].path - 1);
    slots[used].synced = 0;
    return used++;
}

static void note_failure(const char *path) {
    const char *log = getenv("VELLUM_FAIL_FSYNC_LOG");
    if (!log)
        return;
    FILE *f = fopen(log, "a");
    if (f) {
        fprintf(f, "%s\n", path);
        fclose(f);
    }
}

static int sync_fd(int fd, long call) {
    const char *match = getenv("VELLUM_FAIL_FSYNC_MATCH");
    char path[512];
    if (!match || path_of(fd, path, sizeof path) != 0 || !strstr(path, match))
        return (int)syscall(call, fd);
    pthread_mutex_lock(&lock);
    if (failures < 0) {
        const char *count = getenv("VELLUM_FAIL_FSYNC_COUNT");
        failures = count ? atol(count) : 0;
    }
    int slot = slot_of(path);
    if (failures > 0 && slot >= 0) {
        failures--;
        if (ftruncate(fd, slots[slot].synced) != 0) {
            /* A directory or a read-only descriptor: nothing to drop. */
        }
        note_failure(path);
        pthread_mutex_unlock(&lock);
        errno = EIO;
        return -1;
    }
    int rc = (int)syscall(call, fd);
    struct stat st;
    if (rc == 0 && slot >= 0 && fstat(fd, &st) == 0)
        slots[slot].synced = st.st_size;
    pthread_mutex_unlock(&lock);
    return rc;
}

int fsync(int fd) { return sync_fd(fd, SYS_fsync); }

int fdatasync(int fd) { return sync_fd(fd, SYS_fdatasync); }
