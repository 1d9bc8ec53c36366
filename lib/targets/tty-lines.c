/* crtfs - a tty's modem lines, break and line events (see tty-lines.h).
 *
 * The watch thread waits in TIOCMIWAIT, which nothing but a signal
 * interrupts (closing the descriptor elsewhere does not wake it), so the
 * thread is stopped with a thread-directed signal: WAKE_SIGNAL, whose
 * handler does nothing and is installed without SA_RESTART, makes the ioctl
 * fail with EINTR and the thread look at its stop flag.  The signal is sent
 * again every 10 ms until the thread has left its loop, so one that arrives
 * just before the thread enters the ioctl is not lost.  TIOCMIWAIT wakes on
 * line changes only; a timer of the thread's own (the same signal, every
 * TICK_MS) wakes it to look at the break and error counters too.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "tty-lines.h"

/* The real-time signal that wakes a watch thread (see the top). */
#define WAKE_SIGNAL (SIGRTMIN + 5)
/* How often the counters are looked at between line changes. */
#define TICK_MS 100
/* How long a driver may take to refuse TIOCMIWAIT before it counts as
 * supporting it. */
#define PROBE_US (50 * 1000)

#define TIOCM_INPUTS (TIOCM_CTS | TIOCM_DSR | TIOCM_CD | TIOCM_RNG)

static const struct {
    CrtLine line;
    int tiocm;
} line_bits[] = {
    {CRT_LINE_DTR, TIOCM_DTR}, {CRT_LINE_RTS, TIOCM_RTS}, {CRT_LINE_CTS, TIOCM_CTS},
    {CRT_LINE_DSR, TIOCM_DSR}, {CRT_LINE_DCD, TIOCM_CD},  {CRT_LINE_RI, TIOCM_RNG},
};

static guint lines_from_tiocm(int tiocm)
{
    guint lines = 0;

    for (size_t i = 0; i < G_N_ELEMENTS(line_bits); i++) {
        if (tiocm & line_bits[i].tiocm)
            lines |= line_bits[i].line;
    }
    return lines;
}

static int tiocm_from_lines(guint lines)
{
    int tiocm = 0;

    for (size_t i = 0; i < G_N_ELEMENTS(line_bits); i++) {
        if (lines & line_bits[i].line)
            tiocm |= line_bits[i].tiocm;
    }
    return tiocm;
}

gboolean crt_tty_is_pty(int fd)
{
    struct stat st;
    int n;

    if (ioctl(fd, TIOCGPTN, &n) == 0) /* only a master answers */
        return TRUE;
    if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode))
        return FALSE;
    /* UNIX98 slaves (/dev/pts/N), and the legacy BSD masters and slaves. */
    return (major(st.st_rdev) >= 136 && major(st.st_rdev) <= 143) ||
           major(st.st_rdev) == 2 || major(st.st_rdev) == 3;
}

/* The words for `ioctl_name` failing with `err`: a pty or a driver without
 * the feature (`missing`), or a failure to `action` it. */
static int refusal(GError **error, int err, int fd, const char *name, const char *missing,
                   const char *action, const char *ioctl_name)
{
    if (crt_tty_is_pty(fd))
        return crt_set_error(error, err, "%s: a pseudo-terminal has no %s (%s: %s)", name,
                             missing, ioctl_name, g_strerror(err));
    if (err == ENOTTY || err == EINVAL)
        return crt_set_error(error, err, "%s: its driver has no %s (%s: %s)", name,
                             missing, ioctl_name, g_strerror(err));
    return crt_set_error(error, err, "%s: cannot %s (%s: %s)", name, action, ioctl_name,
                         g_strerror(err));
}

int crt_tty_lines_get(int fd, const char *name, guint *lines, GError **error)
{
    int tiocm = 0;

    if (ioctl(fd, TIOCMGET, &tiocm) < 0)
        return refusal(error, errno, fd, name, "modem lines", "read the modem lines",
                       "TIOCMGET");
    *lines = lines_from_tiocm(tiocm);
    return 0;
}

int crt_tty_lines_set(int fd, const char *name, guint mask, guint values, GError **error)
{
    int up = tiocm_from_lines(mask & values);
    int down = tiocm_from_lines(mask & ~values);
    int probe;

    /* Nothing to set is still a question the driver must be able to
     * answer: a pty says no here too. */
    if (!up && !down && ioctl(fd, TIOCMGET, &probe) < 0)
        return refusal(error, errno, fd, name, "modem lines", "read the modem lines",
                       "TIOCMGET");
    if (up && ioctl(fd, TIOCMBIS, &up) < 0)
        return refusal(error, errno, fd, name, "modem lines", "raise DTR or RTS",
                       "TIOCMBIS");
    if (down && ioctl(fd, TIOCMBIC, &down) < 0)
        return refusal(error, errno, fd, name, "modem lines", "lower DTR or RTS",
                       "TIOCMBIC");
    return 0;
}

/* TIOCSBRK, `ms`, TIOCCBRK: tcsendbreak() would take its duration in
 * units the driver decides (TCSBRKP counts tenths of a second). */
int crt_tty_send_break(int fd, const char *name, guint ms, GError **error)
{
    /* A pty has no break_ctl, and the kernel answers TIOCSBRK with 0 for a
     * driver without one: refuse rather than pretend. */
    if (crt_tty_is_pty(fd))
        return crt_set_error(
            error, ENOTTY,
            "%s: a pseudo-terminal has no break (the kernel would accept "
            "one and send nothing)",
            name);
    if (ioctl(fd, TIOCSBRK) < 0)
        return refusal(error, errno, fd, name, "break", "start a break", "TIOCSBRK");
    g_usleep((gulong)ms * 1000);
    if (ioctl(fd, TIOCCBRK) < 0) {
        int err = errno;

        ioctl(fd, TIOCCBRK); /* once more: a line left in break is dead */
        return crt_set_error(error, err, "%s: cannot end the break (TIOCCBRK: %s)", name,
                             g_strerror(err));
    }
    return 0;
}

/* ---- the watch thread ------------------------------------------------- */

static int real_get_lines(int fd, int *tiocm)
{
    return ioctl(fd, TIOCMGET, tiocm);
}

static int real_get_icount(int fd, struct serial_icounter_struct *ic)
{
    return ioctl(fd, TIOCGICOUNT, ic);
}

static int real_wait(int fd, int mask)
{
    return ioctl(fd, TIOCMIWAIT, mask);
}

static const CrtTtyLineIo real_io = {real_get_lines, real_get_icount, real_wait};
static const CrtTtyLineIo *line_io = &real_io; /* atomic pointer */

void crt_tty_line_io_set(const CrtTtyLineIo *io)
{
    g_atomic_pointer_set(&line_io, io ? io : &real_io);
}

enum { WATCH_STARTING = 0, WATCH_RUNNING = 1 }; /* else -errno: it failed */

struct CrtTtyWatch {
    CrtTarget *t;
    int fd;
    char *name;
    const CrtTtyLineIo *io;
    pthread_t thread;
    gint stop; /* atomic: crt_tty_watch_stop asked */

    GMutex lock; /* guards the three below */
    GCond cond;
    int state;        /* WATCH_STARTING, WATCH_RUNNING or -errno */
    gboolean started; /* crt_tty_watch_start returned success */
    gboolean done;    /* the thread has left its loop */

    /* The watch thread's own, after start. */
    int tiocm;
    gboolean has_icount;
    struct serial_icounter_struct ic;
};

static void wake_handler(int sig)
{
    /* Only here to make TIOCMIWAIT fail with EINTR (no SA_RESTART). */
}

/* An application's own handler of WAKE_SIGNAL stays (it must not use
 * SA_RESTART, or unwatch waits forever: see the man page). */
static gpointer install_wake_handler(gpointer unused)
{
    struct sigaction old, sa = {.sa_handler = wake_handler};

    sigemptyset(&sa.sa_mask);
    if (sigaction(WAKE_SIGNAL, NULL, &old) == 0 &&
        (old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN))
        sigaction(WAKE_SIGNAL, &sa, NULL);
    return NULL;
}

static void emit(CrtTtyWatch *w, CrtLineEventKind kind, CrtLine line, gboolean up,
                 guint64 count)
{
    CrtLineEvent ev = {
        .kind = kind,
        .line = line,
        .up = up,
        .count = count,
        .time_ns = g_get_real_time() * 1000,
    };

    crt_target_line_event(w->t, &ev);
}

/* How often the input line `tiocm` changed by the counters; RI counts
 * whole rings (trailing edges), the others every edge. */
static guint edges(const struct serial_icounter_struct *a,
                   const struct serial_icounter_struct *b, int tiocm)
{
    switch (tiocm) {
    case TIOCM_CTS:
        return (guint)(b->cts - a->cts);
    case TIOCM_DSR:
        return (guint)(b->dsr - a->dsr);
    case TIOCM_CD:
        return (guint)(b->dcd - a->dcd);
    default:
        return (guint)(b->rng - a->rng) * 2;
    }
}

/* One CHANGE per input line whose level differs from last time; a line
 * that went and came back in between (the counters say so) is reported as
 * both changes. */
static void compare_lines(CrtTtyWatch *w, int tiocm,
                          const struct serial_icounter_struct *ic)
{
    for (size_t i = 2; i < G_N_ELEMENTS(line_bits); i++) {
        int bit = line_bits[i].tiocm;
        gboolean was = (w->tiocm & bit) != 0, is = (tiocm & bit) != 0;

        if (was != is) {
            emit(w, CRT_LINE_EVENT_CHANGE, line_bits[i].line, is, 0);
        } else if (ic && edges(&w->ic, ic, bit) >= 2) {
            emit(w, CRT_LINE_EVENT_CHANGE, line_bits[i].line, !is, 0);
            emit(w, CRT_LINE_EVENT_CHANGE, line_bits[i].line, is, 0);
        }
    }
    w->tiocm = tiocm;
}

static void compare_counters(CrtTtyWatch *w, const struct serial_icounter_struct *ic)
{
    const struct serial_icounter_struct *o = &w->ic;
    guint breaks = (guint)(ic->brk - o->brk), framing = (guint)(ic->frame - o->frame);
    guint parity = (guint)(ic->parity - o->parity);
    guint overruns =
        (guint)(ic->overrun - o->overrun) + (guint)(ic->buf_overrun - o->buf_overrun);

    if (breaks)
        emit(w, CRT_LINE_EVENT_BREAK, 0, FALSE, breaks);
    if (framing)
        emit(w, CRT_LINE_EVENT_FRAMING, 0, FALSE, framing);
    if (parity)
        emit(w, CRT_LINE_EVENT_PARITY, 0, FALSE, parity);
    if (overruns)
        emit(w, CRT_LINE_EVENT_OVERRUN, 0, FALSE, overruns);
    w->ic = *ic;
}

/* What changed since the last look. */
static void look(CrtTtyWatch *w)
{
    struct serial_icounter_struct ic;
    gboolean have_ic;
    int tiocm;

    memset(&ic, 0, sizeof ic);
    have_ic = w->has_icount && w->io->get_icount(w->fd, &ic) == 0;
    if (w->io->get_lines(w->fd, &tiocm) == 0)
        compare_lines(w, tiocm, have_ic ? &ic : NULL);
    if (have_ic)
        compare_counters(w, &ic);
}

/* A timer that sends WAKE_SIGNAL to this thread every TICK_MS. */
static gboolean start_tick(timer_t *timer)
{
    struct sigevent sev;
    struct itimerspec its = {
        .it_interval = {0, TICK_MS * 1000000L},
        .it_value = {0, TICK_MS * 1000000L},
    };

    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = WAKE_SIGNAL;
    sev._sigev_un._tid = gettid();
    if (timer_create(CLOCK_MONOTONIC, &sev, timer) < 0)
        return FALSE;
    if (timer_settime(*timer, 0, &its, NULL) < 0) {
        timer_delete(*timer);
        return FALSE;
    }
    return TRUE;
}

static void set_state(CrtTtyWatch *w, int state)
{
    g_mutex_lock(&w->lock);
    if (state < 0 && w->started)
        g_message("%s: line events stopped: TIOCMIWAIT: %s", w->name, g_strerror(-state));
    w->state = state;
    g_cond_broadcast(&w->cond);
    g_mutex_unlock(&w->lock);
}

static void *watch_thread(void *data)
{
    CrtTtyWatch *w = data;
    sigset_t wake;
    timer_t tick;
    gboolean ticking;

    /* The creator may block signals; this thread must receive its own. */
    sigemptyset(&wake);
    sigaddset(&wake, WAKE_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &wake, NULL);
    ticking = w->has_icount && start_tick(&tick);
    set_state(w, WATCH_RUNNING);
    while (!g_atomic_int_get(&w->stop)) {
        look(w);
        if (g_atomic_int_get(&w->stop))
            break;
        if (w->io->wait(w->fd, TIOCM_INPUTS) < 0 && errno != EINTR) {
            set_state(w, -errno);
            break;
        }
    }
    if (ticking)
        timer_delete(tick);
    g_mutex_lock(&w->lock);
    w->done = TRUE;
    g_cond_broadcast(&w->cond);
    g_mutex_unlock(&w->lock);
    return NULL;
}

static void watch_free(CrtTtyWatch *w)
{
    g_mutex_clear(&w->lock);
    g_cond_clear(&w->cond);
    g_free(w->name);
    g_free(w);
}

/* Wait for the thread to reach TIOCMIWAIT and give the driver PROBE_US to
 * refuse it; 0 or the refusal. */
static int wait_for_probe(CrtTtyWatch *w)
{
    gint64 deadline;
    int state;

    g_mutex_lock(&w->lock);
    while (w->state == WATCH_STARTING)
        g_cond_wait(&w->cond, &w->lock);
    deadline = g_get_monotonic_time() + PROBE_US;
    while (w->state == WATCH_RUNNING && g_cond_wait_until(&w->cond, &w->lock, deadline))
        ;
    state = w->state;
    if (state == WATCH_RUNNING)
        w->started = TRUE;
    g_mutex_unlock(&w->lock);
    return state == WATCH_RUNNING ? 0 : state;
}

int crt_tty_watch_start(CrtTarget *t, int fd, const char *name, CrtTtyWatch **out,
                        GError **error)
{
    static GOnce once = G_ONCE_INIT;
    const CrtTtyLineIo *io = g_atomic_pointer_get(&line_io);
    CrtTtyWatch *w;
    int tiocm, r;

    if (io->get_lines(fd, &tiocm) < 0)
        return refusal(error, errno, fd, name, "modem lines to watch",
                       "read the modem lines", "TIOCMGET");
    g_once(&once, install_wake_handler, NULL);
    w = g_new0(CrtTtyWatch, 1);
    w->t = t;
    w->fd = fd;
    w->name = g_strdup(name);
    w->io = io;
    w->tiocm = tiocm;
    w->has_icount = io->get_icount(fd, &w->ic) == 0;
    g_mutex_init(&w->lock);
    g_cond_init(&w->cond);
    r = pthread_create(&w->thread, NULL, watch_thread, w);
    if (r != 0) {
        watch_free(w);
        return crt_set_error(error, r, "%s: cannot start the line watch thread: %s", name,
                             g_strerror(r));
    }
    r = wait_for_probe(w);
    if (r < 0) {
        pthread_join(w->thread, NULL);
        watch_free(w);
        return refusal(error, -r, fd, name, "way to wait for line changes",
                       "wait for line changes", "TIOCMIWAIT");
    }
    *out = w;
    return 0;
}

void crt_tty_watch_stop(CrtTtyWatch *w)
{
    if (w == NULL)
        return;
    g_atomic_int_set(&w->stop, 1);
    g_mutex_lock(&w->lock);
    while (!w->done) {
        pthread_kill(w->thread, WAKE_SIGNAL);
        g_cond_wait_until(&w->cond, &w->lock, g_get_monotonic_time() + 10 * 1000);
    }
    g_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    watch_free(w);
}
