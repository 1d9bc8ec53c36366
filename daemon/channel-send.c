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
#include "send-header.h"

typedef struct {
    CrtSendSession *session;
    CrtEngine *engine;
    CrtRequestId id;
    CrtRequestType type;
    gboolean done;  /* the session's lock */
    GString *reply; /* the session's lock: header line and data, once done */
    size_t offset;  /* bytes of reply already read */
    size_t resp_len;
    guint8 resp[];
} SendItem;

/* One job, one lock: a session's lock guards its items and references;
 * nothing else is taken while it is held. */
struct CrtSendSession {
    CrtChannel *ch;
    GMutex lock;
    GQueue items; /* lock: SendItem in submission order */
    guint refs;   /* lock: the open file + requests not completed */
    /* A request whose header said payload= and whose payload has not all come
     * yet (the writes that follow carry the rest); NULL when none.  Only
     * the writer touches these (one write at a time per open file). */
    GByteArray *partial;
    CrtSendHeader partial_h;
    gint partial_pending; /* atomic: partial != NULL, for readers */
};

CrtSendSession *crt_send_open(CrtChannel *ch)
{
    CrtSendSession *s = g_new0(CrtSendSession, 1);

    s->ch = ch;
    g_mutex_init(&s->lock);
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

/* Drop a reference and unlock; TRUE when the session was freed. */
static gboolean session_unref_and_unlock(CrtSendSession *s)
{
    gboolean last = --s->refs == 0;

    g_mutex_unlock(&s->lock);
    if (!last)
        return FALSE;
    g_queue_clear_full(&s->items, item_free);
    g_mutex_clear(&s->lock);
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

    g_mutex_lock(&s->lock);
    format_reply(it, out, out_read, in_written, status);
    it->done = TRUE;
    freed = session_unref_and_unlock(s);
    if (!freed)
        crt_channel_wake(ch);
}

typedef struct {
    CrtEngine *engine;
    CrtRequestId id;
} PendingId;

static void cancel_pending(CrtSendSession *s)
{
    GArray *ids = g_array_new(FALSE, FALSE, sizeof(PendingId));

    g_mutex_lock(&s->lock);
    for (GList *l = s->items.head; l; l = l->next) {
        SendItem *it = l->data;
        PendingId p = {it->engine, it->id};

        if (!it->done)
            g_array_append_val(ids, p);
    }
    g_mutex_unlock(&s->lock);
    /* A pending request keeps its engine alive (clearing the target drains
     * requests before an engine is retired); cancel tells a completed id
     * apart by itself. */
    for (guint i = 0; i < ids->len; i++) {
        PendingId *p = &g_array_index(ids, PendingId, i);

        crt_engine_cancel(p->engine, p->id);
    }
    g_array_free(ids, TRUE);
}

static int submit(CrtSendSession *s, const CrtSendHeader *h, const char *payload,
                  size_t len, GError **error)
{
    CrtChannel *ch = s->ch;
    SendItem *it = g_malloc0(sizeof *it + h->size);
    int r;

    it->session = s;
    it->type = h->type;
    it->resp_len = h->size;
    g_mutex_lock(&ch->now.lock);
    it->engine = ch->now.engine;
    r = it->engine ? 0 : -EDESTADDRREQ;
    g_mutex_unlock(&ch->now.lock);
    g_mutex_lock(&s->lock);
    s->refs++;
    g_queue_push_tail(&s->items, it);
    g_mutex_unlock(&s->lock);
    if (r == 0 && h->has_end)
        r = crt_engine_send_until(it->engine, payload, len, it->resp, it->resp_len,
                                  (guint32)h->ioctl, (guint)h->timeout, &h->end,
                                  CRT_COMPLETION_DEFAULT, on_send_done, it, &it->id);
    else if (r == 0)
        r = crt_engine_send_ex(it->engine, payload, len, it->resp, it->resp_len, h->type,
                               (guint32)h->ioctl, (guint)h->timeout,
                               CRT_COMPLETION_DEFAULT, on_send_done, it, &it->id);
    r = -crt_channel_user_errno(-r);
    if (r < 0) {
        g_mutex_lock(&s->lock);
        g_queue_remove(&s->items, it);
        s->refs--;
        g_mutex_unlock(&s->lock);
        g_free(it);
        return crt_set_error(error, -r, "send: %s",
                             r == -EDESTADDRREQ ? "no target is set" : g_strerror(-r));
    }
    return 0;
}

/* A header without size= takes out_size bytes of response. */
static size_t default_size(CrtChannel *ch)
{
    size_t n;

    g_mutex_lock(&ch->now.lock);
    n = ch->now.out_size;
    g_mutex_unlock(&ch->now.lock);
    return n;
}

/* A request of `h` whose header was in this write, with `n` payload bytes
 * after it: submitted when they are all there, else kept for the writes
 * that bring the rest. */
static int submit_or_keep(CrtSendSession *s, const CrtSendHeader *h, const char *payload,
                          size_t n, GError **error)
{
    if (!h->has_len || n == h->len)
        return submit(s, h, payload, n, error);
    if (n > h->len)
        return crt_set_error(
            error, EINVAL,
            "send: %zu payload bytes after a header with payload=%" G_GUINT64_FORMAT, n,
            h->len);
    s->partial = g_byte_array_sized_new((guint)h->len);
    g_byte_array_append(s->partial, (const guint8 *)payload, (guint)n);
    s->partial_h = *h;
    g_atomic_int_set(&s->partial_pending, TRUE);
    return 0;
}

/* The next piece of a request whose header said payload=. */
static int continue_partial(CrtSendSession *s, const char *buf, size_t len,
                            GError **error)
{
    GByteArray *p = s->partial;
    guint64 need = s->partial_h.len - p->len;
    int r;

    if (len > need) {
        g_byte_array_unref(p);
        s->partial = NULL;
        g_atomic_int_set(&s->partial_pending, FALSE);
        return crt_set_error(
            error, EINVAL,
            "send: %zu bytes where the request's payload= left %" G_GUINT64_FORMAT
            "; the request is dropped",
            len, need);
    }
    g_byte_array_append(p, (const guint8 *)buf, (guint)len);
    if (p->len < s->partial_h.len)
        return 0;
    s->partial = NULL;
    r = submit(s, &s->partial_h, (const char *)p->data, p->len, error);
    g_atomic_int_set(&s->partial_pending, FALSE); /* after: its item is queued */
    g_byte_array_unref(p);
    return r;
}

int crt_send_write(CrtSendSession *s, const char *buf, size_t len, GError **error)
{
    const char *nl;
    size_t hlen;
    char *header;
    CrtSendHeader h;
    int r;

    if (s->partial) {
        r = continue_partial(s, buf, len, error);
        if (r < 0 && error && *error)
            crt_channel_log_set_error_from(&s->ch->log, *error);
        return r;
    }
    nl = memchr(buf, '\n', len);
    hlen = nl ? (size_t)(nl - buf) : len;
    header = g_strndup(buf, hlen);
    g_strstrip(header);
    if (memchr(buf, '\0', hlen)) {
        /* g_strndup stopped there: what follows would go unchecked. */
        r = crt_set_error(error, EINVAL, "send: the header line contains a NUL byte");
    } else if (strcmp(header, "cancel") == 0 && (!nl || nl + 1 == buf + len)) {
        cancel_pending(s);
        r = 0;
    } else {
        r = crt_send_header_parse(header, default_size(s->ch), &h, error);
        if (r == 0)
            r = submit_or_keep(s, &h, nl ? nl + 1 : buf + len, nl ? len - hlen - 1 : 0,
                               error);
    }
    if (r < 0 && error && *error)
        crt_channel_log_set_error_from(&s->ch->log, *error);
    g_free(header);
    return r;
}

gssize crt_send_read(CrtSendSession *s, char *dst, size_t size)
{
    SendItem *it;
    gssize n;

    g_mutex_lock(&s->lock);
    it = g_queue_peek_head(&s->items);
    if (!it) {
        g_mutex_unlock(&s->lock);
        /* a request still coming in pieces is pending too */
        return g_atomic_int_get(&s->partial_pending) ? -EAGAIN : 0;
    }
    if (!it->done) {
        g_mutex_unlock(&s->lock);
        return -EAGAIN;
    }
    n = (gssize)MIN(size, it->reply->len - it->offset);
    memcpy(dst, it->reply->str + it->offset, (size_t)n);
    it->offset += (size_t)n;
    if (it->offset == it->reply->len) {
        g_queue_pop_head(&s->items);
        item_free(it);
    }
    g_mutex_unlock(&s->lock);
    return n;
}

gboolean crt_send_readable(CrtSendSession *s)
{
    SendItem *it;
    gboolean r;

    g_mutex_lock(&s->lock);
    it = g_queue_peek_head(&s->items);
    r = it ? it->done : !g_atomic_int_get(&s->partial_pending);
    g_mutex_unlock(&s->lock);
    return r;
}

void crt_send_close(CrtSendSession *s)
{
    if (s->partial) /* the rest never came: nothing was submitted */
        g_byte_array_unref(s->partial);
    s->partial = NULL;
    cancel_pending(s);
    g_mutex_lock(&s->lock);
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
    session_unref_and_unlock(s);
}
