/* crtfs - the header line of a `send` request (the man page, "send"):
 * `TYPE [ioctl=CODE] [timeout=MS] [size=BYTES] [payload=BYTES]`, and for an
 * internal-ioctl the end of its response: `[exact=BYTES] [until=TEXT]
 * [gap=DURATION] [len=OFFSET:WIDTH:ADJUST]`.  No state, any thread. */
#ifndef CRTFS_SEND_HEADER_H
#define CRTFS_SEND_HEADER_H

#include <glib.h>

#include <crtfs/engine.h>

/* The largest response a `send` request may ask for (size=). */
#define CRT_SEND_MAX_RESPONSE ((size_t)16 << 20)

typedef struct {
    CrtRequestType type;
    guint64 ioctl;   /* 32 bits */
    guint64 timeout; /* ms, 32 bits; 0: none */
    guint64 size;    /* bytes of response to take, at most CRT_SEND_MAX_RESPONSE */
    gboolean has_len; /* payload= given: the payload is that long, maybe in pieces */
    guint64 len;      /* at most CRT_SEND_MAX_RESPONSE */
    gboolean has_end; /* an end condition was given */
    CrtSendEnd end;
} CrtSendHeader;

/* Parse a trimmed header line; `size` defaults to `default_size` (the
 * directory's out_size).  0, or -EINVAL with the reason in `error`. */
int crt_send_header_parse(const char *line, size_t default_size, CrtSendHeader *h,
                          GError **error);

#endif
