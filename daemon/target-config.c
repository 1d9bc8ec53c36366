/* crtfs - a target's configuration: one table of keys serves the `config/`
 * files and the groups of the mount-time config file.
 *
 * Every key has a parser that writes its member only once the whole value
 * has been accepted, so a failed set leaves the config as it was, and a
 * formatter that prints the value so that setting it again gives the same
 * config.  The enum words come from the modules that own the enums.
 */
#include "config.h"

#include "target-config.h"

#include <crtfs/error.h>
#include <crtfs/lines.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <gio/gio.h>

/* Largest request count the engine accepts (crt_engine_config_validate). */
#define CONFIG_MAX_REQUESTS 4096u
/* Largest payload, in bytes. */
#define CONFIG_MAX_PAYLOAD (1024u * 1024u)
/* How much of a rejected value an error message quotes. */
#define CONFIG_QUOTE_MAX 64
/* split_wait: a message never waits longer than this. */
#define SPLIT_WAIT_MAX_MS (3600u * 1000u)

typedef struct ConfigKey ConfigKey;

/* Parses a trimmed value (the raw value for payload) into cfg, or fails with
 * -EINVAL and a message without changing cfg. */
typedef int (*ConfigParseFn)(const ConfigKey *key, CrtConfig *cfg, const char *value,
                             GError **error);
/* The value as the file shows it, without the trailing newline. */
typedef char *(*ConfigFormatFn)(const ConfigKey *key, const CrtConfig *cfg);

struct ConfigKey {
    const char *name;
    ConfigParseFn parse;
    ConfigFormatFn format;
    gboolean live; /* may change while the target streams */
    size_t offset; /* of the member in CrtConfig */
    guint64 min;   /* numbers: the range */
    guint64 max;
    gboolean raw; /* take the value verbatim (payload) */
};

static const char *const overflow_names[] = {
    [CRT_OVERFLOW_BLOCK] = "block",
    [CRT_OVERFLOW_DROP_OLDEST] = "drop-oldest",
};

static const char *const framing_names[] = {
    [CRT_FRAMING_RECORD] = "record",
    [CRT_FRAMING_STREAM] = "stream",
};

#define MEMBER(cfg, key, type) ((type *)(void *)((char *)(cfg) + (key)->offset))
#define CMEMBER(cfg, key, type)                                                          \
    ((const type *)(const void *)((const char *)(cfg) + (key)->offset))

/* ---- messages ---------------------------------------------------------- */

/* The value as a message quotes it: escaped, and cut short when long. */
static char *quote(const char *value)
{
    char *head = g_strndup(value, CONFIG_QUOTE_MAX);
    char *escaped = g_strescape(head, NULL);
    char *quoted = g_strdup_printf("\"%s%s\"", escaped,
                                   strlen(value) > CONFIG_QUOTE_MAX ? "..." : "");

    g_free(escaped);
    g_free(head);
    return quoted;
}

/* Fails with `KEY: "VALUE" is not WHAT`. */
static int reject(const char *key, const char *value, GError **error, const char *what)
{
    char *quoted = quote(value);

    crt_set_error(error, EINVAL, "%s: %s is not %s", key, quoted, what);
    g_free(quoted);
    return -EINVAL;
}

/* ---- numbers ----------------------------------------------------------- */

static int parse_number(const ConfigKey *key, const char *value, guint64 *out,
                        GError **error)
{
    if (!g_ascii_string_to_unsigned(value, 10, key->min, key->max, out, NULL)) {
        char *what = g_strdup_printf("a whole number from %" G_GUINT64_FORMAT
                                     " to %" G_GUINT64_FORMAT,
                                     key->min, key->max);
        int r = reject(key->name, value, error, what);

        g_free(what);
        return r;
    }
    return 0;
}

static int parse_uint(const ConfigKey *key, CrtConfig *cfg, const char *value,
                      GError **error)
{
    guint64 n;
    int r = parse_number(key, value, &n, error);

    if (r == 0)
        *MEMBER(cfg, key, guint) = (guint)n;
    return r;
}

static char *format_uint(const ConfigKey *key, const CrtConfig *cfg)
{
    return g_strdup_printf("%u", *CMEMBER(cfg, key, guint));
}

static int parse_size(const ConfigKey *key, CrtConfig *cfg, const char *value,
                      GError **error)
{
    guint64 n;
    int r = parse_number(key, value, &n, error);

    if (r == 0)
        *MEMBER(cfg, key, guint64) = n;
    return r;
}

static char *format_size(const ConfigKey *key, const CrtConfig *cfg)
{
    return g_strdup_printf("%" G_GUINT64_FORMAT, *CMEMBER(cfg, key, guint64));
}

/* Decimal, 0x hex or 0 octal, as C writes ioctl codes. */
static int parse_ioctl(const ConfigKey *key, CrtConfig *cfg, const char *value,
                       GError **error)
{
    const char *digits = value;
    guint base = 10;
    guint64 n;

    if (value[0] == '0' && (value[1] == 'x' || value[1] == 'X')) {
        digits = value + 2;
        base = 16;
    } else if (value[0] == '0' && value[1] != '\0') {
        base = 8;
    }
    if (!g_ascii_string_to_unsigned(digits, base, 0, G_MAXUINT32, &n, NULL))
        return reject(key->name, value, error,
                      "a number from 0 to 0xffffffff (decimal, 0x hex or 0 octal)");
    *MEMBER(cfg, key, guint32) = (guint32)n;
    return 0;
}

static char *format_ioctl(const ConfigKey *key, const CrtConfig *cfg)
{
    return g_strdup_printf("0x%x", (guint)*CMEMBER(cfg, key, guint32));
}

/* ---- booleans ---------------------------------------------------------- */

/* 0/1 as the files show them, and the words a GKeyFile user expects. */
static int bool_from_string(const char *s, gboolean *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};

    for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
        if (g_ascii_strcasecmp(s, yes[i]) == 0) {
            *out = TRUE;
            return 0;
        }
        if (g_ascii_strcasecmp(s, no[i]) == 0) {
            *out = FALSE;
            return 0;
        }
    }
    return -EINVAL;
}

static int parse_bool_value(const char *name, const char *value, gboolean *out,
                            GError **error)
{
    if (bool_from_string(value, out) < 0)
        return reject(name, value, error, "0 or 1 (or true/false, yes/no, on/off)");
    return 0;
}

static int parse_bool(const ConfigKey *key, CrtConfig *cfg, const char *value,
                      GError **error)
{
    gboolean b;
    int r = parse_bool_value(key->name, value, &b, error);

    if (r == 0)
        *MEMBER(cfg, key, gboolean) = b;
    return r;
}

static char *format_bool(const ConfigKey *key, const CrtConfig *cfg)
{
    return g_strdup(*CMEMBER(cfg, key, gboolean) ? "1" : "0");
}

/* ---- words ------------------------------------------------------------- */

static int parse_type(const ConfigKey *key, CrtConfig *cfg, const char *value,
                      GError **error)
{
    if (crt_request_type_from_string(value, &cfg->type) < 0)
        return reject(key->name, value, error, "read, write, ioctl or internal-ioctl");
    return 0;
}

static char *format_type(const ConfigKey *key, const CrtConfig *cfg)
{
    return g_strdup(crt_request_type_to_string(cfg->type));
}

static int parse_mode(const ConfigKey *key, CrtConfig *cfg, const char *value,
                      GError **error)
{
    if (crt_mode_from_string(value, &cfg->mode) < 0)
        return reject(key->name, value, error, "automatic or manual");
    return 0;
}

static char *format_mode(const ConfigKey *key, const CrtConfig *cfg)
{
    return g_strdup(crt_mode_to_string(cfg->mode));
}

static int parse_memory(const ConfigKey *key, CrtConfig *cfg, const char *value,
                        GError **error)
{
    if (crt_memory_from_string(value, MEMBER(cfg, key, CrtMemory)) < 0)
        return reject(key->name, value, error, "normal or locked");
    return 0;
}

static char *format_memory(const ConfigKey *key, const CrtConfig *cfg)
{
    return g_strdup(crt_memory_to_string(*CMEMBER(cfg, key, CrtMemory)));
}

static int parse_completion(const ConfigKey *key, CrtConfig *cfg, const char *value,
                            GError **error)
{
    if (crt_completion_from_string(value, &cfg->completion) < 0)
        return reject(key->name, value, error, "default or passive");
    return 0;
}

static char *format_completion(const ConfigKey *key, const CrtConfig *cfg)
{
    return g_strdup(crt_completion_to_string(cfg->completion));
}

/* The index of `s` in `names`, or -1. */
static int word_index(const char *s, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    }
    return -1;
}

static int parse_overflow(const ConfigKey *key, CrtConfig *cfg, const char *value,
                          GError **error)
{
    int i = word_index(value, overflow_names, G_N_ELEMENTS(overflow_names));

    if (i < 0)
        return reject(key->name, value, error, "block or drop-oldest");
    cfg->overflow = (CrtOverflow)i;
    return 0;
}

static char *format_overflow(const ConfigKey *key, const CrtConfig *cfg)
{
    return g_strdup(crt_overflow_to_string(cfg->overflow));
}

static int parse_framing(const ConfigKey *key, CrtConfig *cfg, const char *value,
                         GError **error)
{
    int i = word_index(value, framing_names, G_N_ELEMENTS(framing_names));

    if (i < 0)
        return reject(key->name, value, error, "record or stream");
    cfg->framing = (CrtFraming)i;
    return 0;
}

static char *format_framing(const ConfigKey *key, const CrtConfig *cfg)
{
    return g_strdup(crt_framing_to_string(cfg->framing));
}

/* ---- keep -------------------------------------------------------------- */

static const struct {
    const char *unit;
    guint64 ms;
} duration_units[] = {{"ms", 1}, {"s", 1000}, {"min", 60000}, {"h", 3600000}};

/* "500ms", "30s", "5min", "2h": a whole number and a unit, into ms. */
static gboolean parse_duration_ms(const char *s, guint64 max_ms, guint64 *out)
{
    const char *unit = s;
    guint64 n;

    while (g_ascii_isdigit(*unit))
        unit++;
    for (size_t i = 0; unit > s && i < G_N_ELEMENTS(duration_units); i++) {
        char *digits = g_strndup(s, (gsize)(unit - s));
        gboolean ok;

        if (strcmp(unit, duration_units[i].unit) != 0) {
            g_free(digits);
            continue;
        }
        ok = g_ascii_string_to_unsigned(digits, 10, 1, max_ms / duration_units[i].ms, &n,
                                        NULL);
        g_free(digits);
        if (ok)
            *out = n * duration_units[i].ms;
        return ok;
    }
    return FALSE;
}

/* The largest unit that divides `ms` exactly ("30s", "500ms"). */
static char *format_duration_ms(guint64 ms)
{
    for (size_t i = G_N_ELEMENTS(duration_units); i-- > 0;) {
        if (ms % duration_units[i].ms == 0)
            return g_strdup_printf("%" G_GUINT64_FORMAT "%s", ms / duration_units[i].ms,
                                   duration_units[i].unit);
    }
    g_assert_not_reached();
}

static int parse_keep(const ConfigKey *key, CrtConfig *cfg, const char *value,
                      GError **error)
{
    CrtKeep k = {0};

    if (strcmp(value, "auto") == 0)
        k.mode = CRT_KEEP_AUTO;
    else if (strcmp(value, "all") == 0)
        k.mode = CRT_KEEP_ALL;
    else if (strcmp(value, "none") == 0)
        k.mode = CRT_KEEP_NONE;
    else if (g_str_has_prefix(value, "last:") &&
             g_ascii_string_to_unsigned(value + 5, 10, 1, CRT_KEEP_MAX_LAST, &k.last,
                                        NULL))
        k.mode = CRT_KEEP_LAST;
    else if (g_str_has_prefix(value, "age:") &&
             parse_duration_ms(value + 4, CRT_KEEP_MAX_AGE_MS, &k.age_ms))
        k.mode = CRT_KEEP_AGE;
    else
        return reject(key->name, value, error,
                      "auto, all, none, last:N (N from 1 to 1000000) or age:DURATION "
                      "(a whole number with ms, s, min or h, at most 7 days)");
    cfg->keep = k;
    return 0;
}

char *crt_keep_to_string(const CrtKeep *keep)
{
    static const char *const words[] = {"auto", "all", "none"};

    if (keep->mode == CRT_KEEP_LAST)
        return g_strdup_printf("last:%" G_GUINT64_FORMAT, keep->last);
    if (keep->mode != CRT_KEEP_AGE)
        return g_strdup(words[keep->mode]);
    char *d = format_duration_ms(keep->age_ms), *s = g_strconcat("age:", d, NULL);

    g_free(d);
    return s;
}

static char *format_keep(const ConfigKey *key, const CrtConfig *cfg)
{
    return crt_keep_to_string(&cfg->keep);
}

CrtKeep crt_keep_resolve(const CrtKeep *keep, gboolean live_source)
{
    CrtKeep k = *keep;

    if (k.mode == CRT_KEEP_AUTO)
        k.mode = live_source ? CRT_KEEP_NONE : CRT_KEEP_ALL;
    return k;
}

/* ---- history ------------------------------------------------------------ */

gboolean crt_duration_parse_ms(const char *s, guint64 max_ms, guint64 *out)
{
    return parse_duration_ms(s, max_ms, out);
}

gboolean crt_history_limits_on(const CrtHistoryLimits *h)
{
    return h->last > 0 || h->age_ms > 0;
}

static int parse_history(const ConfigKey *key, CrtConfig *cfg, const char *value,
                         GError **error)
{
    guint64 n = 0, ms = 0;

    if (!g_ascii_string_to_unsigned(value, 10, 0, CRT_HISTORY_MAX_LAST, &n, NULL) &&
        !parse_duration_ms(value, CRT_KEEP_MAX_AGE_MS, &ms))
        return reject(key->name, value, error,
                      "0 (no history), a count of entries from 1 to 1000000, or a "
                      "DURATION (a whole number with ms, s, min or h, at most 7 days)");
    cfg->history.last = n;
    cfg->history.age_ms = ms;
    return 0;
}

static char *format_history(const ConfigKey *key, const CrtConfig *cfg)
{
    if (cfg->history.age_ms > 0)
        return format_duration_ms(cfg->history.age_ms);
    return g_strdup_printf("%" G_GUINT64_FORMAT, cfg->history.last);
}

/* ---- split -------------------------------------------------------------- */

static int parse_split(const ConfigKey *key, CrtConfig *cfg, const char *value,
                       GError **error)
{
    GError *err = NULL;
    CrtSplit s = cfg->split;

    if (crt_split_parse(value, &s, &err) < 0) {
        crt_set_error(error, EINVAL, "%s: %s", key->name, err->message);
        g_error_free(err);
        return -EINVAL;
    }
    cfg->split = s;
    return 0;
}

static char *format_split(const ConfigKey *key, const CrtConfig *cfg)
{
    return crt_split_to_string(&cfg->split);
}

/* A message is one buffer: it cannot be larger than out_size. */
static int check_split_max(guint64 max, guint64 out_size, GError **error)
{
    if (max > out_size)
        return crt_set_error(error, EINVAL,
                             "split_max: %" G_GUINT64_FORMAT
                             " is more than out_size (%" G_GUINT64_FORMAT
                             "): a message is one buffer, so it cannot "
                             "be larger (0 means out_size)",
                             max, out_size);
    return 0;
}

static int parse_split_max(const ConfigKey *key, CrtConfig *cfg, const char *value,
                           GError **error)
{
    guint64 n;
    int r = parse_number(key, value, &n, error);

    /* Against out_size: config_set, once the value is known to be a
     * number (a config file may give out_size after it). */
    if (r == 0)
        cfg->split.max_size = (guint)n;
    return r;
}

static char *format_split_max(const ConfigKey *key, const CrtConfig *cfg)
{
    return g_strdup_printf("%u", cfg->split.max_size);
}

static int parse_split_wait(const ConfigKey *key, CrtConfig *cfg, const char *value,
                            GError **error)
{
    guint64 ms;

    if (!parse_duration_ms(value, SPLIT_WAIT_MAX_MS, &ms))
        return reject(key->name, value, error,
                      "a duration from 1ms to 1h (a whole number with ms, s, min or h)");
    cfg->split.max_wait_ms = (guint)ms;
    return 0;
}

static char *format_split_wait(const ConfigKey *key, const CrtConfig *cfg)
{
    return format_duration_ms(cfg->split.max_wait_ms);
}

/* ---- payload ----------------------------------------------------------- */

/* The value is the bytes to send, blanks and inner newlines included; only
 * the newline `echo` adds is gone already. */
static int parse_payload(const ConfigKey *key, CrtConfig *cfg, const char *value,
                         GError **error)
{
    size_t len = strlen(value);

    if (len > CONFIG_MAX_PAYLOAD)
        return crt_set_error(error, EINVAL,
                             "%s: a value of %zu bytes is not at most %u bytes",
                             key->name, len, CONFIG_MAX_PAYLOAD);
    g_free(cfg->payload);
    cfg->payload = len > 0 ? g_strdup(value) : NULL;
    return 0;
}

static char *format_payload(const ConfigKey *key, const CrtConfig *cfg)
{
    return g_strdup(cfg->payload ? cfg->payload : "");
}

/* ---- on_open, on_close ------------------------------------------------ */

/* The member a sequence key keeps its text in. */
static char **seq_member(const ConfigKey *key, CrtConfig *cfg)
{
    return strcmp(key->name, "on_open") == 0 ? &cfg->on_open : &cfg->on_close;
}

/* A modem-line sequence (crtfs/lines.h), checked now, kept as text. */
static int parse_seq(const ConfigKey *key, CrtConfig *cfg, const char *value,
                     GError **error)
{
    CrtLineSeq *seq;
    char **member = seq_member(key, cfg);
    int r = crt_line_seq_parse(value, &seq, error);

    if (r < 0) {
        g_prefix_error(error, "%s: ", key->name);
        return r;
    }
    crt_line_seq_free(seq);
    g_free(*member);
    *member = value[0] ? g_strdup(value) : NULL;
    return 0;
}

static char *format_seq(const ConfigKey *key, const CrtConfig *cfg)
{
    char *const *member = seq_member(key, (CrtConfig *)cfg);

    return g_strdup(*member ? *member : "");
}

/* ---- the table --------------------------------------------------------- */

#define NUMBER(n, fn, member, lo, hi)                                                    \
    {                                                                                    \
        .name = n, .parse = parse_##fn, .format = format_##fn,                           \
        .offset = offsetof(CrtConfig, member), .min = lo, .max = hi                      \
    }
#define MEMBER_KEY(n, fn, member)                                                        \
    {                                                                                    \
        .name = n, .parse = parse_##fn, .format = format_##fn,                           \
        .offset = offsetof(CrtConfig, member)                                            \
    }
#define WORD_KEY(n, fn)                                                                  \
    {                                                                                    \
        .name = n, .parse = parse_##fn, .format = format_##fn                            \
    }

static const ConfigKey config_keys[] = {
    WORD_KEY("type", type),
    NUMBER("requests", uint, requests, 1, CONFIG_MAX_REQUESTS),
    NUMBER("out_count", uint, out_count, 0, CRT_BUFPOOL_MAX_COUNT),
    NUMBER("out_size", size, out_size, 0, CRT_BUFPOOL_MAX_SIZE),
    NUMBER("in_count", uint, in_count, 0, CRT_BUFPOOL_MAX_COUNT),
    NUMBER("in_size", size, in_size, 0, CRT_BUFPOOL_MAX_SIZE),
    MEMBER_KEY("ioctl", ioctl, ioctl),
    WORD_KEY("mode", mode),
    MEMBER_KEY("lookaside", bool, lookaside),
    MEMBER_KEY("in_memory", memory, in_memory),
    MEMBER_KEY("out_memory", memory, out_memory),
    WORD_KEY("completion", completion),
    MEMBER_KEY("purge_on_suspend", bool, purge_on_suspend),
    {.name = "overflow",
     .parse = parse_overflow,
     .format = format_overflow,
     .live = TRUE},
    {.name = "payload",
     .parse = parse_payload,
     .format = format_payload,
     .live = TRUE,
     .raw = TRUE},
    {.name = "framing", .parse = parse_framing, .format = format_framing, .live = TRUE},
    {.name = "keep", .parse = parse_keep, .format = format_keep, .live = TRUE},
    {.name = "split", .parse = parse_split, .format = format_split, .live = TRUE},
    {.name = "split_max",
     .parse = parse_split_max,
     .format = format_split_max,
     .live = TRUE,
     .min = 0,
     .max = CRT_BUFPOOL_MAX_SIZE},
    {.name = "split_wait",
     .parse = parse_split_wait,
     .format = format_split_wait,
     .live = TRUE},
    {.name = "on_open", .parse = parse_seq, .format = format_seq, .live = TRUE},
    {.name = "on_close", .parse = parse_seq, .format = format_seq, .live = TRUE},
    {.name = "history", .parse = parse_history, .format = format_history, .live = TRUE},
    {.name = "history_bytes",
     .parse = parse_size,
     .format = format_size,
     .live = TRUE,
     .offset = offsetof(CrtConfig, history.bytes),
     .min = CRT_HISTORY_MIN_BYTES,
     .max = CRT_BUFPOOL_MAX_SIZE},
};

static const ConfigKey *find_key(const char *name)
{
    for (size_t i = 0; name && i < G_N_ELEMENTS(config_keys); i++) {
        if (strcmp(name, config_keys[i].name) == 0)
            return &config_keys[i];
    }
    return NULL;
}

/* ---- public ------------------------------------------------------------ */

void crt_config_init(CrtConfig *cfg)
{
    g_return_if_fail(cfg != NULL);

    memset(cfg, 0, sizeof *cfg);
    cfg->type = CRT_REQUEST_READ;
    cfg->requests = 4;
    cfg->out_count = 16;
    cfg->out_size = 4096;
    cfg->in_count = 4;
    cfg->in_size = 4096;
    cfg->mode = CRT_MODE_MANUAL;
    cfg->in_memory = CRT_MEMORY_NORMAL;
    cfg->out_memory = CRT_MEMORY_NORMAL;
    cfg->completion = CRT_COMPLETION_DEFAULT;
    cfg->overflow = CRT_OVERFLOW_BLOCK;
    cfg->framing = CRT_FRAMING_RECORD;
    cfg->split.max_wait_ms = CRT_SPLIT_DEFAULT_WAIT_MS;
    cfg->history.bytes = CRT_HISTORY_DEFAULT_BYTES;
}

void crt_config_clear(CrtConfig *cfg)
{
    g_return_if_fail(cfg != NULL);

    g_clear_pointer(&cfg->payload, g_free);
    g_clear_pointer(&cfg->on_open, g_free);
    g_clear_pointer(&cfg->on_close, g_free);
}

/* `dst` is overwritten as raw storage: a config it held is not cleared. */
void crt_config_copy(CrtConfig *dst, const CrtConfig *src)
{
    g_return_if_fail(dst != NULL && src != NULL);

    if (dst == src)
        return;
    *dst = *src;
    dst->payload = g_strdup(src->payload);
    dst->on_open = g_strdup(src->on_open);
    dst->on_close = g_strdup(src->on_close);
}

const char *const *crt_config_keys(void)
{
    static const char *names[G_N_ELEMENTS(config_keys) + 1];
    static gsize done;

    /* Built from the table once, so the list cannot drift from it. */
    if (g_once_init_enter(&done)) {
        for (size_t i = 0; i < G_N_ELEMENTS(config_keys); i++)
            names[i] = config_keys[i].name;
        names[G_N_ELEMENTS(config_keys)] = NULL;
        g_once_init_leave(&done, 1);
    }
    return names;
}

gboolean crt_config_has_key(const char *key)
{
    return find_key(key) != NULL;
}

gboolean crt_config_key_is_live(const char *key)
{
    const ConfigKey *k = find_key(key);

    return k != NULL && k->live;
}

/* Takes off one trailing newline; unless `raw`, also the blanks around the
 * value, and then refuses a value that still spans lines.  Newly allocated,
 * or NULL with `error` set. */
static char *trim_value(const char *name, const char *value, gboolean raw, GError **error)
{
    size_t len = strlen(value);
    size_t start = 0;

    if (len > 0 && value[len - 1] == '\n')
        len--;
    if (raw)
        return g_strndup(value, len);
    while (start < len && (value[start] == ' ' || value[start] == '\t'))
        start++;
    while (len > start && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    if (memchr(value + start, '\n', len - start) ||
        memchr(value + start, '\r', len - start)) {
        reject(name, value, error, "a single line");
        return NULL;
    }
    return g_strndup(value + start, len - start);
}

/* crt_config_set; `alone` checks a key against the ones it depends on
 * now (split_max against out_size), which a config file's group, whose
 * keys come in any order, does once at its end instead. */
static int config_set(CrtConfig *cfg, const char *key, const char *value, gboolean alone,
                      GError **error)
{
    const ConfigKey *k;
    guint old_max = cfg->split.max_size;
    char *trimmed;
    int r;

    g_return_val_if_fail(cfg != NULL && key != NULL && value != NULL, -EINVAL);

    k = find_key(key);
    if (k == NULL)
        return crt_set_error(error, ENOENT, "unknown key \"%s\"", key);
    trimmed = trim_value(k->name, value, k->raw, error);
    if (trimmed == NULL)
        return -EINVAL;
    r = k->parse(k, cfg, trimmed, error);
    g_free(trimmed);
    if (r == 0 && alone && strcmp(k->name, "split_max") == 0 &&
        (r = check_split_max(cfg->split.max_size, cfg->out_size, error)) < 0)
        cfg->split.max_size = old_max;
    return r;
}

int crt_config_set(CrtConfig *cfg, const char *key, const char *value, GError **error)
{
    return config_set(cfg, key, value, TRUE, error);
}

char *crt_config_get(const CrtConfig *cfg, const char *key)
{
    const ConfigKey *k;
    char *value, *line;

    g_return_val_if_fail(cfg != NULL && key != NULL, NULL);

    k = find_key(key);
    if (k == NULL)
        return NULL;
    value = k->format(k, cfg);
    line = g_strconcat(value, "\n", NULL);
    g_free(value);
    return line;
}

const char *crt_overflow_to_string(CrtOverflow o)
{
    return (guint)o < G_N_ELEMENTS(overflow_names) ? overflow_names[o] : "invalid";
}

const char *crt_framing_to_string(CrtFraming f)
{
    return (guint)f < G_N_ELEMENTS(framing_names) ? framing_names[f] : "invalid";
}

/* ---- the engine's view ------------------------------------------------- */

/* Which pool member a failed crt_bufpool_check() is about, in config words. */
static int explain_pool(const char *prefix, guint count, guint64 size, gboolean lookaside,
                        const char *engine_msg, GError **error)
{
    if (size > CRT_BUFPOOL_MAX_SIZE)
        return crt_set_error(error, EINVAL, "%s_size: must be 0..%zu", prefix,
                             CRT_BUFPOOL_MAX_SIZE);
    if (count > CRT_BUFPOOL_MAX_COUNT)
        return crt_set_error(error, EINVAL, "%s_count: must be 0..%u", prefix,
                             CRT_BUFPOOL_MAX_COUNT);
    if (count == 0 && !lookaside)
        return crt_set_error(error, EINVAL, "%s_count: 0 needs lookaside=1", prefix);
    return crt_set_error(error, EINVAL, "%s_count, %s_size: %s", prefix, prefix,
                         engine_msg);
}

/* Says in the config file's words why the engine refused `cfg`. */
static int explain_invalid(const CrtConfig *cfg, const char *engine_msg, GError **error)
{
    gboolean has_out = crt_request_type_has_output(cfg->type);
    gboolean has_in = crt_request_type_has_input(cfg->type);

    if (cfg->requests == 0 || cfg->requests > CONFIG_MAX_REQUESTS)
        return crt_set_error(error, EINVAL, "requests: must be 1..%u",
                             CONFIG_MAX_REQUESTS);
    if (cfg->type <= CRT_REQUEST_INVALID || cfg->type > CRT_REQUEST_WRITE)
        return crt_set_error(error, EINVAL,
                             "type: must be read, write, ioctl or internal-ioctl");
    if (cfg->type == CRT_REQUEST_IOCTL && cfg->ioctl == 0)
        return crt_set_error(error, EINVAL,
                             "ioctl: type ioctl needs a non-zero ioctl code");
    if (cfg->mode <= CRT_MODE_INVALID || cfg->mode >= CRT_MODE_MAXIMUM)
        return crt_set_error(error, EINVAL, "mode: must be automatic or manual");
    if ((guint)cfg->completion >= CRT_COMPLETION_MAXIMUM)
        return crt_set_error(error, EINVAL, "completion: must be default or passive");
    if ((guint)cfg->in_memory > CRT_MEMORY_LOCKED)
        return crt_set_error(error, EINVAL, "in_memory: must be normal or locked");
    if ((guint)cfg->out_memory > CRT_MEMORY_LOCKED)
        return crt_set_error(error, EINVAL, "out_memory: must be normal or locked");
    if (has_out && cfg->out_size > 0 &&
        crt_bufpool_check(cfg->out_count, (size_t)cfg->out_size, 0, cfg->lookaside,
                          NULL) < 0)
        return explain_pool("out", cfg->out_count, cfg->out_size, cfg->lookaside,
                            engine_msg, error);
    if (has_in && cfg->in_size > 0 && cfg->in_count == 0)
        return crt_set_error(error, EINVAL, "in_count: 0 leaves type %s no input buffer",
                             crt_request_type_to_string(cfg->type));
    if (has_in && cfg->in_size > 0 &&
        crt_bufpool_check(cfg->in_count, (size_t)cfg->in_size, 0, FALSE, NULL) < 0)
        return explain_pool("in", cfg->in_count, cfg->in_size, FALSE, engine_msg, error);
    return crt_set_error(error, EINVAL, "configuration: %s", engine_msg);
}

int crt_config_to_engine(const CrtConfig *cfg, CrtEngineConfig *out, GError **error)
{
    CrtEngineConfig ec;
    GError *engine_error = NULL;
    int r;

    g_return_val_if_fail(cfg != NULL && out != NULL, -EINVAL);

    /* Sizes above the pool maximum are refused anyway; this keeps a huge
     * guint64 from wrapping into a small size_t on 32-bit hosts. */
    if (cfg->out_size > CRT_BUFPOOL_MAX_SIZE || cfg->in_size > CRT_BUFPOOL_MAX_SIZE)
        return crt_set_error(error, EINVAL, "%s: must be 0..%zu",
                             cfg->out_size > CRT_BUFPOOL_MAX_SIZE ? "out_size"
                                                                  : "in_size",
                             CRT_BUFPOOL_MAX_SIZE);
    if ((r = check_split_max(cfg->split.max_size, cfg->out_size, error)) < 0)
        return r;
    crt_engine_config_init(&ec);
    ec.request_count = cfg->requests;
    ec.type = cfg->type;
    ec.out_count = cfg->out_count;
    ec.out_size = (size_t)cfg->out_size;
    ec.in_count = cfg->in_count;
    ec.in_size = (size_t)cfg->in_size;
    ec.ioctl = cfg->ioctl;
    ec.mode = cfg->mode;
    ec.lookaside_output = cfg->lookaside;
    ec.in_memory = cfg->in_memory;
    ec.out_memory = cfg->out_memory;
    ec.completion = cfg->completion;
    ec.purge_on_suspend = cfg->purge_on_suspend;
    r = crt_engine_config_validate(&ec, &engine_error);
    if (r < 0) {
        r = explain_invalid(cfg, engine_error ? engine_error->message : "invalid", error);
        g_clear_error(&engine_error);
        return r;
    }
    *out = ec;
    return 0;
}

/* ---- the config file --------------------------------------------------- */

int crt_config_parse_owner(const char *value, uid_t *out, GError **error)
{
    char buf[4096];
    struct passwd pw, *found = NULL;
    guint64 n;

    if (g_ascii_string_to_unsigned(value, 10, 0, G_MAXUINT32 - 1, &n, NULL)) {
        *out = (uid_t)n;
        return 0;
    }
    if (value[0] && getpwnam_r(value, &pw, buf, sizeof buf, &found) == 0 && found) {
        *out = found->pw_uid;
        return 0;
    }
    return crt_set_error(error, EINVAL, "owner: no user \"%s\" (a user name or a uid)",
                         value);
}

int crt_config_parse_group(const char *value, gid_t *out, GError **error)
{
    char buf[16384];
    struct group gr, *found = NULL;
    guint64 n;

    if (g_ascii_string_to_unsigned(value, 10, 0, G_MAXUINT32 - 1, &n, NULL)) {
        *out = (gid_t)n;
        return 0;
    }
    if (value[0] && getgrnam_r(value, &gr, buf, sizeof buf, &found) == 0 && found) {
        *out = found->gr_gid;
        return 0;
    }
    return crt_set_error(error, EINVAL, "group: no group \"%s\" (a group name or a gid)",
                         value);
}

int crt_config_parse_mode(const char *value, guint *out, GError **error)
{
    guint64 n;

    if (value[0] && g_ascii_string_to_unsigned(value, 8, 0, 0777, &n, NULL)) {
        *out = (guint)n;
        return 0;
    }
    return crt_set_error(error, EINVAL,
                         "mode: \"%s\" is not an octal mode from 0 to 0777 (as 0640)",
                         value);
}

gboolean crt_config_is_file_mode(const char *value)
{
    while (g_ascii_isspace(*value))
        value++;
    return g_ascii_isdigit(*value);
}

gboolean crt_config_is_access_key(const char *key, const char *value)
{
    return strcmp(key, "owner") == 0 || strcmp(key, "group") == 0 ||
           (strcmp(key, "mode") == 0 && value && crt_config_is_file_mode(value));
}

int crt_config_parse_access(const char *key, const char *value, CrtFileAccess *access,
                            GError **error)
{
    if (strcmp(key, "owner") == 0)
        return crt_config_parse_owner(value, &access->uid, error);
    if (strcmp(key, "group") == 0)
        return crt_config_parse_group(value, &access->gid, error);
    return crt_config_parse_mode(value, &access->mode, error);
}

/* One key of a target group; `target` and `autostart` are the caller's. */
static int load_key(CrtConfig *cfg, const char *key, const char *value,
                    char **target_spec, gboolean *autostart, GError **error)
{
    if (crt_config_is_access_key(key, value)) {
        char *word = trim_value(key, value, FALSE, error);
        CrtFileAccess access;
        int r = word ? crt_config_parse_access(key, word, &access, error) : -EINVAL;

        g_free(word);
        return r;
    }
    if (strcmp(key, "target") == 0) {
        char *spec = trim_value(key, value, FALSE, error);

        if (spec == NULL)
            return -EINVAL;
        /* An empty target means none, as an empty line clears `target`. */
        if (spec[0] == '\0')
            g_clear_pointer(&spec, g_free);
        g_free(*target_spec);
        *target_spec = spec;
        return 0;
    }
    if (strcmp(key, "autostart") == 0) {
        char *word = trim_value(key, value, FALSE, error);
        int r = word ? parse_bool_value(key, word, autostart, error) : -EINVAL;

        g_free(word);
        return r;
    }
    return config_set(cfg, key, value, FALSE, error);
}

int crt_config_load_group(CrtConfig *cfg, GKeyFile *kf, const char *group,
                          char **target_spec, gboolean *autostart, GError **error)
{
    GError *local = NULL;
    char **keys;
    int r = 0;

    g_return_val_if_fail(cfg && kf && group && target_spec && autostart, -EINVAL);

    *target_spec = NULL;
    *autostart = FALSE;
    keys = g_key_file_get_keys(kf, group, NULL, NULL);
    if (keys == NULL)
        return crt_set_error(error, ENOENT, "%s: no such group", group);
    for (size_t i = 0; r == 0 && keys[i]; i++) {
        const char *key = keys[i];
        char *value;

        if (strcmp(key, "target") != 0 && strcmp(key, "autostart") != 0 &&
            strcmp(key, "owner") != 0 && strcmp(key, "group") != 0 &&
            !crt_config_has_key(key)) {
            r = crt_set_error(error, EINVAL, "%s: unknown key \"%s\"", group, key);
            break;
        }
        /* get_string undoes the file's escapes, so a payload can hold \n.
         * For a bad escape (`\l`) it returns a value and an error both:
         * the error decides. */
        value = g_key_file_get_string(kf, group, key, &local);
        if (local != NULL) {
            r = crt_set_error(error, EINVAL, "%s: %s: %s", group, key, local->message);
            g_clear_error(&local);
            g_free(value);
            break;
        }
        r = load_key(cfg, key, value, target_spec, autostart, &local);
        if (r < 0) {
            r = crt_set_error(error, -r, "%s: %s", group, local ? local->message : key);
            g_clear_error(&local);
        }
        g_free(value);
    }
    g_strfreev(keys);
    /* The keys that depend on others, now that the group has them all. */
    if (r == 0 && check_split_max(cfg->split.max_size, cfg->out_size, &local) < 0) {
        r = crt_set_error(error, EINVAL, "%s: %s", group, local->message);
        g_clear_error(&local);
    }
    if (r < 0)
        g_clear_pointer(target_spec, g_free);
    return r;
}
