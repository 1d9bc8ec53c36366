/* crtfs unit tests - a target directory's modem lines without FUSE
 * (daemon/channel-lines.c) on the simulator's UART: the `lines` text, a
 * sequence run as a control operation, the line events as entries of the
 * hub and line_* counters, on_open/on_close around a stream, a cancelled
 * sequence, and the refusals without a target and without lines. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "channel-fixture.h"

static char *lines_text(Chan *c)
{
    GError *error = NULL;
    char *text = NULL;

    g_assert_cmpint(crt_channel_lines_read(c->ch, &text, &error), ==, 0);
    g_assert_no_error(error);
    return text;
}

#define ASSERT_LINES(c, want)                                                            \
    do {                                                                                 \
        char *lines_ = lines_text(c);                                                    \
        g_assert_cmpstr(lines_, ==, (want));                                             \
        g_free(lines_);                                                                  \
    } while (0)

static void lines_ok(Chan *c, const char *seq)
{
    GError *error = NULL;

    g_assert_cmpint(crt_channel_lines_write(c->ch, seq, NULL, &error), ==, 0);
    g_assert_no_error(error);
}

/* A sequence's changes arrive as entries without data, in order, counted. */
static void test_events(void)
{
    Chan c;
    CrtHubReader *r;
    GArray *recs;
    static const char *const want[] = {"line:cts=0", "line:dsr=0", "line:dcd=0",
                                       "line:parity+2", "line:break+1"};

    chan_open(&c);
    target_ok(&c, "sim:uart");
    r = crt_hub_reader_new(crt_channel_hub(c.ch), TRUE);
    ASSERT_LINES(&c, "dtr=1 rts=1 cts=1 dsr=1 dcd=1 ri=0\n");
    lines_ok(&c, "rts=0 wait=5ms dtr=0 inject=parity*2 break=10ms");
    ASSERT_LINES(&c, "dtr=0 rts=0 cts=0 dsr=0 dcd=0 ri=0\n");
    recs = read_records(&c, r, G_N_ELEMENTS(want));
    g_assert_cmpuint(recs->len, ==, G_N_ELEMENTS(want));
    for (guint i = 0; i < recs->len; i++) {
        g_assert_cmpstr(rec_at(recs, i)->status, ==, want[i]);
        g_assert_cmpuint(rec_at(recs, i)->length, ==, 0);
        g_assert_cmpuint(rec_at(recs, i)->seq, ==, i + 1);
    }
    g_assert_cmpuint(stat_of(&c, "line_changes"), ==, 3);
    g_assert_cmpuint(stat_of(&c, "line_parity"), ==, 2);
    g_assert_cmpuint(stat_of(&c, "line_breaks"), ==, 1);
    g_assert_cmpuint(stat_of(&c, "last_seq"), ==, 5);
    g_array_free(recs, TRUE);
    crt_hub_reader_free(r);
    chan_close(&c);
}

/* on_open at start, on_close at stop (and before a new target). */
static void test_hooks(void)
{
    Chan c;

    chan_open(&c);
    target_ok(&c, "sim:uart");
    config_ok(&c, "on_open", "dtr=0 rts=1");
    config_ok(&c, "on_close", "rts=0");
    ASSERT_LINES(&c, "dtr=1 rts=1 cts=1 dsr=1 dcd=1 ri=0\n");
    ctl_ok(&c, "start");
    ASSERT_LINES(&c, "dtr=0 rts=1 cts=1 dsr=0 dcd=0 ri=0\n");
    ctl_ok(&c, "stop");
    ASSERT_LINES(&c, "dtr=0 rts=0 cts=0 dsr=0 dcd=0 ri=0\n");
    /* Stopped again: no second on_close. */
    lines_ok(&c, "rts=1");
    ctl_ok(&c, "stop");
    ASSERT_LINES(&c, "dtr=0 rts=1 cts=1 dsr=0 dcd=0 ri=0\n");
    /* Automatic mode starts on the new target: on_open there.  (mode
     * changes only once the stop is complete.) */
    TU_WAIT_FOR(state_is(&c, "stopped"));
    config_ok(&c, "mode", "automatic");
    config_ok(&c, "on_open", "dtr=1 rts=0");
    target_ok(&c, "sim:uart");
    TU_WAIT_FOR(state_is(&c, "streaming"));
    ASSERT_LINES(&c, "dtr=1 rts=0 cts=0 dsr=1 dcd=1 ri=0\n");
    chan_close(&c);
}

static gpointer cancel_soon(gpointer data)
{
    g_usleep(50 * 1000);
    g_cancellable_cancel(data);
    return NULL;
}

/* A cancelled sequence stops where it is; without a target, and on a
 * target without lines, the refusals say why. */
static void test_cancel_and_refusals(void)
{
    Chan c;
    GCancellable *cancel = g_cancellable_new();
    GThread *th;
    GError *error = NULL;
    char *text = NULL;

    chan_open(&c);
    g_assert_cmpint(crt_channel_lines_read(c.ch, &text, &error), ==, -EDESTADDRREQ);
    g_assert_null(text);
    g_clear_error(&error);
    g_assert_cmpint(crt_channel_lines_write(c.ch, "dtr=1", NULL, &error), ==,
                    -EDESTADDRREQ);
    g_clear_error(&error);
    target_ok(&c, "sim:uart");
    th = g_thread_new("cancel", cancel_soon, cancel);
    g_assert_cmpint(crt_channel_lines_write(c.ch, "rts=0 wait=5s rts=1", cancel, &error),
                    ==, -ECANCELED);
    g_assert_nonnull(strstr(error->message, "word 2 \"wait=5s\": interrupted"));
    g_clear_error(&error);
    g_thread_join(th);
    ASSERT_LINES(&c, "dtr=1 rts=0 cts=0 dsr=1 dcd=1 ri=0\n");
    g_assert_cmpint(crt_channel_lines_write(c.ch, "rts=1 cts=1", NULL, &error), ==,
                    -EINVAL);
    ASSERT_ERROR_LINE(&c, "lines: word 2 \"cts=1\"");
    g_clear_error(&error);
    ASSERT_LINES(&c, "dtr=1 rts=0 cts=0 dsr=1 dcd=1 ri=0\n"); /* nothing ran */
    target_ok(&c, "sim:records");
    g_assert_cmpint(crt_channel_lines_read(c.ch, &text, &error), ==, -ENOTTY);
    ASSERT_ERROR_LINE(&c, "lines: sim:records is a simulator without a UART");
    g_clear_error(&error);
    g_object_unref(cancel);
    chan_close(&c);
}

static const TuCase cases[] = {
    {"/channel/lines/events", test_events},
    {"/channel/lines/hooks", test_hooks},
    {"/channel/lines/cancel-and-refusals", test_cancel_and_refusals},
};

int main(int argc, char **argv)
{
    return tu_run_isolated(&argc, &argv, cases, G_N_ELEMENTS(cases), TU_CASE_TIMEOUT_S);
}
