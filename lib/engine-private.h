/* crtfs - engine internals shared by engine.c (streaming) and
 * engine-send.c (single requests). */
#ifndef CRTFS_ENGINE_PRIVATE_H
#define CRTFS_ENGINE_PRIVATE_H

#include <crtfs/engine.h>

#include "target-private.h"

typedef enum {
    SLOT_IDLE = 0,  /* not armed: streaming is off */
    SLOT_WAITING,   /* armed but short of a buffer or of input */
    SLOT_ARMING,    /* buffers taken, on its way to the target */
    SLOT_SUBMITTED, /* at the target */
    SLOT_COMPLETED, /* back, queued for (or in) delivery */
} SlotState;

typedef struct Slot Slot;
struct Slot {
    CrtIo io;
    CrtEngine *engine;
    guint index;
    SlotState state;  /* engine lock */
    void *in_buf;     /* engine lock */
    void *out_buf;    /* engine lock */
    CrtTask submit;   /* carries the request to the loop */
    Slot *next;       /* wait list or completion queue; engine lock */
    CrtOutput result; /* written at completion, read by the deliverer */
};

typedef struct Send Send;

struct CrtEngine {
    CrtEngineConfig cfg;
    CrtLoop *loop;
    CrtBufPool *in_pool;  /* NULL when requests carry no input */
    CrtBufPool *out_pool; /* NULL when out_size is 0 */
    Slot *slots;

    /* Everything below is guarded by `lock` (taken before a pool's own
     * lock, see engine.h); `cond` is broadcast whenever a slot, the deliverer
     * or a single request changes state. */
    GMutex lock;
    GCond cond;
    guint cond_waiters; /* threads in crt_engine_wait_unlocked() */
    CrtTarget *target;  /* in-flight requests use it */
    gboolean accepting; /* a target is set and not being cleared */
    gboolean streaming; /* the client wants the stream on */
    gboolean suspended;
    gboolean resume_streaming;
    guint at_target; /* slots ARMING or SUBMITTED */
    guint waiting;   /* slots WAITING */
    Slot *wait_head, *wait_tail;
    Slot *done_head, *done_tail;
    gboolean delivering; /* a deliverer owns the completion queue */
    GThread *deliver_thread;
    CrtTask deliver_task;
    CrtTask stop_task;
    CrtTask kick_task;     /* tells the target a buffer came back */
    CrtTask input_task;    /* re-arms slots waiting for input */
    gint input_ready_count; /* crt_engine_input_ready calls, atomic */
    gboolean lazy_output;  /* read slots bind their output buffer at the
                            * target, right before the read (constant) */
    gboolean bind_blocked; /* a bind found the output pool empty */
    guint64 next_seq;

    GHashTable *sends;   /* CrtRequestId -> Send, until completion */
    guint sends_pending; /* Send structures alive */
    CrtRequestId next_id;

    CrtEngineStats stats; /* counters part only */
};

/* Wait on / wake the engine's condition; lock held.  Waking costs a system
 * call even with nobody waiting, and the stream would pay it per buffer, so
 * it happens only when someone waits. */
static inline void crt_engine_wait_unlocked(CrtEngine *e)
{
    e->cond_waiters++;
    g_cond_wait(&e->cond, &e->lock);
    e->cond_waiters--;
}

static inline void crt_engine_wake_unlocked(CrtEngine *e)
{
    if (e->cond_waiters)
        g_cond_broadcast(&e->cond);
}

/* engine-send.c */
void crt_engine_sends_init(CrtEngine *e);
/* Cancel every single request and wait until all have completed and their
 * callbacks returned.  Not on the loop thread. */
void crt_engine_sends_drain(CrtEngine *e);
void crt_engine_sends_clear(CrtEngine *e);

#endif
