/* crtfs tests - records.jsonl: the encoder of one entry's line
 * (daemon/jsonl.c), exactly, and a hub reader of the jsonl view (records
 * and stream framing, partial reads, replay, markers, its counters).
 *
 * The hub cases are fed by a real engine streaming `sim:counter`
 * (hub-fixture.h).  Each case runs in a child process with a time limit.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <crtfs/crtfs.h>

#include "hub-fixture.h"
#include "jsonl-read.h"
#include "jsonl.h"
#include "testutil.h"

/* ---- the encoder ----------------------------------------------------------- */

/* 2026-11-24T12:23:37.715732497Z */
#define SOME_TIME G_GINT64_CONSTANT(1795523017715732497)

static char *line_of(const char *status, const void *data, size_t length)
{
    CrtJsonlEntry e = {17, SOME_TIME, 123456789012, status, data, length};
    GString *s = g_string_new("left alone|");
    size_t n = crt_jsonl_append(s, &e);

    g_assert_cmpuint(n, ==, s->len - strlen("left alone|"));
    g_assert_true(g_str_has_prefix(s->str, "left alone|"));
    g_string_erase(s, 0, (gssize)strlen("left alone|"));
    return g_string_free(s, FALSE);
}

#define HEAD                                                                             \
    "{\"seq\":17,\"time\":\"2026-11-24T12:23:37.715732497Z\",\"mono_ns\":123456789012,"

static void test_encode_text(void)
{
    char *l = line_of("ok", "hello", 5);

    g_assert_cmpstr(l, ==, HEAD "\"status\":\"ok\",\"length\":5,\"text\":\"hello\"}\n");
    g_free(l);
}

/* The bytes JSON needs escaped, and DEL (a terminal would act on it). */
static void test_encode_escapes(void)
{
    static const char bytes[] = "a\0b\x1f\"\\\x7f\n\r\t\b\f\x01/";
    char *l = line_of("ok", bytes, sizeof bytes - 1);

    g_assert_cmpstr(
        l, ==,
        HEAD "\"status\":\"ok\",\"length\":14,"
             "\"text\":\"a\\u0000b\\u001f\\\"\\\\\\u007f\\n\\r\\t\\b\\f\\u0001/\"}\n");
    g_free(l);
}

/* Valid multibyte UTF-8 stays as it is. */
static void test_encode_utf8(void)
{
    static const char text[] = "gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80";
    char *l = line_of("ok", text, sizeof text - 1);
    char *want =
        g_strdup_printf(HEAD "\"status\":\"ok\",\"length\":%zu,\"text\":\"%s\"}\n",
                        sizeof text - 1, text);

    g_assert_cmpstr(l, ==, want);
    g_free(want);
    g_free(l);
}

/* What is not UTF-8 goes as base64: a lone 0xff, a sequence cut at the
 * end (the next buffer holds the rest), an overlong form, a surrogate, a
 * sequence a NUL cuts. */
static void test_encode_base64(void)
{
    static const struct {
        const char *bytes;
        size_t len;
        const char *b64;
    } cases[] = {
        {"\xff\x00\xfe", 3, "/wD+"},
        {"ab\xe2\x82", 4, "YWLigg=="},
        {"\xc0\xaf", 2, "wK8="},
        {"\xed\xa0\x80", 3, "7aCA"},
        {"\xe2\x00\x82\xac", 4, "4gCCrA=="},
        {"\xf4\x90\x80\x80", 4, "9JCAgA=="}, /* beyond U+10FFFF */
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *l = line_of("ok", cases[i].bytes, cases[i].len);
        char *want =
            g_strdup_printf(HEAD "\"status\":\"ok\",\"length\":%zu,\"base64\":\"%s\"}\n",
                            cases[i].len, cases[i].b64);

        g_assert_false(crt_jsonl_is_text(cases[i].bytes, cases[i].len));
        g_assert_cmpstr(l, ==, want);
        g_free(want);
        g_free(l);
    }
    g_assert_true(crt_jsonl_is_text("\0\0", 2));
    g_assert_true(crt_jsonl_is_text("", 0));
}

/* Entries without data: no payload key, the status word as `records`
 * shows it. */
static void test_encode_marker(void)
{
    char *l = line_of("line:cts=1", NULL, 0);

    g_assert_cmpstr(l, ==, HEAD "\"status\":\"line:cts=1\",\"length\":0}\n");
    g_free(l);
    l = line_of("ENODATA", NULL, 0);
    g_assert_cmpstr(l, ==, HEAD "\"status\":\"ENODATA\",\"length\":0}\n");
    g_free(l);
}

static void test_encode_time(void)
{
    static const struct {
        gint64 ns;
        const char *text;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000000000Z"},
        {1, "1970-01-01T00:00:00.000000001Z"},
        {-1, "1969-12-31T23:59:59.999999999Z"},
        {G_GINT64_CONSTANT(951782400000000000), "2000-02-29T00:00:00.000000000Z"},
        {SOME_TIME, "2026-11-24T12:23:37.715732497Z"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GString *s = g_string_new(NULL);

        crt_jsonl_time(s, cases[i].ns);
        g_assert_cmpstr(s->str, ==, cases[i].text);
        g_string_free(s, TRUE);
    }
}

/* Every byte value, in text and in base64, reads back as it was. */
static void test_encode_round_trip(void)
{
    guint8 all[256];

    for (int i = 0; i < 256; i++)
        all[i] = (guint8)i;
    for (size_t len = 0; len <= sizeof all; len += len < 130 ? 1 : 63) {
        for (int text = 0; text < 2; text++) {
            size_t n = text ? MIN(len, 128) : len; /* 0..127 is ASCII */
            CrtJsonlEntry e = {1, 0, 0, "ok", all, n};
            GString *s = g_string_new(NULL);
            JsonlLine l;
            char *problem;

            crt_jsonl_append(s, &e);
            problem = jsonl_read_line(s->str, s->len, &l);
            g_assert_cmpstr(problem, ==, NULL);
            g_assert_cmpuint(l.length, ==, n);
            g_assert_true(l.has_payload == (n > 0));
            if (n > 0) {
                g_assert_true(l.base64 == (n > 128));
                g_assert_cmpmem(l.payload->data, l.payload->len, all, n);
            }
            jsonl_line_clear(&l);
            g_string_free(s, TRUE);
        }
    }
}

/* ---- a hub reader of the jsonl view --------------------------------------- */

/* Split `buf` into lines and read each into `out` (JsonlLine); the bytes
 * after the last newline stay in `rest`. */
static void lines_feed(GByteArray *rest, GArray *out, const char *buf, size_t n)
{
    const char *nl;
    size_t start = 0;

    g_byte_array_append(rest, (const guint8 *)buf, (guint)n);
    while ((nl = memchr(rest->data + start, '\n', rest->len - start)) != NULL) {
        size_t len = (size_t)(nl - (const char *)rest->data) - start + 1;
        JsonlLine l;
        char *problem = jsonl_read_line((const char *)rest->data + start, len, &l);

        g_assert_cmpstr(problem, ==, NULL);
        g_array_append_val(out, l);
        start += len;
    }
    g_byte_array_remove_range(rest, 0, (guint)start);
}

/* The lines read so far are the counter stream's entries: seq from 1
 * without a gap, mono_ns never decreasing, and the payloads' counters
 * continuing 1, 2, 3 ... */
static void assert_counter_lines(GArray *lines)
{
    Counters c = {0};

    for (guint i = 0; i < lines->len; i++) {
        JsonlLine *l = &g_array_index(lines, JsonlLine, i);

        g_assert_cmpuint(l->seq, ==, i + 1);
        g_assert_cmpstr(l->status, ==, "ok");
        g_assert_cmpuint(l->length, ==, ENTRY_SIZE);
        if (i > 0)
            g_assert_cmpint(l->mono_ns, >=,
                            g_array_index(lines, JsonlLine, i - 1).mono_ns);
        counters_feed(&c, (const char *)l->payload->data, l->payload->len);
    }
    g_assert_cmpstr(c.error, ==, NULL);
}

static void lines_free(GArray *lines)
{
    for (guint i = 0; i < lines->len; i++)
        jsonl_line_clear(&g_array_index(lines, JsonlLine, i));
    g_array_unref(lines);
}

static CrtHubReader *paused_jsonl(Fix *f)
{
    CrtHubReader *r;

    fix_open(f, &(FixOpts){.out_count = 8});
    r = crt_hub_reader_new(f->hub, CRT_HUB_VIEW_JSONL);
    fix_start(f);
    assert_paused(f);
    return r;
}

/* `record`: a read returns at most one line; a short read the start of
 * one, the rest of it comes next.  The first counters (1 0 0 0 ...) are
 * text with \u0000, later ones base64. */
static void test_hub_record(void)
{
    Fix f;
    CrtHubReader *r = paused_jsonl(&f);
    GByteArray *rest = g_byte_array_new();
    GArray *lines = g_array_new(FALSE, TRUE, sizeof(JsonlLine));
    char buf[4096];
    gssize n;
    guint base64 = 0;

    n = crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD);
    g_assert_cmpint(n, >, 0);
    g_assert_cmpint(buf[n - 1], ==, '\n');
    g_assert_null(memchr(buf, '\n', (size_t)n - 1));
    lines_feed(rest, lines, buf, (size_t)n);
    n = crt_hub_read(r, buf, 10, CRT_FRAMING_RECORD);
    g_assert_cmpint(n, ==, 10);
    lines_feed(rest, lines, buf, (size_t)n);
    n = crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD);
    g_assert_cmpint(buf[n - 1], ==, '\n');
    g_assert_null(memchr(buf, '\n', (size_t)n - 1)); /* only the rest of that line */
    lines_feed(rest, lines, buf, (size_t)n);
    while (lines->len < 200) {
        n = read_wait(&f, r, buf, sizeof buf, CRT_FRAMING_RECORD, TU_EVENTUALLY_MS);
        g_assert_cmpint(n, >, 0);
        g_assert_null(memchr(buf, '\n', (size_t)n - 1));
        lines_feed(rest, lines, buf, (size_t)n);
    }
    g_assert_cmpuint(rest->len, ==, 0);
    assert_counter_lines(lines);
    for (guint i = 0; i < lines->len; i++)
        base64 += g_array_index(lines, JsonlLine, i).base64;
    g_assert_false(g_array_index(lines, JsonlLine, 0).base64);
    g_assert_cmpuint(base64, >, 0);
    g_assert_cmpuint(hub_stats(&f).readers_jsonl, ==, 1);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    g_assert_cmpuint(hub_stats(&f).readers_jsonl, ==, 0);
    lines_free(lines);
    g_byte_array_unref(rest);
    fix_close(&f);
}

/* `stream`: a read packs lines, the last one possibly cut; jsonl_bytes
 * counts what was handed out, replays not. */
static void test_hub_stream(void)
{
    Fix f;
    CrtHubReader *r = paused_jsonl(&f);
    GByteArray *rest = g_byte_array_new();
    GArray *lines = g_array_new(FALSE, TRUE, sizeof(JsonlLine));
    char buf[3000];
    guint64 total = 0;
    gssize n;

    n = crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_STREAM);
    g_assert_cmpint(n, ==, sizeof buf); /* 8 entries of ~150 bytes wait, and more */
    total += (guint64)n;
    lines_feed(rest, lines, buf, (size_t)n);
    g_assert_cmpuint(lines->len, >, 1);
    while (lines->len < 2000) {
        n = read_wait(&f, r, buf, sizeof buf, CRT_FRAMING_STREAM, TU_EVENTUALLY_MS);
        g_assert_cmpint(n, >, 0);
        total += (guint64)n;
        lines_feed(rest, lines, buf, (size_t)n);
    }
    assert_counter_lines(lines);
    g_assert_cmpuint(hub_stats(&f).jsonl_bytes, ==, total);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    lines_free(lines);
    g_byte_array_unref(rest);
    fix_close(&f);
}

/* A read at an earlier offset in the window hands the same bytes again
 * (bash's read, head); before it, ESPIPE. */
static void test_hub_replay(void)
{
    Fix f;
    CrtHubReader *r = paused_jsonl(&f);
    struct iovec iov[CRT_HUB_MAX_IOV];
    int niov;
    char first[2000], again[2000];
    guint64 jsonl_bytes;
    gssize n, m;

    n = crt_hub_read(r, first, sizeof first, CRT_FRAMING_STREAM);
    g_assert_cmpint(n, >, 100);
    jsonl_bytes = hub_stats(&f).jsonl_bytes;
    m = crt_hub_read_at(r, 40, sizeof again, CRT_FRAMING_STREAM, iov, &niov);
    g_assert_cmpint(m, ==, n - 40);
    for (int i = 0, at = 0; i < niov; at += (int)iov[i].iov_len, i++)
        memcpy(again + at, iov[i].iov_base, iov[i].iov_len);
    crt_hub_read_done(r);
    g_assert_cmpmem(again, m, first + 40, n - 40);
    g_assert_cmpuint(hub_stats(&f).jsonl_bytes, ==, jsonl_bytes);
    /* On from the position, the stream goes on where it was. */
    m = crt_hub_read(r, again, sizeof again, CRT_FRAMING_STREAM);
    g_assert_cmpint(m, >, 0);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    fix_close(&f);
}

/* An event is a line of length 0 with its word as status, in seq order
 * between the data entries. */
static void test_hub_marker(void)
{
    Fix f;
    CrtHubReader *r;
    GByteArray *rest = g_byte_array_new();
    GArray *lines = g_array_new(FALSE, TRUE, sizeof(JsonlLine));
    char buf[4096];
    gssize n;
    guint marker = 0;

    fix_open(&f, &(FixOpts){.out_count = 8});
    r = crt_hub_reader_new(f.hub, CRT_HUB_VIEW_JSONL);
    crt_hub_push_event(f.hub, "line:cts=1", g_get_real_time() * 1000);
    fix_start(&f);
    assert_paused(&f);
    while ((n = crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_STREAM)) > 0)
        lines_feed(rest, lines, buf, (size_t)n);
    g_assert_cmpint(n, ==, -EAGAIN);
    g_assert_cmpuint(lines->len, >=, 9);
    for (guint i = 0; i < lines->len; i++) {
        JsonlLine *l = &g_array_index(lines, JsonlLine, i);

        g_assert_cmpuint(l->seq, ==, i + 1);
        if (l->length == 0) {
            g_assert_cmpstr(l->status, ==, "line:cts=1");
            g_assert_false(l->has_payload);
            marker++;
        }
    }
    g_assert_cmpuint(marker, ==, 1);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    lines_free(lines);
    g_byte_array_unref(rest);
    fix_close(&f);
}

/* ---- main ------------------------------------------------------------------ */

static const TuCase cases[] = {
    {"/jsonl/encode/text", test_encode_text},
    {"/jsonl/encode/escapes", test_encode_escapes},
    {"/jsonl/encode/utf8", test_encode_utf8},
    {"/jsonl/encode/base64", test_encode_base64},
    {"/jsonl/encode/marker", test_encode_marker},
    {"/jsonl/encode/time", test_encode_time},
    {"/jsonl/encode/round-trip", test_encode_round_trip},
    {"/jsonl/hub/record", test_hub_record},
    {"/jsonl/hub/stream", test_hub_stream},
    {"/jsonl/hub/replay", test_hub_replay},
    {"/jsonl/hub/marker", test_hub_marker},
};

int main(int argc, char **argv)
{
    return tu_run_isolated(&argc, &argv, cases, G_N_ELEMENTS(cases), TU_CASE_TIMEOUT_S);
}
