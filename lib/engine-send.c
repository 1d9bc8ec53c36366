/* crtfs - single requests: send, send-ex, send-sync and cancel.
 *
 * Each request is a Send, allocated at submission (single requests are not
 * the steady state) and freed after its callback.  It travels to the target
 * through the loop; its timeout is a loop timer that cancels it at the target
 * with -ETIMEDOUT.  The id table holds a request until it completes, so a
 * cancel that finds no entry knows the request already completed.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "engine-private.h"

typedef enum {
    SEND_QUEUED = 0, /* posted to the loop, not at the target yet */
    SEND_AT_TARGET,
    SEND_DONE,
} SendState;

struct Send {
    CrtIo io;
    CrtEngine *engine;
    CrtRequestId id;
    SendState state;           /* engine lock */
    gboolean cancel_requested; /* engine lock: cancelled before submission */
    CrtCompletion completion;
    CrtSendCompletionFn callback;
    gpointer context;
    guint timeout_ms;
    CrtSendEnd end; /* io.end points here when given */
    CrtTimer timer;
    CrtTask submit;
    CrtTask deliver;
    guint8 request[]; /* the caller's request bytes, copied */
};

void crt_engine_sends_init(CrtEngine *e)
{
    e->sends = g_hash_table_new(g_int64_hash, g_int64_equal);
}

void crt_engine_sends_clear(CrtEngine *e)
{
    if (e->sends)
        g_hash_table_destroy(e->sends);
    e->sends = NULL;
}

static void send_finish(Send *r)
{
    CrtEngine *e = r->engine;

    if (r->callback)
        r->callback(e, r->context, r->io.in, r->io.bytes_in, r->io.out, r->io.bytes_out,
                    r->io.status);
    g_free(r);
    g_mutex_lock(&e->lock);
    e->sends_pending--;
    crt_engine_wake_unlocked(e);
    g_mutex_unlock(&e->lock);
}

static void send_deliver_task(CrtTask *task)
{
    send_finish(G_STRUCT_MEMBER_P(task, -G_STRUCT_OFFSET(Send, deliver)));
}

/* Loop thread: the request came back from the target (or never went). */
static void send_io_done(CrtIo *io)
{
    Send *r = G_STRUCT_MEMBER_P(io, -G_STRUCT_OFFSET(Send, io));
    CrtEngine *e = r->engine;

    crt_loop_timer_stop(e->loop, &r->timer);
    g_mutex_lock(&e->lock);
    r->state = SEND_DONE;
    g_hash_table_remove(e->sends, &r->id);
    e->stats.sends++;
    if (io->status != 0 && io->status != -ECANCELED)
        e->stats.last_error = io->status;
    g_mutex_unlock(&e->lock);
    if (r->completion == CRT_COMPLETION_PASSIVE) {
        r->deliver.fn = send_deliver_task;
        crt_loop_pool_push(e->loop, &r->deliver);
    } else {
        send_finish(r);
    }
}

static void send_timeout(CrtTimer *timer)
{
    Send *r = G_STRUCT_MEMBER_P(timer, -G_STRUCT_OFFSET(Send, timer));
    CrtTarget *t;

    g_mutex_lock(&r->engine->lock);
    t = r->state == SEND_AT_TARGET ? r->engine->target : NULL;
    g_mutex_unlock(&r->engine->lock);
    if (t)
        crt_target_cancel(t, &r->io, -ETIMEDOUT);
}

static void send_submit_task(CrtTask *task)
{
    Send *r = G_STRUCT_MEMBER_P(task, -G_STRUCT_OFFSET(Send, submit));
    CrtEngine *e = r->engine;
    CrtTarget *t = NULL;

    g_mutex_lock(&e->lock);
    if (!r->cancel_requested) {
        t = e->target;
        r->state = SEND_AT_TARGET;
    }
    g_mutex_unlock(&e->lock);
    if (!t) {
        r->io.status = -ECANCELED;
        send_io_done(&r->io);
        return;
    }
    if (r->timeout_ms) {
        r->timer.fn = send_timeout;
        crt_loop_timer_start(e->loop, &r->timer,
                             g_get_monotonic_time() + (gint64)r->timeout_ms * 1000);
    }
    crt_target_submit(t, &r->io);
}

static int send_check_unlocked(CrtEngine *e)
{
    if (!e->accepting)
        return -ENOTCONN;
    if (e->suspended && e->cfg.purge_on_suspend)
        return -ESHUTDOWN;
    return 0;
}

static int send_submit(CrtEngine *e, const void *request, size_t request_len,
                       void *response, size_t response_len, CrtRequestType type,
                       guint32 ioctl, guint timeout_ms, const CrtSendEnd *end,
                       CrtCompletion completion, CrtSendCompletionFn callback,
                       gpointer request_context, CrtRequestId *id)
{
    Send *r;
    int err;

    if (type <= CRT_REQUEST_INVALID || type > CRT_REQUEST_WRITE ||
        (guint)completion >= CRT_COMPLETION_MAXIMUM || (request_len && !request) ||
        (response_len && !response) || (type == CRT_REQUEST_IOCTL && ioctl == 0))
        return -EINVAL;
    r = g_malloc0(sizeof *r + request_len);
    if (end) {
        r->end = *end;
        r->io.end = &r->end;
    }
    if (request_len)
        memcpy(r->request, request, request_len);
    r->engine = e;
    r->completion = completion;
    r->callback = callback;
    r->context = request_context;
    r->timeout_ms = timeout_ms;
    r->submit.fn = send_submit_task;
    r->io.type = type;
    r->io.ioctl_code = ioctl;
    r->io.in = r->request;
    r->io.in_len = request_len;
    r->io.out = crt_request_type_has_output(type) ? response : NULL;
    r->io.out_cap = r->io.out ? response_len : 0;
    r->io.done = send_io_done;

    g_mutex_lock(&e->lock);
    err = send_check_unlocked(e);
    if (err < 0) {
        g_mutex_unlock(&e->lock);
        g_free(r);
        return err;
    }
    r->id = ++e->next_id;
    g_hash_table_insert(e->sends, &r->id, r);
    e->sends_pending++;
    if (id)
        *id = r->id;
    g_mutex_unlock(&e->lock);
    crt_loop_run_or_post(e->loop, &r->submit);
    return 0;
}

int crt_engine_send_ex(CrtEngine *e, const void *request, size_t request_len,
                       void *response, size_t response_len, CrtRequestType type,
                       guint32 ioctl, guint timeout_ms, CrtCompletion completion,
                       CrtSendCompletionFn callback, gpointer request_context,
                       CrtRequestId *id)
{
    return send_submit(e, request, request_len, response, response_len, type, ioctl,
                       timeout_ms, NULL, completion, callback, request_context, id);
}

int crt_engine_send_until(CrtEngine *e, const void *request, size_t request_len,
                          void *response, size_t response_len, guint32 ioctl,
                          guint timeout_ms, const CrtSendEnd *end, CrtCompletion completion,
                          CrtSendCompletionFn callback, gpointer request_context,
                          CrtRequestId *id)
{
    if (end && (end->size > response_len || end->until_len > sizeof end->until ||
                (end->len_width != 0 && end->len_width != 1 && end->len_width != 2 &&
                 end->len_width != 4)))
        return -EINVAL;
    return send_submit(e, request, request_len, response, response_len,
                       CRT_REQUEST_INTERNAL_IOCTL, ioctl, timeout_ms, end, completion,
                       callback, request_context, id);
}

int crt_engine_send(CrtEngine *e, const void *request, size_t request_len, void *response,
                    size_t response_len, CrtRequestType type, guint32 ioctl,
                    guint timeout_ms, CrtSendCompletionFn callback,
                    gpointer request_context)
{
    return crt_engine_send_ex(e, request, request_len, response, response_len, type,
                              ioctl, timeout_ms, CRT_COMPLETION_DEFAULT, callback,
                              request_context, NULL);
}

typedef struct {
    GMutex lock;
    GCond cond;
    gboolean done;
    int status;
    size_t bytes;
    gboolean has_output;
} SyncWait;

static void sync_done(CrtEngine *e, gpointer ctx, const void *in, size_t in_written,
                      void *out, size_t out_read, int status)
{
    SyncWait *w = ctx;

    g_mutex_lock(&w->lock);
    w->status = status;
    w->bytes = w->has_output ? out_read : in_written;
    w->done = TRUE;
    g_cond_signal(&w->cond);
    g_mutex_unlock(&w->lock);
}

int crt_engine_send_sync(CrtEngine *e, const void *request, size_t request_len,
                         void *response, size_t response_len, CrtRequestType type,
                         guint32 ioctl, guint timeout_ms, size_t *bytes)
{
    SyncWait w = {.has_output = crt_request_type_has_output(type)};
    int r;

    if (crt_loop_is_current(e->loop))
        return -EDEADLK;
    g_mutex_init(&w.lock);
    g_cond_init(&w.cond);
    r = crt_engine_send_ex(e, request, request_len, response, response_len, type, ioctl,
                           timeout_ms, CRT_COMPLETION_PASSIVE, sync_done, &w, NULL);
    if (r == 0) {
        g_mutex_lock(&w.lock);
        while (!w.done)
            g_cond_wait(&w.cond, &w.lock);
        g_mutex_unlock(&w.lock);
        r = w.status;
        if (bytes)
            *bytes = w.bytes;
    }
    g_mutex_clear(&w.lock);
    g_cond_clear(&w.cond);
    return r;
}

typedef struct {
    CrtEngine *engine;
    CrtRequestId id;
    gboolean cancelled;
} CancelCall;

/* Loop thread: nothing completes while this runs, so the request found in
 * the table stays valid until crt_target_cancel(). */
static void cancel_on_loop(gpointer data)
{
    CancelCall *c = data;
    CrtEngine *e = c->engine;
    CrtTarget *t = NULL;
    Send *r;

    g_mutex_lock(&e->lock);
    r = g_hash_table_lookup(e->sends, &c->id);
    if (r && r->state == SEND_QUEUED) {
        r->cancel_requested = TRUE;
        c->cancelled = TRUE;
    } else if (r && r->state == SEND_AT_TARGET) {
        t = e->target;
    }
    g_mutex_unlock(&e->lock);
    if (t)
        c->cancelled = crt_target_cancel(t, &r->io, -ECANCELED);
}

gboolean crt_engine_cancel(CrtEngine *e, CrtRequestId id)
{
    CancelCall c = {.engine = e, .id = id};

    crt_loop_call(e->loop, cancel_on_loop, &c);
    return c.cancelled;
}

static void cancel_all_on_loop(gpointer data)
{
    CrtEngine *e = data;
    GArray *ids = g_array_new(FALSE, FALSE, sizeof(CrtRequestId));
    GHashTableIter it;
    gpointer key;

    g_mutex_lock(&e->lock);
    g_hash_table_iter_init(&it, e->sends);
    while (g_hash_table_iter_next(&it, &key, NULL))
        g_array_append_val(ids, *(CrtRequestId *)key);
    g_mutex_unlock(&e->lock);
    for (guint i = 0; i < ids->len; i++) {
        CancelCall c = {.engine = e, .id = g_array_index(ids, CrtRequestId, i)};

        cancel_on_loop(&c);
    }
    g_array_free(ids, TRUE);
}

void crt_engine_sends_drain(CrtEngine *e)
{
    crt_loop_call(e->loop, cancel_all_on_loop, e);
    g_mutex_lock(&e->lock);
    while (e->sends_pending > 0)
        crt_engine_wait_unlocked(e);
    g_mutex_unlock(&e->lock);
}
