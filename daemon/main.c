/* crtfs - the daemon: options, signals and the order things start and stop.
 * It only wires the filesystem (fs.c), the config file (config-file.c), the
 * request threads (session.c) and the service glue (service.c) together. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "target-config.h"

#include "config-file.h"
#include "fs.h"
#include "log.h"
#include "logind.h"
#include "service.h"
#include "session.h"

typedef struct {
    char *config;
    char *log; /* -o log= */
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
    OPT("log=%s", log),
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

/* crtfs --check CONFIG: the checks a mount and a reload make, without
 * mounting.  Exit 0 and a summary, or 1 and the reason. */
static int check_config(const char *prog, const char *path)
{
    GError *error = NULL;
    GKeyFile *kf = crt_config_file_load(path, &error);
    char **groups;
    gsize n;

    if (!kf) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, error->message);
        g_error_free(error);
        return 1;
    }
    groups = g_key_file_get_groups(kf, &n);
    printf("%s: ok, %zu target%s", path, (size_t)n, n == 1 ? "" : "s");
    for (gsize i = 0; i < n; i++)
        printf("%s%s", i ? ", " : ": ", groups[i]);
    printf("\n");
    g_strfreev(groups);
    g_key_file_unref(kf);
    return 0;
}

static void usage(const char *prog)
{
    printf("usage: %s [options] [CONFIG] MOUNTPOINT\n"
           "       %s --check CONFIG   check a configuration file, mount nothing\n\n"
           "crtfs options:\n"
           "    -o config=FILE         targets to create at mount (GKeyFile; default: a\n"
           "                           `demo` target on the simulator)\n"
           "    -o log=DEST            auto (default), journal, syslog, stderr or a file\n"
           "    -o allow_exec          let non-root writers set exec: targets\n"
           "    -o max_targets=N       most target directories (default 1024)\n"
           "    -o max_target_memory=MIB  most buffer memory per target, in MiB\n"
           "                           (default 1024; 0 = no limit but the pools')\n\n",
           prog, prog);
    fuse_cmdline_help();
    fuse_lowlevel_help();
}

/* SIGHUP: read the configuration file again and apply what changed.  A
 * file that does not check out changes nothing. */
static void reload(CrtFs *fs, const char *config)
{
    GError *error = NULL;
    GKeyFile *kf;

    crt_log_reopen(); /* after logrotate */
    if (!config) {
        g_message(
            "SIGHUP: no configuration file to read again (mounted without -o config=)");
        crt_fs_set_reload_result(fs, NULL, FALSE,
                                 "no configuration file to read again (mounted without "
                                 "-o config=)");
        return;
    }
    kf = crt_config_file_load(config, &error);
    if (!kf) {
        char *why = g_strdup_printf("%s; nothing changed", error->message);

        g_message("SIGHUP: %s: %s", config, why);
        crt_fs_set_reload_result(fs, config, FALSE, why);
        g_free(why);
        g_error_free(error);
        return;
    }
    g_message("SIGHUP: applying %s", config);
    crt_service_notify("RELOADING=1");
    if (crt_fs_reload_config(fs, kf, &error) < 0) {
        char *why = g_strdup_printf("%s (the other groups applied)", error->message);

        g_warning("config: %s", error->message);
        crt_fs_set_reload_result(fs, config, FALSE, why);
        g_free(why);
        g_clear_error(&error);
    } else {
        crt_fs_set_reload_result(fs, config, TRUE, "applied");
    }
    crt_service_notify("READY=1");
    g_key_file_unref(kf);
}

#define TRIM_INTERVAL_MS (30 * 1000)
/* How long the daemon serves clients closing their files at its end. */
#define GRACE_MS 2000

/* Wait for SIGTERM, SIGINT or the end of the session; SIGHUP reloads. */
static void wait_for_exit(CrtSession *session, int sfd, CrtFs *fs, const char *config)
{
    struct pollfd pfd[2] = {{sfd, POLLIN, 0}, {crt_session_exit_fd(session), POLLIN, 0}};

    for (;;) {
        struct signalfd_siginfo si;
        int n = poll(pfd, 2, TRIM_INTERVAL_MS);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (n == 0) {
            crt_service_trim_heap();
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
    CrtSession *session = crt_session_start(se);
    int waited;

    if (!session) {
        g_printerr("crtfs: %s\n", g_strerror(errno));
        return 1;
    }
    wait_for_exit(session, sfd, fs, config);
    crt_service_notify("STOPPING=1");
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
    for (waited = 0; crt_fs_open_files(fs) > 0 && !crt_session_ended(session); waited++) {
        if (waited == GRACE_MS / 10) {
            guint n = crt_fs_open_files(fs);

            g_message("stopping with %u file%s still open after 2 s", n,
                      n == 1 ? "" : "s");
            break;
        }
        g_usleep(10 * 1000);
    }
    crt_session_stop(session);
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

/* -o log=: where the daemon's log goes from now on; a file that cannot be
 * opened fails the mount, nowhere to log is said before daemonizing. */
static int start_log(const Options *o, gboolean foreground)
{
    CrtLogKind kind = CRT_LOG_AUTO;
    GError *error = NULL;
    char *warning = NULL;
    int r = crt_log_parse(o->log ? o->log : "auto", &kind, &error);

    if (r == 0)
        r = crt_log_start(kind, o->log, foreground, &warning, &error);
    if (r < 0) {
        fprintf(stderr, "crtfs: %s\n", error->message);
        g_error_free(error);
    } else if (warning) {
        fprintf(stderr, "crtfs: warning: %s\n", warning);
    }
    g_free(warning);
    return r;
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

    if (!se || start_log(o, cl->foreground) < 0)
        goto out_session;
    crt_fs_set_session(fs, se);
    if (fuse_session_mount(se, cl->mountpoint) != 0)
        goto out_session;
    fuse_daemonize(cl->foreground);
    sfd = signals_fd();
    if (crt_fs_load_config(fs, kf, &error) < 0) {
        /* A target that cannot be opened now keeps its directory, with the
         * reason in its state file; the mount goes on. */
        g_warning("config: %s", error->message);
        g_clear_error(&error);
    }
    sleep_watch = crt_sleep_watch_new(crt_fs_sleep_before, crt_fs_sleep_after, fs);
    crt_service_notify("READY=1");
    ret = serve(se, fs, sfd, o->config, sleep_watch);
    close(sfd);
    fuse_session_unmount(se);
out_session:
    if (se)
        fuse_session_destroy(se);
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

    if (argc >= 2 && strcmp(argv[1], "--check") == 0) {
        if (argc == 3)
            return check_config(argv[0], argv[2]);
        fprintf(stderr, "%s: usage: %s --check CONFIG\n", argv[0], argv[0]);
        return 2;
    }
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
    } else if (!(kf = crt_config_file_load(o.config, &error))) {
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
    free(o.log);
    for (int i = 0; i < MIN(o.nnonopt, (int)G_N_ELEMENTS(o.nonopt)); i++)
        free(o.nonopt[i]);
    fuse_opt_free_args(&args);
    return ret;
}
