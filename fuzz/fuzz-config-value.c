/* crtfs fuzzing - config values: crt_config_set() for every key, then
 * crt_config_to_engine().
 *
 * The input is `KEY=VALUE` (VALUE is everything after the first `=`,
 * newlines included, as one write to config/KEY carries it).  VALUE is set
 * for KEY and for every key of crt_config_keys() on a fresh config.  Then
 * each line of the input is taken as a `KEY=VALUE` of its own, all applied
 * in order to one config, so that combinations reach crt_config_to_engine().
 *
 * Promises checked: an unknown key is -ENOENT; a refused value is -EINVAL
 * with a message and leaves the config as it was; an accepted value reads
 * back (crt_config_get) as text that sets the same config again; the engine
 * view either succeeds or says why.
 *
 * fuzz-sources: libcrtfs_a libcrtfsd_a
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <gio/gio.h>

#include "target-config.h"

#include "fuzz.h"

static void assert_config_equal(const CrtConfig *a, const CrtConfig *b)
{
    g_assert_cmpint(a->type, ==, b->type);
    g_assert_cmpuint(a->requests, ==, b->requests);
    g_assert_cmpuint(a->out_count, ==, b->out_count);
    g_assert_cmpuint(a->out_size, ==, b->out_size);
    g_assert_cmpuint(a->in_count, ==, b->in_count);
    g_assert_cmpuint(a->in_size, ==, b->in_size);
    g_assert_cmpuint(a->ioctl, ==, b->ioctl);
    g_assert_cmpint(a->mode, ==, b->mode);
    g_assert_cmpint(a->lookaside, ==, b->lookaside);
    g_assert_cmpint(a->in_memory, ==, b->in_memory);
    g_assert_cmpint(a->out_memory, ==, b->out_memory);
    g_assert_cmpint(a->completion, ==, b->completion);
    g_assert_cmpint(a->purge_on_suspend, ==, b->purge_on_suspend);
    g_assert_cmpint(a->overflow, ==, b->overflow);
    g_assert_cmpstr(a->payload ? a->payload : "", ==, b->payload ? b->payload : "");
    g_assert_cmpint(a->framing, ==, b->framing);
    g_assert_cmpstr(a->on_open ? a->on_open : "", ==, b->on_open ? b->on_open : "");
    g_assert_cmpstr(a->on_close ? a->on_close : "", ==, b->on_close ? b->on_close : "");
}

/* The engine's view of a config: accepted with the same numbers, or refused
 * with a message. */
static void check_to_engine(const CrtConfig *cfg)
{
    CrtEngineConfig ec;
    GError *error = NULL;
    int r = crt_config_to_engine(cfg, &ec, &error);

    if (r == 0) {
        g_assert_no_error(error);
        g_assert_cmpuint(ec.request_count, ==, cfg->requests);
        g_assert_cmpuint(ec.out_count, ==, cfg->out_count);
        g_assert_cmpuint(ec.out_size, ==, cfg->out_size);
        g_assert_cmpuint(ec.in_count, ==, cfg->in_count);
        g_assert_cmpuint(ec.in_size, ==, cfg->in_size);
        g_assert_cmpint(ec.type, ==, cfg->type);
        return;
    }
    g_assert_cmpint(r, ==, -EINVAL);
    g_assert_nonnull(error);
    g_assert_cmpstr(error->message, !=, "");
    g_error_free(error);
}

/* Set one value and check what the set promises.  0 or -errno. */
static int check_set(CrtConfig *cfg, const char *key, const char *value)
{
    CrtConfig before, after;
    GError *error = NULL;
    char *shown, *again;
    int r;

    crt_config_copy(&before, cfg);
    r = crt_config_set(cfg, key, value, &error);
    if (r < 0) {
        g_assert_cmpint(r, ==, crt_config_has_key(key) ? -EINVAL : -ENOENT);
        g_assert_nonnull(error);
        g_assert_cmpstr(error->message, !=, "");
        g_error_free(error);
        assert_config_equal(cfg, &before);
        crt_config_clear(&before);
        return r;
    }
    g_assert_no_error(error);
    g_assert_true(crt_config_has_key(key));
    crt_config_clear(&before);

    /* What config/KEY shows must set the same config again. */
    shown = crt_config_get(cfg, key);
    g_assert_true(g_str_has_suffix(shown, "\n"));
    crt_config_copy(&after, cfg);
    g_assert_cmpint(crt_config_set(cfg, key, shown, &error), ==, 0);
    g_assert_no_error(error);
    assert_config_equal(cfg, &after);
    again = crt_config_get(cfg, key);
    g_assert_cmpstr(again, ==, shown);
    g_free(again);
    g_free(shown);
    crt_config_clear(&after);

    check_to_engine(cfg);
    return 0;
}

/* Split `KEY=VALUE` at the first `=`; no `=` is a key with an empty value. */
static void split(char *text, const char **key, const char **value)
{
    char *eq = strchr(text, '=');

    *key = text;
    *value = "";
    if (eq != NULL) {
        *eq = '\0';
        *value = eq + 1;
    }
}

/* VALUE for KEY, then for every key, each on a fresh config. */
static void set_everywhere(char *text)
{
    const char *const *keys = crt_config_keys();
    const char *key, *value;
    CrtConfig cfg;

    split(text, &key, &value);
    crt_config_init(&cfg);
    check_set(&cfg, key, value);
    crt_config_clear(&cfg);
    for (size_t i = 0; keys[i] != NULL; i++) {
        crt_config_init(&cfg);
        check_set(&cfg, keys[i], value);
        crt_config_clear(&cfg);
    }
}

/* Every line a `KEY=VALUE`, applied in order to one config. */
static void set_lines(char *text)
{
    char **lines = g_strsplit(text, "\n", -1);
    CrtConfig cfg;

    crt_config_init(&cfg);
    for (size_t i = 0; lines[i] != NULL; i++) {
        const char *key, *value;

        split(lines[i], &key, &value);
        if (*key != '\0')
            check_set(&cfg, key, value);
    }
    check_to_engine(&cfg);
    crt_config_clear(&cfg);
    g_strfreev(lines);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;

    if (size > FUZZ_MAX_INPUT)
        return -1;
    text = fuzz_string(data, size);
    set_lines(text); /* before split() cuts text at the first `=` */
    set_everywhere(text);
    g_free(text);
    return 0;
}
