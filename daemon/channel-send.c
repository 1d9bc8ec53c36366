/* crtfs - `send` sessions: single requests through a file.
 *
 * A write is one request: a header line `TYPE [ioctl=CODE] [timeout=MS]
 * [size=BYTES]`, then the payload.  A read returns the session's next
 * completion, in submission order: `ok N` or `ERRNAME N`, a newline, and for
 * types with output the N bytes received.  The single line `cancel` cancels
 * the session's pending requests; closing the session cancels them too.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "channel-private.h"

#define MAX_RESPONSE ((size_t)16 << 20)

typedef struct {
    CrtSendSession *session;
    CrtEngine *engine;
    CrtRequestId id;
    CrtRequestType type;
    gboolean done;  /* send_lock */
    GString *reply; /* send_lock: header line and data, once done */
    size_t offset;  /* bytes of reply already read */
    size_t resp_len;
    guint8 resp[];
} SendItem;

struct CrtSendSession {
    CrtChannel *ch;
    GQueue items; /* send_lock: SendItem in submission order */
    guint refs;   /* send_lock: the open file + requests not completed */
};

void crt_channel_send_init(CrtChannel *ch)
{
    g_mutex_init(&ch->send_lock);
}

CrtSendSession *crt_send_open(CrtChannel *ch)
{
    CrtSendSession *s = g_new0(CrtSendSession, 1);

    s->ch = ch;
    s->refs = 1;
    g_queue_init(&s->items);
    return s;
}

static void item_free(gpointer data)
{
    SendItem *it = data;

    if (it->reply)
        g_string_free(it->reply, TRUE);
    g_free(it);
}

/* Drop a reference; send_lock held.  TRUE when the session was freed. */
static gboolean session_unref_unlocked(CrtSendSession *s)
{
    if (--s->refs > 0)
        return FALSE;
    g_queue_clear_full(&s->items, item_free);
    g_free(s);
    return TRUE;
}

static void format_reply(SendItem *it, const void *out, size_t out_read,
                         size_t in_written, int status)
{
    gboolean data = crt_request_type_has_output(it->type) && status == 0;
    size_t n = crt_request_type_has_output(it->type) ? out_read : in_written;
    const char *name = status == 0 ? "ok" : strerrorname_np(-status);

    it->reply = g_string_new(NULL);
    g_string_printf(it->reply, "%s %zu\n", name ? name : "EUNKNOWN", status == 0 ? n : 0);
    if (data)
        g_string_append_len(it->reply, out, (gssize)out_read);
}

static void on_send_done(CrtEngine *e, gpointer ctx, const void *in, size_t in_written,
                         void *out, size_t out_read, int status)
{
    SendItem *it = ctx;
    CrtSendSession *s = it->session;
    CrtChannel *ch = s->ch;
    gboolean freed;

    g_mutex_lock(&ch->send_lock);
    format_reply(it, out, out_read, in_written, status);
    it->done = TRUE;
    freed = session_unref_unlocked(s);
    g_mutex_unlock(&ch->send_lock);
    if (!freed && ch->notify)
        ch->notify(ch, ch->notify_data);
}

typedef struct {
    CrtRequestType type;
    guint64 ioctl;
    guint64 timeout;
    guint64 size;
} SendHeader;

/* An ioctl code: decimal or 0x hexadecimal, 32 bits. */
static int parse_code(const char *s, guint64 *out)
{
    gboolean hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');

    return g_ascii_string_to_unsigned(hex ? s + 2 : s, hex ? 16 : 10, 0, G_MAXUINT32, out,
                                      NULL)
               ? 0
               : -1;
}

static int parse_header(const char *line, SendHeader *h, size_t default_size,
                        GError **error)
{
    char **words = g_strsplit_set(line, " \t", -1);
    int r = 0;

    h->ioctl = h->timeout = 0;
    h->size = default_size;
    for (guint i = 0; r == 0 && words[i]; i++) {
        const char *w = words[i];

        if (!*w)
            continue;
        if (i == 0 && crt_request_type_from_string(w, &h->type) == 0)
            continue;
        if (i == 0)
            r = crt_set_error(
                error, EINVAL,
                "send: unknown request type \"%.64s\" (read, write, ioctl or "
                "internal-ioctl)",
                w);
        else if (g_str_has_prefix(w, "ioctl="))
            r = parse_code(w + 6, &h->ioctl);
        else if (g_str_has_prefix(w, "timeout="))
            r = g_ascii_string_to_unsigned(w + 8, 10, 0, G_MAXUINT32, &h->timeout, NULL)
                    ? 0
                    : -1;
        else if (g_str_has_prefix(w, "size="))
            r = g_ascii_string_to_unsigned(w + 5, 10, 0, MAX_RESPONSE, &h->size, NULL)
                    ? 0
                    : -1;
        else
            r = -1;
        if (r == -1)
            r = crt_set_error(error, EINVAL,
                              "send: bad header word \"%.64s\" (expected ioctl=CODE, "
                              "timeout=MS or size=BYTES up to %zu)",
                              w, MAX_RESPONSE);
    }
    g_strfreev(words);
    if (r == 0 && h->type == CRT_REQUEST_INVALID)
        r = crt_set_error(error, EINVAL, "send: the header names no request type");
    return r;
}

typedef struct {
    CrtEngine *engine;
    CrtRequestId id;
} PendingId;

static void cancel_pending(CrtSendSession *s)
{
    GArray *ids = g_array_new(FALSE, FALSE, sizeof(PendingId));
    CrtChannel *ch = s->ch;

    g_mutex_lock(&ch->send_lock);
    for (GList *l = s->items.head; l; l = l->next) {
        SendItem *it = l->data;
        PendingId p = {it->engine, it->id};

        if (!it->done)
            g_array_append_val(ids, p);
    }
    g_mutex_unlock(&ch->send_lock);
    /* A pending request keeps its engine alive (clearing the target drains
     * requests before an engine is retired); cancel tells a completed id
     * apart by itself. */
    for (guint i = 0; i < ids->len; i++) {
        PendingId *p = &g_array_index(ids, PendingId, i);

        crt_engine_cancel(p->engine, p->id);
    }
    g_array_free(ids, TRUE);
}

static int submit(CrtSendSession *s, const SendHeader *h, const char *payload, size_t len,
                  GError **error)
{
    CrtChannel *ch = s->ch;
    SendItem *it = g_malloc0(sizeof *it + h->size);
    int r;

    it->session = s;
    it->type = h->type;
    it->resp_len = h->size;
    g_mutex_lock(&ch->lock);
    it->engine = ch->engine;
    r = it->engine ? 0 : -ENOTCONN;
    g_mutex_unlock(&ch->lock);
    g_mutex_lock(&ch->send_lock);
    s->refs++;
    g_queue_push_tail(&s->items, it);
    g_mutex_unlock(&ch->send_lock);
    if (r == 0)
        r = crt_engine_send_ex(it->engine, payload, len, it->resp, it->resp_len, h->type,
                               (guint32)h->ioctl, (guint)h->timeout,
                               CRT_COMPLETION_DEFAULT, on_send_done, it, &it->id);
    if (r < 0) {
        g_mutex_lock(&ch->send_lock);
        g_queue_remove(&s->items, it);
        s->refs--;
        g_mutex_unlock(&ch->send_lock);
        g_free(it);
        return crt_set_error(error, -r, "send: %s",
                             r == -ENOTCONN ? "no target is set" : g_strerror(-r));
    }
    return 0;
}

int crt_send_write(CrtSendSession *s, const char *buf, size_t len, GError **error)
{
    const char *nl = memchr(buf, '\n', len);
    size_t hlen = nl ? (size_t)(nl - buf) : len;
    char *header = g_strndup(buf, hlen);
    SendHeader h = {0};
    int r;

    g_strstrip(header);
    if (memchr(buf, '\0', hlen)) {
        /* g_strndup stopped there: what follows would go unchecked. */
        r = crt_set_error(error, EINVAL, "send: the header line contains a NUL byte");
    } else if (strcmp(header, "cancel") == 0 && (!nl || nl + 1 == buf + len)) {
        cancel_pending(s);
        r = 0;
    } else {
        r = parse_header(header, &h, s->ch->cfg.out_size, error);
        if (r == 0)
            r = submit(s, &h, nl ? nl + 1 : buf + len, nl ? len - hlen - 1 : 0, error);
    }
    if (r < 0 && error && *error)
        crt_channel_set_error_from(s->ch, *error);
    g_free(header);
    return r;
}

gssize crt_send_read(CrtSendSession *s, char *dst, size_t size)
{
    CrtChannel *ch = s->ch;
    SendItem *it;
    gssize n;

    g_mutex_lock(&ch->send_lock);
    it = g_queue_peek_head(&s->items);
    if (!it) {
        g_mutex_unlock(&ch->send_lock);
        return 0;
    }
    if (!it->done) {
        g_mutex_unlock(&ch->send_lock);
        return -EAGAIN;
    }
    n = (gssize)MIN(size, it->reply->len - it->offset);
    memcpy(dst, it->reply->str + it->offset, (size_t)n);
    it->offset += (size_t)n;
    if (it->offset == it->reply->len) {
        g_queue_pop_head(&s->items);
        item_free(it);
    }
    g_mutex_unlock(&ch->send_lock);
    return n;
}

gboolean crt_send_readable(CrtSendSession *s)
{
    SendItem *it;
    gboolean r;

    g_mutex_lock(&s->ch->send_lock);
    it = g_queue_peek_head(&s->items);
    r = !it || it->done;
    g_mutex_unlock(&s->ch->send_lock);
    return r;
}

void crt_send_close(CrtSendSession *s)
{
    CrtChannel *ch = s->ch;

    cancel_pending(s);
    g_mutex_lock(&ch->send_lock);
    /* Completed items are read no more; pending ones free with the
     * session when their completion drops the last reference. */
    for (GList *l = s->items.head; l;) {
        GList *next = l->next;
        SendItem *it = l->data;

        if (it->done) {
            item_free(it);
            g_queue_delete_link(&s->items, l);
        }
        l = next;
    }
    session_unref_unlocked(s);
    g_mutex_unlock(&ch->send_lock);
}
