#include "config.h"

#include <errno.h>
#include <string.h>

#include <gio/gio.h>

#include "target-config.h"

/* The keys in the order the header lists them. */
static const char *const all_keys[] = {
    "type",
    "requests",
    "out_count",
    "out_size",
    "in_count",
    "in_size",
    "ioctl",
    "mode",
    "lookaside",
    "in_memory",
    "out_memory",
    "completion",
    "purge_on_suspend",
    "overflow",
    "payload",
    "framing",
    "keep",
    "split",
    "split_max",
    "split_wait",
    "on_open",
    "on_close",
    "history",
    "history_bytes",
};

/* What each key's error message says it expected. */
typedef struct {
    const char *key;
    const char *what;
} Expected;

static const Expected expected[] = {
    {"type", "read, write, ioctl or internal-ioctl"},
    {"requests", "a whole number from 1 to 4096"},
    {"out_count", "a whole number from 0 to 65536"},
    {"out_size", "a whole number from 0 to 1073741824"},
    {"in_count", "a whole number from 0 to 65536"},
    {"in_size", "a whole number from 0 to 1073741824"},
    {"ioctl", "a number from 0 to 0xffffffff (decimal, 0x hex or 0 octal)"},
    {"mode", "automatic or manual"},
    {"lookaside", "0 or 1 (or true/false, yes/no, on/off)"},
    {"in_memory", "normal or locked"},
    {"out_memory", "normal or locked"},
    {"completion", "default or passive"},
    {"purge_on_suspend", "0 or 1 (or true/false, yes/no, on/off)"},
    {"overflow", "block or drop-oldest"},
    {"framing", "record or stream"},
    {"keep",
     "auto, all, none, last:N (N from 1 to 1000000) or age:DURATION (a whole number "
     "with ms, s, min or h, at most 7 days)"},
    {"split", "a split (none, idle=DURATION, idle=Nchar, delim=BYTES or length=N)"},
    {"split_max", "a whole number from 0 to 1073741824"},
    {"split_wait", "a duration from 1ms to 1h (a whole number with ms, s, min or h)"},
    {"history", "0 (no history), a count of entries from 1 to 1000000, or a DURATION (a "
                "whole number with ms, s, min or h, at most 7 days)"},
    {"history_bytes", "a whole number from 4096 to 1073741824"},
};

static const char *expected_what(const char *key)
{
    for (size_t i = 0; i < G_N_ELEMENTS(expected); i++) {
        if (strcmp(expected[i].key, key) == 0)
            return expected[i].what;
    }
    g_assert_not_reached();
    return NULL;
}

static void set_ok(CrtConfig *cfg, const char *key, const char *value)
{
    GError *error = NULL;

    g_assert_cmpint(crt_config_set(cfg, key, value, &error), ==, 0);
    g_assert_no_error(error);
}

static void assert_get(const CrtConfig *cfg, const char *key, const char *shown)
{
    char *line = crt_config_get(cfg, key);
    char *want = g_strconcat(shown, "\n", NULL);

    g_assert_cmpstr(line, ==, want);
    g_free(want);
    g_free(line);
}

/* Every key's value, as the files show them. */
/* Logs which table row runs, on one line. */
static void note(const char *key, const char *value)
{
    char *escaped = g_strescape(value, NULL);

    g_test_message("%s <- \"%s\"", key, escaped);
    g_free(escaped);
}

static char *snapshot(const CrtConfig *cfg)
{
    GString *s = g_string_new(NULL);

    for (size_t i = 0; i < G_N_ELEMENTS(all_keys); i++) {
        char *line = crt_config_get(cfg, all_keys[i]);

        g_string_append_printf(s, "%s=%s", all_keys[i], line);
        g_free(line);
    }
    return g_string_free(s, FALSE);
}

/* A config whose every member differs from the defaults. */
static void init_busy(CrtConfig *cfg)
{
    crt_config_init(cfg);
    set_ok(cfg, "type", "internal-ioctl");
    set_ok(cfg, "requests", "9");
    set_ok(cfg, "out_count", "3");
    set_ok(cfg, "out_size", "100");
    set_ok(cfg, "in_count", "5");
    set_ok(cfg, "in_size", "200");
    set_ok(cfg, "ioctl", "0x1234");
    set_ok(cfg, "mode", "automatic");
    set_ok(cfg, "lookaside", "1");
    set_ok(cfg, "in_memory", "locked");
    set_ok(cfg, "out_memory", "locked");
    set_ok(cfg, "completion", "passive");
    set_ok(cfg, "purge_on_suspend", "1");
    set_ok(cfg, "overflow", "drop-oldest");
    set_ok(cfg, "payload", "busy");
    set_ok(cfg, "framing", "stream");
}

/* The set must fail with EINVAL, a message `KEY: "..." is not WHAT`, and
 * leave the config as it was. */
static void set_bad(const char *key, const char *value, const char *what)
{
    CrtConfig cfg;
    GError *error = NULL;
    char *before, *after, *prefix;

    init_busy(&cfg);
    before = snapshot(&cfg);
    note(key, value);
    g_assert_cmpint(crt_config_set(&cfg, key, value, &error), ==, -EINVAL);
    g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
    prefix = g_strdup_printf("%s: \"", key);
    g_assert_true(g_str_has_prefix(error->message, prefix));
    g_assert_true(g_str_has_suffix(error->message, what));
    g_assert_nonnull(strstr(error->message, "\" is not "));
    after = snapshot(&cfg);
    g_assert_cmpstr(after, ==, before);
    g_free(prefix);
    g_free(before);
    g_free(after);
    g_clear_error(&error);
    crt_config_clear(&cfg);
}

/* ---- defaults and keys -------------------------------------------------- */

static void test_defaults(void)
{
    static const char *const shown[][2] = {
        {"type", "read"},          {"requests", "4"},
        {"out_count", "16"},       {"out_size", "4096"},
        {"in_count", "4"},         {"in_size", "4096"},
        {"ioctl", "0x0"},          {"mode", "manual"},
        {"lookaside", "0"},        {"in_memory", "normal"},
        {"out_memory", "normal"},  {"completion", "default"},
        {"purge_on_suspend", "0"}, {"overflow", "block"},
        {"payload", ""},           {"framing", "record"},
        {"keep", "auto"},          {"split", "none"},
        {"split_max", "0"},        {"split_wait", "1s"},
        {"history", "0"},          {"history_bytes", "1048576"},
    };
    CrtConfig cfg;

    crt_config_init(&cfg);
    g_assert_cmpint(cfg.type, ==, CRT_REQUEST_READ);
    g_assert_cmpuint(cfg.requests, ==, 4);
    g_assert_cmpuint(cfg.out_count, ==, 16);
    g_assert_cmpuint(cfg.out_size, ==, 4096);
    g_assert_cmpuint(cfg.in_count, ==, 4);
    g_assert_cmpuint(cfg.in_size, ==, 4096);
    g_assert_cmpuint(cfg.ioctl, ==, 0);
    g_assert_cmpint(cfg.mode, ==, CRT_MODE_MANUAL);
    g_assert_false(cfg.lookaside);
    g_assert_cmpint(cfg.in_memory, ==, CRT_MEMORY_NORMAL);
    g_assert_cmpint(cfg.out_memory, ==, CRT_MEMORY_NORMAL);
    g_assert_cmpint(cfg.completion, ==, CRT_COMPLETION_DEFAULT);
    g_assert_false(cfg.purge_on_suspend);
    g_assert_cmpint(cfg.overflow, ==, CRT_OVERFLOW_BLOCK);
    g_assert_null(cfg.payload);
    g_assert_cmpint(cfg.framing, ==, CRT_FRAMING_RECORD);
    g_assert_cmpint(cfg.split.mode, ==, CRT_SPLIT_NONE);
    g_assert_cmpuint(cfg.split.max_size, ==, 0);
    g_assert_cmpuint(cfg.split.max_wait_ms, ==, 1000);
    for (size_t i = 0; i < G_N_ELEMENTS(shown); i++)
        assert_get(&cfg, shown[i][0], shown[i][1]);
    crt_config_clear(&cfg);
}

static void test_keys(void)
{
    const char *const *keys = crt_config_keys();
    size_t n = 0;

    while (keys[n] != NULL)
        n++;
    g_assert_cmpuint(n, ==, G_N_ELEMENTS(all_keys));
    for (size_t i = 0; i < n; i++) {
        g_assert_cmpstr(keys[i], ==, all_keys[i]);
        g_assert_true(crt_config_has_key(keys[i]));
    }
    g_assert_false(crt_config_has_key("target"));
    g_assert_false(crt_config_has_key("autostart"));
}

static void test_unknown_key(void)
{
    static const char *const unknown[] = {"nope",  "",       "Type",
                                          "type ", "target", "autostart"};
    CrtConfig cfg;

    crt_config_init(&cfg);
    for (size_t i = 0; i < G_N_ELEMENTS(unknown); i++) {
        GError *error = NULL;

        g_assert_false(crt_config_has_key(unknown[i]));
        g_assert_false(crt_config_key_is_live(unknown[i]));
        g_assert_cmpint(crt_config_set(&cfg, unknown[i], "1", &error), ==, -ENOENT);
        g_assert_nonnull(error);
        g_clear_error(&error);
        g_assert_cmpint(crt_config_set(&cfg, unknown[i], "1", NULL), ==, -ENOENT);
        g_assert_null(crt_config_get(&cfg, unknown[i]));
    }
    crt_config_clear(&cfg);
}

/* on_open and on_close: a sequence checked when set, kept as text, copied
 * and cleared with the configuration. */
static void test_line_sequences(void)
{
    CrtConfig cfg, copy;
    GError *error = NULL;

    crt_config_init(&cfg);
    assert_get(&cfg, "on_open", "");
    g_assert_cmpint(crt_config_set(&cfg, "on_open", "dtr=0 wait=100ms dtr=1\n", NULL), ==,
                    0);
    assert_get(&cfg, "on_open", "dtr=0 wait=100ms dtr=1");
    g_assert_cmpint(crt_config_set(&cfg, "on_close", "send=bye\\r\\n", NULL), ==, 0);
    g_assert_cmpint(crt_config_set(&cfg, "on_open", "dtr=0 wait=20s", &error), ==,
                    -EINVAL);
    g_assert_nonnull(strstr(error->message, "on_open: word 2 \"wait=20s\""));
    g_clear_error(&error);
    assert_get(&cfg, "on_open", "dtr=0 wait=100ms dtr=1");
    crt_config_copy(&copy, &cfg);
    assert_get(&copy, "on_close", "send=bye\\r\\n");
    g_assert_cmpint(crt_config_set(&cfg, "on_open", "", NULL), ==, 0);
    assert_get(&cfg, "on_open", "");
    assert_get(&copy, "on_open", "dtr=0 wait=100ms dtr=1");
    crt_config_clear(&copy);
    crt_config_clear(&cfg);
}

static void test_live_keys(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(all_keys); i++) {
        const char *k = all_keys[i];
        gboolean live = strcmp(k, "overflow") == 0 || strcmp(k, "framing") == 0 ||
                        strcmp(k, "payload") == 0 || strcmp(k, "keep") == 0 ||
                        g_str_has_prefix(k, "on_") || g_str_has_prefix(k, "split") ||
                        g_str_has_prefix(k, "history");

        g_test_message("%s", k);
        g_assert_cmpint(crt_config_key_is_live(k), ==, live);
    }
}

/* ---- good values -------------------------------------------------------- */

typedef struct {
    const char *key;
    const char *value;
    const char *shown; /* what get shows, without the newline */
} Good;

static const Good good[] = {
    {"type", "read", "read"},
    {"type", "write", "write"},
    {"type", "ioctl", "ioctl"},
    {"type", "internal-ioctl", "internal-ioctl"},
    {"type", " \twrite \t\n", "write"},
    {"requests", "1", "1"},
    {"requests", "4096", "4096"},
    {"requests", "007", "7"},
    {"requests", "256\n", "256"},
    {"requests", "  12\t", "12"},
    {"out_count", "0", "0"},
    {"out_count", "65536", "65536"},
    {"out_size", "0", "0"},
    {"out_size", "1073741824", "1073741824"},
    {"in_count", "0", "0"},
    {"in_count", "65536", "65536"},
    {"in_size", "0", "0"},
    {"in_size", "1073741824", "1073741824"},
    {"ioctl", "0", "0x0"},
    {"ioctl", "4660", "0x1234"},
    {"ioctl", "0x1234", "0x1234"},
    {"ioctl", "0X1234", "0x1234"},
    {"ioctl", "0xABCDef01", "0xabcdef01"},
    {"ioctl", "011", "0x9"},
    {"ioctl", "00", "0x0"},
    {"ioctl", "0xffffffff", "0xffffffff"},
    {"ioctl", "4294967295", "0xffffffff"},
    {"ioctl", "037777777777", "0xffffffff"},
    {"ioctl", " 0x80045430\n", "0x80045430"},
    {"mode", "automatic", "automatic"},
    {"mode", "manual", "manual"},
    {"lookaside", "1", "1"},
    {"lookaside", "0", "0"},
    {"lookaside", "true", "1"},
    {"lookaside", "FALSE", "0"},
    {"lookaside", "Yes", "1"},
    {"lookaside", "no", "0"},
    {"lookaside", "on", "1"},
    {"lookaside", "OFF", "0"},
    {"lookaside", "1\n", "1"},
    {"in_memory", "normal", "normal"},
    {"in_memory", "locked", "locked"},
    {"out_memory", "normal", "normal"},
    {"out_memory", "locked", "locked"},
    {"completion", "default", "default"},
    {"completion", "passive", "passive"},
    {"purge_on_suspend", "1", "1"},
    {"purge_on_suspend", "0", "0"},
    {"overflow", "block", "block"},
    {"overflow", "drop-oldest", "drop-oldest"},
    {"framing", "record", "record"},
    {"framing", "stream", "stream"},
    {"payload", "hello", "hello"},
    {"payload", "hello\n", "hello"},
    {"payload", " two  words \t\n", " two  words \t"},
    {"payload", "a\nb\n", "a\nb"},
    {"payload", "x\n\n", "x\n"},
    {"payload", "", ""},
    {"payload", "\n", ""},
    {"split", "none", "none"},
    {"split", "idle=20ms", "idle=20ms"},
    {"split", "idle=3.5char", "idle=3.5char"},
    {"split", "delim=\\r\\n", "delim=\\r\\n"},
    {"split", " delim=0x7e\n", "delim=~"},
    {"split", "length=16", "length=16"},
    {"split_max", "0", "0"},
    {"split_max", "100", "100"}, /* init_busy's out_size */
    {"split_wait", "1ms", "1ms"},
    {"split_wait", "1500ms", "1500ms"},
    {"split_wait", "60min", "1h"},
    {"history", "0", "0"},
    {"history", "1000000", "1000000"},
    {"history", "30s", "30s"},
    {"history", "300s", "5min"},
    {"history", "168h", "168h"},
    {"history_bytes", "4096", "4096"},
    {"history_bytes", "1073741824", "1073741824"},
};

static void test_set_good(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
        CrtConfig cfg;

        note(good[i].key, good[i].value);
        init_busy(&cfg);
        set_ok(&cfg, good[i].key, good[i].value);
        assert_get(&cfg, good[i].key, good[i].shown);
        crt_config_clear(&cfg);
    }
}

/* What get shows, written back (newline and all, as `cat a > a` would),
 * gives the same value. */
static void test_round_trip(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
        CrtConfig a, b;
        char *line, *again;

        note(good[i].key, good[i].value);
        crt_config_init(&a);
        crt_config_init(&b);
        set_ok(&a, good[i].key, good[i].value);
        line = crt_config_get(&a, good[i].key);
        set_ok(&b, good[i].key, line);
        again = crt_config_get(&b, good[i].key);
        g_assert_cmpstr(again, ==, line);
        g_free(line);
        g_free(again);
        crt_config_clear(&a);
        crt_config_clear(&b);
    }
}

static void test_struct_members(void)
{
    CrtConfig cfg;

    init_busy(&cfg);
    g_assert_cmpint(cfg.type, ==, CRT_REQUEST_INTERNAL_IOCTL);
    g_assert_cmpuint(cfg.requests, ==, 9);
    g_assert_cmpuint(cfg.out_count, ==, 3);
    g_assert_cmpuint(cfg.out_size, ==, 100);
    g_assert_cmpuint(cfg.in_count, ==, 5);
    g_assert_cmpuint(cfg.in_size, ==, 200);
    g_assert_cmpuint(cfg.ioctl, ==, 0x1234);
    g_assert_cmpint(cfg.mode, ==, CRT_MODE_AUTOMATIC);
    g_assert_true(cfg.lookaside);
    g_assert_cmpint(cfg.in_memory, ==, CRT_MEMORY_LOCKED);
    g_assert_cmpint(cfg.out_memory, ==, CRT_MEMORY_LOCKED);
    g_assert_cmpint(cfg.completion, ==, CRT_COMPLETION_PASSIVE);
    g_assert_true(cfg.purge_on_suspend);
    g_assert_cmpint(cfg.overflow, ==, CRT_OVERFLOW_DROP_OLDEST);
    g_assert_cmpstr(cfg.payload, ==, "busy");
    g_assert_cmpint(cfg.framing, ==, CRT_FRAMING_STREAM);
    g_assert_cmpstr(crt_overflow_to_string(CRT_OVERFLOW_BLOCK), ==, "block");
    g_assert_cmpstr(crt_framing_to_string(CRT_FRAMING_STREAM), ==, "stream");
    crt_config_clear(&cfg);
}

/* ---- bad values --------------------------------------------------------- */

/* Rejected by every key but payload. */
static const char *const bad_everywhere[] = {
    "abc", "-1", "+1", "1x", "", "   ", "\n", "99999999999999999999", "1 2", "read1",
};

typedef struct {
    const char *key;
    const char *value;
} Bad;

/* Out of range or malformed for one key only. */
static const Bad bad_one[] = {
    {"requests", "0"},
    {"requests", "4097"},
    {"requests", "0x10"},
    {"requests", "1.5"},
    {"out_count", "65537"},
    {"out_count", "4294967296"},
    {"out_size", "1073741825"},
    {"out_size", "12x"},
    {"out_size", "1e3"},
    {"in_count", "65537"},
    {"in_size", "1073741825"},
    {"ioctl", "0x100000000"},
    {"ioctl", "4294967296"},
    {"ioctl", "040000000000"},
    {"ioctl", "08"},
    {"ioctl", "0x"},
    {"ioctl", "0xg"},
    {"ioctl", "0x0x5"},
    {"ioctl", "-0x1"},
    {"ioctl", "0x 1"},
    {"type", "READ"},
    {"type", "read write"},
    {"mode", "auto"},
    {"lookaside", "2"},
    {"lookaside", "01"},
    {"lookaside", "yess"},
    {"purge_on_suspend", "10"},
    {"in_memory", "mlock"},
    {"out_memory", "Locked"},
    {"completion", "active"},
    {"overflow", "drop"},
    {"framing", "records"},
    {"split_wait", "0ms"},
    {"split_wait", "61min"},
    {"history", "1000001"},
    {"history", "5,30s"},
    {"history", "169h"},
    {"history_bytes", "4095"},
    {"history_bytes", "1073741825"},
};

static void test_set_bad(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(all_keys); i++) {
        /* payload takes anything; an empty sequence is none, and a
         * sequence's refusals name its word (test_line_sequences) */
        if (strcmp(all_keys[i], "payload") == 0 || g_str_has_prefix(all_keys[i], "on_"))
            continue;
        for (size_t j = 0; j < G_N_ELEMENTS(bad_everywhere); j++)
            set_bad(all_keys[i], bad_everywhere[j], expected_what(all_keys[i]));
    }
    for (size_t i = 0; i < G_N_ELEMENTS(bad_one); i++)
        set_bad(bad_one[i].key, bad_one[i].value, expected_what(bad_one[i].key));
}

/* Only one trailing newline goes; a value spanning lines is refused. */
static void test_multi_line(void)
{
    static const char *const values[] = {"256\n\n", "2\n56", "1\n2\n", "256\r\n",
                                         "\n256"};

    for (size_t i = 0; i < G_N_ELEMENTS(all_keys); i++) {
        if (strcmp(all_keys[i], "payload") == 0)
            continue;
        for (size_t j = 0; j < G_N_ELEMENTS(values); j++)
            set_bad(all_keys[i], values[j], "a single line");
    }
}

static void test_messages(void)
{
    CrtConfig cfg;
    GError *error = NULL;

    crt_config_init(&cfg);
    g_assert_cmpint(crt_config_set(&cfg, "out_size", "12x", &error), ==, -EINVAL);
    g_assert_cmpstr(error->message, ==,
                    "out_size: \"12x\" is not a whole number from 0 to 1073741824");
    g_clear_error(&error);
    g_assert_cmpint(crt_config_set(&cfg, "requests", " 0 \n", &error), ==, -EINVAL);
    g_assert_cmpstr(error->message, ==,
                    "requests: \"0\" is not a whole number from 1 to 4096");
    g_clear_error(&error);
    g_assert_cmpint(crt_config_set(&cfg, "mode", "x", &error), ==, -EINVAL);
    g_assert_cmpstr(error->message, ==, "mode: \"x\" is not automatic or manual");
    g_clear_error(&error);
    g_assert_cmpint(crt_config_set(&cfg, "requests", "", NULL), ==, -EINVAL);
    crt_config_clear(&cfg);
}

static void test_payload(void)
{
    CrtConfig cfg, copy;
    GError *error = NULL;
    char *big = g_malloc(1024 * 1024 + 2);
    char *line;

    init_busy(&cfg);
    memset(big, 'p', 1024 * 1024 + 1);
    big[1024 * 1024] = '\n'; /* exactly 1 MiB, with echo's newline */
    big[1024 * 1024 + 1] = '\0';
    set_ok(&cfg, "payload", big);
    g_assert_cmpuint(strlen(cfg.payload), ==, 1024 * 1024);
    line = crt_config_get(&cfg, "payload");
    g_assert_cmpuint(strlen(line), ==, 1024 * 1024 + 1);
    g_assert_cmpint(line[1024 * 1024], ==, '\n');
    g_free(line);

    big[1024 * 1024] = 'p'; /* one byte too many */
    g_assert_cmpint(crt_config_set(&cfg, "payload", big, &error), ==, -EINVAL);
    g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
    g_assert_true(g_str_has_prefix(error->message, "payload: "));
    g_clear_error(&error);
    g_assert_cmpuint(strlen(cfg.payload), ==, 1024 * 1024);

    crt_config_copy(&copy, &cfg);
    g_assert_true(copy.payload != cfg.payload);
    g_assert_cmpstr(copy.payload, ==, cfg.payload);
    set_ok(&cfg, "payload", "\n");
    g_assert_null(cfg.payload);
    assert_get(&cfg, "payload", "");
    g_assert_cmpuint(strlen(copy.payload), ==, 1024 * 1024);
    crt_config_clear(&copy);
    g_assert_null(copy.payload);
    crt_config_clear(&copy);
    crt_config_clear(&cfg);
    g_free(big);
}

/* ---- the engine's config ------------------------------------------------ */

static void test_to_engine(void)
{
    CrtConfig cfg;
    CrtEngineConfig ec;
    GError *error = NULL;

    init_busy(&cfg);
    g_assert_cmpint(crt_config_to_engine(&cfg, &ec, &error), ==, 0);
    g_assert_no_error(error);
    g_assert_cmpuint(ec.request_count, ==, 9);
    g_assert_cmpint(ec.type, ==, CRT_REQUEST_INTERNAL_IOCTL);
    g_assert_cmpuint(ec.out_count, ==, 3);
    g_assert_cmpuint(ec.out_size, ==, 100);
    g_assert_cmpuint(ec.in_count, ==, 5);
    g_assert_cmpuint(ec.in_size, ==, 200);
    g_assert_cmpuint(ec.ioctl, ==, 0x1234);
    g_assert_cmpint(ec.mode, ==, CRT_MODE_AUTOMATIC);
    g_assert_true(ec.lookaside_output);
    g_assert_cmpint(ec.in_memory, ==, CRT_MEMORY_LOCKED);
    g_assert_cmpint(ec.out_memory, ==, CRT_MEMORY_LOCKED);
    g_assert_cmpint(ec.completion, ==, CRT_COMPLETION_PASSIVE);
    g_assert_true(ec.purge_on_suspend);
    g_assert_cmpuint(ec.in_context_size, ==, 0);
    g_assert_cmpuint(ec.out_context_size, ==, 0);
    g_assert_null(ec.buffer_input);
    g_assert_null(ec.buffer_output);
    g_assert_null(ec.user_data);
    g_assert_null(ec.loop);
    crt_config_clear(&cfg);

    crt_config_init(&cfg);
    g_assert_cmpint(crt_config_to_engine(&cfg, &ec, NULL), ==, 0);
    g_assert_cmpuint(ec.out_count, ==, 16);
    g_assert_cmpint(ec.type, ==, CRT_REQUEST_READ);
    crt_config_clear(&cfg);
}

static void poke_requests_0(CrtConfig *cfg)
{
    cfg->requests = 0;
}

static void poke_requests_big(CrtConfig *cfg)
{
    cfg->requests = 5000;
}

static void poke_type(CrtConfig *cfg)
{
    cfg->type = CRT_REQUEST_INVALID;
}

static void poke_mode(CrtConfig *cfg)
{
    cfg->mode = CRT_MODE_INVALID;
}

static void poke_out_size(CrtConfig *cfg)
{
    cfg->out_size = G_GUINT64_CONSTANT(1) << 33;
}

static void poke_completion(CrtConfig *cfg)
{
    cfg->completion = CRT_COMPLETION_MAXIMUM;
}

typedef struct {
    const char *sets[8]; /* key, value, ... NULL */
    void (*poke)(CrtConfig *cfg);
    const char *message; /* NULL: accepted */
    gboolean prefix;     /* message is only the start */
} EngineCase;

static const EngineCase engine_cases[] = {
    {{"type", "ioctl", NULL},
     NULL,
     "ioctl: type ioctl needs a non-zero ioctl code",
     FALSE},
    {{"type", "ioctl", "ioctl", "0x5401", NULL}, NULL, NULL, FALSE},
    {{"type", "internal-ioctl", NULL}, NULL, NULL, FALSE},
    {{"out_count", "0", NULL}, NULL, "out_count: 0 needs lookaside=1", FALSE},
    {{"out_count", "0", "lookaside", "1", NULL}, NULL, NULL, FALSE},
    {{"out_count", "0", "out_size", "0", NULL}, NULL, NULL, FALSE},
    {{"out_count", "0", "type", "write", NULL}, NULL, NULL, FALSE},
    {{"in_count", "0", "type", "write", NULL},
     NULL,
     "in_count: 0 leaves type write no input buffer",
     FALSE},
    {{"in_count", "0", "type", "write", "in_size", "0", NULL}, NULL, NULL, FALSE},
    {{"in_count", "0", NULL}, NULL, NULL, FALSE},
    {{"out_count", "65536", "out_size", "1073741824", NULL},
     NULL,
     "out_count, out_size: ",
     TRUE},
    {{"in_count", "65536", "in_size", "1073741824", "type", "write", NULL},
     NULL,
     "in_count, in_size: ",
     TRUE},
    {{NULL}, poke_requests_0, "requests: must be 1..4096", FALSE},
    {{NULL}, poke_requests_big, "requests: must be 1..4096", FALSE},
    {{NULL}, poke_type, "type: must be read, write, ioctl or internal-ioctl", FALSE},
    {{NULL}, poke_mode, "mode: must be automatic or manual", FALSE},
    {{NULL}, poke_completion, "completion: must be default or passive", FALSE},
    {{NULL}, poke_out_size, "out_size: must be 0..1073741824", FALSE},
};

static void test_to_engine_errors(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(engine_cases); i++) {
        const EngineCase *c = &engine_cases[i];
        CrtConfig cfg;
        CrtEngineConfig ec, untouched;
        GError *error = NULL;

        g_test_message("case %zu", i);
        crt_config_init(&cfg);
        for (size_t j = 0; c->sets[j] != NULL; j += 2)
            set_ok(&cfg, c->sets[j], c->sets[j + 1]);
        if (c->poke)
            c->poke(&cfg);
        memset(&ec, 0xa5, sizeof ec);
        memcpy(&untouched, &ec, sizeof ec);
        if (c->message == NULL) {
            g_assert_cmpint(crt_config_to_engine(&cfg, &ec, &error), ==, 0);
            g_assert_no_error(error);
        } else {
            g_assert_cmpint(crt_config_to_engine(&cfg, &ec, &error), ==, -EINVAL);
            g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
            if (c->prefix)
                g_assert_true(g_str_has_prefix(error->message, c->message));
            else
                g_assert_cmpstr(error->message, ==, c->message);
            g_assert_cmpmem(&ec, sizeof ec, &untouched, sizeof untouched);
            g_clear_error(&error);
        }
        crt_config_clear(&cfg);
    }
}

/* ---- the config file ---------------------------------------------------- */

static GKeyFile *key_file(const char *text)
{
    GKeyFile *kf = g_key_file_new();
    GError *error = NULL;

    g_assert_true(
        g_key_file_load_from_data(kf, text, (gsize)-1, G_KEY_FILE_NONE, &error));
    g_assert_no_error(error);
    return kf;
}

static void test_load_group(void)
{
    GKeyFile *kf = key_file("# two targets\n"
                            "[tty]\n"
                            "target =   /dev/ttyUSB0 baud=115200  \n"
                            "type = write\n"
                            "requests=8\n"
                            "lookaside = yes\n"
                            "payload = hello\\sworld\\n\n"
                            "autostart = true\n"
                            "ioctl = 0x10\n"
                            "[bare]\n"
                            "framing = stream\n");
    CrtConfig cfg;
    GError *error = NULL;
    char *spec = (char *)"garbage";
    gboolean autostart = TRUE;

    crt_config_init(&cfg);
    g_assert_cmpint(crt_config_load_group(&cfg, kf, "tty", &spec, &autostart, &error), ==,
                    0);
    g_assert_no_error(error);
    g_assert_cmpstr(spec, ==, "/dev/ttyUSB0 baud=115200");
    g_assert_true(autostart);
    g_assert_cmpint(cfg.type, ==, CRT_REQUEST_WRITE);
    g_assert_cmpuint(cfg.requests, ==, 8);
    g_assert_true(cfg.lookaside);
    g_assert_cmpstr(cfg.payload, ==, "hello world");
    g_assert_cmpuint(cfg.ioctl, ==, 0x10);
    g_assert_cmpint(cfg.framing, ==, CRT_FRAMING_RECORD);
    g_free(spec);
    crt_config_clear(&cfg);

    crt_config_init(&cfg);
    spec = (char *)"garbage";
    g_assert_cmpint(crt_config_load_group(&cfg, kf, "bare", &spec, &autostart, &error),
                    ==, 0);
    g_assert_no_error(error);
    g_assert_null(spec);
    g_assert_false(autostart);
    g_assert_cmpint(cfg.framing, ==, CRT_FRAMING_STREAM);
    crt_config_clear(&cfg);
    g_key_file_unref(kf);
}

static void test_load_group_autostart(void)
{
    static const struct {
        const char *text;
        gboolean autostart;
    } cases[] = {
        {"[t]\nautostart=1\n", TRUE},     {"[t]\nautostart=0\n", FALSE},
        {"[t]\nautostart=On\n", TRUE},    {"[t]\nautostart=false\n", FALSE},
        {"[t]\nautostart= yes \n", TRUE}, {"[t]\ntarget=\nautostart=1\n", TRUE},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GKeyFile *kf = key_file(cases[i].text);
        CrtConfig cfg;
        char *spec = NULL;
        gboolean autostart = !cases[i].autostart;

        crt_config_init(&cfg);
        g_assert_cmpint(crt_config_load_group(&cfg, kf, "t", &spec, &autostart, NULL), ==,
                        0);
        g_assert_cmpint(autostart, ==, cases[i].autostart);
        g_assert_null(spec);
        crt_config_clear(&cfg);
        g_key_file_unref(kf);
    }
}

static void test_load_group_bad(void)
{
    static const struct {
        const char *text;
        int err;
        const char *message;
    } cases[] = {
        {"[t]\ntarget=sim:\nbogus=1\n", -EINVAL, "t: unknown key \"bogus\""},
        {"[t]\ntarget=sim:\nrequests = 0\n", -EINVAL,
         "t: requests: \"0\" is not a whole number from 1 to 4096"},
        {"[t]\ntype=sideways\n", -EINVAL,
         "t: type: \"sideways\" is not read, write, ioctl or internal-ioctl"},
        {"[t]\ntarget=sim:\nautostart=maybe\n", -EINVAL,
         "t: autostart: \"maybe\" is not 0 or 1 (or true/false, yes/no, on/off)"},
        {"[t]\nrequests=1\\n2\n", -EINVAL, "t: requests: \"1\\n2\" is not a single line"},
        {"[t]\ntarget=sim:\\nsim:\n", -EINVAL,
         "t: target: \"sim:\\nsim:\" is not a single line"},
        {"[other]\nrequests=1\n", -ENOENT, "t: no such group"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GKeyFile *kf = key_file(cases[i].text);
        CrtConfig cfg;
        GError *error = NULL;
        char *spec = NULL;
        gboolean autostart = FALSE;

        note("file", cases[i].text);
        crt_config_init(&cfg);
        g_assert_cmpint(crt_config_load_group(&cfg, kf, "t", &spec, &autostart, &error),
                        ==, cases[i].err);
        g_assert_nonnull(error);
        g_assert_cmpstr(error->message, ==, cases[i].message);
        g_assert_null(spec);
        g_clear_error(&error);
        crt_config_clear(&cfg);
        g_key_file_unref(kf);
    }
}

/* GKeyFile hands back a value and an error both for a bad escape (`\l`):
 * the value is refused, with the error as the message and nothing leaked
 * (found by fuzz/fuzz-config-file). */
static void test_load_group_bad_escape(void)
{
    static const struct {
        const char *text;
        const char *prefix;
    } cases[] = {
        {"[t]\ntarget=sim:\\lsim:\n", "t: target: "},
        {"[t]\npayload=a\\lb\n", "t: payload: "},
        {"[t]\npayload=ab\\\n", "t: payload: "},
        /* A value the key's parser refuses too: one message, not two. */
        {"[t]\nrequests=1\\l\n", "t: requests: "},
        {"[t]\nautostart=maybe\\x\n", "t: autostart: "},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GKeyFile *kf = key_file(cases[i].text);
        CrtConfig cfg;
        GError *error = NULL;
        char *spec = NULL;
        gboolean autostart = FALSE;

        note("file", cases[i].text);
        crt_config_init(&cfg);
        g_assert_cmpint(crt_config_load_group(&cfg, kf, "t", &spec, &autostart, &error),
                        ==, -EINVAL);
        g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
        g_assert_true(g_str_has_prefix(error->message, cases[i].prefix));
        g_assert_null(spec);
        g_assert_null(cfg.payload);
        g_clear_error(&error);
        crt_config_clear(&cfg);
        g_key_file_unref(kf);
    }
}

/* owner, group and mode: names or numbers, octal modes; checked by
 * crt_config_load_group too. */
static void test_file_access_keys(void)
{
    GError *error = NULL;
    uid_t uid = 99;
    gid_t gid = 99;
    guint mode = 1;
    const char *bad_modes[] = {"", "0999", "-1", "1000", "0x1ff", "rw-r--r--"};

    g_assert_cmpint(crt_config_parse_owner("root", &uid, NULL), ==, 0);
    g_assert_cmpuint(uid, ==, 0);
    g_assert_cmpint(crt_config_parse_owner("1234", &uid, NULL), ==, 0);
    g_assert_cmpuint(uid, ==, 1234);
    g_assert_cmpint(crt_config_parse_owner("crtfs-no-such-user", &uid, &error), ==,
                    -EINVAL);
    g_assert_nonnull(strstr(error->message, "crtfs-no-such-user"));
    g_clear_error(&error);
    g_assert_cmpint(crt_config_parse_group("root", &gid, NULL), ==, 0);
    g_assert_cmpuint(gid, ==, 0);
    g_assert_cmpint(crt_config_parse_group("crtfs-no-such-group", &gid, NULL), ==,
                    -EINVAL);
    g_assert_cmpint(crt_config_parse_mode("0640", &mode, NULL), ==, 0);
    g_assert_cmpuint(mode, ==, 0640);
    g_assert_cmpint(crt_config_parse_mode("444", &mode, NULL), ==, 0);
    g_assert_cmpuint(mode, ==, 0444);
    for (size_t i = 0; i < G_N_ELEMENTS(bad_modes); i++)
        g_assert_cmpint(crt_config_parse_mode(bad_modes[i], &mode, NULL), ==, -EINVAL);

    GKeyFile *kf = g_key_file_new();
    CrtConfig cfg;
    char *spec = NULL;
    gboolean autostart;

    g_assert_true(g_key_file_load_from_data(
        kf,
        "[ok]\nowner=root\ngroup=0\nmode=0640\n[bad]\nmode=0778\n[eng]\nmode=manual\n",
        -1, 0, NULL));
    crt_config_init(&cfg);
    g_assert_cmpint(crt_config_load_group(&cfg, kf, "ok", &spec, &autostart, NULL), ==,
                    0);
    /* a word is the engine's mode, a number the files' */
    g_assert_true(crt_config_is_file_mode(" 0640"));
    g_assert_false(crt_config_is_file_mode("manual"));
    g_assert_cmpint(crt_config_load_group(&cfg, kf, "eng", &spec, &autostart, NULL), ==,
                    0);
    g_assert_cmpint(cfg.mode, ==, CRT_MODE_MANUAL);
    g_assert_cmpint(crt_config_load_group(&cfg, kf, "bad", &spec, &autostart, &error), ==,
                    -EINVAL);
    g_assert_nonnull(strstr(error->message, "mode"));
    g_clear_error(&error);
    g_free(spec);
    crt_config_clear(&cfg);
    g_key_file_free(kf);
}

/* split_max is one buffer at most: refused over out_size when written
 * alone, checked once at the end of a config file's group (whose keys come
 * in any order), and by the engine's view (out_size lowered later). */
static void test_split_max(void)
{
    GKeyFile *kf = key_file("[ok]\n"
                            "split_max = 8192\n"
                            "out_size = 8192\n"
                            "split = delim=\\\\n\n"
                            "[over]\n"
                            "out_size = 100\n"
                            "split_max = 101\n");
    CrtConfig cfg;
    CrtEngineConfig ec;
    GError *error = NULL;
    char *spec = NULL;
    gboolean autostart;

    crt_config_init(&cfg);
    g_assert_cmpint(crt_config_set(&cfg, "split_max", "4097", &error), ==, -EINVAL);
    g_assert_cmpstr(
        error->message, ==,
        "split_max: 4097 is more than out_size (4096): a message is one buffer, "
        "so it cannot be larger (0 means out_size)");
    g_clear_error(&error);
    assert_get(&cfg, "split_max", "0");
    set_ok(&cfg, "split_max", "4096");
    set_ok(&cfg, "out_size", "1000");
    g_assert_cmpint(crt_config_to_engine(&cfg, &ec, &error), ==, -EINVAL);
    g_assert_nonnull(
        strstr(error->message, "split_max: 4096 is more than out_size (1000)"));
    g_clear_error(&error);
    crt_config_clear(&cfg);

    crt_config_init(&cfg);
    g_assert_cmpint(crt_config_load_group(&cfg, kf, "ok", &spec, &autostart, &error), ==,
                    0);
    g_assert_no_error(error);
    g_assert_cmpuint(cfg.split.max_size, ==, 8192);
    /* the file's \\n is the two characters the split file takes */
    assert_get(&cfg, "split", "delim=\\n");
    crt_config_clear(&cfg);
    crt_config_init(&cfg);
    g_assert_cmpint(crt_config_load_group(&cfg, kf, "over", &spec, &autostart, &error),
                    ==, -EINVAL);
    g_assert_nonnull(
        strstr(error->message, "over: split_max: 101 is more than out_size"));
    g_clear_error(&error);
    crt_config_clear(&cfg);
    g_key_file_unref(kf);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    g_test_add_func("/config/defaults", test_defaults);
    g_test_add_func("/config/keys", test_keys);
    g_test_add_func("/config/unknown-key", test_unknown_key);
    g_test_add_func("/config/live-keys", test_live_keys);
    g_test_add_func("/config/line-sequences", test_line_sequences);
    g_test_add_func("/config/set-good", test_set_good);
    g_test_add_func("/config/round-trip", test_round_trip);
    g_test_add_func("/config/struct-members", test_struct_members);
    g_test_add_func("/config/set-bad", test_set_bad);
    g_test_add_func("/config/multi-line", test_multi_line);
    g_test_add_func("/config/messages", test_messages);
    g_test_add_func("/config/payload", test_payload);
    g_test_add_func("/config/split-max", test_split_max);
    g_test_add_func("/config/to-engine", test_to_engine);
    g_test_add_func("/config/to-engine-errors", test_to_engine_errors);
    g_test_add_func("/config/load-group", test_load_group);
    g_test_add_func("/config/load-group-autostart", test_load_group_autostart);
    g_test_add_func("/config/load-group-bad", test_load_group_bad);
    g_test_add_func("/config/load-group-bad-escape", test_load_group_bad_escape);
    g_test_add_func("/config/file-access-keys", test_file_access_keys);

    return g_test_run();
}
