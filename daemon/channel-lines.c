/* crtfs - a target directory's modem lines (channel.h): the `lines` file
 * (read the lines, write a sequence), the on_open/on_close sequences, and
 * the line events that become entries of `records` and counters of
 * `stats`.  The sequences themselves are the library's (crt_line_seq_*). */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <crtfs/lines.h>

#include "channel-private.h"

void crt_channel_lines_init(CrtChannel *ch)
{
    g_mutex_init(&ch->lines.lock);
}

void crt_channel_lines_clear(CrtChannel *ch)
{
    g_mutex_clear(&ch->lines.lock);
}

/* ---- events ------------------------------------------------------------- */

/* The STATUS word `records` shows for an event ("line:cts=1",
 * "line:framing+3"), and the counter it adds to; lines.lock held. */
static char *event_word_count_unlocked(CrtChannel *ch, const CrtLineEvent *ev)
{
    const char *kind = crt_line_event_kind_to_string(ev->kind);

    switch (ev->kind) {
    case CRT_LINE_EVENT_CHANGE:
        ch->lines.changes++;
        return g_strdup_printf("line:%s=%d", crt_line_name(ev->line), ev->up ? 1 : 0);
    case CRT_LINE_EVENT_BREAK:
        ch->lines.breaks += ev->count;
        break;
    case CRT_LINE_EVENT_FRAMING:
        ch->lines.framing += ev->count;
        break;
    case CRT_LINE_EVENT_PARITY:
        ch->lines.parity += ev->count;
        break;
    case CRT_LINE_EVENT_OVERRUN:
        ch->lines.overruns += ev->count;
        break;
    }
    return g_strdup_printf("line:%s+%" G_GUINT64_FORMAT, kind, ev->count);
}

/* The target's event thread: one entry without data per event. */
static void on_line_event(CrtTarget *t, const CrtLineEvent *ev, gpointer data)
{
    CrtChannel *ch = data;
    char *word;

    g_mutex_lock(&ch->lines.lock);
    word = event_word_count_unlocked(ch, ev);
    g_mutex_unlock(&ch->lines.lock);
    crt_hub_push_event(ch->hub, word, ev->time_ns);
    g_free(word);
}

void crt_channel_lines_watch(CrtChannel *ch, CrtTarget *t)
{
    GError *error = NULL;
    int r = crt_target_watch_lines(t, on_line_event, ch, NULL, &error);

    /* A target without lines (a pty, a FIFO, a socket) has nothing to
     * report, and that is no failure. */
    if (r < 0 && r != -ENOTTY && r != -EOPNOTSUPP)
        crt_channel_log_event(&ch->log, TRUE, "line events: %s", error->message);
    g_clear_error(&error);
    g_mutex_lock(&ch->lines.lock);
    ch->lines.watched = r == 0;
    g_mutex_unlock(&ch->lines.lock);
}

void crt_channel_lines_unwatch(CrtChannel *ch, CrtTarget *t)
{
    crt_target_unwatch_lines(t);
    g_mutex_lock(&ch->lines.lock);
    ch->lines.watched = FALSE;
    g_mutex_unlock(&ch->lines.lock);
}

void crt_channel_lines_stats(CrtChannel *ch, CrtStat *out, guint *n)
{
    g_mutex_lock(&ch->lines.lock);
    if (ch->lines.watched) {
#define STAT(k, v, h) out[(*n)++] = (CrtStat){k, (guint64)(v), TRUE, h}
        STAT("line_changes", ch->lines.changes, "Changes of CTS, DSR, DCD and RI seen.");
        STAT("line_breaks", ch->lines.breaks, "Breaks received, as line events.");
        STAT("line_framing", ch->lines.framing, "Framing errors, as line events.");
        STAT("line_parity", ch->lines.parity, "Parity errors, as line events.");
        STAT("line_overruns", ch->lines.overruns, "Overruns, as line events.");
#undef STAT
    }
    g_mutex_unlock(&ch->lines.lock);
}

/* ---- reading ------------------------------------------------------------ */

int crt_channel_lines_read(CrtChannel *ch, char **text, GError **error)
{
    CrtTarget *t;
    GError *err = NULL;
    guint lines = 0;
    int r;

    *text = NULL;
    g_mutex_lock(&ch->now.lock);
    t = ch->now.target ? crt_target_ref(ch->now.target) : NULL;
    g_mutex_unlock(&ch->now.lock);
    if (!t)
        return crt_channel_failf(ch, error, EDESTADDRREQ,
                                 "lines: no target is set (write one to `target`)");
    r = crt_target_lines_get(t, &lines, &err);
    crt_target_unref(t);
    if (r < 0) {
        g_prefix_error(&err, "lines: ");
        return crt_channel_fail(ch, error, -r, err);
    }
    /* One line of NAME=0|1 words: `read` and awk take it apart. */
    *text = g_strdup_printf("dtr=%d rts=%d cts=%d dsr=%d dcd=%d ri=%d\n",
                            !!(lines & CRT_LINE_DTR), !!(lines & CRT_LINE_RTS),
                            !!(lines & CRT_LINE_CTS), !!(lines & CRT_LINE_DSR),
                            !!(lines & CRT_LINE_DCD), !!(lines & CRT_LINE_RI));
    return 0;
}

/* ---- sequences ---------------------------------------------------------- */

/* Run `seq` on the current target; ctl.lock held (the target and engine
 * stay). */
static int run_locked(CrtChannel *ch, const CrtLineSeq *seq, GCancellable *cancel,
                      GError **error)
{
    CrtEngine *e =
        ch->now.engine && crt_engine_has_target(ch->now.engine) ? ch->now.engine : NULL;

    return crt_line_seq_run(ch->now.target, seq, e, cancel, error);
}

typedef struct {
    const char *text;
    GCancellable *cancel;
} WriteArg;

static int write_locked(CrtChannel *ch, gconstpointer data, GError **error)
{
    const WriteArg *a = data;
    CrtLineSeq *seq;
    GError *err = NULL;
    gboolean shutting;
    int r;

    if ((r = crt_line_seq_parse(a->text, &seq, &err)) < 0) {
        g_prefix_error(&err, "lines: ");
        return crt_channel_fail(ch, error, -r, err);
    }
    if (!ch->now.target) {
        crt_line_seq_free(seq);
        return crt_channel_failf(ch, error, EDESTADDRREQ,
                                 "lines: no target is set (write one to `target`)");
    }
    r = run_locked(ch, seq, a->cancel, &err);
    crt_line_seq_free(seq);
    g_mutex_lock(&ch->lines.lock);
    shutting = ch->lines.shutting;
    g_mutex_unlock(&ch->lines.lock);
    if (r == -ECANCELED && shutting) {
        g_clear_error(&err);
        return crt_channel_failf(ch, error, ENODEV,
                                 "lines: the target is being removed (sequence stopped)");
    }
    if (r < 0) {
        g_prefix_error(&err, "lines: ");
        return crt_channel_fail(ch, error, -r, err);
    }
    return 0;
}

int crt_channel_lines_write(CrtChannel *ch, const char *text, GCancellable *cancel,
                            GError **error)
{
    GCancellable *own = cancel ? g_object_ref(cancel) : g_cancellable_new();
    WriteArg a = {text, own};
    char *done = g_strstrip(g_strdup(text));
    char *msg = g_strdup_printf("lines %s", done);
    int r;

    /* rmdir and unmount stop a running sequence rather than wait for it. */
    g_mutex_lock(&ch->lines.lock);
    if (ch->lines.shutting)
        g_cancellable_cancel(own);
    ch->lines.running = g_slist_prepend(ch->lines.running, own);
    g_mutex_unlock(&ch->lines.lock);
    r = crt_channel_control(ch, write_locked, &a, msg, error);
    g_mutex_lock(&ch->lines.lock);
    ch->lines.running = g_slist_remove(ch->lines.running, own);
    g_mutex_unlock(&ch->lines.lock);
    g_object_unref(own);
    g_free(msg);
    g_free(done);
    return r;
}

void crt_channel_lines_cancel_all(CrtChannel *ch)
{
    g_mutex_lock(&ch->lines.lock);
    ch->lines.shutting = TRUE;
    for (GSList *l = ch->lines.running; l; l = l->next)
        g_cancellable_cancel(l->data);
    g_mutex_unlock(&ch->lines.lock);
}

/* on_open or on_close (`key`, its text `text`): a failure is logged and
 * shown on the `error:` line, and the stream goes on. */
static void run_hook_locked(CrtChannel *ch, const char *key, const char *text)
{
    CrtLineSeq *seq = NULL;
    GError *err = NULL;
    int r;

    if (!text || !text[0] || !ch->now.target)
        return;
    r = crt_line_seq_parse(text, &seq, &err);
    if (r == 0)
        r = run_locked(ch, seq, NULL, &err);
    crt_line_seq_free(seq);
    if (r == 0) {
        crt_channel_log_event(&ch->log, FALSE, "%s: %s", key, text);
        return;
    }
    g_prefix_error(&err, "%s: ", key);
    crt_channel_log_set_error(&ch->log, err->message);
    crt_channel_log_event(&ch->log, TRUE, "%s", err->message);
    g_error_free(err);
}

void crt_channel_lines_open_locked(CrtChannel *ch)
{
    if (ch->ctl.opened || !ch->now.target)
        return;
    ch->ctl.opened = TRUE;
    run_hook_locked(ch, "on_open", ch->ctl.cfg.on_open);
}

void crt_channel_lines_close_locked(CrtChannel *ch)
{
    gboolean dead;

    if (!ch->ctl.opened)
        return;
    ch->ctl.opened = FALSE;
    g_mutex_lock(&ch->now.lock);
    dead = ch->now.target_dead;
    g_mutex_unlock(&ch->now.lock);
    /* A stream that ended by itself has nobody left to say goodbye to. */
    if (!dead)
        run_hook_locked(ch, "on_close", ch->ctl.cfg.on_close);
}
