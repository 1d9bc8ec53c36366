/* crtfs daemon - where the log goes (-o log=): the systemd journal (its
 * native protocol, without libsystemd), syslog, standard error, or a file.
 *
 * `auto` (the default): standard error in the foreground; once daemonized
 * the journal when its socket is there, else syslog when /dev/log is there;
 * with neither the mount says so on standard error (the daemon's own
 * standard error is /dev/null by then).  A file is opened for appending
 * and opened again at SIGHUP (logrotate's convention).  Threads: any; the
 * handler serialises its writes. */
#ifndef CRTFS_LOG_H
#define CRTFS_LOG_H

#include <glib.h>

typedef enum {
    CRT_LOG_AUTO = 0,
    CRT_LOG_JOURNAL,
    CRT_LOG_SYSLOG,
    CRT_LOG_STDERR,
    CRT_LOG_FILE,
} CrtLogKind;

/* Parse the -o log= value: auto, journal, syslog, stderr or an absolute
 * path.  0, or -EINVAL with the reason. */
int crt_log_parse(const char *value, CrtLogKind *kind, GError **error);

/* Send GLib's log where `kind` (and `path` for a file) says, for a daemon
 * that runs in the foreground or not.  Before daemonizing, so that a file
 * that cannot be opened fails the mount.  0 or -errno with the reason;
 * *warning (newly allocated or NULL) is what the mount should print
 * (auto with nowhere to log). */
int crt_log_start(CrtLogKind kind, const char *path, gboolean foreground, char **warning,
                  GError **error);

/* SIGHUP: a log file is opened again (after logrotate moved it). */
void crt_log_reopen(void);

#endif
