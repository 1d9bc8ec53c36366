/* crtfs - the path target: a character device, tty, FIFO or regular file
 * named by an absolute path.
 *
 * A tty is configured with termios from the spec's options and locked
 * against other programs (flock, which cooperating tools such as ours see,
 * and TIOCEXCL, which keeps out every non-root opener) unless the spec says
 * `shared`.  Its original termios are put back when the target goes away, so
 * a console or a modem is left the way we found it; so are a rate set with
 * termios2 (tty-speed.c) and the driver options RS-485 and low latency
 * (tty-serial.c).  A tty's modem lines, break and line events are
 * tty-lines.c's; other paths have none and say so.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include <linux/serial.h>

#include "baud.h"
#include "target-private.h"
#include "tty-lines.h"
#include "tty-serial.h"
#include "tty-speed.h"
#include "uucp-lock.h"

/* How far a UART's rate may be from the one asked for (a receiver copes
 * with about 2 to 3 %). */
#define BAUD_TOLERANCE_PERCENT 2

typedef struct {
    int fd;
    char *path; /* as opened, for path_stale */
    gboolean is_tty;
    gboolean flocked;       /* flock(LOCK_EX) taken: release on destroy */
    gboolean exclusive;     /* TIOCEXCL set: clear on destroy */
    char **uucp_locks;      /* the UUCP lock files taken: remove on destroy */
    gboolean termios_saved; /* `saved` holds the termios found at open */
    struct termios saved;
    CrtTtySpeed speed;   /* the rate found at open, termios2 */
    CrtTtySerial serial; /* RS-485 and low latency as found */
    gboolean serial_set; /* `serial` may hold something to put back */

    GMutex watch_mutex; /* guards `watch` (lines calls: any thread) */
    CrtTtyWatch *watch; /* the line-event thread, NULL when none */
} PathState;

/* ---- opening ---------------------------------------------------------- */

/* Read-only or write-only devices are still useful targets (a sensor, a
 * printer), so fall back to one direction when read-write is refused; the
 * descriptor then serves both sides and the other direction fails with
 * EBADF at request time.
 *
 * FIFOs are opened O_RDWR on purpose: holding both ends means open() does
 * not wait for a peer and the reader never sees EOF when a writer goes
 * away, so writers may come and go during a stream.
 *
 * O_NONBLOCK also keeps open() of a tty without carrier from waiting for
 * DCD. */
static int open_any_direction(const char *path)
{
    const int flags = O_NOCTTY | O_NONBLOCK | O_CLOEXEC;
    int fd = open(path, flags | O_RDWR);
    int err = errno;

    if (fd < 0 && (err == EACCES || err == EPERM || err == EROFS || err == EISDIR ||
                   err == ETXTBSY)) {
        fd = open(path, flags | O_RDONLY);
        if (fd < 0)
            fd = open(path, flags | O_WRONLY);
    }
    /* The first refusal explains best why read-write was impossible. */
    if (fd < 0)
        errno = err;
    return fd;
}

static int open_error(const char *path, int err, GError **error)
{
    struct stat st;

    if (err == ENXIO && stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        return crt_set_error(error, err, "cannot open %s: it is a socket; use unix:%s",
                             path, path);
    return crt_set_error(error, err, "cannot open %s: %s", path, g_strerror(err));
}

/* ---- who holds a tty -------------------------------------------------- */

static char *process_comm(int pid)
{
    char *file = g_strdup_printf("/proc/%d/comm", pid);
    char *comm = NULL;

    if (g_file_get_contents(file, &comm, NULL, NULL))
        g_strstrip(comm);
    g_free(file);
    return comm;
}

/* The flock holder of the file `st` describes, from /proc/locks. */
static int lock_holder_from_locks(const struct stat *st)
{
    FILE *f = fopen("/proc/locks", "re");
    char line[256];
    int holder = 0;

    if (f == NULL)
        return 0;
    while (holder == 0 && fgets(line, sizeof line, f) != NULL) {
        unsigned maj, min;
        unsigned long ino;
        int pid;

        /* "->" lines are waiters, not holders. */
        if (strstr(line, "->") != NULL)
            continue;
        if (sscanf(line, "%*d: %*s %*s %*s %d %x:%x:%lu", &pid, &maj, &min, &ino) == 4 &&
            maj == major(st->st_dev) && min == minor(st->st_dev) && ino == st->st_ino &&
            pid > 0)
            holder = pid;
    }
    fclose(f);
    return holder;
}

/* Whether process `pid` has `target` open, other than our own `own_fd`.
 * The /proc/PID/fd links are compared as names, never followed, so this
 * cannot hang on some other process's dead NFS or FUSE file. */
static gboolean process_has_open(int pid, const char *target, int own_fd)
{
    char dirname[64];
    DIR *dir;
    struct dirent *de;
    gboolean found = FALSE;

    g_snprintf(dirname, sizeof dirname, "/proc/%d/fd", pid);
    dir = opendir(dirname);
    if (dir == NULL)
        return FALSE;
    while (!found && (de = readdir(dir)) != NULL) {
        char link[PATH_MAX];
        ssize_t n = readlinkat(dirfd(dir), de->d_name, link, sizeof link - 1);

        if (n <= 0 || (pid == getpid() && atoi(de->d_name) == own_fd))
            continue;
        link[n] = '\0';
        found = strcmp(link, target) == 0;
    }
    closedir(dir);
    return found;
}

/* A tty locked with TIOCEXCL alone leaves no trace in /proc/locks: look
 * for a process that has it open, as fuser(1) would. */
static int lock_holder_from_fds(const char *path, int own_fd)
{
    char *target = realpath(path, NULL);
    DIR *proc = target ? opendir("/proc") : NULL;
    struct dirent *de;
    int holder = 0;

    while (proc != NULL && holder == 0 && (de = readdir(proc)) != NULL) {
        guint64 pid;

        if (g_ascii_string_to_unsigned(de->d_name, 10, 1, G_MAXINT, &pid, NULL) &&
            process_has_open((int)pid, target, own_fd))
            holder = (int)pid;
    }
    if (proc != NULL)
        closedir(proc);
    free(target);
    return holder;
}

/* -EBUSY, saying who holds the tty where /proc tells us.  `can_share`: the
 * `shared` option would get past this lock (it cannot get past a TIOCEXCL
 * that refuses our open() itself). */
static int busy_error(const char *path, int own_fd, gboolean can_share, GError **error)
{
    const char *advice =
        can_share ? "; add \"shared\" to the spec to open it anyway" : "";
    struct stat st;
    int pid = 0;

    if (stat(path, &st) == 0)
        pid = lock_holder_from_locks(&st);
    if (pid == 0)
        pid = lock_holder_from_fds(path, own_fd);
    if (pid == 0)
        return crt_set_error(error, EBUSY, "%s is locked by another program%s", path,
                             advice);
    char *comm = process_comm(pid);
    int r = crt_set_error(error, EBUSY, "%s is locked by pid %d (%s)%s", path, pid,
                          comm ? comm : "?", advice);
    g_free(comm);
    return r;
}

/* ---- tty set-up ------------------------------------------------------- */

static int tty_lock(PathState *ps, const char *path, GError **error)
{
    int excl = 0;

    /* TIOCEXCL does not stop root, so a root daemon asks whether another
     * program already holds the tty in exclusive mode (screen, cu...). */
    if (ioctl(ps->fd, TIOCGEXCL, &excl) == 0 && excl)
        return busy_error(path, ps->fd, TRUE, error);
    if (flock(ps->fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno;
        if (err == EWOULDBLOCK)
            return busy_error(path, ps->fd, TRUE, error);
        return crt_set_error(error, err, "cannot lock %s: %s", path, g_strerror(err));
    }
    ps->flocked = TRUE;
    /* Programs that know neither flock nor TIOCEXCL (root ignores it) go by
     * UUCP lock files: ser2net, minicom, cu. */
    int r = crt_uucp_lock(path, &ps->uucp_locks, error);
    if (r < 0)
        return r;
    if (ioctl(ps->fd, TIOCEXCL) < 0) {
        int err = errno;
        return crt_set_error(error, err, "cannot make %s exclusive (TIOCEXCL): %s", path,
                             g_strerror(err));
    }
    ps->exclusive = TRUE;
    return 0;
}

/* Apply the spec's line settings to `tio`; options not given stay as the
 * tty had them. */
static void tty_apply_spec(struct termios *tio, const CrtTargetSpec *spec)
{
    static const tcflag_t sizes[] = {CS5, CS6, CS7, CS8};

    if (spec->raw) {
        cfmakeraw(tio);
        /* Each read returns what has arrived, without waiting for more. */
        tio->c_cc[VMIN] = 1;
        tio->c_cc[VTIME] = 0;
    }
    if (crt_baud_constant(spec->baud) != B0) { /* others: tty_set_other_rate */
        cfsetispeed(tio, crt_baud_constant(spec->baud));
        cfsetospeed(tio, crt_baud_constant(spec->baud));
    }
    if (spec->data_bits >= 5 && spec->data_bits <= 8)
        tio->c_cflag = (tio->c_cflag & ~(tcflag_t)CSIZE) | sizes[spec->data_bits - 5];
    if (spec->parity_set) {
        tio->c_cflag &= ~(tcflag_t)(PARENB | PARODD);
        if (spec->parity != CRT_PARITY_NONE)
            tio->c_cflag |= PARENB;
        if (spec->parity == CRT_PARITY_ODD)
            tio->c_cflag |= PARODD;
    }
    if (spec->stop_bits == 1)
        tio->c_cflag &= ~(tcflag_t)CSTOPB;
    else if (spec->stop_bits == 2)
        tio->c_cflag |= CSTOPB;
    if (spec->flow_set) {
        tio->c_cflag &= ~(tcflag_t)CRTSCTS;
        tio->c_iflag &= ~(tcflag_t)(IXON | IXOFF | IXANY);
        if (spec->flow == CRT_FLOW_RTSCTS)
            tio->c_cflag |= CRTSCTS;
        else if (spec->flow == CRT_FLOW_XONXOFF)
            tio->c_iflag |= IXON | IXOFF;
    }
    /* Modem lines must not block reads, and the receiver must be on. */
    tio->c_cflag |= CLOCAL | CREAD;
}

/* "cannot WHAT PATH: reason" for the errno just set. */
static int tty_error(GError **error, const char *what, const char *path)
{
    int err = errno;

    return crt_set_error(error, err, "cannot %s %s: %s", what, path, g_strerror(err));
}

/* A rate without a B* constant, with termios2 BOTHER; the driver answers
 * with the rate its divisor gives, which must be close enough. */
static int tty_set_other_rate(PathState *ps, guint baud, const char *path, GError **error)
{
    guint actual = 0;
    int r = crt_tty_speed_set(ps->fd, baud, &actual);

    if (r < 0)
        return crt_set_error(error, -r,
                             "%s does not support baud=%u (TCSETS2 with BOTHER: %s)",
                             path, baud, g_strerror(-r));
    if ((guint64)(actual > baud ? actual - baud : baud - actual) * 100 >
        (guint64)baud * BAUD_TOLERANCE_PERCENT)
        return crt_set_error(
            error, EINVAL,
            "%s does not support baud=%u: its driver set %u, more than %d %% "
            "off",
            path, baud, actual, BAUD_TOLERANCE_PERCENT);
    return 0;
}

static int tty_configure(PathState *ps, const CrtTargetSpec *spec, GError **error)
{
    struct termios tio, check;
    const char *path = spec->path;

    if (tcgetattr(ps->fd, &tio) < 0)
        return tty_error(error, "read the settings of", path);
    ps->saved = tio;
    ps->termios_saved = TRUE;
    crt_tty_speed_save(ps->fd, &ps->speed);
    tty_apply_spec(&tio, spec);
    if (tcsetattr(ps->fd, TCSANOW, &tio) < 0)
        return tty_error(error, "configure", path);
    /* tcsetattr() succeeds if any one change took; a UART that cannot do
     * the requested rate would otherwise run silently at another. */
    if (crt_baud_constant(spec->baud) != B0 && tcgetattr(ps->fd, &check) == 0 &&
        cfgetospeed(&check) != crt_baud_constant(spec->baud))
        return crt_set_error(error, EINVAL, "%s does not support baud=%u", path,
                             spec->baud);
    if (spec->baud != 0 && crt_baud_constant(spec->baud) == B0) {
        int r = tty_set_other_rate(ps, spec->baud, path, error);
        if (r < 0)
            return r;
    }
    ps->serial_set = TRUE;
    return crt_tty_serial_apply(ps->fd, path, spec, &ps->serial, error);
}

/* The line as configured, for a split's idle gap in characters: its rate
 * and the bits of one character (start, data, parity, stop). */
static void tty_note_line(CrtTarget *t, int fd)
{
    static const guint sizes[] = {5, 6, 7, 8};
    struct termios tio;
    tcflag_t cs;

    if (tcgetattr(fd, &tio) < 0)
        return;
    cs = tio.c_cflag & CSIZE;
    t->line_baud = crt_baud_from_constant(cfgetispeed(&tio));
    t->line_char_bits = 1 +
                        sizes[cs == CS5   ? 0
                              : cs == CS6 ? 1
                              : cs == CS7 ? 2
                                          : 3] +
                        ((tio.c_cflag & PARENB) ? 1 : 0) +
                        ((tio.c_cflag & CSTOPB) ? 2 : 1);
}

/* ---- the ops ---------------------------------------------------------- */

static void path_state_free(PathState *ps)
{
    crt_tty_watch_stop(ps->watch);
    if (ps->serial_set)
        crt_tty_serial_restore(ps->fd, &ps->serial);
    if (ps->termios_saved) {
        /* TCSANOW, not TCSADRAIN: with flow control stopped, draining could
         * wait forever. */
        tcsetattr(ps->fd, TCSANOW, &ps->saved);
        /* struct termios cannot carry a BOTHER rate, ours or the one found. */
        crt_tty_speed_restore(ps->fd, &ps->speed);
    }
    if (ps->exclusive)
        ioctl(ps->fd, TIOCNXCL);
    crt_uucp_unlock(ps->uucp_locks);
    g_strfreev(ps->uucp_locks);
    if (ps->flocked)
        flock(ps->fd, LOCK_UN);
    close(ps->fd);
    g_mutex_clear(&ps->watch_mutex);
    g_free(ps->path);
    g_free(ps);
}

static int path_open(CrtTarget *t, const CrtTargetSpec *spec, const CrtTargetCreds *creds,
                     GError **error)
{
    struct stat st;
    int fd = open_any_direction(spec->path);

    if (fd < 0) {
        if (errno == EBUSY)
            return busy_error(spec->path, -1, FALSE, error);
        return open_error(spec->path, errno, error);
    }
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return crt_set_error(error, EISDIR, "cannot open %s: it is a directory",
                             spec->path);
    }

    PathState *ps = g_new0(PathState, 1);
    int r = 0;

    ps->fd = fd;
    g_mutex_init(&ps->watch_mutex);
    ps->path = g_strdup(spec->path);
    ps->is_tty = isatty(fd);
    if (ps->is_tty && !spec->shared)
        r = tty_lock(ps, spec->path, error);
    if (ps->is_tty && r == 0)
        r = tty_configure(ps, spec, error);
    if (r < 0) {
        path_state_free(ps);
        return r;
    }
    t->impl = ps;
    if (ps->is_tty)
        tty_note_line(t, fd);
    crt_fd_attach(t, fd, fd);
    return 0;
}

static void path_destroy(CrtTarget *t)
{
    PathState *ps = t->impl;

    crt_fd_detach(t);
    if (ps != NULL)
        path_state_free(ps);
    t->impl = NULL;
}

/* The UART's error counters; ptys and USB adapters without them answer
 * ENOTTY or EINVAL and leave has_icount FALSE. */
static void path_counters(CrtTarget *t, CrtTargetCounters *c)
{
    PathState *ps = t->impl;
    struct serial_icounter_struct ic;

    memset(&ic, 0, sizeof ic);
    if (ps == NULL || !ps->is_tty || ioctl(ps->fd, TIOCGICOUNT, &ic) < 0)
        return;
    c->has_icount = TRUE;
    c->overruns = (guint64)(guint)ic.overrun + (guint)ic.buf_overrun;
    c->framing = (guint)ic.frame;
    c->parity = (guint)ic.parity;
    c->breaks = (guint)ic.brk;
}

/* The path names another file now (replaced or removed). */
static gboolean path_stale(CrtTarget *t)
{
    PathState *ps = t->impl;

    return ps != NULL && !crt_fd_names_path(ps->fd, ps->path);
}

/* ---- modem lines (ttys only) ------------------------------------------ */

/* The refusal for a path that is not a tty. */
static int not_a_tty(PathState *ps, GError **error)
{
    struct stat st;
    const char *what = "not a tty";

    if (fstat(ps->fd, &st) == 0 && S_ISFIFO(st.st_mode))
        what = "a FIFO, not a tty";
    else if (fstat(ps->fd, &st) == 0 && S_ISREG(st.st_mode))
        what = "a regular file, not a tty";
    else if (fstat(ps->fd, &st) == 0 && S_ISCHR(st.st_mode))
        what = "a character device that is not a tty";
    return crt_set_error(error, ENOTTY, "%s is %s: it has no modem lines or break",
                         ps->path, what);
}

static int path_lines_get(CrtTarget *t, guint *lines, GError **error)
{
    PathState *ps = t->impl;

    return ps->is_tty ? crt_tty_lines_get(ps->fd, ps->path, lines, error)
                      : not_a_tty(ps, error);
}

static int path_lines_set(CrtTarget *t, guint mask, guint values, GError **error)
{
    PathState *ps = t->impl;

    return ps->is_tty ? crt_tty_lines_set(ps->fd, ps->path, mask, values, error)
                      : not_a_tty(ps, error);
}

static int path_send_break(CrtTarget *t, guint ms, GError **error)
{
    PathState *ps = t->impl;

    return ps->is_tty ? crt_tty_send_break(ps->fd, ps->path, ms, error)
                      : not_a_tty(ps, error);
}

static int path_watch_lines(CrtTarget *t, GError **error)
{
    PathState *ps = t->impl;
    int r = 0;

    if (!ps->is_tty)
        return not_a_tty(ps, error);
    g_mutex_lock(&ps->watch_mutex);
    if (ps->watch == NULL)
        r = crt_tty_watch_start(t, ps->fd, ps->path, &ps->watch, error);
    g_mutex_unlock(&ps->watch_mutex);
    return r;
}

static void path_unwatch_lines(CrtTarget *t)
{
    PathState *ps = t->impl;

    g_mutex_lock(&ps->watch_mutex);
    crt_tty_watch_stop(ps->watch);
    ps->watch = NULL;
    g_mutex_unlock(&ps->watch_mutex);
}

const CrtTargetOps crt_target_path_ops = {
    .name = "path",
    .open = path_open,
    .submit = crt_fd_submit,
    .cancel = crt_fd_cancel,
    .close = crt_fd_close,
    .kick = crt_fd_kick,
    .destroy = path_destroy,
    .counters = path_counters,
    .stale = path_stale,
    .lines_get = path_lines_get,
    .lines_set = path_lines_set,
    .send_break = path_send_break,
    .watch_lines = path_watch_lines,
    .unwatch_lines = path_unwatch_lines,
};
