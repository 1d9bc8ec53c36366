/* crtfs daemon - log destinations (log.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <gio/gio.h>

#include "channel.h"
#include "log.h"

#define JOURNAL_SOCKET "/run/systemd/journal/socket"
#define SYSLOG_SOCKET "/dev/log"

static struct {
    GMutex lock;
    CrtLogKind kind;
    char *path; /* CRT_LOG_FILE */
    int fd;     /* the file, or the journal's socket */
} out = {.fd = -1};

int crt_log_parse(const char *value, CrtLogKind *kind, GError **error)
{
    static const char *const words[] = {"auto", "journal", "syslog", "stderr"};

    for (size_t i = 0; i < G_N_ELEMENTS(words); i++) {
        if (strcmp(value, words[i]) == 0) {
            *kind = (CrtLogKind)i;
            return 0;
        }
    }
    if (value[0] == '/') {
        *kind = CRT_LOG_FILE;
        return 0;
    }
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "log=%s: expected auto, journal, syslog, stderr or an absolute file path",
                value);
    return -EINVAL;
}

/* GLib's levels as syslog priorities and as the words of a log file. */
static const struct {
    GLogLevelFlags level;
    int priority;
    const char *word;
} levels[] = {
    {G_LOG_LEVEL_ERROR, LOG_ERR, "error"},
    {G_LOG_LEVEL_CRITICAL, LOG_CRIT, "critical"},
    {G_LOG_LEVEL_WARNING, LOG_WARNING, "warning"},
    {G_LOG_LEVEL_MESSAGE, LOG_NOTICE, "notice"},
    {G_LOG_LEVEL_INFO, LOG_INFO, "info"},
    {G_LOG_LEVEL_DEBUG, LOG_DEBUG, "debug"},
};

/* The most severe of `level`'s bits, as a row of `levels`. */
static size_t level_row(GLogLevelFlags level)
{
    size_t i = 0;

    while (i + 1 < G_N_ELEMENTS(levels) && !(level & levels[i].level))
        i++;
    return i;
}

/* One journal entry: the fields as KEY=VALUE lines, MESSAGE in the
 * protocol's binary form (a newline in it cannot start another field). */
static void journal_send(const char *domain, int prio, const char *msg)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX, .sun_path = JOURNAL_SOCKET};
    char *head =
        g_strdup_printf("PRIORITY=%d\nSYSLOG_IDENTIFIER=crtfs\nSYSLOG_PID=%d\n"
                        "SYSLOG_FACILITY=%d\nGLIB_DOMAIN=%s\nMESSAGE\n",
                        prio, (int)getpid(), LOG_DAEMON >> 3, domain ? domain : "crtfs");
    guint64 len = GUINT64_TO_LE((guint64)strlen(msg));
    struct iovec iov[] = {{head, strlen(head)},
                          {&len, sizeof len},
                          {(void *)msg, strlen(msg)},
                          {(void *)"\n", 1}};
    struct msghdr mh = {.msg_name = &sa,
                        .msg_namelen = sizeof sa,
                        .msg_iov = iov,
                        .msg_iovlen = G_N_ELEMENTS(iov)};

    sendmsg(out.fd, &mh, MSG_NOSIGNAL); /* a full journal drops, as syslog does */
    g_free(head);
}

/* "2026-12-03T12:00:01.250+00:00 crtfs[PID]: crtfs-target warning: MSG" */
static void file_write(const char *domain, GLogLevelFlags level, const char *msg)
{
    char *now = crt_channel_time_text(g_get_real_time()); /* as `state` shows times */
    char *line = g_strdup_printf("%s crtfs[%d]: %s %s: %s\n", now, (int)getpid(),
                                 domain ? domain : "crtfs", levels[level_row(level)].word, msg);

    if (write(out.fd, line, strlen(line)) < 0) {
        /* nowhere to say so */
    }
    g_free(line);
    g_free(now);
}

static void handler(const gchar *domain, GLogLevelFlags level, const gchar *msg,
                    gpointer data)
{
    /* Debug lines only with -d or G_MESSAGES_DEBUG, as on standard error. */
    if ((level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO)) &&
        g_log_writer_default_would_drop(level, domain))
        return;
    g_mutex_lock(&out.lock);
    if (out.kind == CRT_LOG_JOURNAL)
        journal_send(domain, levels[level_row(level)].priority, msg);
    else if (out.kind == CRT_LOG_SYSLOG)
        syslog(levels[level_row(level)].priority, "%s", msg);
    else if (out.kind == CRT_LOG_FILE)
        file_write(domain, level, msg);
    g_mutex_unlock(&out.lock);
}

static gboolean socket_there(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static int open_file(const char *path, GError **error)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

    if (fd < 0) {
        int err = errno;

        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err), "log=%s: %s", path,
                    g_strerror(err));
        return -err;
    }
    return fd;
}

/* What auto means for a daemon in the background. */
static CrtLogKind auto_kind(char **warning)
{
    if (socket_there(JOURNAL_SOCKET))
        return CRT_LOG_JOURNAL;
    if (socket_there(SYSLOG_SOCKET))
        return CRT_LOG_SYSLOG;
    *warning =
        g_strdup("no systemd journal (" JOURNAL_SOCKET ") and no syslog (" SYSLOG_SOCKET
                 "): the daemon's log goes nowhere; mount with -o log=FILE to keep it");
    return CRT_LOG_SYSLOG; /* it may come later */
}

int crt_log_start(CrtLogKind kind, const char *path, gboolean foreground, char **warning,
                  GError **error)
{
    int fd = -1;

    *warning = NULL;
    if (kind == CRT_LOG_AUTO)
        kind = foreground ? CRT_LOG_STDERR : auto_kind(warning);
    if (kind == CRT_LOG_STDERR)
        return 0; /* GLib's own handler */
    if (kind == CRT_LOG_FILE && (fd = open_file(path, error)) < 0)
        return fd;
    if (kind == CRT_LOG_JOURNAL &&
        (fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
        int err = errno;

        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err), "log=journal: %s",
                    g_strerror(err));
        return -err;
    }
    if (kind == CRT_LOG_SYSLOG)
        openlog("crtfs", LOG_PID, LOG_DAEMON);
    g_mutex_lock(&out.lock);
    out.kind = kind;
    out.fd = fd;
    out.path = g_strdup(path);
    g_mutex_unlock(&out.lock);
    g_log_set_default_handler(handler, NULL);
    return 0;
}

void crt_log_reopen(void)
{
    GError *error = NULL;
    int fd, old;

    g_mutex_lock(&out.lock);
    if (out.kind != CRT_LOG_FILE) {
        g_mutex_unlock(&out.lock);
        return;
    }
    fd = open_file(out.path, &error);
    old = out.fd;
    if (fd >= 0) {
        out.fd = fd;
        close(old);
    }
    g_mutex_unlock(&out.lock);
    if (error) {
        g_warning("SIGHUP: %s (logging on to the file that was open)", error->message);
        g_error_free(error);
    }
}
