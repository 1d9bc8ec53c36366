/* crtfs - the exec target: `/bin/sh -c COMMAND`, talking to its stdin and
 * stdout through pipes; its stderr is ours (the daemon's log).
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

typedef struct {
    pid_t pid;
    int read_fd;  /* the child's stdout */
    int write_fd; /* the child's stdin */
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

/* `to_child` carries our writes to its stdin, `from_child` its stdout. */
static int make_pipes(int to_child[2], int from_child[2])
{
    int r = 0;

    if (pipe2(to_child, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(from_child, O_CLOEXEC) < 0) {
        r = -errno;
        close_pair(to_child);
        return r;
    }
    for (int i = 0; i < 2 && r == 0; i++) {
        r = move_above_stdio(&to_child[i]);
        if (r == 0)
            r = move_above_stdio(&from_child[i]);
    }
    if (r < 0) {
        close_pair(to_child);
        close_pair(from_child);
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
                       int child_stdin, int child_stdout, pid_t *pid)
{
    char **argv = command_argv(spec, creds);
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    sigset_t none, all;

    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, child_stdin, STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, child_stdout, STDOUT_FILENO);
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

static int exec_open(CrtTarget *t, const CrtTargetSpec *spec, const CrtTargetCreds *creds,
                     GError **error)
{
    int to_child[2], from_child[2];
    pid_t pid = 0;
    int r = make_pipes(to_child, from_child);

    if (r < 0)
        return crt_set_error(error, -r, "cannot create pipes for exec:%s: %s",
                             spec->command, g_strerror(-r));
    r = spawn_shell(spec, creds, to_child[0], from_child[1], &pid);
    /* The child's ends are the child's now (or nobody's, on failure). */
    close(to_child[0]);
    close(from_child[1]);
    if (r == 0)
        r = crt_fd_set_nonblock(from_child[0]);
    if (r == 0)
        r = crt_fd_set_nonblock(to_child[1]);
    if (r < 0) {
        close(from_child[0]);
        close(to_child[1]);
        if (pid > 0)
            reap_child(pid);
        return crt_set_error(error, -r, "cannot run exec:%s: %s", spec->command,
                             g_strerror(-r));
    }

    ExecState *es = g_new0(ExecState, 1);
    es->pid = pid;
    es->read_fd = from_child[0];
    es->write_fd = to_child[1];
    t->impl = es;
    crt_fd_attach(t, es->read_fd, es->write_fd);
    return 0;
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
    reap_child(es->pid);
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

static CrtPresence exec_presence(CrtTarget *t, char **reason)
{
    if (reason)
        *reason = exec_state(t->impl);
    return CRT_PRESENCE_PRESENT;
}

const CrtTargetOps crt_target_exec_ops = {
    .name = "exec",
    .open = exec_open,
    .submit = crt_fd_submit,
    .cancel = crt_fd_cancel,
    .close = crt_fd_close,
    .kick = crt_fd_kick,
    .destroy = exec_destroy,
    .presence = exec_presence,
};
