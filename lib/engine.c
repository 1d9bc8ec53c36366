/* crtfs - the engine's stream: configuration, lifecycle, the continuous
 * requests and their delivery (single requests are in engine-send.c).
 *
 * A slot is one of the `request_count` continuous requests.  It takes an
 * output and an input buffer, goes to the target through the loop, comes
 * back, is numbered, and waits in the completion queue.  One deliverer at a
 * time drains that queue, so callbacks see completions in sequence order
 * whatever the request count, and re-arms each slot after its callback.  A
 * slot that finds no free buffer waits on a list and re-arms when one comes
 * back, so a stream never decays.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "engine-private.h"

#define CRT_ENGINE_MAX_REQUESTS 4096u
/* Completions delivered per turn before the deliverer yields its thread. */
#define DELIVER_BUDGET 64

static void slot_arm(CrtEngine *e, Slot *s);
static void stop_unlocked(CrtEngine *e);
static void output_returned_unlocked(CrtEngine *e);

void crt_engine_config_init(CrtEngineConfig *c)
{
    memset(c, 0, sizeof *c);
    c->request_count = 4;
    c->type = CRT_REQUEST_READ;
    c->out_count = 8;
    c->out_size = 4096;
    c->in_count = 4;
    c->in_size = 4096;
    c->mode = CRT_MODE_MANUAL;
    c->completion = CRT_COMPLETION_DEFAULT;
}

int crt_engine_config_validate(const CrtEngineConfig *c, GError **error)
{
    if (c->request_count == 0 || c->request_count > CRT_ENGINE_MAX_REQUESTS)
        return crt_set_error(error, EINVAL, "request_count %u is out of range 1..%u",
                             c->request_count, CRT_ENGINE_MAX_REQUESTS);
    if (c->type <= CRT_REQUEST_INVALID || c->type > CRT_REQUEST_WRITE)
        return crt_set_error(error, EINVAL, "request type %d is not valid", c->type);
    if (c->type == CRT_REQUEST_IOCTL && c->ioctl == 0)
        return crt_set_error(error, EINVAL, "request type ioctl needs an ioctl code");
    if (c->mode <= CRT_MODE_INVALID || c->mode >= CRT_MODE_MAXIMUM)
        return crt_set_error(error, EINVAL, "mode %d is not valid", c->mode);
    if ((guint)c->completion >= CRT_COMPLETION_MAXIMUM)
        return crt_set_error(error, EINVAL, "completion %d is not valid", c->completion);
    if ((guint)c->in_memory > CRT_MEMORY_LOCKED ||
        (guint)c->out_memory > CRT_MEMORY_LOCKED)
        return crt_set_error(error, EINVAL, "memory kind is not valid");
    if (crt_request_type_has_output(c->type) && c->out_size > 0 && c->out_count == 0 &&
        !c->lookaside_output)
        return crt_set_error(
            error, EINVAL,
            "out_count 0 leaves no output buffer (set lookaside or a count)");
    if (crt_request_type_has_input(c->type) && c->in_size > 0 && c->in_count == 0)
        return crt_set_error(error, EINVAL, "in_count 0 leaves no input buffer");
    if (crt_request_type_has_output(c->type) && c->out_size > 0 &&
        crt_bufpool_check(c->out_count, c->out_size, c->out_context_size,
                          c->lookaside_output, error) < 0)
        return -EINVAL;
    if (crt_request_type_has_input(c->type) && c->in_size > 0 &&
        crt_bufpool_check(c->in_count, c->in_size, c->in_context_size, FALSE, error) < 0)
        return -EINVAL;
    return 0;
}

static int make_pools(CrtEngine *e, GError **error)
{
    const CrtEngineConfig *c = &e->cfg;
    int err = 0;

    if (crt_request_type_has_output(c->type) && c->out_size > 0) {
        e->out_pool = crt_bufpool_new(c->out_count, c->out_size, c->out_context_size,
                                      c->lookaside_output, c->out_memory, &err, error);
        if (!e->out_pool)
            return -err;
    }
    if (crt_request_type_has_input(c->type) && c->in_size > 0) {
        e->in_pool = crt_bufpool_new(c->in_count, c->in_size, c->in_context_size, FALSE,
                                     c->in_memory, &err, error);
        if (!e->in_pool)
            return -err;
    }
    return 0;
}

static void slot_submit_task(CrtTask *task);
static void slot_io_done(CrtIo *io);
static gboolean slot_bind(CrtIo *io);
static void kick_task(CrtTask *task);
static void input_task(CrtTask *task);
static void deliver_task(CrtTask *task);
static void stop_task(CrtTask *task);

int crt_engine_new(const CrtEngineConfig *config, CrtEngine **out, GError **error)
{
    CrtEngine *e;
    int r = crt_engine_config_validate(config, error);

    if (r < 0)
        return r;
    e = g_new0(CrtEngine, 1);
    e->cfg = *config;
    e->loop = config->loop ? crt_loop_ref(config->loop) : crt_loop_default();
    e->cfg.loop = e->loop;
    g_mutex_init(&e->lock);
    g_cond_init(&e->cond);
    e->deliver_task.fn = deliver_task;
    e->stop_task.fn = stop_task;
    e->kick_task.fn = kick_task;
    e->input_task.fn = input_task;
    e->lazy_output = config->type == CRT_REQUEST_READ;
    crt_engine_sends_init(e);
    r = make_pools(e, error);
    if (r < 0) {
        crt_engine_free(e);
        return r;
    }
    e->slots = g_new0(Slot, config->request_count);
    for (guint i = 0; i < config->request_count; i++) {
        Slot *s = &e->slots[i];

        s->engine = e;
        s->index = i;
        s->submit.fn = slot_submit_task;
        s->io.done = slot_io_done;
        s->io.bind = slot_bind;
    }
    *out = e;
    return 0;
}

static void loop_barrier(gpointer data)
{
}

void crt_engine_free(CrtEngine *e)
{
    if (!e)
        return;
    crt_engine_io_target_clear(e);
    g_mutex_lock(&e->lock);
    while (e->delivering || e->at_target)
        crt_engine_wait_unlocked(e);
    g_mutex_unlock(&e->lock);
    /* The stop task may still be queued; once taken back, a call through
     * the loop waits out one that is running. */
    crt_loop_cancel(e->loop, &e->stop_task);
    crt_loop_cancel(e->loop, &e->kick_task);
    crt_loop_cancel(e->loop, &e->input_task);
    crt_loop_call(e->loop, loop_barrier, NULL);
    for (guint i = 0; e->slots && i < e->cfg.request_count; i++)
        g_assert(e->slots[i].state == SLOT_IDLE);
    crt_engine_sends_clear(e);
    if (e->out_pool)
        crt_bufpool_free(e->out_pool);
    if (e->in_pool)
        crt_bufpool_free(e->in_pool);
    g_free(e->slots);
    crt_loop_unref(e->loop);
    g_mutex_clear(&e->lock);
    g_cond_clear(&e->cond);
    g_free(e);
}

/* --- buffers and the wait list --------------------------------------- */

static void release_buffers_unlocked(CrtEngine *e, Slot *s)
{
    if (s->in_buf)
        crt_bufpool_put(e->in_pool, s->in_buf);
    if (s->out_buf) {
        crt_bufpool_put(e->out_pool, s->out_buf);
        output_returned_unlocked(e);
    }
    s->in_buf = s->out_buf = NULL;
}

/* Take both buffers or neither, under the engine lock, so a buffer coming
 * back (also under the lock) always sees a slot that went short. */
static gboolean take_buffers_unlocked(CrtEngine *e, Slot *s)
{
    if (e->out_pool && !e->lazy_output && !s->out_buf) {
        s->out_buf = crt_bufpool_get(e->out_pool);
        if (!s->out_buf)
            return FALSE;
    }
    if (e->in_pool && !s->in_buf) {
        s->in_buf = crt_bufpool_get(e->in_pool);
        if (!s->in_buf) {
            if (s->out_buf)
                crt_bufpool_put(e->out_pool, s->out_buf);
            s->out_buf = NULL;
            return FALSE;
        }
    }
    return TRUE;
}

static void wait_append_unlocked(CrtEngine *e, Slot *s)
{
    s->state = SLOT_WAITING;
    s->next = NULL;
    if (e->wait_tail)
        e->wait_tail->next = s;
    else
        e->wait_head = s;
    e->wait_tail = s;
    e->waiting++;
}

static Slot *wait_take_all_unlocked(CrtEngine *e)
{
    Slot *list = e->wait_head;

    e->wait_head = e->wait_tail = NULL;
    e->waiting = 0;
    return list;
}

/* Re-arm every waiting slot; those still short go back on the list. */
static void kick_waiters(CrtEngine *e)
{
    Slot *s;

    g_mutex_lock(&e->lock);
    s = wait_take_all_unlocked(e);
    g_mutex_unlock(&e->lock);
    while (s) {
        Slot *next = s->next;

        slot_arm(e, s);
        s = next;
    }
}

/* --- arming and submission ------------------------------------------- */

static gboolean fill_input(CrtEngine *e, Slot *s, size_t *len)
{
    void *ctx = s->in_buf ? crt_bufpool_context(s->in_buf) : NULL;

    *len = s->in_buf ? e->cfg.in_size : 0;
    if (!e->cfg.buffer_input || !crt_request_type_has_input(e->cfg.type))
        return TRUE;
    if (e->cfg.buffer_input(e, s->in_buf, len, ctx, e->cfg.user_data) == -EAGAIN)
        return FALSE;
    if (*len > e->cfg.in_size)
        *len = e->cfg.in_size;
    return TRUE;
}

/* First half of arming, engine lock held, by whoever owns the slot (start,
 * the deliverer, a buffer coming back); the slot is IDLE, WAITING (off the
 * list) or COMPLETED.  TRUE when the slot has its buffers and the caller
 * must finish with slot_launch() after dropping the lock. */
static gboolean slot_prepare_unlocked(CrtEngine *e, Slot *s)
{
    if (!e->streaming) {
        release_buffers_unlocked(e, s);
        s->state = SLOT_IDLE;
        crt_engine_wake_unlocked(e);
        return FALSE;
    }
    if (!take_buffers_unlocked(e, s)) {
        wait_append_unlocked(e, s);
        return FALSE;
    }
    s->state = SLOT_ARMING;
    e->at_target++;
    return TRUE;
}

/* Second half, without the lock: the input callback, then off to the loop. */
static void slot_launch(CrtEngine *e, Slot *s)
{
    size_t in_len;
    gint ready = g_atomic_int_get(&e->input_ready_count);

    while (!fill_input(e, s, &in_len)) {
        g_mutex_lock(&e->lock);
        /* Input that became ready since we asked would find no waiter to
         * kick: ask again instead of waiting. */
        if (g_atomic_int_get(&e->input_ready_count) != ready) {
            ready = g_atomic_int_get(&e->input_ready_count);
            g_mutex_unlock(&e->lock);
            continue;
        }
        e->at_target--;
        wait_append_unlocked(e, s);
        crt_engine_wake_unlocked(e);
        g_mutex_unlock(&e->lock);
        return;
    }
    s->io.type = e->cfg.type;
    s->io.ioctl_code = e->cfg.ioctl;
    s->io.in = s->in_buf;
    s->io.in_len = in_len;
    s->io.out = s->out_buf;
    s->io.out_cap = (s->out_buf || e->lazy_output) ? e->cfg.out_size : 0;
    crt_loop_run_or_post(e->loop, &s->submit);
}

static void slot_arm(CrtEngine *e, Slot *s)
{
    gboolean launch;

    g_mutex_lock(&e->lock);
    launch = slot_prepare_unlocked(e, s);
    g_mutex_unlock(&e->lock);
    if (launch)
        slot_launch(e, s);
}

/* Loop thread, from the target right before it reads into the request. */
static gboolean slot_bind(CrtIo *io)
{
    Slot *s = G_STRUCT_MEMBER_P(io, -G_STRUCT_OFFSET(Slot, io));
    CrtEngine *e = s->engine;

    g_mutex_lock(&e->lock);
    s->out_buf = crt_bufpool_get(e->out_pool);
    e->bind_blocked = s->out_buf == NULL;
    g_mutex_unlock(&e->lock);
    io->out = s->out_buf;
    return io->out != NULL;
}

/* A buffer came back while a bind was refused; engine lock held. */
static void output_returned_unlocked(CrtEngine *e)
{
    if (e->bind_blocked) {
        e->bind_blocked = FALSE;
        crt_loop_post(e->loop, &e->kick_task);
    }
}

static void kick_task(CrtTask *task)
{
    CrtEngine *e = G_STRUCT_MEMBER_P(task, -G_STRUCT_OFFSET(CrtEngine, kick_task));
    CrtTarget *t;

    g_mutex_lock(&e->lock);
    t = e->at_target ? e->target : NULL;
    g_mutex_unlock(&e->lock);
    if (t)
        crt_target_kick(t);
}

/* Loop thread.  A stop that came after arming wins: the request completes
 * as cancelled without reaching the target. */
static void slot_submit_task(CrtTask *task)
{
    Slot *s = G_STRUCT_MEMBER_P(task, -G_STRUCT_OFFSET(Slot, submit));
    CrtEngine *e = s->engine;
    CrtTarget *t;

    g_mutex_lock(&e->lock);
    t = e->streaming ? e->target : NULL;
    if (t)
        s->state = SLOT_SUBMITTED;
    g_mutex_unlock(&e->lock);
    if (t) {
        crt_target_submit(t, &s->io);
    } else {
        s->io.fatal = FALSE;
        s->io.status = -ECANCELED;
        s->io.bytes_in = s->io.bytes_out = 0;
        slot_io_done(&s->io);
    }
}

/* --- completion and delivery ----------------------------------------- */

static gint64 realtime_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (gint64)ts.tv_sec * G_GINT64_CONSTANT(1000000000) + ts.tv_nsec;
}

static void count_completion_unlocked(CrtEngine *e, const CrtIo *io)
{
    if (io->status == 0)
        e->stats.completed++;
    else if (io->status == -ECANCELED)
        e->stats.cancelled++;
    else
        e->stats.failed++;
    if (io->status != 0 && io->status != -ECANCELED)
        e->stats.last_error = io->status;
    e->stats.bytes_read += io->bytes_out;
    e->stats.bytes_written += io->bytes_in;
}

/* Claim the deliverer role; returns TRUE if the caller should deliver
 * inline (default level on the loop thread), else schedules it. */
static gboolean schedule_delivery_unlocked(CrtEngine *e)
{
    if (e->delivering)
        return FALSE;
    e->delivering = TRUE;
    if (e->cfg.completion == CRT_COMPLETION_PASSIVE) {
        crt_loop_pool_push(e->loop, &e->deliver_task);
        return FALSE;
    }
    if (crt_loop_is_current(e->loop))
        return TRUE;
    crt_loop_post(e->loop, &e->deliver_task);
    return FALSE;
}

static void deliver(CrtEngine *e);

/* Loop thread: a continuous request came back. */
static void slot_io_done(CrtIo *io)
{
    Slot *s = G_STRUCT_MEMBER_P(io, -G_STRUCT_OFFSET(Slot, io));
    CrtEngine *e = s->engine;
    gboolean inline_delivery;

    g_mutex_lock(&e->lock);
    e->at_target--;
    crt_engine_wake_unlocked(e); /* stop-and-wait from a passive callback */
    s->state = SLOT_COMPLETED;
    s->result = (CrtOutput){
        .status = io->status,
        .seq = ++e->next_seq,
        .time_ns = realtime_ns(),
        .buffer = s->out_buf,
        .length = io->bytes_out,
        .context = s->out_buf ? crt_bufpool_context(s->out_buf) : NULL,
        .slot = s->index,
    };
    count_completion_unlocked(e, io);
    /* The target cannot go on (end of stream, dead device): deliver what
     * came, then stop instead of spinning on the same error. */
    if (io->fatal)
        stop_unlocked(e);
    s->next = NULL;
    if (e->done_tail)
        e->done_tail->next = s;
    else
        e->done_head = s;
    e->done_tail = s;
    inline_delivery = schedule_delivery_unlocked(e);
    g_mutex_unlock(&e->lock);
    if (inline_delivery)
        deliver(e);
}

/* Apply the callback's disposition; returns TRUE if a buffer went back to a
 * pool (waiting slots may now arm).  Engine lock held. */
static gboolean dispose_unlocked(CrtEngine *e, Slot *s, CrtDisposition d)
{
    gboolean freed = s->in_buf != NULL;

    if (s->in_buf)
        crt_bufpool_put(e->in_pool, s->in_buf);
    s->in_buf = NULL;
    if (d == CRT_DISPOSITION_CLIENT_CONTINUE || d == CRT_DISPOSITION_CLIENT_STOP) {
        s->out_buf = NULL; /* the client owns it until crt_engine_buffer_put */
    } else if (s->out_buf) {
        crt_bufpool_put(e->out_pool, s->out_buf);
        s->out_buf = NULL;
        output_returned_unlocked(e);
        freed = TRUE;
    }
    if (d == CRT_DISPOSITION_ENGINE_STOP || d == CRT_DISPOSITION_CLIENT_STOP)
        stop_unlocked(e);
    return freed && e->waiting > 0;
}

static Slot *done_pop_unlocked(CrtEngine *e)
{
    Slot *s = e->done_head;

    if (s) {
        e->done_head = s->next;
        if (!e->done_head)
            e->done_tail = NULL;
        s->next = NULL;
    }
    return s;
}

/* Deliver one completion; FALSE when the queue was empty (and the role is
 * given up). */
static gboolean deliver_one(CrtEngine *e)
{
    CrtDisposition d = CRT_DISPOSITION_ENGINE_CONTINUE;
    gboolean kick, launch;
    Slot *s;

    g_mutex_lock(&e->lock);
    s = done_pop_unlocked(e);
    if (!s) {
        e->delivering = FALSE;
        e->deliver_thread = NULL;
        crt_engine_wake_unlocked(e);
        g_mutex_unlock(&e->lock);
        return FALSE;
    }
    e->deliver_thread = g_thread_self();
    g_mutex_unlock(&e->lock);

    if (e->cfg.buffer_output)
        d = e->cfg.buffer_output(e, &s->result, e->cfg.user_data);
    if (d <= CRT_DISPOSITION_INVALID || d >= CRT_DISPOSITION_MAXIMUM)
        d = CRT_DISPOSITION_ENGINE_CONTINUE;

    g_mutex_lock(&e->lock);
    kick = dispose_unlocked(e, s, d);
    launch = slot_prepare_unlocked(e, s); /* goes IDLE when streaming stopped */
    g_mutex_unlock(&e->lock);
    if (launch)
        slot_launch(e, s);
    if (kick)
        kick_waiters(e);
    return TRUE;
}

static void deliver(CrtEngine *e)
{
    for (int i = 0; i < DELIVER_BUDGET; i++) {
        if (!deliver_one(e))
            return;
    }
    /* Still delivering: yield the thread and come back. */
    if (e->cfg.completion == CRT_COMPLETION_PASSIVE)
        crt_loop_pool_push(e->loop, &e->deliver_task);
    else
        crt_loop_post(e->loop, &e->deliver_task);
}

static void deliver_task(CrtTask *task)
{
    deliver(G_STRUCT_MEMBER_P(task, -G_STRUCT_OFFSET(CrtEngine, deliver_task)));
}

/* --- start and stop --------------------------------------------------- */

int crt_engine_start(CrtEngine *e)
{
    Slot *idle = NULL;

    g_mutex_lock(&e->lock);
    if (!e->accepting) {
        g_mutex_unlock(&e->lock);
        return -ENOTCONN;
    }
    if (e->suspended && e->cfg.purge_on_suspend) {
        g_mutex_unlock(&e->lock);
        return -ESHUTDOWN;
    }
    if (e->streaming) {
        g_mutex_unlock(&e->lock);
        return -EALREADY;
    }
    e->streaming = TRUE;
    /* Slots still in flight from before a stop re-arm when they return. */
    for (guint i = e->cfg.request_count; i-- > 0;) {
        if (e->slots[i].state == SLOT_IDLE) {
            e->slots[i].state = SLOT_WAITING; /* owned by us until armed */
            e->slots[i].next = idle;
            idle = &e->slots[i];
        }
    }
    g_mutex_unlock(&e->lock);
    while (idle) {
        Slot *next = idle->next;

        slot_arm(e, idle);
        idle = next;
    }
    return 0;
}

/* Turn streaming off, return the waiting slots' buffers, and have the loop
 * cancel what is at the target.  Engine lock held; never blocks. */
static void stop_unlocked(CrtEngine *e)
{
    Slot *s;

    if (!e->streaming)
        return;
    e->streaming = FALSE;
    for (s = wait_take_all_unlocked(e); s; s = s->next) {
        release_buffers_unlocked(e, s);
        s->state = SLOT_IDLE;
    }
    if (e->at_target)
        crt_loop_post(e->loop, &e->stop_task);
    crt_engine_wake_unlocked(e);
}

/* Loop thread.  Each slot is checked again right before its cancel: a
 * completion callback may have restarted the stream meanwhile. */
static void stop_task(CrtTask *task)
{
    CrtEngine *e = G_STRUCT_MEMBER_P(task, -G_STRUCT_OFFSET(CrtEngine, stop_task));

    for (guint i = 0; i < e->cfg.request_count; i++) {
        Slot *s = &e->slots[i];
        CrtTarget *t;

        g_mutex_lock(&e->lock);
        t = (!e->streaming && s->state == SLOT_SUBMITTED) ? e->target : NULL;
        g_mutex_unlock(&e->lock);
        if (t)
            crt_target_cancel(t, &s->io, -ECANCELED);
    }
}

void crt_engine_stop(CrtEngine *e)
{
    g_mutex_lock(&e->lock);
    stop_unlocked(e);
    g_mutex_unlock(&e->lock);
}

void crt_engine_stop_and_wait(CrtEngine *e)
{
    gboolean self;

    g_mutex_lock(&e->lock);
    stop_unlocked(e);
    if (crt_loop_is_current(e->loop)) {
        g_mutex_unlock(&e->lock); /* cannot block the thread that completes */
        return;
    }
    /* From inside a passive callback the queue behind us is ours. */
    self = e->deliver_thread == g_thread_self();
    while (e->at_target > 0 || (!self && e->delivering))
        crt_engine_wait_unlocked(e);
    g_mutex_unlock(&e->lock);
}

/* --- target ----------------------------------------------------------- */

int crt_engine_io_target_set(CrtEngine *e, CrtTarget *target)
{
    g_return_val_if_fail(target != NULL, -EINVAL);
    crt_engine_io_target_clear(e);
    g_mutex_lock(&e->lock);
    e->target = target;
    e->accepting = TRUE;
    g_mutex_unlock(&e->lock);
    if (e->cfg.mode == CRT_MODE_AUTOMATIC)
        return crt_engine_start(e);
    return 0;
}

/* The engine lets go of the target without closing it: whoever else holds a
 * reference (the filesystem keeps one across engine rebuilds) may hand it to
 * another engine.  The last reference closes it. */
void crt_engine_io_target_clear(CrtEngine *e)
{
    CrtTarget *t;

    g_return_if_fail(!crt_loop_is_current(e->loop));
    g_mutex_lock(&e->lock);
    e->accepting = FALSE;
    g_mutex_unlock(&e->lock);
    crt_engine_stop_and_wait(e);
    crt_engine_sends_drain(e);
    g_mutex_lock(&e->lock);
    t = e->target;
    e->target = NULL;
    g_mutex_unlock(&e->lock);
    if (t)
        crt_target_unref(t);
}

gboolean crt_engine_has_target(CrtEngine *e)
{
    gboolean r;

    g_mutex_lock(&e->lock);
    r = e->accepting;
    g_mutex_unlock(&e->lock);
    return r;
}

/* --- buffers, input, suspend ------------------------------------------ */

void crt_engine_buffer_put(CrtEngine *e, void *buffer)
{
    gboolean kick;

    g_return_if_fail(buffer != NULL && e->out_pool != NULL);
    g_return_if_fail(crt_bufpool_of(buffer) == e->out_pool);
    g_mutex_lock(&e->lock);
    crt_bufpool_put(e->out_pool, buffer);
    output_returned_unlocked(e);
    kick = e->waiting > 0;
    g_mutex_unlock(&e->lock);
    if (kick)
        kick_waiters(e);
}

static void input_task(CrtTask *task)
{
    kick_waiters(G_STRUCT_MEMBER_P(task, -G_STRUCT_OFFSET(CrtEngine, input_task)));
}

/* On the loop, not on the caller's stack: the input callback must not run
 * inside a caller that holds its own locks (the filesystem's input file). */
void crt_engine_input_ready(CrtEngine *e)
{
    g_atomic_int_inc(&e->input_ready_count);
    crt_loop_post(e->loop, &e->input_task);
}

int crt_engine_suspend(CrtEngine *e)
{
    g_mutex_lock(&e->lock);
    if (e->suspended) {
        g_mutex_unlock(&e->lock);
        return -EALREADY;
    }
    e->suspended = TRUE;
    e->resume_streaming = e->streaming;
    g_mutex_unlock(&e->lock);
    if (e->cfg.purge_on_suspend) {
        crt_engine_stop_and_wait(e);
        crt_engine_sends_drain(e);
    }
    return 0;
}

int crt_engine_resume(CrtEngine *e)
{
    gboolean restart;

    g_mutex_lock(&e->lock);
    if (!e->suspended) {
        g_mutex_unlock(&e->lock);
        return -EALREADY;
    }
    e->suspended = FALSE;
    restart = e->cfg.purge_on_suspend && e->resume_streaming && e->accepting;
    g_mutex_unlock(&e->lock);
    return restart ? crt_engine_start(e) : 0;
}

/* --- state ------------------------------------------------------------ */

CrtEngineState crt_engine_get_state(CrtEngine *e)
{
    CrtEngineState st;

    g_mutex_lock(&e->lock);
    if (e->suspended)
        st = CRT_STATE_SUSPENDED;
    else if (e->streaming)
        st = CRT_STATE_STREAMING;
    else if (e->at_target > 0 || e->delivering)
        st = CRT_STATE_STOPPING;
    else
        st = CRT_STATE_STOPPED;
    g_mutex_unlock(&e->lock);
    return st;
}

const CrtEngineConfig *crt_engine_get_config(CrtEngine *e)
{
    return &e->cfg;
}

void crt_engine_get_stats(CrtEngine *e, CrtEngineStats *st)
{
    g_mutex_lock(&e->lock);
    *st = e->stats;
    st->requests_in_flight = e->at_target + g_hash_table_size(e->sends);
    st->slots_waiting = e->waiting;
    for (guint i = 0; e->bind_blocked && i < e->cfg.request_count; i++) {
        if (e->slots[i].state == SLOT_SUBMITTED && !e->slots[i].out_buf)
            st->slots_waiting++; /* at the target, waiting to bind a buffer */
    }
    st->last_seq = e->next_seq;
    if (e->out_pool) {
        CrtBufPoolStats ps;

        crt_bufpool_get_stats(e->out_pool, &ps);
        st->out_pool_free = ps.free;
        st->out_pool_size = e->cfg.out_count;
        st->out_pool_used = ps.in_use;
    }
    if (e->in_pool) {
        st->in_pool_free = crt_bufpool_free_count(e->in_pool);
        st->in_pool_size = e->cfg.in_count;
    }
    g_mutex_unlock(&e->lock);
}

static const char *const state_names[] = {"stopped", "streaming", "stopping",
                                          "suspended"};
static const char *const mode_names[] = {NULL, "automatic", "manual"};
static const char *const completion_names[] = {"default", "passive"};

const char *crt_engine_state_to_string(CrtEngineState state)
{
    return (guint)state < G_N_ELEMENTS(state_names) ? state_names[state] : "invalid";
}

const char *crt_mode_to_string(CrtMode mode)
{
    return mode > CRT_MODE_INVALID && mode < CRT_MODE_MAXIMUM ? mode_names[mode]
                                                              : "invalid";
}

static int name_lookup(const char *s, const char *const *names, guint n)
{
    for (guint i = 0; s && i < n; i++) {
        if (names[i] && strcmp(s, names[i]) == 0)
            return (int)i;
    }
    return -EINVAL;
}

int crt_mode_from_string(const char *s, CrtMode *out)
{
    int i = name_lookup(s, mode_names, G_N_ELEMENTS(mode_names));

    if (i < 0)
        return i;
    *out = (CrtMode)i;
    return 0;
}

const char *crt_completion_to_string(CrtCompletion completion)
{
    return (guint)completion < G_N_ELEMENTS(completion_names)
               ? completion_names[completion]
               : "invalid";
}

int crt_completion_from_string(const char *s, CrtCompletion *out)
{
    int i = name_lookup(s, completion_names, G_N_ELEMENTS(completion_names));

    if (i < 0)
        return i;
    *out = (CrtCompletion)i;
    return 0;
}
