/* crtfs - the `input` queue of a target directory: what a write stream
 * sends, written by users one buffer per write, or the configured payload.
 *
 * One job, one lock: CrtInputQueue's own mutex guards the queue and its
 * copies of the configuration; nothing else is called while it is held.
 * Any thread; crt_input_queue_fill runs on the engine's threads.
 */
#ifndef CRTFS_CHANNEL_INPUT_H
#define CRTFS_CHANNEL_INPUT_H

#include <glib.h>

#include "target-config.h"

typedef struct {
    GMutex lock;
    GQueue queue;        /* lock: GBytes written to `input`, not sent yet */
    char *payload;       /* lock: the `payload` key, sent when the queue is empty */
    size_t payload_len;  /* lock */
    CrtRequestType type; /* lock: copies of the configuration */
    guint count;         /* lock: the queue's bound (in_count, at least 1) */
    guint64 size;        /* lock: the largest write (in_size) */
} CrtInputQueue;

void crt_input_queue_init(CrtInputQueue *in);
void crt_input_queue_clear(CrtInputQueue *in);

/* Take the configuration's payload, type, in_count and in_size. */
void crt_input_queue_configure(CrtInputQueue *in, const CrtConfig *cfg);

/* Queue one buffer's content (copied).  0; -EAGAIN while the queue is full
 * (no error set); -EINVAL for a type that sends nothing and -EMSGSIZE over
 * in_size, with the reason in `error`. */
int crt_input_queue_push(CrtInputQueue *in, const void *buf, size_t len, GError **error);
gboolean crt_input_queue_has_room(CrtInputQueue *in);

/* Fill an engine's input buffer (at most *size bytes, *size set to what was
 * put) from the queue, else from the payload.  0, or -EAGAIN when there is
 * neither.  *dequeued: a queued write left, so there is room again. */
int crt_input_queue_fill(CrtInputQueue *in, void *buf, size_t *size, gboolean *dequeued);

#endif
