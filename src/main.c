/* crtfs - the daemon: options, config file, the request loop, signals.
 * It only wires the filesystem (fs.c) to a FUSE session. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#ifdef HAVE_MALLOC_TRIM
#include <malloc.h>
#endif
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include <crtfs/config.h>
#include <crtfs/target.h>

#include "fs.h"
#include "logind.h"

#define WORKERS 8

/* Without -o config=FILE the mount gets this: a demo target streaming
 * sequence-numbered records from the simulator. */
static const char embedded_config[] = "[demo]\n"
                                      "target=sim:records rate=20\n"
                                      "autostart=true\n";

typedef struct {
    char *config;
    int allow_exec;
    unsigned max_targets;
    unsigned max_target_memory; /* MiB */
    char *nonopt[3];            /* words that are not options, in order */
    int nnonopt;
} Options;

#define OPT(t, p)                                                                        \
    {                                                                                    \
        t, offsetof(Options, p), 1                                                       \
    }
static const struct fuse_opt option_table[] = {
    OPT("config=%s", config),
    OPT("allow_exec", allow_exec),
    OPT("max_targets=%u", max_targets),
    OPT("max_target_memory=%u", max_target_memory),
    FUSE_OPT_END,
};

/* Keep the words that are not options for ourselves: mount(8) and
 * mount.fuse3 run `crtfs CONFIG MOUNTPOINT -o OPTIONS` (the source of an
 * fstab line is the configuration file). */
static int keep_nonopt(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    Options *o = data;

    if (key != FUSE_OPT_KEY_NONOPT)
        return 1;
    if (o->nnonopt < (int)G_N_ELEMENTS(o->nonopt))
        o->nonopt[o->nnonopt] = strdup(arg);
    o->nnonopt++;
    return 0;
}

/* CONFIG MOUNTPOINT, or MOUNTPOINT alone: the mount point goes back to
 * libfuse's command line.  FALSE (with a message) for anything else. */
static gboolean take_nonopts(Options *o, struct fuse_args *args, const char *prog)
{
    if (o->nnonopt > 2) {
        fprintf(stderr,
                "%s: too many arguments (usage: %s [CONFIG] MOUNTPOINT [options])\n",
                prog, prog);
        return FALSE;
    }
    if (o->nnonopt == 2) {
        if (o->config) {
            fprintf(stderr,
                    "%s: the configuration file is given twice (%s and -o config=%s)\n",
                    prog, o->nonopt[0], o->config);
            return FALSE;
        }
        o->config = strdup(o->nonopt[0]);
    }
    if (o->nnonopt >= 1)
        fuse_opt_add_arg(args, o->nonopt[o->nnonopt - 1]);
    return TRUE;
}

static void usage(const char *prog)
{
    printf("usage: %s [options] [CONFIG] MOUNTPOINT\n\n"
           "crtfs options:\n"
           "    -o config=FILE         targets to create at mount (GKeyFile; default: a\n"
           "                           `demo` target on the simulator)\n"
           "    -o allow_exec          let non-root writers set exec: targets\n"
           "    -o max_targets=N       most target directories (default 1024)\n"
           "    -o max_target_memory=MIB  most buffer memory per target, in MiB\n"
           "                           (default 1024; 0 = no limit but the pools')\n\n",
           prog);
    fuse_cmdline_help();
    fuse_lowlevel_help();
}

/* A group names a directory at the mount root. */
static gboolean valid_name(const char *name, GError **error)
{
    if (*name && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
        !strchr(name, '/') && strlen(name) <= NAME_MAX && strcmp(name, "version") != 0 &&
        strcmp(name, "metrics") != 0)
        return TRUE;
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_GROUP_NOT_FOUND,
                "[%s]: not a valid target name (a directory name other than version and "
                "metrics)",
                name);
    return FALSE;
}

/* Check the whole config file before forking: a typo must fail the mount,
 * not be found later in syslog.  Targets are opened after the fork. */
static GKeyFile *load_config(const char *path, GError **error)
{
    GKeyFile *kf = g_key_file_new();
    char *text = NULL;
    gsize len = 0;
    /* Read as data, so that /dev/null (no targets) works too. */
    gboolean ok = path ? g_file_get_contents(path, &text, &len, error) : TRUE;
    char **groups;

    ok = ok && g_key_file_load_from_data(kf, path ? text : embedded_config,
                                         path ? len : (gsize)-1, G_KEY_FILE_NONE, error);
    g_free(text);
    groups = ok ? g_key_file_get_groups(kf, NULL) : NULL;

    for (guint i = 0; ok && groups[i]; i++) {
        char **keys = g_key_file_get_keys(kf, groups[i], NULL, NULL);
        char *target = NULL;
        gboolean autostart;
        CrtConfig cfg;

        crt_config_init(&cfg);
        ok = valid_name(groups[i], error) &&
             crt_config_load_group(&cfg, kf, groups[i], &target, &autostart, error) == 0;
        if (ok && target && *target) {
            CrtTargetSpec spec;

            ok = crt_target_spec_parse(target, &spec, error) == 0;
            if (ok)
                crt_target_spec_clear(&spec);
            else
                g_prefix_error(error, "[%s] target: ", groups[i]);
        }
        crt_config_clear(&cfg);
        g_free(target);
        g_strfreev(keys);
    }
    g_strfreev(groups);
    if (!ok) {
        g_key_file_unref(kf);
        return NULL;
    }
    return kf;
}

typedef struct {
    struct fuse_session *se;
    int exit_fd;             /* readable once the daemon should stop */
    gint exiting;            /* atomic: the request threads should return */
    gint unmounted;          /* atomic: the kernel ended the session */
    gint running;            /* atomic: request threads not returned yet */
    pthread_t tids[WORKERS]; /* atomic: each set by its thread; 0 until then */
} Loop;

static void request_exit(Loop *l)
{
    uint64_t one = 1;

    while (write(l->exit_fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

typedef struct {
    Loop *loop;
    int index;
} Worker;

/* One of the request threads.  Each blocks in read(2) on the device, so the
 * kernel wakes one thread per request (polling the one descriptor from
 * every thread woke them all for each).  libfuse 3.14's own loops do not
 * return for fuse_session_exit; these return on SIGUSR1 (EINTR) once
 * `exiting` is set, or when the mount goes away (ENODEV). */
static gpointer worker(gpointer data)
{
    Worker *w = data;
    Loop *l = w->loop;
    struct fuse_buf buf = {0};

    __atomic_store_n(&l->tids[w->index], pthread_self(), __ATOMIC_RELEASE);
    while (!g_atomic_int_get(&l->exiting)) {
        int r = fuse_session_receive_buf(l->se, &buf);

        if (r == -EINTR || r == -EAGAIN)
            continue;
        if (r <= 0) { /* unmounted */
            g_atomic_int_set(&l->unmounted, 1);
            request_exit(l);
            break;
        }
        fuse_session_process_buf(l->se, &buf);
    }
    free(buf.mem);
    g_atomic_int_dec_and_test(&l->running);
    return NULL;
}

static void wake_handler(int sig)
{
    /* Only here to interrupt a blocked read (no SA_RESTART). */
}

/* Make every request thread return: interrupt its read until it has. */
static void stop_workers(Loop *l, GThread **threads, gboolean *started)
{
    g_atomic_int_set(&l->exiting, 1);
    while (g_atomic_int_get(&l->running) > 0) {
        for (int i = 0; i < WORKERS; i++) {
            pthread_t tid = __atomic_load_n(&l->tids[i], __ATOMIC_ACQUIRE);

            if (started[i] && tid)
                pthread_kill(tid, SIGUSR1);
        }
        g_usleep(10 * 1000);
    }
    for (int i = 0; i < WORKERS; i++)
        g_thread_join(threads[i]);
}

static void syslog_handler(const gchar *domain, GLogLevelFlags level, const gchar *msg,
                           gpointer data)
{
    int prio = level & G_LOG_LEVEL_ERROR      ? LOG_ERR
               : level & G_LOG_LEVEL_CRITICAL ? LOG_CRIT
               : level & G_LOG_LEVEL_WARNING  ? LOG_WARNING
               : level & G_LOG_LEVEL_MESSAGE  ? LOG_NOTICE
               : level & G_LOG_LEVEL_INFO     ? LOG_INFO
                                              : LOG_DEBUG;

    syslog(prio, "%s", msg);
}

/* Tell systemd (Type=notify) how the daemon is doing: the sd_notify(3)
 * protocol, one datagram to $NOTIFY_SOCKET, without libsystemd. */
static void notify_systemd(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = path ? strlen(path) : 0;
    int fd;

    if (len == 0 || len >= sizeof sa.sun_path || (path[0] != '/' && path[0] != '@'))
        return;
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
        g_debug("sd_notify: %s", g_strerror(errno));
    close(fd);
}

/* SIGHUP: read the configuration file again and apply what changed.  A
 * file that does not check out changes nothing. */
static void reload(CrtFs *fs, const char *config)
{
    GError *error = NULL;
    GKeyFile *kf;

    if (!config) {
        g_message(
            "SIGHUP: no configuration file to read again (mounted without -o config=)");
        return;
    }
    kf = load_config(config, &error);
    if (!kf) {
        g_message("SIGHUP: %s: %s; nothing changed", config, error->message);
        g_error_free(error);
        return;
    }
    g_message("SIGHUP: applying %s", config);
    notify_systemd("RELOADING=1");
    if (crt_fs_reload_config(fs, kf, &error) < 0) {
        g_warning("config: %s", error->message);
        g_clear_error(&error);
    }
    notify_systemd("READY=1");
    g_key_file_unref(kf);
}

/* Hand the heap's free pages back to the kernel.  Buffers of many sizes
 * come and go with targets and configurations, spread over the C
 * library's per-thread arenas; what is freed in the middle of an arena
 * stays resident otherwise, and the daemon's RSS would creep up for hours
 * while the memory it uses stays the same. */
static void trim_heap(void)
{
#ifdef HAVE_MALLOC_TRIM
    malloc_trim(0);
#endif
}

#define TRIM_INTERVAL_MS (30 * 1000)
/* How long the daemon serves clients closing their files at its end. */
#define GRACE_MS 2000

/* Wait for SIGTERM, SIGINT or the end of the session; SIGHUP reloads. */
static void wait_for_exit(Loop *l, int sfd, CrtFs *fs, const char *config)
{
    struct pollfd pfd[2] = {{sfd, POLLIN, 0}, {l->exit_fd, POLLIN, 0}};

    for (;;) {
        struct signalfd_siginfo si;
        int n = poll(pfd, 2, TRIM_INTERVAL_MS);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (n == 0) {
            trim_heap();
            continue;
        }
        if (pfd[1].revents || !(pfd[0].revents & POLLIN))
            return;
        if (read(sfd, &si, sizeof si) != sizeof si || si.ssi_signo != SIGHUP)
            return;
        reload(fs, config);
    }
}

static int serve(struct fuse_session *se, CrtFs *fs, int sfd, const char *config,
                 CrtSleepWatch *sleep_watch)
{
    /* `running` counts the threads from before they start, so stopping
     * cannot miss one that has not reached its loop yet. */
    Loop l = {.se = se, .exit_fd = eventfd(0, EFD_CLOEXEC), .running = WORKERS};
    GThread *threads[WORKERS];
    Worker workers[WORKERS];
    gboolean started[WORKERS];
    struct sigaction sa = {.sa_handler = wake_handler};
    int waited;

    sigaction(SIGUSR1, &sa, NULL);
    for (int i = 0; i < WORKERS; i++) {
        workers[i] = (Worker){&l, i};
        started[i] = TRUE;
        threads[i] = g_thread_new("crtfs-fuse", worker, &workers[i]);
    }
    wait_for_exit(&l, sfd, fs, config);
    notify_systemd("STOPPING=1");
    crt_sleep_watch_free(sleep_watch); /* no suspend or resume from now on */
    g_message("stopping every target");
    /* Targets stop and parked readers get end of file while the request
     * threads still answer (their release and flush). */
    crt_fs_shutdown(fs);
    /* Their reads now end at once: serve the clients until they have
     * closed their files (a reader between two reads would otherwise meet
     * an aborted connection), for two seconds at most.  Once the kernel has
     * ended the session there is nobody left to serve: after a lazy
     * unmount the last close takes the connection down, and the releases
     * of the files still counted open never come. */
    for (waited = 0; crt_fs_open_files(fs) > 0 && !g_atomic_int_get(&l.unmounted);
         waited++) {
        if (waited == GRACE_MS / 10) {
            guint n = crt_fs_open_files(fs);

            g_message("stopping with %u file%s still open after 2 s", n,
                      n == 1 ? "" : "s");
            break;
        }
        g_usleep(10 * 1000);
    }
    stop_workers(&l, threads, started);
    close(l.exit_fd);
    return 0;
}

static int signals_fd(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    /* Blocked before any thread starts, so only the signalfd sees them. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_CLOEXEC);
}

static int run(struct fuse_args *args, struct fuse_cmdline_opts *cl, GKeyFile *kf,
               const Options *o)
{
    CrtFsOptions fo = {.allow_exec = o->allow_exec,
                       .max_targets = o->max_targets,
                       .max_target_memory = (guint64)o->max_target_memory << 20};
    CrtFs *fs = crt_fs_new(&fo);
    CrtSleepWatch *sleep_watch;
    struct fuse_session *se =
        fuse_session_new(args, crt_fs_ops(), sizeof(struct fuse_lowlevel_ops), fs);
    GError *error = NULL;
    int sfd, ret = 1;

    if (!se)
        goto out;
    crt_fs_set_session(fs, se);
    if (fuse_session_mount(se, cl->mountpoint) != 0)
        goto out_session;
    if (!cl->foreground) {
        openlog("crtfs", LOG_PID, LOG_DAEMON);
        g_log_set_default_handler(syslog_handler, NULL);
    }
    fuse_daemonize(cl->foreground);
    sfd = signals_fd();
    if (crt_fs_load_config(fs, kf, &error) < 0) {
        /* A target that cannot be opened now keeps its directory, with the
         * reason in its state file; the mount goes on. */
        g_warning("config: %s", error->message);
        g_clear_error(&error);
    }
    sleep_watch = crt_sleep_watch_new(crt_fs_sleep_before, crt_fs_sleep_after, fs);
    notify_systemd("READY=1");
    ret = serve(se, fs, sfd, o->config, sleep_watch);
    close(sfd);
    fuse_session_unmount(se);
out_session:
    fuse_session_destroy(se);
out:
    crt_fs_free(fs);
    return ret;
}

int main(int argc, char **argv)
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct fuse_cmdline_opts cl = {0};
    Options o = {.max_target_memory = 1024};
    GError *error = NULL;
    GKeyFile *kf = NULL;
    int ret = 1;

    gboolean args_ok = fuse_opt_parse(&args, &o, option_table, keep_nonopt) == 0 &&
                       take_nonopts(&o, &args, argv[0]) &&
                       fuse_parse_cmdline(&args, &cl) == 0;

    /* SIGHUP reads it again, after the daemon has changed directory. */
    if (args_ok && o.config && !g_path_is_absolute(o.config)) {
        char *abs = g_canonicalize_filename(o.config, NULL);

        free(o.config);
        o.config = strdup(abs);
        g_free(abs);
    }
    if (!args_ok) {
        ret = 2;
    } else if (cl.show_help) {
        usage(argv[0]);
        ret = 0;
    } else if (cl.show_version) {
        printf("%s\nlibfuse %s\n", PACKAGE_STRING, fuse_pkgversion());
        ret = 0;
    } else if (!cl.mountpoint) {
        fprintf(stderr, "%s: no mount point given (see --help)\n", argv[0]);
        ret = 2;
    } else if (!(kf = load_config(o.config, &error))) {
        fprintf(stderr, "%s: %s: %s\n", argv[0], o.config ? o.config : "embedded config",
                error->message);
        g_error_free(error);
    } else {
        if (cl.debug)
            g_log_set_debug_enabled(TRUE);
        ret = run(&args, &cl, kf, &o);
        g_key_file_unref(kf);
    }
    free(cl.mountpoint);
    free(o.config);
    for (int i = 0; i < MIN(o.nnonopt, (int)G_N_ELEMENTS(o.nonopt)); i++)
        free(o.nonopt[i]);
    fuse_opt_free_args(&args);
    return ret;
}
