/* crtfs - the engine: DMF ContinuousRequestTarget in user space.
 *
 * An engine keeps `request_count` requests in flight against one target,
 * each with an input buffer (filled by the buffer-input callback) and an
 * output buffer (handed to the buffer-output callback), and re-sends each
 * request as it completes until streaming stops.  Single requests (send,
 * send-ex, send-sync) share the target.
 *
 * Threads and locks.  Every method may be called from any thread, including
 * from inside the callbacks, unless its comment says otherwise.  The engine
 * lock is never held while a callback runs.  Callbacks of one engine's
 * stream run one at a time, in sequence order:
 *   - CRT_COMPLETION_DEFAULT: on the loop thread; they must not block.
 *   - CRT_COMPLETION_PASSIVE: on a worker of the loop's pool; may block.
 * The engine lock is taken before the output pool's (a pool's lock is a
 * leaf); a target is only touched on the loop thread.
 *
 * Errors: functions return 0 or -errno.  A request that fails to submit
 * never calls its callback; a cancelled request still completes, with
 * -ECANCELED; a timed-out one with -ETIMEDOUT.
 */
#ifndef CRTFS_ENGINE_H
#define CRTFS_ENGINE_H

#include <glib.h>

#include <crtfs/export.h>
#include <stddef.h>
#include <stdint.h>

#include <crtfs/bufpool.h>
#include <crtfs/loop.h>
#include <crtfs/target.h>

G_BEGIN_DECLS

typedef struct CrtEngine CrtEngine;

/* ContinuousRequestTarget_BufferDisposition. */
typedef enum {
    CRT_DISPOSITION_INVALID = 0,
    CRT_DISPOSITION_ENGINE_CONTINUE, /* engine keeps the buffer, stream goes on */
    CRT_DISPOSITION_ENGINE_STOP,     /* engine keeps the buffer, stream stops */
    CRT_DISPOSITION_CLIENT_CONTINUE, /* client keeps it (crt_engine_buffer_put later) */
    CRT_DISPOSITION_CLIENT_STOP,     /* client keeps it, stream stops */
    CRT_DISPOSITION_MAXIMUM,
} CrtDisposition;

/* ContinuousRequestTarget_ModeType. */
typedef enum {
    CRT_MODE_INVALID = 0,
    CRT_MODE_AUTOMATIC, /* io-target set starts streaming, clear stops it */
    CRT_MODE_MANUAL,    /* the client calls start and stop */
    CRT_MODE_MAXIMUM,
} CrtMode;

/* ContinuousRequestTarget_CompletionOptions. */
typedef enum {
    CRT_COMPLETION_DEFAULT = 0, /* callback on the loop thread, must not block */
    CRT_COMPLETION_PASSIVE,     /* callback on a pool worker, may block */
    CRT_COMPLETION_MAXIMUM,
} CrtCompletion;

typedef enum {
    CRT_STATE_STOPPED = 0, /* nothing streaming, nothing at the target */
    CRT_STATE_STREAMING,
    CRT_STATE_STOPPING,  /* stopped, requests still coming back */
    CRT_STATE_SUSPENDED, /* suspend() ran; resume() restores */
} CrtEngineState;

/* One streamed completion as the buffer-output callback sees it. */
typedef struct {
    int status;     /* 0, or -errno; -ENODATA: the target ended the stream */
    guint64 seq;    /* 1, 2, 3 ... in the order the target produced them */
    gint64 time_ns; /* CLOCK_REALTIME at completion */
    void *buffer;   /* output buffer, NULL when out_size is 0 */
    size_t length;  /* bytes the target placed in it */
    void *context;  /* the buffer's client context, NULL if none */
    guint slot;     /* which of the request_count requests completed */
} CrtOutput;

/* EVT_..._BufferInput: fill `buffer` (capacity *size) and set *size to the
 * bytes to send.  Return 0, or -EAGAIN when there is nothing to send yet: the
 * request then waits until crt_engine_input_ready() (an extension for
 * producers such as the filesystem's `input` file).  Runs on the thread that
 * arms the request (a start() caller, the loop, or a passive worker). */
typedef int (*CrtBufferInputFn)(CrtEngine *engine, void *buffer, size_t *size,
                                void *context, gpointer user_data);

/* EVT_..._BufferOutput: see every streamed completion, success or failure;
 * return what happens to the buffer and the stream. */
typedef CrtDisposition (*CrtBufferOutputFn)(CrtEngine *engine, const CrtOutput *output,
                                            gpointer user_data);

/* EVT_..._SendCompletion for single requests. */
typedef void (*CrtSendCompletionFn)(CrtEngine *engine, gpointer request_context,
                                    const void *in, size_t in_written, void *out,
                                    size_t out_read, int status);

/* DMF_CONFIG_ContinuousRequestTarget, member for member, plus the streaming
 * completion option and the loop to run on. */
typedef struct {
    guint request_count;             /* ContinuousRequestCount, >= 1 */
    guint in_count;                  /* BufferCountInput */
    guint out_count;                 /* BufferCountOutput */
    CrtRequestType type;             /* RequestType */
    size_t in_size;                  /* BufferInputSize */
    size_t in_context_size;          /* BufferContextInputSize */
    size_t out_size;                 /* BufferOutputSize */
    size_t out_context_size;         /* BufferContextOutputSize */
    gboolean lookaside_output;       /* EnableLookAsideOutput */
    CrtMemory in_memory;             /* PoolTypeInput */
    CrtMemory out_memory;            /* PoolTypeOutput */
    CrtBufferInputFn buffer_input;   /* EvtContinuousRequestTargetBufferInput */
    CrtBufferOutputFn buffer_output; /* EvtContinuousRequestTargetBufferOutput */
    gpointer user_data;              /* ClientContext */
    guint32 ioctl;                   /* ContinuousRequestTargetIoctl */
    gboolean purge_on_suspend;       /* PurgeAndStartTargetInD0Callbacks */
    CrtMode mode;                    /* ContinuousRequestTargetMode */
    CrtCompletion completion;        /* streaming callbacks: default or passive */
    CrtLoop *loop;                   /* NULL: crt_loop_default() */
} CrtEngineConfig;

/* Defaults: 4 read requests of 4096 bytes, 8 output buffers, 4 input buffers
 * of 4096 bytes, manual mode, default completion, normal memory. */
CRT_API void crt_engine_config_init(CrtEngineConfig *config);

/* Check a configuration; 0 or -EINVAL with `error` naming the member. */
CRT_API int crt_engine_config_validate(const CrtEngineConfig *config, GError **error);

/* Create an engine (pools allocated, nothing started).  The config is
 * copied.  Returns 0 and *out, or -errno with `error`. */
CRT_API int crt_engine_new(const CrtEngineConfig *config, CrtEngine **out,
                           GError **error);

/* Stop and wait, cancel single requests and wait for them, clear the target
 * and free everything.  Not from a callback of this engine. */
CRT_API void crt_engine_free(CrtEngine *engine);

/* DMF_..._Start.  -ENOTCONN without a target, -EALREADY when streaming, -EINVAL
 * for request_count 0, -ESHUTDOWN while suspended with purge. */
CRT_API int crt_engine_start(CrtEngine *engine);

/* DMF_..._Stop: cancel the stream's requests and return at once. */
CRT_API void crt_engine_stop(CrtEngine *engine);

/* DMF_..._StopAndWait: stop, then block until every streaming request is
 * back from the target and its callback has returned.  Called from a
 * passive callback it does not wait for the callbacks queued behind the
 * caller's own; from a default (loop-thread) callback it cannot block and
 * acts as crt_engine_stop(). */
CRT_API void crt_engine_stop_and_wait(CrtEngine *engine);

/* DMF_..._IoTargetSet: take ownership of `target` (replacing and clearing
 * any previous one).  In automatic mode streaming starts; if that fails the
 * target stays set and the error is returned. */
CRT_API int crt_engine_io_target_set(CrtEngine *engine, CrtTarget *target);

/* DMF_..._IoTargetClear: stop and wait (streaming and single requests),
 * then drop the engine's reference to the target (the last reference closes
 * it; a caller that kept one may give the target to another engine).  Not
 * from a callback of this engine. */
CRT_API void crt_engine_io_target_clear(CrtEngine *engine);

/* Whether a target is set. */
CRT_API gboolean crt_engine_has_target(CrtEngine *engine);

typedef guint64 CrtRequestId;

/* DMF_..._Send: submit one request.  `request` is copied before the call
 * returns; `response` (capacity `response_len`) must stay valid until the
 * completion callback has run.  timeout_ms 0 = none.  The callback runs at
 * default level.  0 or -errno (then no callback). */
CRT_API int crt_engine_send(CrtEngine *engine, const void *request, size_t request_len,
                            void *response, size_t response_len, CrtRequestType type,
                            guint32 ioctl, guint timeout_ms, CrtSendCompletionFn callback,
                            gpointer request_context);

/* DMF_..._SendEx: as send, with a completion option and a request id for
 * crt_engine_cancel() (`id` may be NULL). */
CRT_API int crt_engine_send_ex(CrtEngine *engine, const void *request, size_t request_len,
                               void *response, size_t response_len, CrtRequestType type,
                               guint32 ioctl, guint timeout_ms, CrtCompletion completion,
                               CrtSendCompletionFn callback, gpointer request_context,
                               CrtRequestId *id);

/* When the response of a transaction (internal-ioctl) is complete.  All
 * zero: with the first bytes that arrive, as a plain send.  Otherwise with
 * whichever of the set conditions holds first; bytes read past the end go
 * back to the stream (the next streaming read gets them first), never to
 * the next transaction.  A response that fills the response buffer ends
 * there; the timeout bounds them all (-ETIMEDOUT). */
typedef struct {
    size_t size;        /* exactly this many bytes; 0: not this condition */
    guint8 until[16];   /* ends after these bytes (a terminator) */
    guint until_len;    /* 0: not this condition */
    guint gap_ms;       /* ends after this much silence once bytes came; 0: not */
    guint len_offset;   /* a big-endian length field at this offset ... */
    guint len_width;    /* ... of 1, 2 or 4 bytes; 0: not this condition */
    gint64 len_adjust;  /* total response length = field value + len_adjust */
} CrtSendEnd;

/* A transaction (internal-ioctl) whose response ends as `end` says (copied;
 * NULL: as crt_engine_send_ex).  The rest as crt_engine_send_ex; -EINVAL
 * for an `end` that cannot hold (size over response_len, until_len over
 * 16, len_width not 1, 2 or 4). */
CRT_API int crt_engine_send_until(CrtEngine *engine, const void *request,
                                  size_t request_len, void *response, size_t response_len,
                                  guint32 ioctl, guint timeout_ms, const CrtSendEnd *end,
                                  CrtCompletion completion, CrtSendCompletionFn callback,
                                  gpointer request_context, CrtRequestId *id);

/* DMF_..._SendSynchronously: submit and block until completion.  Returns the
 * completion status; *bytes (may be NULL) gets the bytes transferred (read
 * into `response` for types with output, else written).  Not on the loop
 * thread (-EDEADLK). */
CRT_API int crt_engine_send_sync(CrtEngine *engine, const void *request,
                                 size_t request_len, void *response, size_t response_len,
                                 CrtRequestType type, guint32 ioctl, guint timeout_ms,
                                 size_t *bytes);

/* DMF_..._Cancel: TRUE if the request was cancelled (its callback then sees
 * -ECANCELED), FALSE if it already completed or is completing. */
CRT_API gboolean crt_engine_cancel(CrtEngine *engine, CrtRequestId id);

/* DMF_..._BufferPut: give back an output buffer the client kept.  A request
 * waiting for a buffer re-arms at once. */
CRT_API void crt_engine_buffer_put(CrtEngine *engine, void *buffer);

/* Purge-and-start (PurgeAndStartTargetInD0Callbacks): with purge_on_suspend,
 * suspend stops, cancels single requests and waits for everything to drain;
 * resume restarts streaming if it was on.  Without it they only change the
 * state.  While suspended with purge, start and sends fail with -ESHUTDOWN. */
CRT_API int crt_engine_suspend(CrtEngine *engine);
CRT_API int crt_engine_resume(CrtEngine *engine);

/* Re-arm requests whose buffer-input callback returned -EAGAIN.  Returns at
 * once; the callbacks run again on the loop thread. */
CRT_API void crt_engine_input_ready(CrtEngine *engine);

CRT_API CrtEngineState crt_engine_get_state(CrtEngine *engine);
CRT_API const char *crt_engine_state_to_string(CrtEngineState state);
CRT_API const CrtEngineConfig *crt_engine_get_config(CrtEngine *engine);

typedef struct {
    guint requests_in_flight; /* streaming + single requests at the target */
    guint slots_waiting;      /* streaming requests waiting for a buffer or input */
    guint64 completed;        /* streaming completions with status 0 */
    guint64 failed;           /* with an error other than -ECANCELED */
    guint64 cancelled;        /* with -ECANCELED */
    guint64 bytes_read;
    guint64 bytes_written;
    guint64 sends; /* single requests completed */
    guint64 last_seq;
    int last_error; /* last error status of any completion, 0 if none */
    guint out_pool_free;
    guint out_pool_size;
    guint out_pool_used; /* output buffers handed out (look-aside extras too) */
    guint in_pool_free;
    guint in_pool_size;
} CrtEngineStats;

CRT_API void crt_engine_get_stats(CrtEngine *engine, CrtEngineStats *stats);

CRT_API const char *crt_mode_to_string(CrtMode mode);
CRT_API int crt_mode_from_string(const char *s, CrtMode *out);
CRT_API const char *crt_completion_to_string(CrtCompletion completion);
CRT_API int crt_completion_from_string(const char *s, CrtCompletion *out);

G_END_DECLS

#endif
