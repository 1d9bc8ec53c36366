/* crtfs - sequences of modem-line steps (include/crtfs/lines.h): the text
 * of a `lines` write and of on_open/on_close, parsed once into steps and
 * run on any target through the lines API, so the daemon and C users share
 * one meaning of every word. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <crtfs/error.h>
#include <crtfs/lines.h>

typedef enum {
    STEP_SET,    /* mask, values */
    STEP_BREAK,  /* ms */
    STEP_WAIT,   /* ms */
    STEP_SEND,   /* bytes */
    STEP_INJECT, /* inject, count */
} StepKind;

typedef struct {
    StepKind kind;
    guint word; /* 1-based position of its (first) word, for errors */
    char *text; /* the word(s) as written, for errors */
    guint mask, values;
    guint ms;
    GBytes *bytes;
    CrtLineEventKind inject;
    guint count;
} Step;

struct CrtLineSeq {
    GArray *steps; /* Step */
    guint words;
    guint duration_ms;
    gboolean sends;
};

static void step_clear(gpointer p)
{
    Step *s = p;

    g_free(s->text);
    if (s->bytes)
        g_bytes_unref(s->bytes);
}

void crt_line_seq_free(CrtLineSeq *seq)
{
    if (!seq)
        return;
    g_array_free(seq->steps, TRUE);
    g_free(seq);
}

guint crt_line_seq_words(const CrtLineSeq *seq)
{
    return seq ? seq->words : 0;
}

guint crt_line_seq_duration_ms(const CrtLineSeq *seq)
{
    return seq ? seq->duration_ms : 0;
}

gboolean crt_line_seq_sends(const CrtLineSeq *seq)
{
    return seq && seq->sends;
}

/* ---- parsing ------------------------------------------------------------ */

/* "250ms", "2s": a whole number with a unit, 1 ms to the sequence's bound. */
static gboolean parse_ms(const char *s, guint *out)
{
    const char *unit = s;
    guint64 n, scale;
    char *digits;
    gboolean ok;

    while (g_ascii_isdigit(*unit))
        unit++;
    if (unit == s)
        return FALSE;
    if (strcmp(unit, "ms") == 0)
        scale = 1;
    else if (strcmp(unit, "s") == 0)
        scale = 1000;
    else
        return FALSE;
    digits = g_strndup(s, (gsize)(unit - s));
    ok = g_ascii_string_to_unsigned(digits, 10, 1, CRT_LINE_SEQ_MAX_MS / scale, &n, NULL);
    g_free(digits);
    if (ok)
        *out = (guint)(n * scale);
    return ok;
}

/* send=TEXT's escapes into bytes; NULL with *why on a bad escape. */
static GBytes *unescape(const char *s, const char **why)
{
    GByteArray *b = g_byte_array_new();

    for (; *s; s++) {
        guint8 c = (guint8)*s;

        if (c == '\\') {
            s++;
            if (*s == 'r')
                c = '\r';
            else if (*s == 'n')
                c = '\n';
            else if (*s == 't')
                c = '\t';
            else if (*s == '\\')
                c = '\\';
            else if (*s == 'x' && g_ascii_isxdigit(s[1]) && g_ascii_isxdigit(s[2])) {
                c = (guint8)(g_ascii_xdigit_value(s[1]) * 16 +
                             g_ascii_xdigit_value(s[2]));
                s += 2;
            } else {
                *why = "an escape is \\r, \\n, \\t, \\\\ or \\xHH (two hex digits)";
                g_byte_array_free(b, TRUE);
                return NULL;
            }
        }
        g_byte_array_append(b, &c, 1);
    }
    if (b->len == 0 || b->len > CRT_LINE_SEQ_MAX_SEND) {
        *why = b->len ? "more than " G_STRINGIFY(CRT_LINE_SEQ_MAX_SEND) " bytes to send"
                      : "nothing to send";
        g_byte_array_free(b, TRUE);
        return NULL;
    }
    return g_byte_array_free_to_bytes(b);
}

static const struct {
    const char *name;
    CrtLineEventKind kind;
} inject_kinds[] = {
    {"break", CRT_LINE_EVENT_BREAK},
    {"framing", CRT_LINE_EVENT_FRAMING},
    {"parity", CRT_LINE_EVENT_PARITY},
    {"overrun", CRT_LINE_EVENT_OVERRUN},
};

/* inject=KIND[*N]. */
static gboolean parse_inject(const char *v, Step *st)
{
    const char *star = strchr(v, '*');
    size_t len = star ? (size_t)(star - v) : strlen(v);
    guint64 n = 1;

    if (star && !g_ascii_string_to_unsigned(star + 1, 10, 1, 1000, &n, NULL))
        return FALSE;
    for (size_t i = 0; i < G_N_ELEMENTS(inject_kinds); i++) {
        if (strlen(inject_kinds[i].name) == len &&
            strncmp(v, inject_kinds[i].name, len) == 0) {
            st->inject = inject_kinds[i].kind;
            st->count = (guint)n;
            return TRUE;
        }
    }
    return FALSE;
}

/* One word into `st`; FALSE with *why (what was expected). */
static gboolean parse_word(const char *word, Step *st, const char **why)
{
    const char *eq = strchr(word, '=');
    char *key = eq ? g_strndup(word, (gsize)(eq - word)) : g_strdup(word);
    const char *v = eq ? eq + 1 : "";
    CrtLine line = crt_line_from_name(key);
    gboolean ok = FALSE;

    if (!eq) {
        *why = "a word is KEY=VALUE (dtr=, rts=, break=, wait=, send=, inject=)";
    } else if (line & CRT_LINES_INPUTS) {
        *why = "CTS, DSR, DCD and RI are inputs: only dtr= and rts= can be set";
    } else if (line) {
        ok = (strcmp(v, "0") == 0 || strcmp(v, "1") == 0);
        st->kind = STEP_SET;
        st->mask = line;
        st->values = v[0] == '1' ? line : 0;
        *why = "a line is set to 0 or 1";
    } else if (strcmp(key, "break") == 0 || strcmp(key, "wait") == 0) {
        st->kind = key[0] == 'b' ? STEP_BREAK : STEP_WAIT;
        ok = parse_ms(v, &st->ms);
        *why = "a duration is a whole number with ms or s, from 1ms to 10s";
    } else if (strcmp(key, "send") == 0) {
        st->kind = STEP_SEND;
        ok = (st->bytes = unescape(v, why)) != NULL;
    } else if (strcmp(key, "inject") == 0) {
        st->kind = STEP_INJECT;
        ok = parse_inject(v, st);
        *why = "inject=break, framing, parity or overrun, with *N for N of them (1 to "
               "1000)";
    } else {
        *why = "the words are dtr=, rts=, break=, wait=, send= and inject=";
    }
    g_free(key);
    return ok;
}

/* Append `st`, or fold a set word into the set step before it (the lines
 * then change together), unless that step sets the same line already. */
static void add_step(CrtLineSeq *seq, Step *st)
{
    Step *last =
        seq->steps->len ? &g_array_index(seq->steps, Step, seq->steps->len - 1) : NULL;

    if (st->kind == STEP_SET && last && last->kind == STEP_SET &&
        !(last->mask & st->mask)) {
        char *text = g_strconcat(last->text, " ", st->text, NULL);

        last->mask |= st->mask;
        last->values |= st->values;
        g_free(last->text);
        last->text = text;
        step_clear(st);
        return;
    }
    g_array_append_val(seq->steps, *st);
}

int crt_line_seq_parse(const char *text, CrtLineSeq **out, GError **error)
{
    CrtLineSeq *seq = g_new0(CrtLineSeq, 1);
    char **words;
    int r = 0;

    g_return_val_if_fail(text != NULL && out != NULL, -EINVAL);
    *out = NULL;
    seq->steps = g_array_new(FALSE, TRUE, sizeof(Step));
    g_array_set_clear_func(seq->steps, step_clear);
    words = g_strsplit_set(text, " \t\n", -1);
    for (char **w = words; *w && r == 0; w++) {
        Step st = {0};
        const char *why = NULL;

        if (!**w)
            continue;
        st.word = ++seq->words;
        st.text = g_strdup(*w);
        if (seq->words > CRT_LINE_SEQ_MAX_WORDS)
            r = crt_set_error(error, EINVAL,
                              "word %u \"%s\": a sequence has at most %d words", st.word,
                              *w, CRT_LINE_SEQ_MAX_WORDS);
        else if (!parse_word(*w, &st, &why))
            r = crt_set_error(error, EINVAL, "word %u \"%s\": %s", st.word, *w, why);
        else if ((seq->duration_ms += st.ms) > CRT_LINE_SEQ_MAX_MS)
            r = crt_set_error(
                error, EINVAL,
                "word %u \"%s\": the waits and breaks add up to %u ms, over "
                "the %d ms a sequence may take",
                st.word, *w, seq->duration_ms, CRT_LINE_SEQ_MAX_MS);
        if (r < 0) {
            step_clear(&st);
            break;
        }
        seq->sends |= st.kind == STEP_SEND;
        add_step(seq, &st);
    }
    g_strfreev(words);
    if (r < 0) {
        crt_line_seq_free(seq);
        return r;
    }
    *out = seq;
    return 0;
}

/* ---- running ------------------------------------------------------------ */

/* Sleep `ms`, or less when `cancel` fires: 0 or -ECANCELED.  The cancel
 * is looked at every 10 ms rather than polled for on the cancellable's
 * descriptor: a wait is coarse anyway, and no descriptor is made per wait
 * (nor handed between threads behind GLib's back). */
static int wait_ms(guint ms, GCancellable *cancel)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
    gint64 left;

    while ((left = end - g_get_monotonic_time()) > 0 &&
           !g_cancellable_is_cancelled(cancel))
        g_usleep((gulong)MIN(left, 10000));
    return g_cancellable_is_cancelled(cancel) ? -ECANCELED : 0;
}

static int send_bytes(CrtEngine *engine, GBytes *bytes, GError **error)
{
    gsize len;
    const void *p = g_bytes_get_data(bytes, &len);
    size_t done = 0;
    int r;

    if (!engine)
        return crt_set_error(error, EDESTADDRREQ, "nothing to send through (no engine)");
    r = crt_engine_send_sync(engine, p, len, NULL, 0, CRT_REQUEST_WRITE, 0,
                             CRT_LINE_SEQ_MAX_MS, &done);
    if (r < 0)
        return crt_set_error(error, -r, "%s", g_strerror(-r));
    if (done != len)
        return crt_set_error(error, EIO, "only %zu of %zu bytes were written", done, len);
    return 0;
}

static int run_step(CrtTarget *target, const Step *st, CrtEngine *engine,
                    GCancellable *cancel, GError **error)
{
    switch (st->kind) {
    case STEP_SET:
        return crt_target_lines_set(target, st->mask, st->values, error);
    case STEP_BREAK:
        return crt_target_send_break(target, st->ms, error);
    case STEP_WAIT:
        return wait_ms(st->ms, cancel);
    case STEP_SEND:
        return send_bytes(engine, st->bytes, error);
    case STEP_INJECT:
        return crt_target_line_inject(target, st->inject, st->count, error);
    }
    g_assert_not_reached();
}

int crt_line_seq_run(CrtTarget *target, const CrtLineSeq *seq, CrtEngine *engine,
                     GCancellable *cancel, GError **error)
{
    g_return_val_if_fail(target != NULL && seq != NULL, -EINVAL);
    if (seq->sends && !engine)
        return crt_set_error(error, EDESTADDRREQ,
                             "the sequence sends bytes, and there is no engine to send "
                             "them through");
    for (guint i = 0; i < seq->steps->len; i++) {
        const Step *st = &g_array_index(seq->steps, Step, i);
        GError *err = NULL;
        int r = g_cancellable_is_cancelled(cancel)
                    ? -ECANCELED
                    : run_step(target, st, engine, cancel, &err);

        if (r == 0)
            continue;
        if (r == -ECANCELED && !err)
            return crt_set_error(error, ECANCELED, "word %u \"%s\": interrupted",
                                 st->word, st->text);
        r = crt_set_error(error, -r, "word %u \"%s\": %s", st->word, st->text,
                          err ? err->message : g_strerror(-r));
        g_clear_error(&err);
        return r;
    }
    return 0;
}
