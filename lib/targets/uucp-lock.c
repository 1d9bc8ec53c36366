/* crtfs - UUCP lock files (uucp-lock.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <crtfs/error.h>

#include "uucp-lock.h"

/* LCK..NAME for `dev`: its name under /dev (or the whole path), '/' made
 * '_': /dev/ttyUSB0 -> LCK..ttyUSB0, /dev/pts/3 -> LCK..pts_3, and
 * /tmp/ttyA -> LCK.._tmp_ttyA as ser2net names a path outside /dev. */
static char *lock_file_for(const char *dir, const char *dev)
{
    const char *name = g_str_has_prefix(dev, "/dev/") ? dev + 5 : dev;
    char *flat = g_strdelimit(g_strdup(name), "/", '_');
    char *file = g_strdup_printf("%s/LCK..%s", dir, flat);

    g_free(flat);
    return file;
}

/* The lock files of `path`: the name as given (what ser2net and minicom
 * lock) and, when it is a symlink (a by-id name), the real device's. */
static char **lock_files_for(const char *dir, const char *path)
{
    char *real = realpath(path, NULL);
    GPtrArray *files = g_ptr_array_new();

    g_ptr_array_add(files, lock_file_for(dir, path));
    if (real && strcmp(real, path) != 0)
        g_ptr_array_add(files, lock_file_for(dir, real));
    g_ptr_array_add(files, NULL);
    free(real);
    return (char **)g_ptr_array_free(files, FALSE);
}

/* The pid a lock file names (HDB ASCII, or the old 4-byte binary), 0 when
 * none can be read. */
static pid_t lock_owner(const char *file)
{
    char buf[32] = {0};
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    ssize_t n;
    guint64 pid = 0;

    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n == 4 && !g_ascii_isdigit(buf[0]) && !g_ascii_isspace(buf[0])) {
        gint32 bin;

        memcpy(&bin, buf, 4);
        return bin > 0 ? bin : 0;
    }
    if (n > 0 && g_ascii_string_to_unsigned(g_strstrip(buf), 10, 1, G_MAXINT, &pid, NULL))
        return (pid_t)pid;
    return 0;
}

static gboolean alive(pid_t pid)
{
    return kill(pid, 0) == 0 || errno == EPERM;
}

/* Create `file` in `dir` with our pid, atomically: 0, -EEXIST, or another
 * -errno. */
static int create_lock(const char *dir, const char *file)
{
    char *tmp = g_strdup_printf("%s/LTMP.%d", dir, (int)getpid());
    char text[16];
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644), r = 0;

    if (fd < 0) {
        r = -errno;
        g_free(tmp);
        return r;
    }
    snprintf(text, sizeof text, "%10d\n", (int)getpid());
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        r = -EIO;
    close(fd);
    if (r == 0 && link(tmp, file) < 0) /* link(2) fails if it exists: atomic */
        r = -errno;
    unlink(tmp);
    g_free(tmp);
    return r;
}

/* Take one lock file: 0 when taken, 1 when it could not be made (going on
 * without it), -EBUSY when another live process holds it. */
static int lock_one(const char *dir, const char *path, const char *file, GError **error)
{
    int r = -EEXIST;

    for (int tries = 0; tries < 3 && r == -EEXIST; tries++) {
        pid_t owner;

        r = create_lock(dir, file);
        if (r != -EEXIST)
            break;
        owner = lock_owner(file);
        if (owner == getpid())
            return 0; /* left by our own earlier open */
        if (owner > 0 && alive(owner))
            return crt_set_error(error, EBUSY,
                                 "%s is locked by pid %d through the UUCP lock file %s "
                                 "(a program such as ser2net, minicom or cu has it)",
                                 path, (int)owner, file);
        unlink(file); /* stale: its process is gone */
    }
    if (r < 0)
        g_debug("UUCP lock %s: %s; going on without it", file, g_strerror(-r));
    return r < 0 ? 1 : 0; /* 1: not taken */
}

int crt_uucp_lock_in(const char *dir, const char *path, char ***locks, GError **error)
{
    char **files;
    GPtrArray *taken;

    *locks = NULL;
    if (access(dir, W_OK) < 0)
        return 0; /* nowhere to lock: flock and TIOCEXCL still hold */
    files = lock_files_for(dir, path);
    taken = g_ptr_array_new();
    for (int i = 0; files[i]; i++) {
        int r = lock_one(dir, path, files[i], error);

        if (r < 0) {
            g_ptr_array_add(taken, NULL);
            crt_uucp_unlock((char **)taken->pdata);
            g_strfreev((char **)g_ptr_array_free(taken, FALSE));
            g_strfreev(files);
            return r;
        }
        if (r == 0)
            g_ptr_array_add(taken, g_strdup(files[i]));
    }
    g_ptr_array_add(taken, NULL);
    g_strfreev(files);
    *locks = (char **)g_ptr_array_free(taken, FALSE);
    return 0;
}

int crt_uucp_lock(const char *path, char ***locks, GError **error)
{
    return crt_uucp_lock_in(CRT_UUCP_LOCK_DIR, path, locks, error);
}

void crt_uucp_unlock(char **locks)
{
    for (int i = 0; locks && locks[i]; i++) {
        if (lock_owner(locks[i]) == getpid())
            unlink(locks[i]);
    }
}
