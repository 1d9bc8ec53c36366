/* crtfs - a target directory's error line and event log (channel-log.h). */
#include "config.h"

#include <stdarg.h>
#include <string.h>

#include "channel-log.h"

void crt_channel_log_init(CrtChannelLog *log, const char *name)
{
    memset(log, 0, sizeof *log);
    log->name = name;
    g_mutex_init(&log->lock);
}

void crt_channel_log_clear(CrtChannelLog *log)
{
    g_free(log->error);
    log->error = NULL;
    g_mutex_clear(&log->lock);
}

char *crt_channel_readable(const char *msg)
{
    GString *s = g_string_new(NULL);
    const char *p = msg, *end = msg + strlen(msg);

    while (p < end && s->len < CRT_ERROR_MAX) {
        gunichar c = g_utf8_get_char_validated(p, end - p);

        if (c == (gunichar)-1 || c == (gunichar)-2) {
            g_string_append_printf(s, "\\x%02x", (guchar)*p++); /* not UTF-8 */
            continue;
        }
        if (c == '\n')
            g_string_append(s, "\\n");
        else if (c == '\t')
            g_string_append(s, "\\t");
        else if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0))
            g_string_append_printf(s, "\\x%02x", (guint)c);
        else
            g_string_append_len(s, p, g_utf8_next_char(p) - p);
        p = g_utf8_next_char(p);
    }
    if (p < end)
        g_string_append(s, "...");
    return g_string_free(s, FALSE);
}

/* Whether an error may be logged now; *held: errors of the last window
 * that were not. */
static gboolean error_may_log(CrtChannelLog *log, guint *held)
{
    gint64 now = g_get_monotonic_time();
    gboolean say;

    g_mutex_lock(&log->lock);
    *held = 0;
    if (now - log->log_window >= CRT_LOG_WINDOW_US) {
        *held = log->log_held;
        log->log_held = log->log_count = 0;
        log->log_window = now;
    }
    say = log->log_count++ < CRT_LOG_BURST;
    log->log_held += !say;
    g_mutex_unlock(&log->lock);
    return say;
}

void crt_channel_log_event(CrtChannelLog *log, gboolean error, const char *fmt, ...)
{
    guint held = 0;
    gboolean say = !error || error_may_log(log, &held);
    va_list ap;
    char *msg, *line;

    if (held)
        g_log(CRT_TARGET_LOG_DOMAIN, G_LOG_LEVEL_WARNING,
              "%s: %u more errors in the last %d s were not logged", log->name, held,
              (int)(CRT_LOG_WINDOW_US / G_USEC_PER_SEC));
    if (!say)
        return;
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    line = crt_channel_readable(msg);
    g_log(CRT_TARGET_LOG_DOMAIN, error ? G_LOG_LEVEL_WARNING : G_LOG_LEVEL_MESSAGE,
          "%s: %s", log->name, line);
    g_free(line);
    g_free(msg);
}

/* `line` (readable already, taken) becomes `error:`. */
static void store_error(CrtChannelLog *log, char *line)
{
    g_mutex_lock(&log->lock);
    g_free(log->error);
    log->error = line;
    log->error_time = line ? g_get_real_time() : 0;
    g_mutex_unlock(&log->lock);
}

void crt_channel_log_clear_error(CrtChannelLog *log)
{
    store_error(log, NULL);
}

void crt_channel_log_set_error(CrtChannelLog *log, const char *message)
{
    store_error(log, crt_channel_readable(message));
}

void crt_channel_log_set_error_from(CrtChannelLog *log, GError *err)
{
    char *line = crt_channel_readable(err->message);

    g_free(err->message);
    err->message = line;
    store_error(log, g_strdup(line));
}

char *crt_channel_log_error(CrtChannelLog *log, gint64 *when)
{
    char *s;

    g_mutex_lock(&log->lock);
    s = g_strdup(log->error);
    if (when)
        *when = log->error_time;
    g_mutex_unlock(&log->lock);
    return s;
}
