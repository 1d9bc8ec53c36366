/* crtfs - the target spec parser: the one function that turns a spec line
 * into a CrtTargetSpec (see include/crtfs/target.h).  It admits any baud
 * rate up to CRT_BAUD_MAX; whether a UART can run at it is the open's
 * question. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include <gio/gio.h>

#include "baud.h"
#include "target-private.h"

/* ---- the spec parser ------------------------------------------------- */

/* The kernel's limit for RS-485 RTS delays (serial_core clamps to it). */
#define CRT_RS485_DELAY_MAX 100u
#define CRT_CHARDELAY_MAX_US 1000000u

/* Fields an option sets.  Each remembers the token that set it, so that a
 * repeated option is harmless but a contradicting one is reported with both
 * tokens: "baud=9600 ... baud=19200" is a typo an admin wants to hear about. */
enum {
    F_BAUD,
    F_RAW,
    F_DATA_BITS,
    F_PARITY,
    F_STOP_BITS,
    F_FLOW,
    F_SHARED,
    F_RS485,
    F_LOW_LATENCY,
    F_CHARDELAY,
    F_WAIT,
    F_RATE,
    F_SIZE,
    F_DELAY,
    F_FAIL,
    F_ERRNO,
    F_FATAL,
    F_LIMIT,
    F_SERIAL,
    F_INTERFACE,
    F_UPATH,
    F_COUNT
};

typedef struct {
    CrtTargetSpec *spec;
    const char *seen[F_COUNT]; /* the token that set each field, or NULL */
    guint64 value[F_COUNT];
} SpecParser;

typedef int (*OptionFn)(SpecParser *p, const char *key, const char *value,
                        const char *token, GError **error);

/* SpecOption.has_value: FALSE, a bare flag; TRUE, key=value; or either. */
#define VALUE_OPTIONAL 2

typedef struct {
    const char *key;
    int has_value;
    OptionFn fn;
} SpecOption;

static int claim(SpecParser *p, int field, guint64 value, const char *token,
                 GError **error)
{
    if (p->seen[field] != NULL && p->value[field] != value)
        return crt_set_error(error, EINVAL, "option \"%s\" conflicts with \"%s\"", token,
                             p->seen[field]);
    p->seen[field] = token;
    p->value[field] = value;
    return 0;
}

/* Strict decimal: no sign, no blanks, no junk, no overflow, within bounds. */
static int parse_number(const char *key, const char *value, guint64 min, guint64 max,
                        guint64 *out, GError **error)
{
    if (g_ascii_string_to_unsigned(value, 10, min, max, out, NULL))
        return 0;
    if (max == G_MAXUINT64)
        return crt_set_error(error, EINVAL,
                             "invalid value \"%s\" for %s: expected a whole number of at "
                             "least %" G_GUINT64_FORMAT,
                             value, key, min);
    return crt_set_error(error, EINVAL,
                         "invalid value \"%s\" for %s: expected a whole number from "
                         "%" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT,
                         value, key, min, max);
}

/* Any rate: the standard ones are set as B* constants, the others with
 * termios2 BOTHER (tty-speed.h); whether the UART can is the open's
 * question. */
static int opt_baud(SpecParser *p, const char *key, const char *value, const char *token,
                    GError **error)
{
    guint64 v = 0;

    if (!g_ascii_string_to_unsigned(value, 10, 1, CRT_BAUD_MAX, &v, NULL))
        return crt_set_error(error, EINVAL,
                             "invalid value \"%s\" for baud: expected a rate in bits per "
                             "second from 1 to %u, such as 9600, 115200 or 250000",
                             value, CRT_BAUD_MAX);
    int r = claim(p, F_BAUD, v, token, error);
    if (r == 0)
        p->spec->baud = (guint)v;
    return r;
}

static int set_data_bits(SpecParser *p, guint bits, const char *token, GError **error)
{
    int r = claim(p, F_DATA_BITS, bits, token, error);
    if (r == 0)
        p->spec->data_bits = bits;
    return r;
}

static int set_parity(SpecParser *p, CrtParity parity, const char *token, GError **error)
{
    int r = claim(p, F_PARITY, parity, token, error);
    if (r == 0) {
        p->spec->parity = parity;
        p->spec->parity_set = TRUE;
    }
    return r;
}

static int set_stop_bits(SpecParser *p, guint bits, const char *token, GError **error)
{
    int r = claim(p, F_STOP_BITS, bits, token, error);
    if (r == 0)
        p->spec->stop_bits = bits;
    return r;
}

static int set_flow(SpecParser *p, CrtFlow flow, const char *token, GError **error)
{
    int r = claim(p, F_FLOW, flow, token, error);
    if (r == 0) {
        p->spec->flow = flow;
        p->spec->flow_set = TRUE;
    }
    return r;
}

static int opt_raw(SpecParser *p, const char *key, const char *value, const char *token,
                   GError **error)
{
    p->spec->raw = TRUE;
    return claim(p, F_RAW, 1, token, error);
}

static int opt_shared(SpecParser *p, const char *key, const char *value,
                      const char *token, GError **error)
{
    p->spec->shared = TRUE;
    return claim(p, F_SHARED, 1, token, error);
}

static int opt_wait(SpecParser *p, const char *key, const char *value, const char *token,
                    GError **error)
{
    p->spec->wait = TRUE;
    return claim(p, F_WAIT, 1, token, error);
}

/* cs5 .. cs8, as stty spells them. */
static int opt_cs(SpecParser *p, const char *key, const char *value, const char *token,
                  GError **error)
{
    return set_data_bits(p, (guint)(key[2] - '0'), token, error);
}

static int opt_databits(SpecParser *p, const char *key, const char *value,
                        const char *token, GError **error)
{
    guint64 v;
    int r = parse_number(key, value, 5, 8, &v, error);
    return r < 0 ? r : set_data_bits(p, (guint)v, token, error);
}

static int opt_stopbits(SpecParser *p, const char *key, const char *value,
                        const char *token, GError **error)
{
    guint64 v;
    int r = parse_number(key, value, 1, 2, &v, error);
    return r < 0 ? r : set_stop_bits(p, (guint)v, token, error);
}

static int opt_parity(SpecParser *p, const char *key, const char *value,
                      const char *token, GError **error)
{
    static const char *const names[] = {"none", "even", "odd"};

    for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
        if (strcmp(value, names[i]) == 0)
            return set_parity(p, (CrtParity)i, token, error);
    }
    return crt_set_error(error, EINVAL,
                         "invalid value \"%s\" for parity: expected none, even or odd",
                         value);
}

static int flow_from_name(const char *name, CrtFlow *out)
{
    static const char *const names[] = {"none", "rtscts", "xonxoff"};

    for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (CrtFlow)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* `rtscts` and `xonxoff` as bare flags. */
static int opt_flow_flag(SpecParser *p, const char *key, const char *value,
                         const char *token, GError **error)
{
    CrtFlow flow = CRT_FLOW_NONE;

    flow_from_name(key, &flow);
    return set_flow(p, flow, token, error);
}

static int opt_flow(SpecParser *p, const char *key, const char *value, const char *token,
                    GError **error)
{
    CrtFlow flow;

    if (flow_from_name(value, &flow) < 0)
        return crt_set_error(error, EINVAL,
                             "invalid value \"%s\" for flow: expected none, rtscts or "
                             "xonxoff",
                             value);
    return set_flow(p, flow, token, error);
}

/* The "8N1" shorthand every serial terminal prints: data bits, parity
 * letter, stop bits.  Returns FALSE if `token` does not look like one (a
 * digit, a letter, a digit); TRUE with *r set otherwise. */
static gboolean parse_line_format(SpecParser *p, const char *token, int *r,
                                  GError **error)
{
    static const char letters[] = "NEO";
    const char *letter;

    if (strlen(token) != 3 || !g_ascii_isdigit(token[0]) || !g_ascii_isalpha(token[1]) ||
        !g_ascii_isdigit(token[2]))
        return FALSE;
    letter = strchr(letters, g_ascii_toupper(token[1]));
    if (token[0] < '5' || token[0] > '8' || letter == NULL ||
        (token[2] != '1' && token[2] != '2')) {
        *r = crt_set_error(error, EINVAL,
                           "invalid line format \"%s\": expected data bits 5 to 8, "
                           "parity N, E or O, and stop bits 1 or 2, as in 8N1",
                           token);
        return TRUE;
    }
    *r = set_data_bits(p, (guint)(token[0] - '0'), token, error);
    if (*r == 0)
        *r = set_parity(p, (CrtParity)(letter - letters), token, error);
    if (*r == 0)
        *r = set_stop_bits(p, (guint)(token[2] - '0'), token, error);
    return TRUE;
}

/* A whole number of milliseconds, "N" or "Nms", from 0 to `max`. */
static gboolean parse_ms(const char *s, guint max, guint *out)
{
    char *digits = g_str_has_suffix(s, "ms") ? g_strndup(s, strlen(s) - 2) : g_strdup(s);
    guint64 v;
    gboolean ok = g_ascii_string_to_unsigned(digits, 10, 0, max, &v, NULL);

    g_free(digits);
    if (ok)
        *out = (guint)v;
    return ok;
}

/* One item of rs485=ITEM,ITEM: a flag with an optional =0|1, or a delay. */
static gboolean rs485_item(CrtTargetSpec *s, const char *item)
{
    static const char *const flags[] = {"rts_on_send", "rts_after_send", "rx_during_tx"};
    gboolean *fields[] = {&s->rs485_rts_on_send, &s->rs485_rts_after_send,
                          &s->rs485_rx_during_tx};
    const char *eq = strchr(item, '=');
    size_t len = eq ? (size_t)(eq - item) : strlen(item);

    for (size_t i = 0; i < G_N_ELEMENTS(flags); i++) {
        if (strlen(flags[i]) != len || strncmp(item, flags[i], len) != 0)
            continue;
        if (eq && strcmp(eq + 1, "0") != 0 && strcmp(eq + 1, "1") != 0)
            return FALSE;
        *fields[i] = !eq || eq[1] == '1';
        return TRUE;
    }
    if (g_str_has_prefix(item, "delay_before="))
        return parse_ms(item + strlen("delay_before="), CRT_RS485_DELAY_MAX,
                        &s->rs485_delay_before);
    if (g_str_has_prefix(item, "delay_after="))
        return parse_ms(item + strlen("delay_after="), CRT_RS485_DELAY_MAX,
                        &s->rs485_delay_after);
    return FALSE;
}

/* `rs485` (RTS up while sending) or `rs485=ITEM,...`. */
static int opt_rs485(SpecParser *p, const char *key, const char *value, const char *token,
                     GError **error)
{
    CrtTargetSpec *s = p->spec;
    /* "rs485=" is one empty item, not none. */
    char **items =
        g_strsplit(value && value[0] ? value : ",", ",", value && value[0] ? -1 : 2);
    int r = 0;

    s->rs485 = TRUE;
    s->rs485_rts_on_send = TRUE;
    s->rs485_rts_after_send = s->rs485_rx_during_tx = FALSE;
    s->rs485_delay_before = s->rs485_delay_after = 0;
    for (guint i = 0; r == 0 && value && items[i]; i++) {
        if (!rs485_item(s, items[i]))
            r = crt_set_error(
                error, EINVAL,
                "invalid item \"%s\" in \"%s\": expected rts_on_send[=0|1], "
                "rts_after_send[=0|1], rx_during_tx[=0|1], delay_before=MS "
                "or delay_after=MS (MS from 0 to %u)",
                items[i], token, CRT_RS485_DELAY_MAX);
    }
    g_strfreev(items);
    if (r == 0)
        r = claim(p, F_RS485,
                  (guint64)s->rs485_rts_on_send << 40 |
                      (guint64)s->rs485_rts_after_send << 41 |
                      (guint64)s->rs485_rx_during_tx << 42 |
                      (guint64)s->rs485_delay_before << 16 | s->rs485_delay_after,
                  token, error);
    return r;
}

static int opt_low_latency(SpecParser *p, const char *key, const char *value,
                           const char *token, GError **error)
{
    p->spec->low_latency = TRUE;
    return claim(p, F_LOW_LATENCY, 1, token, error);
}

/* chardelay=DURATION: a whole number with us, ms or s (a bare number is
 * ms), from 1 us to 1 s. */
static int opt_chardelay(SpecParser *p, const char *key, const char *value,
                         const char *token, GError **error)
{
    static const struct {
        const char *unit;
        guint64 us;
    } units[] = {{"us", 1}, {"ms", 1000}, {"s", 1000000}, {"", 1000}};
    const char *unit = value;
    guint64 n = 0;
    gboolean ok = FALSE;

    while (g_ascii_isdigit(*unit))
        unit++;
    for (size_t i = 0; !ok && unit > value && i < G_N_ELEMENTS(units); i++) {
        char *digits = g_strndup(value, (gsize)(unit - value));

        ok = strcmp(unit, units[i].unit) == 0 &&
             g_ascii_string_to_unsigned(digits, 10, 1, CRT_CHARDELAY_MAX_US / units[i].us,
                                        &n, NULL);
        n *= units[i].us;
        g_free(digits);
    }
    if (!ok)
        return crt_set_error(
            error, EINVAL,
            "invalid value \"%s\" for chardelay: expected a whole number "
            "with us, ms or s (a bare number is ms), from 1us to 1s",
            value);
    int r = claim(p, F_CHARDELAY, n, token, error);
    if (r == 0)
        p->spec->chardelay_us = (guint)n;
    return r;
}

static const SpecOption path_options[] = {
    {"baud", TRUE, opt_baud},
    {"raw", FALSE, opt_raw},
    {"cs5", FALSE, opt_cs},
    {"cs6", FALSE, opt_cs},
    {"cs7", FALSE, opt_cs},
    {"cs8", FALSE, opt_cs},
    {"databits", TRUE, opt_databits},
    {"parity", TRUE, opt_parity},
    {"stopbits", TRUE, opt_stopbits},
    {"rtscts", FALSE, opt_flow_flag},
    {"xonxoff", FALSE, opt_flow_flag},
    {"flow", TRUE, opt_flow},
    {"shared", FALSE, opt_shared},
    {"rs485", VALUE_OPTIONAL, opt_rs485},
    {"low_latency", FALSE, opt_low_latency},
    {"chardelay", TRUE, opt_chardelay},
    {"wait", FALSE, opt_wait},
};

/* ---- identity options (usb:, udev:) ---- */

/* A string option may be repeated with the same value only. */
static int claim_string(SpecParser *p, int field, char **slot, const char *value,
                        const char *token, GError **error)
{
    if (value[0] == '\0')
        return crt_set_error(error, EINVAL, "option \"%s\" needs a value", token);
    if (*slot != NULL && strcmp(*slot, value) != 0)
        return crt_set_error(error, EINVAL, "option \"%s\" conflicts with \"%s\"", token,
                             p->seen[field]);
    p->seen[field] = token;
    g_free(*slot);
    *slot = g_strdup(value);
    return 0;
}

static int opt_serial(SpecParser *p, const char *key, const char *value,
                      const char *token, GError **error)
{
    return claim_string(p, F_SERIAL, &p->spec->usb_serial, value, token, error);
}

static int opt_usb_path(SpecParser *p, const char *key, const char *value,
                        const char *token, GError **error)
{
    return claim_string(p, F_UPATH, &p->spec->usb_path, value, token, error);
}

/* interface=N: bInterfaceNumber, decimal as lsusb prints it (0..255). */
static int opt_interface(SpecParser *p, const char *key, const char *value,
                         const char *token, GError **error)
{
    guint64 v;
    int r = parse_number(key, value, 0, 255, &v, error);

    if (r == 0)
        r = claim(p, F_INTERFACE, v, token, error);
    if (r == 0)
        p->spec->usb_interface = (int)v;
    return r;
}

static gboolean is_property_name(const char *key, size_t len)
{
    if (len == 0)
        return FALSE;
    for (size_t i = 0; i < len; i++) {
        if (!g_ascii_isalnum(key[i]) && key[i] != '_' && key[i] != '.' && key[i] != '-')
            return FALSE;
    }
    return TRUE;
}

/* KEY=VALUE[,KEY=VALUE...] appended to spec->match; `what` is the token for
 * the words of an error. */
static int add_matches(CrtTargetSpec *s, const char *list, const char *what,
                       GError **error)
{
    char **pairs = g_strsplit(list, ",", -1);
    GPtrArray *all = g_ptr_array_new_with_free_func(g_free);
    int r = 0;

    for (guint i = 0; s->match && s->match[i]; i++)
        g_ptr_array_add(all, g_strdup(s->match[i]));
    for (guint i = 0; r == 0 && pairs[i]; i++) {
        const char *eq = strchr(pairs[i], '=');

        if (eq == NULL || !is_property_name(pairs[i], (size_t)(eq - pairs[i])) ||
            eq[1] == '\0')
            r = crt_set_error(
                error, EINVAL,
                "invalid match \"%s\" in \"%s\": expected KEY=VALUE, a udev "
                "property name (letters, digits, _) and a value or glob, "
                "pairs separated by commas",
                pairs[i], what);
        else
            g_ptr_array_add(all, g_strdup(pairs[i]));
    }
    g_strfreev(pairs);
    if (r < 0) {
        g_ptr_array_free(all, TRUE);
        return r;
    }
    g_ptr_array_set_free_func(all, NULL);
    g_ptr_array_add(all, NULL);
    g_strfreev(s->match);
    s->match = (char **)g_ptr_array_free(all, FALSE);
    return 0;
}

static int opt_match(SpecParser *p, const char *key, const char *value, const char *token,
                     GError **error)
{
    return add_matches(p->spec, value, token, error);
}

static const SpecOption identity_options[] = {
    {"serial", TRUE, opt_serial},
    {"interface", TRUE, opt_interface},
    {"path", TRUE, opt_usb_path},
    {"match", TRUE, opt_match},
};

/* A remote serial port takes the line settings a tty does, and `wait`;
 * `raw` and `shared` are about a local tty's termios and lock. */
static const SpecOption rfc2217_options[] = {
    {"baud", TRUE, opt_baud},         {"cs5", FALSE, opt_cs},
    {"cs6", FALSE, opt_cs},           {"cs7", FALSE, opt_cs},
    {"cs8", FALSE, opt_cs},           {"databits", TRUE, opt_databits},
    {"parity", TRUE, opt_parity},     {"stopbits", TRUE, opt_stopbits},
    {"rtscts", FALSE, opt_flow_flag}, {"xonxoff", FALSE, opt_flow_flag},
    {"flow", TRUE, opt_flow},         {"wait", FALSE, opt_wait},
    {"chardelay", TRUE, opt_chardelay},
};

static const SpecOption socket_options[] = {
    {"chardelay", TRUE, opt_chardelay},
    {"wait", FALSE, opt_wait},
};

/* ---- simulator options ---- */

/* Symbolic names for `errno=`: the ones a device or a network can produce. */
static const struct {
    const char *name;
    int value;
} errno_names[] = {
    {"EPERM", EPERM},
    {"ENOENT", ENOENT},
    {"EINTR", EINTR},
    {"EIO", EIO},
    {"ENXIO", ENXIO},
    {"E2BIG", E2BIG},
    {"EBADF", EBADF},
    {"EAGAIN", EAGAIN},
    {"EWOULDBLOCK", EWOULDBLOCK},
    {"ENOMEM", ENOMEM},
    {"EACCES", EACCES},
    {"EFAULT", EFAULT},
    {"EBUSY", EBUSY},
    {"EEXIST", EEXIST},
    {"ENODEV", ENODEV},
    {"EINVAL", EINVAL},
    {"ENOSPC", ENOSPC},
    {"ENOTTY", ENOTTY},
    {"EPIPE", EPIPE},
    {"ERANGE", ERANGE},
    {"ENOSYS", ENOSYS},
    {"ENODATA", ENODATA},
    {"ETIME", ETIME},
    {"ETIMEDOUT", ETIMEDOUT},
    {"EPROTO", EPROTO},
    {"EBADMSG", EBADMSG},
    {"EOVERFLOW", EOVERFLOW},
    {"EILSEQ", EILSEQ},
    {"EMSGSIZE", EMSGSIZE},
    {"ENOTSUP", ENOTSUP},
    {"EOPNOTSUPP", EOPNOTSUPP},
    {"ENOBUFS", ENOBUFS},
    {"ENETDOWN", ENETDOWN},
    {"ENETUNREACH", ENETUNREACH},
    {"ECONNABORTED", ECONNABORTED},
    {"ECONNRESET", ECONNRESET},
    {"ECONNREFUSED", ECONNREFUSED},
    {"ENOTCONN", ENOTCONN},
    {"ESHUTDOWN", ESHUTDOWN},
    {"EHOSTUNREACH", EHOSTUNREACH},
    {"ECANCELED", ECANCELED},
    {"ENOMEDIUM", ENOMEDIUM},
    {"EREMOTEIO", EREMOTEIO},
};

static int opt_errno(SpecParser *p, const char *key, const char *value, const char *token,
                     GError **error)
{
    guint64 v = 0;

    for (size_t i = 0; v == 0 && i < G_N_ELEMENTS(errno_names); i++) {
        if (g_ascii_strcasecmp(value, errno_names[i].name) == 0)
            v = (guint64)errno_names[i].value;
    }
    /* 4095 is the kernel's MAX_ERRNO: nothing above it is an error code. */
    if (v == 0 && !g_ascii_string_to_unsigned(value, 10, 1, 4095, &v, NULL))
        return crt_set_error(error, EINVAL,
                             "invalid value \"%s\" for errno: expected a name such as "
                             "EIO, ETIMEDOUT, EPROTO or ENODEV, or a number from 1 to "
                             "4095",
                             value);
    int r = claim(p, F_ERRNO, v, token, error);
    if (r == 0)
        p->spec->sim_fail_errno = (int)v;
    return r;
}

static int opt_sim_number(SpecParser *p, const char *key, const char *value,
                          const char *token, GError **error)
{
    static const struct {
        const char *key;
        int field;
        guint64 min, max;
    } limits[] = {
        {"rate", F_RATE, 0, 1000000},
        {"size", F_SIZE, 1, 1048576},
        {"fail", F_FAIL, 1, G_MAXUINT64},
        {"limit", F_LIMIT, 0, G_MAXUINT64},
    };
    CrtTargetSpec *s = p->spec;
    guint64 v;
    size_t i = 0;

    while (strcmp(limits[i].key, key) != 0)
        i++;
    int r = parse_number(key, value, limits[i].min, limits[i].max, &v, error);
    if (r == 0)
        r = claim(p, limits[i].field, v, token, error);
    if (r < 0)
        return r;
    switch (limits[i].field) {
    case F_RATE:
        s->sim_rate = (guint)v;
        break;
    case F_SIZE:
        s->sim_size = (guint)v;
        break;
    case F_FAIL:
        s->sim_fail_after = v;
        break;
    default:
        s->sim_limit = v;
        break;
    }
    return 0;
}

/* delay=MIN-MAX or delay=N, in milliseconds, at most an hour. */
static int opt_delay(SpecParser *p, const char *key, const char *value, const char *token,
                     GError **error)
{
    const char *dash = strchr(value, '-');
    char *min_text = dash ? g_strndup(value, (gsize)(dash - value)) : g_strdup(value);
    const char *max_text = dash ? dash + 1 : min_text;
    guint64 min = 0, max = 0;
    gboolean ok = g_ascii_string_to_unsigned(min_text, 10, 0, 3600000, &min, NULL) &&
                  g_ascii_string_to_unsigned(max_text, 10, 0, 3600000, &max, NULL);
    int r = 0;

    g_free(min_text);
    if (!ok)
        r = crt_set_error(error, EINVAL,
                          "invalid value \"%s\" for delay: expected N or MIN-MAX, in "
                          "milliseconds from 0 to 3600000",
                          value);
    else if (min > max)
        r = crt_set_error(error, EINVAL,
                          "invalid value \"%s\" for delay: the minimum is larger than "
                          "the maximum",
                          value);
    if (r == 0)
        r = claim(p, F_DELAY, min << 32 | max, token, error);
    if (r == 0) {
        p->spec->sim_delay_min = (guint)min;
        p->spec->sim_delay_max = (guint)max;
    }
    return r;
}

static int opt_fatal(SpecParser *p, const char *key, const char *value, const char *token,
                     GError **error)
{
    p->spec->sim_fail_fatal = TRUE;
    return claim(p, F_FATAL, 1, token, error);
}

static const SpecOption sim_options[] = {
    {"rate", TRUE, opt_sim_number},  {"size", TRUE, opt_sim_number},
    {"delay", TRUE, opt_delay},      {"fail", TRUE, opt_sim_number},
    {"errno", TRUE, opt_errno},      {"fatal", FALSE, opt_fatal},
    {"limit", TRUE, opt_sim_number}, {"baud", TRUE, opt_baud},
};

/* ---- words ---- */

static const SpecOption *find_option(const SpecOption *table, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i].key, key) == 0)
            return &table[i];
    }
    return NULL;
}

static const SpecOption *options_for(CrtTargetKind kind, size_t *n)
{
    if (kind == CRT_TARGET_PATH || kind == CRT_TARGET_UDEV) {
        *n = G_N_ELEMENTS(path_options);
        return path_options;
    }
    if (kind == CRT_TARGET_SIM) {
        *n = G_N_ELEMENTS(sim_options);
        return sim_options;
    }
    if (kind == CRT_TARGET_RFC2217) {
        *n = G_N_ELEMENTS(rfc2217_options);
        return rfc2217_options;
    }
    if (kind == CRT_TARGET_UNIX || kind == CRT_TARGET_TCP) {
        *n = G_N_ELEMENTS(socket_options);
        return socket_options;
    }
    *n = 0;
    return NULL;
}

/* Explain an option this kind does not know, pointing at the kind that
 * does when the admin simply put it on the wrong line. */
static int unknown_option(CrtTargetKind kind, const char *key, const char *token,
                          GError **error)
{
    size_t n;
    const SpecOption *table = options_for(CRT_TARGET_PATH, &n);

    if (kind != CRT_TARGET_UDEV &&
        find_option(identity_options, G_N_ELEMENTS(identity_options), key))
        return crt_set_error(
            error, EINVAL,
            "option \"%s\" applies to usb: and udev: targets, not to a %s "
            "target",
            token, crt_target_kind_to_string(kind));
    if (kind != CRT_TARGET_PATH &&
        (strcmp(key, "wait") == 0 || strcmp(key, "chardelay") == 0))
        return crt_set_error(error, EINVAL,
                             "option \"%s\" applies to path and socket targets (and "
                             "usb:, udev:), not to a %s target",
                             token, crt_target_kind_to_string(kind));
    if (kind == CRT_TARGET_RFC2217 && find_option(table, n, key))
        return crt_set_error(
            error, EINVAL,
            "option \"%s\" applies to local ttys, not to a remote serial "
            "port (an rfc2217 target takes the line settings, \"wait\" and \"chardelay\")",
            token);
    if (kind != CRT_TARGET_PATH && kind != CRT_TARGET_UDEV && find_option(table, n, key))
        return crt_set_error(error, EINVAL,
                             "option \"%s\" applies to path targets, not to a %s target",
                             token, crt_target_kind_to_string(kind));
    table = options_for(CRT_TARGET_SIM, &n);
    if (kind != CRT_TARGET_SIM && find_option(table, n, key))
        return crt_set_error(error, EINVAL,
                             "option \"%s\" applies to sim targets, not to a %s target",
                             token, crt_target_kind_to_string(kind));
    if (kind == CRT_TARGET_UNIX || kind == CRT_TARGET_TCP)
        return crt_set_error(error, EINVAL,
                             "unknown option \"%s\": %s targets take only \"wait\" and "
                             "\"chardelay\"",
                             token, crt_target_kind_to_string(kind));
    return crt_set_error(error, EINVAL, "unknown option \"%s\" for a %s target", token,
                         crt_target_kind_to_string(kind));
}

static int parse_option(SpecParser *p, const char *token, GError **error)
{
    const char *eq = strchr(token, '=');
    char *key = eq ? g_strndup(token, (gsize)(eq - token)) : g_strdup(token);
    size_t n;
    const SpecOption *table = options_for(p->spec->kind, &n);
    const SpecOption *opt = find_option(table, n, key);
    gboolean tty = p->spec->kind == CRT_TARGET_PATH || p->spec->kind == CRT_TARGET_UDEV;
    int r = 0;

    if (opt == NULL && p->spec->kind == CRT_TARGET_UDEV)
        opt = find_option(identity_options, G_N_ELEMENTS(identity_options), key);
    if (opt == NULL) {
        gboolean line = tty || p->spec->kind == CRT_TARGET_RFC2217;

        if (!line || !parse_line_format(p, token, &r, error))
            r = unknown_option(p->spec->kind, key, token, error);
    } else if (opt->has_value == TRUE && eq == NULL) {
        r = crt_set_error(error, EINVAL, "option \"%s\" needs a value (%s=...)", token,
                          key);
    } else if (!opt->has_value && eq != NULL) {
        r = crt_set_error(error, EINVAL,
                          "option \"%s\" takes no value (write just \"%s\")", token, key);
    } else {
        r = opt->fn(p, key, eq ? eq + 1 : NULL, token, error);
    }
    g_free(key);
    return r;
}

/* ---- addresses ---- */

/* tcp:HOST:PORT (and rfc2217:HOST:PORT), HOST may be an IPv6 address in
 * brackets; `kind` is the prefix for the messages. */
static int parse_host_port(CrtTargetSpec *s, const char *kind, const char *addr,
                           GError **error)
{
    const char *colon;
    guint64 port;

    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            return crt_set_error(
                error, EINVAL, "invalid %s target \"%s:%s\": expected %s:[ADDRESS]:PORT",
                kind, kind, addr, kind);
        s->host = g_strndup(addr + 1, (gsize)(close - addr - 1));
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon != NULL && memchr(addr, ':', (size_t)(colon - addr)) != NULL)
            return crt_set_error(error, EINVAL,
                                 "invalid %s target \"%s:%s\": write an IPv6 address in "
                                 "brackets, as %s:[ADDRESS]:PORT",
                                 kind, kind, addr, kind);
        if (colon != NULL)
            s->host = g_strndup(addr, (gsize)(colon - addr));
    }
    if (colon == NULL || s->host == NULL || s->host[0] == '\0')
        return crt_set_error(error, EINVAL,
                             "invalid %s target \"%s:%s\": expected %s:HOST:PORT", kind,
                             kind, addr, kind);
    if (!g_ascii_string_to_unsigned(colon + 1, 10, 1, 65535, &port, NULL))
        return crt_set_error(
            error, EINVAL,
            "invalid port \"%s\" in \"%s:%s\": expected a number from 1 to 65535",
            colon + 1, kind, addr);
    s->port = (guint16)port;
    return 0;
}

/* The simulator's generators, in CrtSimGen's order. */
static const char *const sim_gen_names[] = {"records", "counter", "zero", "echo", "uart"};

static const char *sim_gen_to_string(CrtSimGen gen)
{
    return (guint)gen < G_N_ELEMENTS(sim_gen_names) ? sim_gen_names[gen] : "unknown";
}

static int parse_sim_generator(CrtTargetSpec *s, const char *gen, GError **error)
{
    if (gen[0] == '\0')
        return 0;
    for (guint i = 0; i < G_N_ELEMENTS(sim_gen_names); i++) {
        if (strcmp(gen, sim_gen_names[i]) == 0) {
            s->sim_gen = (CrtSimGen)i;
            return 0;
        }
    }
    return crt_set_error(error, EINVAL,
                         "unknown sim generator \"%s\": expected records, counter, zero, "
                         "echo or uart",
                         gen);
}

/* VID:PID as lsusb prints them: four hex digits each (fewer are taken). */
static int parse_usb_ids(CrtTargetSpec *s, const char *ids, GError **error)
{
    const char *colon = strchr(ids, ':');
    char *vid = colon ? g_strndup(ids, (gsize)(colon - ids)) : NULL;
    guint64 v = 0, p = 0;
    gboolean ok = vid && vid[0] && colon[1] && strlen(vid) <= 4 &&
                  strlen(colon + 1) <= 4 &&
                  g_ascii_string_to_unsigned(vid, 16, 0, 0xffff, &v, NULL) &&
                  g_ascii_string_to_unsigned(colon + 1, 16, 0, 0xffff, &p, NULL);

    g_free(vid);
    if (!ok)
        return crt_set_error(error, EINVAL,
                             "invalid usb target \"usb:%s\": expected usb:VID:PID, the "
                             "vendor and product ids in hex as lsusb prints them "
                             "(usb:0403:6001)",
                             ids);
    s->usb_ids = TRUE;
    s->usb_vendor = (guint16)v;
    s->usb_product = (guint16)p;
    return 0;
}

/* usb:VID:PID or udev:KEY=VALUE,...; which one is told by the prefix,
 * kept in usb_ids: a `udev:` address always has an '='. */
static int parse_identity(CrtTargetSpec *s, const char *addr, GError **error)
{
    if (g_str_has_prefix(s->text, "usb:"))
        return parse_usb_ids(s, addr, error);
    if (addr[0] == '\0')
        return 0; /* udev: with options only; checked once all are read */
    char *what = g_strdup_printf("udev:%s", addr);
    int r = add_matches(s, addr, what, error);
    g_free(what);
    return r;
}

/* The first word after the kind prefix: what to open. */
static int parse_address(SpecParser *p, const char *addr, GError **error)
{
    CrtTargetSpec *s = p->spec;

    switch (s->kind) {
    case CRT_TARGET_PATH:
        s->path = g_strdup(addr);
        return 0;
    case CRT_TARGET_UNIX:
        /* The daemon's working directory is nobody's business, so a relative
         * socket path would be a surprise: ask for an absolute one (or an
         * abstract name, @NAME). */
        if (addr[0] != '/' && !(addr[0] == '@' && addr[1] != '\0'))
            return crt_set_error(error, EINVAL,
                                 "invalid unix target \"unix:%s\": expected an absolute "
                                 "socket path or @ABSTRACT-NAME",
                                 addr);
        s->path = g_strdup(addr);
        return 0;
    case CRT_TARGET_TCP:
        return parse_host_port(s, "tcp", addr, error);
    case CRT_TARGET_RFC2217:
        return parse_host_port(s, "rfc2217", addr, error);
    case CRT_TARGET_SIM:
        /* `sim:rate=10` is what people type: take it as `sim: rate=10`. */
        if (strchr(addr, '=') != NULL)
            return parse_option(p, addr, error);
        return parse_sim_generator(s, addr, error);
    case CRT_TARGET_UDEV:
        return parse_identity(s, addr, error);
    case CRT_TARGET_EXEC:
        break;
    }
    g_return_val_if_reached(-EINVAL);
}

/* `rest` is what follows the kind prefix: an address word, then options. */
static int parse_words(CrtTargetSpec *s, const char *rest, GError **error)
{
    SpecParser p = {.spec = s};
    size_t len = strcspn(rest, " \t");
    char *addr = g_strndup(rest, len);
    char **words = g_strsplit_set(rest + len, " \t", -1);
    int r = parse_address(&p, addr, error);

    for (guint i = 0; r == 0 && words[i] != NULL; i++) {
        if (words[i][0] != '\0')
            r = parse_option(&p, words[i], error);
    }
    /* A simulator's line speed is its UART's. */
    if (r == 0 && s->kind == CRT_TARGET_SIM && s->baud && s->sim_gen != CRT_SIM_GEN_UART)
        r = crt_set_error(error, EINVAL,
                          "option \"baud\" applies to sim:uart (the simulated serial "
                          "line), not to sim:%s",
                          sim_gen_to_string(s->sim_gen));
    if (r == 0 && s->kind == CRT_TARGET_UDEV && !s->usb_ids && !s->match &&
        !s->usb_path && !s->usb_serial)
        r = crt_set_error(error, EINVAL,
                          "udev: needs something to match, as in "
                          "udev:ID_SERIAL_SHORT=A12345 or udev:DEVNAME=/dev/ttyS0");
    g_strfreev(words);
    g_free(addr);
    return r;
}

static int parse_kind(CrtTargetSpec *s, const char *text, GError **error)
{
    static const struct {
        const char *prefix;
        CrtTargetKind kind;
    } prefixes[] = {
        {"unix:", CRT_TARGET_UNIX}, {"tcp:", CRT_TARGET_TCP},   {"sim:", CRT_TARGET_SIM},
        {"usb:", CRT_TARGET_UDEV},  {"udev:", CRT_TARGET_UDEV}, {"rfc2217:", CRT_TARGET_RFC2217},
    };

    if (g_str_has_prefix(text, "exec:")) {
        s->kind = CRT_TARGET_EXEC;
        s->command = g_strchug(g_strdup(text + strlen("exec:")));
        if (s->command[0] == '\0')
            return crt_set_error(error, EINVAL,
                                 "exec: needs a command, as in exec:COMMAND");
        return 0;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(prefixes); i++) {
        if (g_str_has_prefix(text, prefixes[i].prefix)) {
            s->kind = prefixes[i].kind;
            return parse_words(s, text + strlen(prefixes[i].prefix), error);
        }
    }
    if (text[0] == '/') {
        s->kind = CRT_TARGET_PATH;
        return parse_words(s, text, error);
    }
    return crt_set_error(error, EINVAL,
                         "unknown target kind in \"%s\": expected /PATH, unix:PATH, "
                         "tcp:HOST:PORT, rfc2217:HOST:PORT, exec:COMMAND, sim:, "
                         "usb:VID:PID or udev:KEY=VALUE",
                         text);
}

int crt_target_spec_parse(const char *line, CrtTargetSpec *out, GError **error)
{
    int r;

    g_return_val_if_fail(line != NULL && out != NULL, -EINVAL);

    memset(out, 0, sizeof *out);
    out->sim_fail_errno = EIO;
    out->usb_interface = -1;
    out->text = g_strstrip(g_strdup(line));
    if (out->text[0] == '\0')
        r = crt_set_error(error, EINVAL, "empty target spec");
    else if (strpbrk(out->text, "\r\n") != NULL)
        r = crt_set_error(error, EINVAL, "a target spec is a single line");
    else
        r = parse_kind(out, out->text, error);
    if (r < 0)
        crt_target_spec_clear(out);
    return r;
}

void crt_target_spec_copy(CrtTargetSpec *dst, const CrtTargetSpec *src)
{
    *dst = *src;
    dst->text = g_strdup(src->text);
    dst->path = g_strdup(src->path);
    dst->host = g_strdup(src->host);
    dst->command = g_strdup(src->command);
    dst->usb_serial = g_strdup(src->usb_serial);
    dst->usb_path = g_strdup(src->usb_path);
    dst->match = g_strdupv(src->match);
}

void crt_target_spec_clear(CrtTargetSpec *spec)
{
    if (spec == NULL)
        return;
    g_free(spec->text);
    g_free(spec->path);
    g_free(spec->host);
    g_free(spec->command);
    g_free(spec->usb_serial);
    g_free(spec->usb_path);
    g_strfreev(spec->match);
    memset(spec, 0, sizeof *spec);
}
