/* crtfs unit tests - the `keep` policy: what waits for the next reader
 * while nobody reads (target-config.c parses it, hub.c applies it, the
 * channel resolves `auto` for its target). */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <gio/gio.h>

#include "channel.h"
#include "target-config.h"
#include "testutil.h"

static void keep_ok(const char *value, const char *shown)
{
    CrtConfig cfg;
    GError *error = NULL;
    char *got;

    crt_config_init(&cfg);
    g_assert_cmpint(crt_config_set(&cfg, "keep", value, &error), ==, 0);
    g_assert_no_error(error);
    got = crt_config_get(&cfg, "keep");
    g_assert_cmpstr(got, ==, shown);
    g_free(got);
    crt_config_clear(&cfg);
}

static void keep_refused(const char *value)
{
    CrtConfig cfg;
    GError *error = NULL;
    char *got;

    crt_config_init(&cfg);
    g_assert_cmpint(crt_config_set(&cfg, "keep", value, &error), ==, -EINVAL);
    g_assert_nonnull(error);
    g_assert_true(g_str_has_prefix(error->message, "keep: "));
    g_assert_nonnull(strstr(error->message, "last:N"));
    g_error_free(error);
    got = crt_config_get(&cfg, "keep");
    g_assert_cmpstr(got, ==, "auto\n"); /* unchanged */
    g_free(got);
    crt_config_clear(&cfg);
}

static void test_parse(void)
{
    keep_ok("auto", "auto\n");
    keep_ok("all", "all\n");
    keep_ok("none\n", "none\n");
    keep_ok("last:1", "last:1\n");
    keep_ok("last:1000000", "last:1000000\n");
    keep_ok("age:500ms", "age:500ms\n");
    keep_ok("age:1500ms", "age:1500ms\n");
    keep_ok("age:30s", "age:30s\n");
    keep_ok("age:60s", "age:1min\n");
    keep_ok("age:120min", "age:2h\n");
    keep_ok("age:168h", "age:168h\n");
    keep_refused("");
    keep_refused("some");
    keep_refused("Last:3");
    keep_refused("last:0");
    keep_refused("last:1000001");
    keep_refused("last:-1");
    keep_refused("last:");
    keep_refused("age:10");
    keep_refused("age:0s");
    keep_refused("age:169h");
    keep_refused("age:3d");
    keep_refused("age:5 s");
    g_assert_true(crt_config_key_is_live("keep"));
}

static void test_resolve(void)
{
    CrtKeep k = {CRT_KEEP_AUTO, 0, 0}, last = {CRT_KEEP_LAST, 4, 0};

    g_assert_cmpint(crt_keep_resolve(&k, TRUE).mode, ==, CRT_KEEP_NONE);
    g_assert_cmpint(crt_keep_resolve(&k, FALSE).mode, ==, CRT_KEEP_ALL);
    g_assert_cmpint(crt_keep_resolve(&last, TRUE).mode, ==, CRT_KEEP_LAST);
    g_assert_cmpuint(crt_keep_resolve(&last, TRUE).last, ==, 4);
}

/* ---- applied: a channel streams 40 records with nobody reading ------------- */

static gboolean not_streaming(gpointer data)
{
    return crt_channel_state(data) != CRT_STATE_STREAMING;
}

static guint64 stat_value(CrtChannel *ch, const char *name)
{
    CrtStat st[CRT_STATS_MAX];
    guint n = crt_channel_stats(ch, st);

    for (guint i = 0; i < n; i++) {
        if (strcmp(st[i].name, name) == 0)
            return st[i].value;
    }
    g_assert_not_reached();
}

/* Set `keep`, stream 40 records of 64 bytes with no reader (out_count 16),
 * then open a reader: the records it finds, as their numbers. */
static GArray *kept_after_stream(const char *keep, guint sleep_ms, CrtChannel **out)
{
    CrtChannel *ch = crt_channel_new("keep", NULL, NULL, NULL);
    GArray *nums = g_array_new(FALSE, FALSE, sizeof(guint64));
    CrtHubReader *r;
    char buf[64];
    gssize n;

    g_assert_cmpint(crt_channel_config_set(ch, "keep", keep, NULL), ==, 0);
    g_assert_cmpint(crt_channel_config_set(ch, "out_size", "64", NULL), ==, 0);
    g_assert_cmpint(
        crt_channel_set_target(ch, "sim:records size=64 limit=40", NULL, NULL), ==, 0);
    g_assert_cmpint(crt_channel_start(ch, NULL), ==, 0);
    if (strcmp(keep, "all") == 0 || g_str_has_prefix(keep, "age:"))
        /* the pool fills and the stream pauses */
        g_usleep(200 * 1000);
    else
        g_assert_true(tu_wait_until(not_streaming, ch, 10000));
    g_usleep(sleep_ms * 1000);
    r = crt_hub_reader_new(crt_channel_hub(ch), FALSE);
    while ((n = crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD)) > 0) {
        guint64 num = g_ascii_strtoull(buf, NULL, 10);

        g_assert_cmpint(n, ==, 64);
        g_array_append_val(nums, num);
    }
    crt_hub_reader_free(r);
    *out = ch;
    return nums;
}

/* The numbers run on by one from the first. */
static void assert_consecutive(GArray *nums)
{
    for (guint i = 1; i < nums->len; i++)
        g_assert_cmpuint(g_array_index(nums, guint64, i), ==,
                         g_array_index(nums, guint64, i - 1) + 1);
}

static void test_last(void)
{
    CrtChannel *ch;
    GArray *nums = kept_after_stream("last:3", 0, &ch);

    /* The newest three of the 40 (the stream's end of file is an entry
     * too, so at least two records). */
    g_assert_cmpuint(nums->len, >=, 2);
    g_assert_cmpuint(nums->len, <=, 3);
    assert_consecutive(nums);
    g_assert_cmpuint(stat_value(ch, "buffers_discarded"), >=, 37);
    g_assert_cmpuint(stat_value(ch, "buffers_dropped"), ==, 0);
    g_array_free(nums, TRUE);
    crt_channel_free(ch);
}

static void test_none(void)
{
    CrtChannel *ch;
    GArray *nums = kept_after_stream("none", 0, &ch);

    g_assert_cmpuint(nums->len, ==, 0);
    g_assert_cmpuint(stat_value(ch, "buffers_discarded"), >=, 40);
    g_assert_cmpuint(stat_value(ch, "buffers_dropped"), ==, 0);
    g_array_free(nums, TRUE);
    crt_channel_free(ch);
}

static void test_all(void)
{
    CrtChannel *ch;
    GArray *nums = kept_after_stream("all", 0, &ch);

    /* Everything the pool holds, from the first record on (and, as the
     * reader gives buffers back, the stream goes on: maybe more). */
    g_assert_cmpuint(nums->len, >=, 16);
    g_assert_cmpuint(g_array_index(nums, guint64, 0), ==, 1);
    assert_consecutive(nums);
    g_assert_cmpuint(stat_value(ch, "buffers_discarded"), ==, 0);
    g_array_free(nums, TRUE);
    crt_channel_free(ch);
}

/* Entries older than the age go when a reader opens, even with nothing
 * arriving in between. */
static void test_age(void)
{
    CrtChannel *ch;
    GArray *young = kept_after_stream("age:30s", 0, &ch), *old;

    g_assert_cmpuint(young->len, >=, 16);
    g_array_free(young, TRUE);
    crt_channel_free(ch);
    old = kept_after_stream("age:100ms", 300, &ch);
    /* The 16 the pool held are gone; their buffers went back, so the
     * stream went on, and the reader may have met the newer records. */
    if (old->len > 0)
        g_assert_cmpuint(g_array_index(old, guint64, 0), >, 16);
    g_assert_cmpuint(stat_value(ch, "buffers_discarded"), >=, 16);
    g_array_free(old, TRUE);
    crt_channel_free(ch);
}

/* auto: `none` for a character device, `all` for the simulator; state
 * says which and why. */
static void test_auto(void)
{
    CrtChannel *ch = crt_channel_new("keep", NULL, NULL, NULL);
    char *state;

    g_assert_cmpint(crt_channel_set_target(ch, "sim:zero", NULL, NULL), ==, 0);
    state = crt_channel_state_text(ch);
    g_assert_nonnull(strstr(state, "\nkeep: all (auto: not a live source)\n"));
    g_free(state);
    g_assert_cmpint(crt_channel_set_target(ch, "/dev/null", NULL, NULL), ==, 0);
    state = crt_channel_state_text(ch);
    g_assert_nonnull(strstr(state, "\nkeep: none (auto: a live source)\n"));
    g_free(state);
    g_assert_cmpint(crt_channel_config_set(ch, "keep", "last:2", NULL), ==, 0);
    state = crt_channel_state_text(ch);
    g_assert_nonnull(strstr(state, "\nkeep: last:2\n"));
    g_free(state);
    crt_channel_free(ch);
}

static const TuCase cases[] = {
    {"/keep/parse", test_parse}, {"/keep/resolve", test_resolve},
    {"/keep/last", test_last},   {"/keep/none", test_none},
    {"/keep/all", test_all},     {"/keep/age", test_age},
    {"/keep/auto", test_auto},
};

int main(int argc, char **argv)
{
    return tu_run_isolated(&argc, &argv, cases, G_N_ELEMENTS(cases), 120);
}
