/* crtfs tests - the message framer (lib/targets/framer.c): where a message
 * ends for each split mode, fed the way the fd driver feeds it (a few bytes
 * at a time, delimiters across feeds, the maximum size), the idle gap in
 * characters, and the text form of a split (crt_split_parse, good and bad
 * inputs with their messages, and crt_split_to_string back).
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "framer.h"
#include "testutil.h"

static CrtSplit split_of(const char *text)
{
    CrtSplit s = {0};
    GError *error = NULL;

    g_assert_cmpint(crt_split_parse(text, &s, &error), ==, 0);
    g_assert_no_error(error);
    return s;
}

/* Feed `data` in pieces of `step` bytes into one message; the verdict of
 * the feed that ended it (or MORE) and *end. */
static CrtFrameVerdict feed_steps(CrtFramer *f, const char *data, size_t len, size_t step,
                                  size_t *end)
{
    CrtFrameVerdict v = CRT_FRAME_MORE;

    for (size_t got = 0; got < len && v == CRT_FRAME_MORE;) {
        got = MIN(got + step, len);
        v = crt_framer_feed(f, (const guint8 *)data, got, end);
    }
    return v;
}

static void test_none_ends_at_once(void)
{
    CrtSplit s = {0};
    CrtFramer f;
    size_t end = 99;

    crt_framer_start(&f, &s, 64);
    g_assert_cmpint(crt_framer_feed(&f, NULL, 0, &end), ==, CRT_FRAME_MORE);
    g_assert_cmpuint(end, ==, 0);
    g_assert_cmpint(crt_framer_feed(&f, (const guint8 *)"abc", 3, &end), ==,
                    CRT_FRAME_END);
    g_assert_cmpuint(end, ==, 3);
}

static void test_delim_single(void)
{
    CrtSplit s = split_of("delim=\\n");
    CrtFramer f;
    size_t end;

    crt_framer_start(&f, &s, 64);
    g_assert_cmpint(crt_framer_feed(&f, (const guint8 *)"abc", 3, &end), ==,
                    CRT_FRAME_MORE);
    g_assert_cmpint(crt_framer_feed(&f, (const guint8 *)"abc\nde", 6, &end), ==,
                    CRT_FRAME_END);
    g_assert_cmpuint(end, ==, 4); /* the delimiter is kept, "de" is the next message */
}

static void test_delim_at_buffer_end(void)
{
    CrtSplit s = split_of("delim=\\n");
    CrtFramer f;
    size_t end;

    crt_framer_start(&f, &s, 4);
    g_assert_cmpint(crt_framer_feed(&f, (const guint8 *)"abc\n", 4, &end), ==,
                    CRT_FRAME_END);
    g_assert_cmpuint(end, ==, 4); /* a delimiter at the last byte is an end, not a cut */
}

static void test_delim_first_byte(void)
{
    CrtSplit s = split_of("delim=\\n");
    CrtFramer f;
    size_t end;

    crt_framer_start(&f, &s, 16);
    g_assert_cmpint(crt_framer_feed(&f, (const guint8 *)"\n\n", 2, &end), ==,
                    CRT_FRAME_END);
    g_assert_cmpuint(end, ==, 1); /* an empty line is a message of one byte */
}

/* A two-byte delimiter split across every possible pair of feeds. */
static void test_delim_straddles_feeds(void)
{
    CrtSplit s = split_of("delim=\\r\\n");
    const char *data = "hello\r\nnext";

    for (size_t cut = 1; cut < strlen(data); cut++) {
        CrtFramer f;
        size_t end = 0;
        CrtFrameVerdict v;

        crt_framer_start(&f, &s, 64);
        v = crt_framer_feed(&f, (const guint8 *)data, cut, &end);
        if (cut < 7) {
            g_assert_cmpint(v, ==, CRT_FRAME_MORE);
            v = crt_framer_feed(&f, (const guint8 *)data, strlen(data), &end);
        }
        g_assert_cmpint(v, ==, CRT_FRAME_END);
        g_assert_cmpuint(end, ==, 7);
    }
}

static void test_delim_one_byte_at_a_time(void)
{
    CrtSplit s = split_of("delim=0x7e7e");
    CrtFramer f;
    size_t end;

    crt_framer_start(&f, &s, 64);
    g_assert_cmpint(feed_steps(&f, "ab~c~~d", 7, 1, &end), ==, CRT_FRAME_END);
    g_assert_cmpuint(end, ==, 6);
}

/* A 16-byte delimiter, fed 3 bytes at a time. */
static void test_delim_long(void)
{
    CrtSplit s = split_of("delim=0123456789abcdef");
    const char *data = "xx0123456789abcde0123456789abcdefyy";
    CrtFramer f;
    size_t end;

    g_assert_cmpuint(s.delim_len, ==, 16);
    crt_framer_start(&f, &s, 64);
    g_assert_cmpint(feed_steps(&f, data, strlen(data), 3, &end), ==, CRT_FRAME_END);
    g_assert_cmpuint(end, ==, strlen(data) - 2);
}

static void test_delim_max_size_cut(void)
{
    CrtSplit s = split_of("delim=\\n");
    CrtFramer f;
    size_t end;

    s.max_size = 5;
    crt_framer_start(&f, &s, 64);
    g_assert_cmpuint(f.max, ==, 5);
    g_assert_cmpint(feed_steps(&f, "abcdefg\n", 8, 2, &end), ==, CRT_FRAME_CUT_SIZE);
    g_assert_cmpuint(end, ==, 5);
    /* the buffer is the limit when max_size is 0 or larger */
    s.max_size = 0;
    crt_framer_start(&f, &s, 3);
    g_assert_cmpuint(f.max, ==, 3);
    s.max_size = 100;
    crt_framer_start(&f, &s, 3);
    g_assert_cmpuint(f.max, ==, 3);
}

static void test_length(void)
{
    CrtSplit s = split_of("length=4");
    CrtFramer f;
    size_t end;

    crt_framer_start(&f, &s, 64);
    g_assert_cmpint(crt_framer_feed(&f, (const guint8 *)"abc", 3, &end), ==,
                    CRT_FRAME_MORE);
    g_assert_cmpint(crt_framer_feed(&f, (const guint8 *)"abcd", 4, &end), ==,
                    CRT_FRAME_END);
    g_assert_cmpuint(end, ==, 4);
    crt_framer_start(&f, &s, 64);
    g_assert_cmpint(crt_framer_feed(&f, (const guint8 *)"abcdefghij", 10, &end), ==,
                    CRT_FRAME_END);
    g_assert_cmpuint(end, ==, 4); /* the rest is the next messages */
}

static void test_length_over_max(void)
{
    CrtSplit s = split_of("length=10");
    CrtFramer f;
    size_t end;

    crt_framer_start(&f, &s, 6);
    g_assert_cmpint(feed_steps(&f, "0123456789", 10, 4, &end), ==, CRT_FRAME_CUT_SIZE);
    g_assert_cmpuint(end, ==, 6);
}

static void test_idle_only_cut_by_size(void)
{
    CrtSplit s = split_of("idle=20ms");
    CrtFramer f;
    size_t end;

    crt_framer_start(&f, &s, 8);
    g_assert_cmpint(crt_framer_feed(&f, (const guint8 *)"abc", 3, &end), ==,
                    CRT_FRAME_MORE);
    g_assert_cmpint(feed_steps(&f, "abcdefgh", 8, 1, &end), ==, CRT_FRAME_CUT_SIZE);
    g_assert_cmpuint(end, ==, 8);
}

static void test_idle_in_characters(void)
{
    CrtSplit s = split_of("idle=3.5char");

    g_assert_cmpuint(s.idle_tenths, ==, 35);
    /* 3.5 characters of 11 bits at 9600 baud: 4010.4 us, rounded up */
    g_assert_cmpint(crt_framer_idle_us(&s, 9600, 11), ==, 4011);
    /* at 115200 baud, 10-bit characters: 303.8 us, below the 1 ms floor */
    g_assert_cmpint(crt_framer_idle_us(&s, 115200, 10), ==, CRT_SPLIT_IDLE_FLOOR_US);
    /* not a tty: 9600 baud, 10 bits */
    g_assert_cmpint(crt_framer_idle_us(&s, 0, 0), ==, 3646);
    s = split_of("idle=30ms");
    g_assert_cmpint(crt_framer_idle_us(&s, 9600, 10), ==, 30000);
    s = split_of("delim=\\n");
    g_assert_cmpint(crt_framer_idle_us(&s, 9600, 10), ==, 0);
    g_assert_cmpint(crt_framer_wait_us(&s), ==, CRT_SPLIT_DEFAULT_WAIT_MS * 1000);
    s.max_wait_ms = 5;
    g_assert_cmpint(crt_framer_wait_us(&s), ==, 5000);
}

/* ---- the text form ---------------------------------------------------- */

static void test_parse_good(void)
{
    static const struct {
        const char *text, *back;
    } cases[] = {
        {"none", "none"},
        {"idle=20ms", "idle=20ms"},
        {"idle=1500us", "idle=1500us"},
        {"idle=2s", "idle=2s"},
        {"idle=1000us", "idle=1ms"},
        {"idle=3.5char", "idle=3.5char"},
        {"idle=2char", "idle=2char"},
        {"idle=0.1char", "idle=0.1char"},
        {"delim=\\n", "delim=\\n"},
        {"delim=\\r\\n", "delim=\\r\\n"},
        {"delim=0x7e", "delim=~"},
        {"delim=\\x02", "delim=\\x02"},
        {"delim=0x0D0A", "delim=\\r\\n"},
        {"delim=END", "delim=END"},
        {"delim=\\x20", "delim=\\x20"},
        {"delim=\\\\", "delim=\\\\"},
        {"delim=\\0", "delim=\\x00"},
        {"length=16", "length=16"},
        {"  length=1\n", "length=1"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        CrtSplit s = split_of(cases[i].text), again;
        char *back = crt_split_to_string(&s);

        g_assert_cmpstr(back, ==, cases[i].back);
        again = split_of(back);
        g_assert_cmpmem(&again, sizeof again, &s, sizeof s);
        g_free(back);
    }
}

static void test_parse_keeps_limits(void)
{
    CrtSplit s = {.max_size = 100, .max_wait_ms = 250};
    GError *error = NULL;

    g_assert_cmpint(crt_split_parse("delim=\\n", &s, &error), ==, 0);
    g_assert_cmpuint(s.max_size, ==, 100);
    g_assert_cmpuint(s.max_wait_ms, ==, 250);
    g_assert_cmpuint(s.delim_len, ==, 1);
    g_assert_cmpuint(s.delim[0], ==, '\n');
}

static void test_parse_bad(void)
{
    static const struct {
        const char *text, *says;
    } cases[] = {
        {"", "\"\" is not a split (none, idle=DURATION, idle=Nchar, delim=BYTES or length=N)"},
        {"lines", "\"lines\" is not a split"},
        {"idle=", "\"idle=\" is not an idle gap from 1ms to 60s"},
        {"idle=20", "is not an idle gap from 1ms to 60s"},
        {"idle=500us", "is not an idle gap from 1ms to 60s"},
        {"idle=0ms", "is not an idle gap from 1ms to 60s"},
        {"idle=61s", "is not an idle gap from 1ms to 60s"},
        {"idle=-5ms", "is not an idle gap"},
        {"idle=3.55char", "with at most one decimal"},
        {"idle=0char", "0.1 to 1000 characters"},
        {"idle=1001char", "0.1 to 1000 characters"},
        {"idle=char", "0.1 to 1000 characters"},
        {"delim=", "\"delim=\" is not a delimiter: it is empty"},
        {"delim=\\q", "\"delim=\\\\q\" is not a delimiter: the escapes are"},
        {"delim=\\x2", "the escapes are"},
        {"delim=0x7", "in hex"},
        {"delim=0xzz", "in hex"},
        {"delim=0x00112233445566778899aabbccddeeff00", "in hex"},
        {"delim=01234567890123456", "at most 16 bytes"},
        {"length=0", "\"length=0\" is not a length from 1 to 1073741824 bytes"},
        {"length=x", "from 1 to 1073741824"},
        {"length=1073741825", "from 1 to 1073741824"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        CrtSplit s = split_of("length=7");
        GError *error = NULL;

        if (crt_split_parse(cases[i].text, &s, &error) != -EINVAL)
            g_error("\"%s\" was accepted", cases[i].text);
        g_assert_nonnull(error);
        if (!strstr(error->message, cases[i].says))
            g_error("%s: \"%s\" does not say \"%s\"", cases[i].text, error->message,
                    cases[i].says);
        g_assert_cmpuint(s.length, ==, 7); /* unchanged */
        g_assert_cmpint(s.mode, ==, CRT_SPLIT_LENGTH);
        g_error_free(error);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/framer/none-ends-at-once", test_none_ends_at_once);
    g_test_add_func("/framer/delim/single", test_delim_single);
    g_test_add_func("/framer/delim/at-buffer-end", test_delim_at_buffer_end);
    g_test_add_func("/framer/delim/first-byte", test_delim_first_byte);
    g_test_add_func("/framer/delim/straddles-feeds", test_delim_straddles_feeds);
    g_test_add_func("/framer/delim/one-byte-at-a-time", test_delim_one_byte_at_a_time);
    g_test_add_func("/framer/delim/long", test_delim_long);
    g_test_add_func("/framer/delim/max-size-cut", test_delim_max_size_cut);
    g_test_add_func("/framer/length/exact-and-over", test_length);
    g_test_add_func("/framer/length/over-max", test_length_over_max);
    g_test_add_func("/framer/idle/only-cut-by-size", test_idle_only_cut_by_size);
    g_test_add_func("/framer/idle/in-characters", test_idle_in_characters);
    g_test_add_func("/split/parse/good", test_parse_good);
    g_test_add_func("/split/parse/keeps-limits", test_parse_keeps_limits);
    g_test_add_func("/split/parse/bad", test_parse_bad);
    return g_test_run();
}
