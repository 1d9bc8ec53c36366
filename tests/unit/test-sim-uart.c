/* crtfs tests - the simulator's UART (sim:uart): bytes looped back at the
 * line's rate, modem lines looping back, break, injected errors, line
 * events in order, and the refusals of targets without a UART. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <crtfs/crtfs.h>

#include "testutil.h"

static void test_spec(void)
{
    CrtTargetSpec spec;
    GError *error = NULL;

    g_assert_cmpint(crt_target_spec_parse("sim:uart baud=9600", &spec, NULL), ==, 0);
    g_assert_cmpint(spec.sim_gen, ==, CRT_SIM_GEN_UART);
    g_assert_cmpuint(spec.baud, ==, 9600);
    crt_target_spec_clear(&spec);
    g_assert_cmpint(crt_target_spec_parse("sim:records baud=9600", &spec, &error), ==,
                    -EINVAL);
    g_assert_nonnull(strstr(error->message, "applies to sim:uart"));
    g_clear_error(&error);
    g_assert_cmpint(crt_target_spec_parse("sim:modem", &spec, &error), ==, -EINVAL);
    g_assert_nonnull(strstr(error->message, "echo or uart"));
    g_clear_error(&error);
}

/* What is written comes back, in order, no sooner than the line's speed
 * allows (the bound below the model cannot beat, so it holds on a loaded
 * machine); a write returns once the line has taken its bytes, as a tty's
 * does. */
static void test_loopback_rate(TuEngine *f, gconstpointer data)
{
    char msg[96], got[96];
    size_t have = 0, n;
    gint64 t0, done;

    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (char)('A' + i % 26);
    f->cfg.request_count = 1;
    tu_engine_open(f, "sim:uart baud=9600"); /* 960 bytes/s */
    t0 = g_get_monotonic_time();
    g_assert_cmpint(crt_engine_send_sync(f->engine, msg, sizeof msg, NULL, 0,
                                         CRT_REQUEST_WRITE, 0, 5000, &n),
                    ==, 0);
    g_assert_cmpuint(n, ==, sizeof msg);
    while (have < sizeof msg) {
        g_assert_cmpint(crt_engine_send_sync(f->engine, NULL, 0, got + have,
                                             sizeof got - have, CRT_REQUEST_READ, 0, 5000,
                                             &n),
                        ==, 0);
        g_assert_cmpuint(n, >, 0);
        have += n;
    }
    done = g_get_monotonic_time();
    g_assert_cmpmem(got, have, msg, sizeof msg);
    /* 96 characters of 10 bits at 9600 baud: 100 ms on the wire. */
    g_assert_cmpint(done - t0, >=, 99000);
}

static void write_all(CrtEngine *e, const char *text)
{
    size_t n;

    g_assert_cmpint(crt_engine_send_sync(e, text, strlen(text), NULL, 0,
                                         CRT_REQUEST_WRITE, 0, 5000, &n),
                    ==, 0);
    g_assert_cmpuint(n, ==, strlen(text));
}

static char *read_one(CrtEngine *e)
{
    char buf[256];
    size_t n;

    g_assert_cmpint(
        crt_engine_send_sync(e, NULL, 0, buf, sizeof buf, CRT_REQUEST_READ, 0, 5000, &n),
        ==, 0);
    return g_strndup(buf, n);
}

static gpointer read_two(gpointer e)
{
    char **two = g_new0(char *, 3);

    two[0] = read_one(e);
    two[1] = read_one(e);
    return two;
}

/* The line is an ordinary descriptor to the fd driver: a split frames what
 * comes back, by delimiter and by the idle gap between bursts. */
static void test_split(TuEngine *f, gconstpointer data)
{
    CrtSplit split = {0};
    CrtTarget *t = tu_target_open("sim:uart baud=9600", f->loop);
    char *m;

    f->cfg.request_count = 1;
    f->engine = tu_engine_new(&f->cfg, NULL);
    g_assert_cmpint(crt_engine_io_target_set(f->engine, crt_target_ref(t)), ==, 0);
    g_assert_cmpint(crt_split_parse("delim=\\n", &split, NULL), ==, 0);
    crt_target_set_split(t, &split);
    write_all(f->engine, "one\ntwo\nthree\n");
    g_assert_cmpstr((m = read_one(f->engine)), ==, "one\n");
    g_free(m);
    g_assert_cmpstr((m = read_one(f->engine)), ==, "two\n");
    g_free(m);
    g_assert_cmpstr((m = read_one(f->engine)), ==, "three\n");
    g_free(m);
    /* Characters 1 ms apart stay one message; 200 ms of silence ends it. */
    g_assert_cmpint(crt_split_parse("idle=20ms", &split, NULL), ==, 0);
    crt_target_set_split(t, &split);
    {
        /* Timed where crtfs reads, so the reads wait while the line runs. */
        GThread *reader = g_thread_new("reader", read_two, f->engine);
        char **two;

        g_usleep(20000);
        write_all(f->engine, "AAAAAAAA");
        g_usleep(200000);
        write_all(f->engine, "BBBB");
        two = g_thread_join(reader);
        g_assert_cmpstr(two[0], ==, "AAAAAAAA");
        g_assert_cmpstr(two[1], ==, "BBBB");
        g_strfreev(two);
    }
    crt_target_unref(t);
}

/* RTS loops back to CTS, DTR to DSR and DCD; RI stays down; each change of
 * an input is one event, in the order the outputs changed. */
static void test_lines(TuEngine *f, gconstpointer data)
{
    CrtTarget *t = tu_target_open("sim:uart", f->loop);
    TuLineEvents seen;
    guint lines = 0;
    CrtLineEvent ev;

    tu_line_events_init(&seen);
    g_assert_cmpint(crt_target_lines_get(t, &lines, NULL), ==, 0);
    g_assert_cmpuint(lines, ==,
                     CRT_LINE_DTR | CRT_LINE_RTS | CRT_LINE_CTS | CRT_LINE_DSR |
                         CRT_LINE_DCD);
    g_assert_cmpint(crt_target_watch_lines(t, tu_line_events_record, &seen, NULL, NULL),
                    ==, 0);
    g_assert_cmpint(crt_target_lines_set(t, CRT_LINE_RTS, 0, NULL), ==, 0);
    g_assert_cmpint(crt_target_lines_get(t, &lines, NULL), ==, 0);
    g_assert_cmpuint(lines & (CRT_LINE_RTS | CRT_LINE_CTS), ==, 0);
    g_assert_cmpint(
        crt_target_lines_set(t, CRT_LINE_DTR | CRT_LINE_RTS, CRT_LINE_RTS, NULL), ==, 0);
    TU_WAIT_FOR(tu_line_events_count(&seen) == 4);
    ev = tu_line_events_at(&seen, 0);
    g_assert_cmpint(ev.kind, ==, CRT_LINE_EVENT_CHANGE);
    g_assert_cmpint(ev.line, ==, CRT_LINE_CTS);
    g_assert_false(ev.up);
    ev = tu_line_events_at(&seen, 1);
    g_assert_cmpint(ev.line, ==, CRT_LINE_CTS);
    g_assert_true(ev.up);
    ev = tu_line_events_at(&seen, 2);
    g_assert_cmpint(ev.line, ==, CRT_LINE_DSR);
    g_assert_false(ev.up);
    ev = tu_line_events_at(&seen, 3);
    g_assert_cmpint(ev.line, ==, CRT_LINE_DCD);
    g_assert_false(ev.up);
    g_assert_cmpint(ev.time_ns, >, 0);
    /* Setting a line to what it is changes nothing. */
    g_assert_cmpint(crt_target_lines_set(t, CRT_LINE_RTS, CRT_LINE_RTS, NULL), ==, 0);
    crt_target_unwatch_lines(t);
    g_assert_cmpuint(tu_line_events_count(&seen), ==, 4);
    /* Unwatched: no more events, and no thread left calling. */
    g_assert_cmpint(crt_target_lines_set(t, CRT_LINE_RTS, 0, NULL), ==, 0);
    g_assert_cmpuint(tu_line_events_count(&seen), ==, 4);
    crt_target_unref(t);
    tu_line_events_clear(&seen);
}

/* A break sent is a break received; injected errors are events with their
 * count and show in the tty counters. */
static void test_break_and_errors(TuEngine *f, gconstpointer data)
{
    CrtTarget *t = tu_target_open("sim:uart", f->loop);
    CrtTargetCounters c;
    TuLineEvents seen;
    gint64 t0;
    CrtLineEvent ev;

    tu_line_events_init(&seen);
    g_assert_cmpint(crt_target_watch_lines(t, tu_line_events_record, &seen, NULL, NULL),
                    ==, 0);
    t0 = g_get_monotonic_time();
    g_assert_cmpint(crt_target_send_break(t, 30, NULL), ==, 0);
    g_assert_cmpint(g_get_monotonic_time() - t0, >=, 30000);
    g_assert_cmpint(crt_target_line_inject(t, CRT_LINE_EVENT_FRAMING, 3, NULL), ==, 0);
    g_assert_cmpint(crt_target_line_inject(t, CRT_LINE_EVENT_PARITY, 1, NULL), ==, 0);
    g_assert_cmpint(crt_target_line_inject(t, CRT_LINE_EVENT_OVERRUN, 2, NULL), ==, 0);
    TU_WAIT_FOR(tu_line_events_count(&seen) == 4);
    ev = tu_line_events_at(&seen, 0);
    g_assert_cmpint(ev.kind, ==, CRT_LINE_EVENT_BREAK);
    g_assert_cmpuint(ev.count, ==, 1);
    ev = tu_line_events_at(&seen, 1);
    g_assert_cmpint(ev.kind, ==, CRT_LINE_EVENT_FRAMING);
    g_assert_cmpuint(ev.count, ==, 3);
    ev = tu_line_events_at(&seen, 2);
    g_assert_cmpint(ev.kind, ==, CRT_LINE_EVENT_PARITY);
    ev = tu_line_events_at(&seen, 3);
    g_assert_cmpint(ev.kind, ==, CRT_LINE_EVENT_OVERRUN);
    g_assert_cmpuint(ev.count, ==, 2);
    crt_target_get_counters(t, &c);
    g_assert_true(c.has_icount);
    g_assert_cmpuint(c.breaks, ==, 1);
    g_assert_cmpuint(c.framing, ==, 3);
    g_assert_cmpuint(c.parity, ==, 1);
    g_assert_cmpuint(c.overruns, ==, 2);
    /* The last unref ends the watch itself. */
    crt_target_unref(t);
    tu_line_events_clear(&seen);
}

/* Targets without a UART say so, in words; inputs cannot be set. */
static void test_refusals(TuEngine *f, gconstpointer data)
{
    CrtTarget *rec = tu_target_open("sim:records", f->loop);
    CrtTarget *uart = tu_target_open("sim:uart", f->loop);
    GError *error = NULL;
    TuLineEvents seen;
    guint lines;

    tu_line_events_init(&seen);
    g_assert_cmpint(crt_target_lines_get(rec, &lines, &error), ==, -ENOTTY);
    g_assert_nonnull(strstr(error->message, "use sim:uart"));
    g_clear_error(&error);
    g_assert_cmpint(crt_target_send_break(rec, 10, &error), ==, -ENOTTY);
    g_clear_error(&error);
    g_assert_cmpint(
        crt_target_watch_lines(rec, tu_line_events_record, &seen, NULL, &error), ==,
        -ENOTTY);
    g_clear_error(&error);
    g_assert_cmpint(crt_target_line_inject(rec, CRT_LINE_EVENT_BREAK, 1, &error), ==,
                    -EOPNOTSUPP);
    g_assert_nonnull(strstr(error->message, "sim:uart"));
    g_clear_error(&error);
    g_assert_cmpint(crt_target_lines_set(uart, CRT_LINE_CTS, 0, &error), ==, -EINVAL);
    g_assert_nonnull(strstr(error->message, "inputs"));
    g_clear_error(&error);
    g_assert_cmpint(crt_target_send_break(uart, 0, &error), ==, -EINVAL);
    g_clear_error(&error);
    g_assert_cmpint(crt_target_line_inject(uart, CRT_LINE_EVENT_CHANGE, 1, &error), ==,
                    -EINVAL);
    g_clear_error(&error);
    crt_target_unref(rec);
    crt_target_unref(uart);
    tu_line_events_clear(&seen);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/sim-uart/spec", test_spec);
    TU_TEST_ADD_ENGINE("/sim-uart/loopback-rate", test_loopback_rate);
    TU_TEST_ADD_ENGINE("/sim-uart/split", test_split);
    TU_TEST_ADD_ENGINE("/sim-uart/lines", test_lines);
    TU_TEST_ADD_ENGINE("/sim-uart/break-and-errors", test_break_and_errors);
    TU_TEST_ADD_ENGINE("/sim-uart/refusals", test_refusals);
    return g_test_run();
}
