/* crtfs tests - modem-line sequences (crt_line_seq_*): what the parser
 * takes and refuses (the word and its position named), the bounds, and a
 * run: waits that take their time, a cancel that cuts a wait short, and a
 * step that fails on a target without lines naming its word.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "target-fixture.h"

static CrtLineSeq *parse_ok(const char *text)
{
    CrtLineSeq *seq = NULL;
    GError *error = NULL;

    g_assert_cmpint(crt_line_seq_parse(text, &seq, &error), ==, 0);
    g_assert_no_error(error);
    g_assert_nonnull(seq);
    return seq;
}

/* Parse `text`, expect EINVAL, and check the message holds `needle`. */
static void parse_fails(const char *text, const char *needle)
{
    CrtLineSeq *seq = (CrtLineSeq *)&seq;
    GError *error = NULL;

    g_assert_cmpint(crt_line_seq_parse(text, &seq, &error), ==, -EINVAL);
    g_assert_null(seq);
    g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
    if (!strstr(error->message, needle))
        g_error("\"%s\": message \"%s\" lacks \"%s\"", text, error->message, needle);
    g_error_free(error);
}

static void test_parse_words(void)
{
    CrtLineSeq *seq = parse_ok("dtr=0 rts=1 wait=100ms dtr=1 break=250ms send=AT\\r\\n "
                               "inject=framing*3 inject=break wait=2s\n");

    g_assert_cmpuint(crt_line_seq_words(seq), ==, 9);
    g_assert_cmpuint(crt_line_seq_duration_ms(seq), ==, 100 + 250 + 2000);
    g_assert_true(crt_line_seq_sends(seq));
    crt_line_seq_free(seq);
    seq = parse_ok("  DTR=1\tRts=0  ");
    g_assert_cmpuint(crt_line_seq_words(seq), ==, 2);
    g_assert_false(crt_line_seq_sends(seq));
    crt_line_seq_free(seq);
    seq = parse_ok("");
    g_assert_cmpuint(crt_line_seq_words(seq), ==, 0);
    crt_line_seq_free(seq);
}

static void test_parse_refusals(void)
{
    parse_fails("dtr=2", "word 1 \"dtr=2\": a line is set to 0 or 1");
    parse_fails("dtr=1 cts=1", "word 2 \"cts=1\": CTS, DSR, DCD and RI are inputs");
    parse_fails("rts=1 wait=100 dtr=0", "word 2 \"wait=100\": a duration");
    parse_fails("wait=0ms", "word 1 \"wait=0ms\"");
    parse_fails("wait=1min", "word 1");
    parse_fails("wait=11s", "word 1 \"wait=11s\"");
    parse_fails("wait=6s break=3s wait=2s",
                "word 3 \"wait=2s\": the waits and breaks add "
                "up to 11000 ms");
    parse_fails("frob=1", "word 1 \"frob=1\": the words are");
    parse_fails("dtr", "word 1 \"dtr\": a word is KEY=VALUE");
    parse_fails("send=", "nothing to send");
    parse_fails("send=a\\q", "an escape is");
    parse_fails("send=\\x4", "an escape is");
    parse_fails("inject=sparks", "word 1 \"inject=sparks\"");
    parse_fails("inject=parity*0", "inject=");
    parse_fails("inject=parity*1001", "inject=");
}

static void test_parse_bounds(void)
{
    GString *s = g_string_new(NULL);
    char *big;

    for (int i = 0; i < CRT_LINE_SEQ_MAX_WORDS; i++)
        g_string_append(s, i % 2 ? "dtr=1 " : "dtr=0 ");
    crt_line_seq_free(parse_ok(s->str));
    g_string_append(s, "rts=1");
    parse_fails(s->str, "word 65 \"rts=1\": a sequence has at most 64 words");
    g_string_free(s, TRUE);
    big = g_strnfill(CRT_LINE_SEQ_MAX_SEND + 1, 'x');
    s = g_string_new("send=");
    g_string_append(s, big);
    parse_fails(s->str, "more than 4096 bytes");
    g_string_free(s, TRUE);
    g_free(big);
    crt_line_seq_free(parse_ok("wait=10s"));
    crt_line_seq_free(parse_ok("wait=9999ms break=1ms"));
}

/* Waits take their time, on any target (they touch no line). */
static void test_run_waits(void)
{
    CrtTarget *t = open_ok("sim:records");
    CrtLineSeq *seq = parse_ok("wait=60ms wait=60ms");
    gint64 t0 = g_get_monotonic_time();

    g_assert_cmpint(crt_line_seq_run(t, seq, NULL, NULL, NULL), ==, 0);
    g_assert_cmpint(g_get_monotonic_time() - t0, >=, 120 * 1000);
    crt_line_seq_free(seq);
    crt_target_unref(t);
}

static gpointer cancel_later(gpointer data)
{
    g_usleep(100 * 1000);
    g_cancellable_cancel(data);
    return NULL;
}

/* A cancel cuts a wait short and stops the rest: ECANCELED, word named. */
static void test_run_cancel(void)
{
    CrtTarget *t = open_ok("sim:records");
    CrtLineSeq *seq = parse_ok("wait=5s wait=5s");
    GCancellable *cancel = g_cancellable_new();
    GThread *th = g_thread_new("cancel", cancel_later, cancel);
    GError *error = NULL;
    gint64 t0 = g_get_monotonic_time();

    g_assert_cmpint(crt_line_seq_run(t, seq, NULL, cancel, &error), ==, -ECANCELED);
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 4 * G_USEC_PER_SEC);
    g_assert_nonnull(strstr(error->message, "word 1 \"wait=5s\": interrupted"));
    g_clear_error(&error);
    g_thread_join(th);
    /* Cancelled before it starts: nothing runs. */
    g_assert_cmpint(crt_line_seq_run(t, seq, NULL, cancel, NULL), ==, -ECANCELED);
    g_object_unref(cancel);
    crt_line_seq_free(seq);
    crt_target_unref(t);
}

/* A target without lines: the failing word is named with the reason; a
 * sequence that sends needs an engine. */
static void test_run_no_lines(void)
{
    Pty pty;
    CrtTarget *t;
    CrtLineSeq *seq;
    GError *error = NULL;

    pty_open(&pty);
    t = open_ok(pty.slave);
    seq = parse_ok("wait=1ms dtr=1 rts=0");
    g_assert_cmpint(crt_line_seq_run(t, seq, NULL, NULL, &error), ==, -ENOTTY);
    assert_contains(error->message, "word 2 \"dtr=1 rts=0\": ");
    assert_contains(error->message, "no modem lines");
    g_clear_error(&error);
    crt_line_seq_free(seq);
    seq = parse_ok("send=hi");
    g_assert_cmpint(crt_line_seq_run(t, seq, NULL, NULL, &error), ==, -EDESTADDRREQ);
    g_clear_error(&error);
    crt_line_seq_free(seq);
    crt_target_unref(t);
    pty_close(&pty);
}

int main(int argc, char **argv)
{
    target_tests_init(&argc, &argv);
    g_test_add_func("/line-seq/parse/words", test_parse_words);
    g_test_add_func("/line-seq/parse/refusals", test_parse_refusals);
    g_test_add_func("/line-seq/parse/bounds", test_parse_bounds);
    g_test_add_func("/line-seq/run/waits", test_run_waits);
    g_test_add_func("/line-seq/run/cancel", test_run_cancel);
    g_test_add_func("/line-seq/run/no-lines", test_run_no_lines);
    return target_tests_run();
}
