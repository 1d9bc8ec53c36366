/* crtfs - what a target directory says about itself: the `error:` line of
 * `state` and the log of its events.
 *
 * One job, one lock: CrtChannelLog's own mutex guards the error line and
 * the log limiter; nothing else is called while it is held (the lock order:
 * README, "Threads and locks").  Any thread.
 */
#ifndef CRTFS_CHANNEL_LOG_H
#define CRTFS_CHANNEL_LOG_H

#include <glib.h>

/* The log domain of a target's events: one line per state change and per
 * error, errors at most CRT_LOG_BURST per CRT_LOG_WINDOW_US. */
#define CRT_TARGET_LOG_DOMAIN "crtfs-target"
#define CRT_LOG_BURST 5
#define CRT_LOG_WINDOW_US (10 * G_USEC_PER_SEC)

/* The longest `error:` line, in bytes, before "..." */
#define CRT_ERROR_MAX 512

typedef struct {
    const char *name; /* the directory's, borrowed */
    GMutex lock;
    char *error;       /* lock: the readable `error:` line, NULL for none */
    gint64 error_time; /* lock: when it was set (g_get_real_time) */
    gint64 log_window; /* lock: start of the current error window */
    guint log_count;   /* lock: errors in the window */
    guint log_held;    /* lock: errors in the window not logged */
} CrtChannelLog;

void crt_channel_log_init(CrtChannelLog *log, const char *name);
void crt_channel_log_clear(CrtChannelLog *log);

/* `msg` as one readable line: control characters and bytes that are not
 * UTF-8 escaped (\n, \t, \xNN), cut after CRT_ERROR_MAX bytes with "...".
 * Anyone can write anything to the control files, and the reasons quote
 * it.  Newly allocated. */
char *crt_channel_readable(const char *msg);

/* A target event in the log (syslog when daemonized): a state change at
 * notice priority, an error at warning priority; errors beyond
 * CRT_LOG_BURST in a window are held back and counted in the next line. */
void crt_channel_log_event(CrtChannelLog *log, gboolean error, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/* `message` made readable becomes the `error:` line. */
void crt_channel_log_set_error(CrtChannelLog *log, const char *message);
/* The same for a GError, whose message is made the same readable line. */
void crt_channel_log_set_error_from(CrtChannelLog *log, GError *err);
/* The `error:` line (newly allocated), NULL for none, and when it was set
 * (g_get_real_time; may be NULL). */
char *crt_channel_log_error(CrtChannelLog *log, gint64 *when);
/* The error is over (the target streams again): `error:` says none. */
void crt_channel_log_clear_error(CrtChannelLog *log);

#endif
