/* crtfs - the message framer: where a message of the byte stream ends, for
 * a split (crtfs/target.h's CrtSplit).  A pure state machine, private to
 * the library: the fd driver (target-fd.c) feeds it the message's bytes as
 * they arrive and times the idle gap and max_wait itself; this module only
 * looks at bytes.  One CrtFramer is one message; crt_framer_start begins
 * the next.  Any thread; no locking (the caller owns the struct).
 */
#ifndef CRTFS_FRAMER_H
#define CRTFS_FRAMER_H

#include <glib.h>

#include <crtfs/target.h>

typedef enum {
    CRT_FRAME_MORE = 0, /* the message goes on */
    CRT_FRAME_END,      /* it ended by the split's rule (delimiter, length) */
    CRT_FRAME_CUT_SIZE, /* it reached the maximum size first */
    CRT_FRAME_CUT_WAIT, /* (the driver's) max_wait ran out first */
    CRT_FRAME_IDLE,     /* (the driver's) the idle gap came */
} CrtFrameVerdict;

typedef struct {
    CrtSplit split;
    size_t max;     /* the message's maximum size in bytes, >= 1 */
    size_t scanned; /* bytes looked at already (a delimiter search resumes) */
} CrtFramer;

/* Begin a message under `split` with at most `cap` bytes (the read's
 * buffer; split->max_size lowers it when smaller and not 0).  cap >= 1. */
void crt_framer_start(CrtFramer *f, const CrtSplit *split, size_t cap);

/* The message is now the `len` bytes at `msg` (the earlier ones unchanged,
 * new ones after them).  Returns MORE, or END / CUT_SIZE with *end the
 * message's length (<= len; the bytes after it belong to the next message).
 * A delimiter may straddle two feeds.  Mode NONE ends at once at `len`
 * (when len > 0). */
CrtFrameVerdict crt_framer_feed(CrtFramer *f, const guint8 *msg, size_t len, size_t *end);

/* The idle gap of an IDLE split in microseconds, for a line of `baud` bits
 * per second and `char_bits` bits per character (start, data, parity,
 * stop); never below CRT_SPLIT_IDLE_FLOOR_US.  0 for other modes. */
gint64 crt_framer_idle_us(const CrtSplit *split, guint baud, guint char_bits);

/* The split's max_wait in microseconds (the default for 0). */
gint64 crt_framer_wait_us(const CrtSplit *split);

#endif
