/* crtfs - the `input` queue (channel-input.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <crtfs/error.h>

#include "channel-input.h"

void crt_input_queue_init(CrtInputQueue *in)
{
    memset(in, 0, sizeof *in);
    g_mutex_init(&in->lock);
    g_queue_init(&in->queue);
    in->payload = g_strdup("");
    in->count = 1;
}

void crt_input_queue_clear(CrtInputQueue *in)
{
    g_queue_clear_full(&in->queue, (GDestroyNotify)g_bytes_unref);
    g_free(in->payload);
    in->payload = NULL;
    g_mutex_clear(&in->lock);
}

void crt_input_queue_configure(CrtInputQueue *in, const CrtConfig *cfg)
{
    g_mutex_lock(&in->lock);
    g_free(in->payload);
    in->payload = g_strdup(cfg->payload ? cfg->payload : "");
    in->payload_len = strlen(in->payload);
    in->type = cfg->type;
    in->count = MAX(cfg->in_count, 1);
    in->size = cfg->in_size;
    g_mutex_unlock(&in->lock);
}

int crt_input_queue_push(CrtInputQueue *in, const void *buf, size_t len, GError **error)
{
    int r = 0;

    g_mutex_lock(&in->lock);
    if (!crt_request_type_has_input(in->type))
        r = crt_set_error(error, EINVAL, "input: type %s sends no input",
                          crt_request_type_to_string(in->type));
    else if (len > in->size)
        r = crt_set_error(error, EMSGSIZE, "input: %zu bytes exceed in_size %" PRIu64,
                          len, in->size);
    else if (g_queue_get_length(&in->queue) >= in->count)
        r = -EAGAIN;
    else
        g_queue_push_tail(&in->queue, g_bytes_new(buf, len));
    g_mutex_unlock(&in->lock);
    return r;
}

gboolean crt_input_queue_has_room(CrtInputQueue *in)
{
    gboolean ok;

    g_mutex_lock(&in->lock);
    ok = g_queue_get_length(&in->queue) < in->count;
    g_mutex_unlock(&in->lock);
    return ok;
}

int crt_input_queue_fill(CrtInputQueue *in, void *buf, size_t *size, gboolean *dequeued)
{
    GBytes *b;
    int r = 0;

    g_mutex_lock(&in->lock);
    b = g_queue_pop_head(&in->queue);
    *dequeued = b != NULL;
    if (b) {
        gsize n;
        const void *p = g_bytes_get_data(b, &n);

        *size = MIN(n, *size);
        memcpy(buf, p, *size);
        g_bytes_unref(b);
    } else if (in->payload_len) {
        *size = MIN(in->payload_len, *size);
        memcpy(buf, in->payload, *size);
    } else {
        r = -EAGAIN;
    }
    g_mutex_unlock(&in->lock);
    return r;
}
