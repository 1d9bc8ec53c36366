/* crtfs tests - the channel fixture the channel test programs share
 * (channel-fixture.h). */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "channel-fixture.h"

/* ---- a channel and its notify callback ------------------------------------- */

static void on_notify(CrtChannel *ch, gpointer data)
{
    tu_counter_bump(&((Chan *)data)->notified);
}

void chan_open(Chan *c)
{
    memset(c, 0, sizeof *c);
    tu_counter_init(&c->notified);
    c->ch = crt_channel_new("test", NULL, on_notify, c);
    g_assert_cmpstr(crt_channel_name(c->ch), ==, "test");
}

void chan_close(Chan *c)
{
    crt_channel_free(c->ch);
    tu_counter_clear(&c->notified);
}

void ctl_ok(Chan *c, const char *line)
{
    GError *error = NULL;

    g_assert_cmpint(crt_channel_ctl(c->ch, line, &error), ==, 0);
    g_assert_no_error(error);
}

/* The command fails with `err`, with a GError and an error line. */
void ctl_fails(Chan *c, const char *line, int err)
{
    GError *error = NULL;

    g_assert_cmpint(crt_channel_ctl(c->ch, line, &error), ==, -err);
    g_assert_nonnull(error);
    g_error_free(error);
}

void target_ok(Chan *c, const char *spec)
{
    GError *error = NULL;

    g_assert_cmpint(crt_channel_set_target(c->ch, spec, NULL, &error), ==, 0);
    g_assert_no_error(error);
}

void config_ok(Chan *c, const char *key, const char *value)
{
    GError *error = NULL;

    g_assert_cmpint(crt_channel_config_set(c->ch, key, value, &error), ==, 0);
    g_assert_no_error(error);
}

void assert_config(Chan *c, const char *key, const char *shown)
{
    char *value = crt_channel_config_get(c->ch, key);

    g_assert_cmpstr(value, ==, shown);
    g_free(value);
}

/* The value of the `key: value` line of `state`, or NULL. */
char *state_line(Chan *c, const char *key)
{
    char *text = crt_channel_state_text(c->ch);
    char **lines = g_strsplit(text, "\n", -1);
    char *prefix = g_strconcat(key, ": ", NULL);
    char *value = NULL;

    for (guint i = 1; lines[i] && !value; i++) {
        if (g_str_has_prefix(lines[i], prefix))
            value = g_strdup(lines[i] + strlen(prefix));
    }
    g_free(prefix);
    g_strfreev(lines);
    g_free(text);
    return value;
}

/* The first line of `state`. */
char *state_word(Chan *c)
{
    char *text = crt_channel_state_text(c->ch);
    char *nl = strchr(text, '\n');

    g_assert_nonnull(nl);
    *nl = '\0';
    return text;
}

gboolean state_is(Chan *c, const char *word)
{
    char *w = state_word(c);
    gboolean same = strcmp(w, word) == 0;

    g_free(w);
    return same;
}

/* The number on the `key value` line of `stats`; fails if it is missing. */
guint64 stat_of(Chan *c, const char *key)
{
    char *text = crt_channel_stats_text(c->ch);
    char **lines = g_strsplit(text, "\n", -1);
    guint64 value = 0;
    gboolean found = FALSE;

    for (guint i = 0; lines[i] && !found; i++) {
        char **kv = g_strsplit(lines[i], " ", -1);

        if (g_strv_length(kv) == 2 && strcmp(kv[0], key) == 0) {
            found = TRUE;
            g_assert_true(
                g_ascii_string_to_unsigned(kv[1], 10, 0, G_MAXUINT64, &value, NULL));
        }
        g_strfreev(kv);
    }
    if (!found)
        g_test_message("stats:\n%s", text);
    g_strfreev(lines);
    g_free(text);
    g_assert_true(found);
    return value;
}

/* ---- records of the channel's hub ------------------------------------------ */

/* Read the channel's `records` until `want` records came (or the stream
 * ended); each header is checked, each payload skipped. */
GArray *read_records(Chan *c, CrtHubReader *r, guint want)
{
    GArray *recs = g_array_new(FALSE, TRUE, sizeof(Rec));
    GByteArray *pending = g_byte_array_new();
    char *buf = g_malloc(65536);
    gint64 deadline = g_get_monotonic_time() + TU_EVENTUALLY_MS * 1000;

    while (recs->len < want) {
        guint seen = tu_counter_get(&c->notified);
        gssize n = crt_hub_read(r, buf, 65536, crt_channel_framing(c->ch));
        const guint8 *nl;

        if (n == 0)
            break;
        if (n == -EAGAIN) {
            g_assert_cmpint(g_get_monotonic_time(), <, deadline);
            tu_counter_wait(&c->notified, seen, 10);
            continue;
        }
        g_assert_cmpint(n, >, 0);
        g_byte_array_append(pending, (guint8 *)buf, (guint)n);
        while ((nl = memchr(pending->data, '\n', pending->len))) {
            size_t hlen = (size_t)(nl - pending->data);
            char *line = g_strndup((char *)pending->data, hlen);
            char **w = g_strsplit(line, " ", -1);
            Rec rec = {0};
            guint64 len;

            g_assert_cmpuint(g_strv_length(w), ==, 4);
            g_assert_true(
                g_ascii_string_to_unsigned(w[0], 10, 1, G_MAXUINT64, &rec.seq, NULL));
            g_assert_true(
                g_ascii_string_to_unsigned(w[3], 10, 0, G_MAXUINT64, &len, NULL));
            g_assert_cmpuint(strlen(w[2]), <, sizeof rec.status);
            strcpy(rec.status, w[2]);
            rec.length = (size_t)len;
            g_strfreev(w);
            g_free(line);
            if (pending->len < hlen + 1 + rec.length)
                break;
            g_byte_array_remove_range(pending, 0, (guint)(hlen + 1 + rec.length));
            g_array_append_val(recs, rec);
        }
    }
    g_free(buf);
    g_byte_array_unref(pending);
    return recs;
}

const Rec *rec_at(GArray *recs, guint i)
{
    return &g_array_index(recs, Rec, i);
}
