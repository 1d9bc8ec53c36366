/* crtfs - the exec target: `/bin/sh -c COMMAND`, talking to its stdin and
 * stdout through pipes.  Its stderr goes through a third pipe to the log
 * (one message per line, at most EXEC_LOG_BURST lines per window), and the
 * last lines are kept for `presence`: a daemon in the background has no
 * stderr a command could inherit.
 *
 * The child runs in a session of its own, so that tearing the target down
 * reaches everything the command started: the whole process group gets
 * SIGTERM, and SIGKILL one second later.  Opened for someone else
 * (crt_target_open_as), the command runs as them through setpriv(1).
 */
#include "config.h"

#define SETPRIV_PATH "/usr/bin/setpriv"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "target-private.h"

extern char **environ;

/* How long a command gets to exit after SIGTERM before SIGKILL. */
#define EXEC_TERM_GRACE_MS 1000
#define EXEC_POLL_MS 10

/* What the log gets of a command's stderr: lines of at most
 * EXEC_LINE_MAX bytes, at most EXEC_LOG_BURST of them per
 * EXEC_LOG_WINDOW_US; the last EXEC_TAIL_LINES are kept. */
#define EXEC_LINE_MAX 512
#define EXEC_LOG_BURST 20
#define EXEC_LOG_WINDOW_US (10 * G_USEC_PER_SEC)
#define EXEC_TAIL_LINES 3

typedef struct {
    pid_t pid;
    int read_fd;  /* the child's stdout */
    int write_fd; /* the child's stdin */
    int err_fd;   /* the child's stderr */
    GSource *err_src; /* loop thread: watches err_fd until close */
    GString *line;    /* loop thread: the stderr line being read */
    gint64 log_window;
    guint log_count, log_held;
    const char *text; /* the target's, for the log */
    GMutex lock;      /* guards tail */
    char *tail[EXEC_TAIL_LINES]; /* the last lines, oldest first, readable */
} ExecState;

/* Keep pipe ends off 0, 1 and 2: a daemon may have closed its stdio, and the
 * child's dup2() onto stdin/stdout must never land on a pipe end it still
 * needs, nor leave one without its close-on-exec flag cleared. */
static int move_above_stdio(int *fd)
{
    if (*fd > 2)
        return 0;
    int moved = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    if (moved < 0)
        return -errno;
    close(*fd);
    *fd = moved;
    return 0;
}

static void close_pair(int fds[2])
{
    for (int i = 0; i < 2; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

/* `to_child` carries our writes to its stdin, `from_child` its stdout,
 * `err` its stderr. */
static int make_pipes(int to_child[2], int from_child[2], int err[2])
{
    int r = 0;

    to_child[0] = to_child[1] = from_child[0] = from_child[1] = err[0] = err[1] = -1;
    if (pipe2(to_child, O_CLOEXEC) < 0 || pipe2(from_child, O_CLOEXEC) < 0 ||
        pipe2(err, O_CLOEXEC) < 0)
        r = -errno;
    for (int i = 0; i < 2 && r == 0; i++) {
        r = move_above_stdio(&to_child[i]);
        if (r == 0)
            r = move_above_stdio(&from_child[i]);
        if (r == 0)
            r = move_above_stdio(&err[i]);
    }
    if (r < 0) {
        close_pair(to_child);
        close_pair(from_child);
        close_pair(err);
    }
    return r;
}

/* The command line: /bin/sh -c COMMAND, through setpriv(1) when the
 * command must run as someone else than the daemon (the non-root writer of
 * the spec). */
static char **command_argv(const CrtTargetSpec *spec, const CrtTargetCreds *creds)
{
    GPtrArray *a = g_ptr_array_new_with_free_func(g_free);

    if (creds) {
        g_ptr_array_add(a, g_strdup(SETPRIV_PATH));
        g_ptr_array_add(a, g_strdup_printf("--reuid=%u", (unsigned)creds->uid));
        g_ptr_array_add(a, g_strdup_printf("--regid=%u", (unsigned)creds->gid));
        if (creds->ngroups > 0) {
            GString *groups = g_string_new("--groups=");

            for (int i = 0; i < creds->ngroups; i++)
                g_string_append_printf(groups, "%s%u", i ? "," : "",
                                       (unsigned)creds->groups[i]);
            g_ptr_array_add(a, g_string_free(groups, FALSE));
        } else {
            g_ptr_array_add(a, g_strdup("--clear-groups"));
        }
        g_ptr_array_add(a, g_strdup("--"));
    }
    g_ptr_array_add(a, g_strdup("/bin/sh"));
    g_ptr_array_add(a, g_strdup("-c"));
    g_ptr_array_add(a, g_strdup(spec->command));
    g_ptr_array_add(a, NULL);
    return (char **)g_ptr_array_free(a, FALSE);
}

/* posix_spawn rather than fork: no copy of a multi-threaded address space,
 * and exec failures come back as a return value. */
static int spawn_shell(const CrtTargetSpec *spec, const CrtTargetCreds *creds,
                       int child_stdin, int child_stdout, int child_stderr, pid_t *pid)
{
    char **argv = command_argv(spec, creds);
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    sigset_t none, all;

    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, child_stdin, STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, child_stdout, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, child_stderr, STDERR_FILENO);
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
    /* Whatever else the daemon has open (the FUSE device, other targets)
     * is none of the command's business, close-on-exec or not. */
    posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
#endif
    posix_spawnattr_init(&attr);
    /* The daemon blocks and ignores signals for its own reasons (SIGPIPE
     * above all); the command starts with the defaults a shell expects. */
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    int err = posix_spawn(pid, argv[0], &actions, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    g_strfreev(argv);
    return -err;
}

/* TRUE once `pid` has exited (it is left a zombie for waitpid). */
static gboolean wait_exit(pid_t pid, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    siginfo_t info;

    for (;;) {
        memset(&info, 0, sizeof info);
        if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0) {
            /* ECHILD: reaped elsewhere (SIGCHLD ignored); nothing to wait for. */
            if (errno != EINTR)
                return TRUE;
        } else if (info.si_pid == pid) {
            return TRUE;
        }
        if (g_get_monotonic_time() >= deadline)
            return FALSE;
        g_usleep(EXEC_POLL_MS * 1000);
    }
}

/* Signal the group before reaping its leader: while the leader is a zombie
 * its pid, and so the group id, cannot be reused by an unrelated process.
 * Members that outlive the leader's grace period get SIGKILL too, since
 * nothing will ever read from them again. */
static void reap_child(pid_t pid)
{
    kill(-pid, SIGTERM);
    wait_exit(pid, EXEC_TERM_GRACE_MS);
    kill(-pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* ---- the command's stderr ---------------------------------------------- */

/* A stderr line as one readable line: control bytes as \xNN, invalid UTF-8
 * replaced, so it cannot forge lines where it is shown. */
static char *readable_line(const char *s, gsize len)
{
    char *valid = g_utf8_make_valid(s, (gssize)len);
    GString *out = g_string_new(NULL);

    for (const char *p = valid; *p; p++) {
        if ((guchar)*p < 0x20 || *p == 0x7f)
            g_string_append_printf(out, "\\x%02x", (guchar)*p);
        else
            g_string_append_c(out, *p);
    }
    g_free(valid);
    return g_string_free(out, FALSE);
}

/* One line of the command's stderr: logged within the burst, kept in the
 * tail.  Loop thread. */
static void stderr_line(ExecState *es, const char *s, gsize len)
{
    gint64 now = g_get_monotonic_time();
    char *line = readable_line(s, MIN(len, EXEC_LINE_MAX));

    if (now - es->log_window >= EXEC_LOG_WINDOW_US) {
        if (es->log_held)
            g_message("%s: %u more stderr lines in the last %d s were not logged", es->text,
                      es->log_held, (int)(EXEC_LOG_WINDOW_US / G_USEC_PER_SEC));
        es->log_window = now;
        es->log_count = es->log_held = 0;
    }
    if (es->log_count++ < EXEC_LOG_BURST)
        g_message("%s: stderr: %s", es->text, line);
    else
        es->log_held++;
    g_mutex_lock(&es->lock);
    g_free(es->tail[0]);
    memmove(es->tail, es->tail + 1, (EXEC_TAIL_LINES - 1) * sizeof es->tail[0]);
    es->tail[EXEC_TAIL_LINES - 1] = line;
    g_mutex_unlock(&es->lock);
}

static gboolean stderr_readable(gint fd, GIOCondition cond, gpointer data)
{
    ExecState *es = data;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return G_SOURCE_CONTINUE;
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] != '\n') {
            if (es->line->len < EXEC_LINE_MAX)
                g_string_append_c(es->line, buf[i]);
            continue;
        }
        stderr_line(es, es->line->str, es->line->len);
        g_string_truncate(es->line, 0);
    }
    if (n > 0)
        return G_SOURCE_CONTINUE;
    if (es->line->len) /* the last line had no newline */
        stderr_line(es, es->line->str, es->line->len);
    g_string_truncate(es->line, 0);
    g_source_unref(es->err_src);
    es->err_src = NULL;
    return G_SOURCE_REMOVE; /* end of file: the command closed it */
}

static void watch_stderr(CrtTarget *t, ExecState *es)
{
    es->line = g_string_new(NULL);
    es->err_src = g_unix_fd_source_new(es->err_fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
    g_source_set_callback(es->err_src, (GSourceFunc)(void (*)(void))stderr_readable, es,
                          NULL);
    g_source_attach(es->err_src, crt_loop_context(t->loop));
}

/* ---- open and close ------------------------------------------------------ */

static int exec_open(CrtTarget *t, const CrtTargetSpec *spec, const CrtTargetCreds *creds,
                     GError **error)
{
    int to_child[2], from_child[2], err[2];
    pid_t pid = 0;
    int r = make_pipes(to_child, from_child, err);

    if (r < 0)
        return crt_set_error(error, -r, "cannot create pipes for exec:%s: %s",
                             spec->command, g_strerror(-r));
    r = spawn_shell(spec, creds, to_child[0], from_child[1], err[1], &pid);
    /* The child's ends are the child's now (or nobody's, on failure). */
    close(to_child[0]);
    close(from_child[1]);
    close(err[1]);
    if (r == 0)
        r = crt_fd_set_nonblock(from_child[0]);
    if (r == 0)
        r = crt_fd_set_nonblock(to_child[1]);
    if (r == 0)
        r = crt_fd_set_nonblock(err[0]);
    if (r < 0) {
        close(from_child[0]);
        close(to_child[1]);
        close(err[0]);
        if (pid > 0)
            reap_child(pid);
        return crt_set_error(error, -r, "cannot run exec:%s: %s", spec->command,
                             g_strerror(-r));
    }

    ExecState *es = g_new0(ExecState, 1);
    es->pid = pid;
    es->read_fd = from_child[0];
    es->write_fd = to_child[1];
    es->err_fd = err[0];
    es->text = t->text;
    g_mutex_init(&es->lock);
    t->impl = es;
    crt_fd_attach(t, es->read_fd, es->write_fd);
    watch_stderr(t, es);
    return 0;
}

/* Stop watching stderr (loop thread, so the callback is not running), then
 * the shared driver's close. */
static void exec_close(CrtTarget *t)
{
    ExecState *es = t->impl;

    if (es && es->err_src) {
        g_source_destroy(es->err_src);
        g_source_unref(es->err_src);
        es->err_src = NULL;
    }
    crt_fd_close(t);
}

static void exec_destroy(CrtTarget *t)
{
    ExecState *es = t->impl;

    crt_fd_detach(t);
    if (es == NULL)
        return;
    /* Our ends go first, so the command sees EOF on stdin and EPIPE on
     * stdout whatever signals it ignores. */
    close(es->write_fd);
    close(es->read_fd);
    if (es->err_src) { /* never closed on the loop: no callback can run now */
        g_source_destroy(es->err_src);
        g_source_unref(es->err_src);
    }
    close(es->err_fd);
    reap_child(es->pid);
    if (es->line)
        g_string_free(es->line, TRUE);
    for (int i = 0; i < EXEC_TAIL_LINES; i++)
        g_free(es->tail[i]);
    g_mutex_clear(&es->lock);
    g_free(es);
    t->impl = NULL;
}

/* Whether the command still runs, or how it ended (it stays a zombie until
 * the target is released, so its pid, and group, stay ours: waitid with
 * WNOWAIT only looks).  The target is there either way: what the command
 * wrote can still be read. */
static char *exec_state(const ExecState *es)
{
    siginfo_t info;

    memset(&info, 0, sizeof info);
    if (es == NULL ||
        waitid(P_PID, (id_t)es->pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0 ||
        info.si_pid != es->pid)
        return g_strdup_printf("running (pid %d)", (int)es->pid);
    if (info.si_code == CLD_EXITED)
        return g_strdup_printf("exited with status %d (pid %d)", info.si_status,
                               (int)es->pid);
    return g_strdup_printf(
        "killed by signal %d (SIG%s) (pid %d)", info.si_status,
        sigabbrev_np(info.si_status) ? sigabbrev_np(info.si_status) : "?", (int)es->pid);
}

/* How it runs or ended, and its last stderr lines. */
static CrtPresence exec_presence(CrtTarget *t, char **reason)
{
    ExecState *es = t->impl;
    GString *s;

    if (!reason)
        return CRT_PRESENCE_PRESENT;
    s = g_string_new(NULL);
    {
        char *state = exec_state(es);

        g_string_append(s, state);
        g_free(state);
    }
    if (es) {
        g_mutex_lock(&es->lock);
        for (int i = 0, n = 0; i < EXEC_TAIL_LINES; i++) {
            if (es->tail[i])
                g_string_append_printf(s, "%s\"%s\"", n++ ? " | " : "; stderr: ", es->tail[i]);
        }
        g_mutex_unlock(&es->lock);
    }
    *reason = g_string_free(s, FALSE);
    return CRT_PRESENCE_PRESENT;
}

const CrtTargetOps crt_target_exec_ops = {
    .name = "exec",
    .open = exec_open,
    .submit = crt_fd_submit,
    .cancel = crt_fd_cancel,
    .close = exec_close,
    .kick = crt_fd_kick,
    .destroy = exec_destroy,
    .presence = exec_presence,
};
