/* crtfs - targets: what a file descriptor (or the built-in simulator) can
 * reach, named by a one-line spec (DESIGN section 1):
 *
 *   /dev/ttyUSB0 baud=115200 raw      a path: char device, tty, FIFO, file
 *   unix:/run/app.sock                AF_UNIX stream socket
 *   tcp:HOST:PORT                     TCP connection
 *   rfc2217:HOST:PORT baud=9600 8N1   a remote serial port over Telnet COM
 *                                     Port Control (RFC 2217), e.g. ser2net
 *   exec:COMMAND                      /bin/sh -c COMMAND, its stdin/stdout
 *   sim:[GEN] [options]               the built-in simulator (see sim.h)
 *   usb:VID:PID [serial=S] [interface=N] [path=P] [match=K=V,...] [tty options]
 *                                     the tty of a USB adapter, by identity
 *   udev:KEY=VALUE[,KEY=VALUE...] [tty options]
 *                                     the tty whose udev properties match
 *
 * The last two (kind "udev") are resolved through libudev to the one tty
 * node they match, at open and at every reopen of a `wait` target, and
 * that node is then opened as a path (target-udev.c).
 * Options follow the first word, separated by blanks, as `key` or
 * `key=value`.  An `exec:` spec takes no options: the whole rest of the
 * line is the command.  A tty takes baud=N (any rate), raw, 8N1 and the
 * like, parity=, flow=, shared, rs485[=ITEM,...] and low_latency (see the
 * fields below and crtfs(8)); paths and sockets take chardelay=DURATION and
 * wait.
 *
 * Threads: parsing is pure; opening may block (connect, open of a tty) and is
 * done on the caller's thread; a target is then driven by the engine on the
 * loop thread.  A CrtTarget is reference counted; the last unref closes the
 * descriptors (and restores a tty's termios).
 */
#ifndef CRTFS_TARGET_H
#define CRTFS_TARGET_H

#include <glib.h>

#include <crtfs/export.h>
#include <stdint.h>
#include <sys/types.h>

#include <crtfs/loop.h>

G_BEGIN_DECLS

/* ContinuousRequestTarget_RequestType; values in the seed's order. */
typedef enum {
    CRT_REQUEST_INVALID = 0,
    CRT_REQUEST_INTERNAL_IOCTL, /* transaction: write input, read one response */
    CRT_REQUEST_IOCTL,          /* ioctl(2), input as argument memory */
    CRT_REQUEST_READ,           /* read(2) into the output buffer */
    CRT_REQUEST_WRITE,          /* write(2) of the input buffer */
} CrtRequestType;

/* "read", "write", "ioctl", "internal-ioctl"; 0 or -EINVAL. */
CRT_API int crt_request_type_from_string(const char *s, CrtRequestType *out);
CRT_API const char *crt_request_type_to_string(CrtRequestType type);
/* Whether a request of this type sends an input buffer / fills an output
 * buffer. */
CRT_API gboolean crt_request_type_has_input(CrtRequestType type);
CRT_API gboolean crt_request_type_has_output(CrtRequestType type);

typedef enum {
    CRT_TARGET_PATH = 1,
    CRT_TARGET_UNIX,
    CRT_TARGET_TCP,
    CRT_TARGET_EXEC,
    CRT_TARGET_SIM,
    CRT_TARGET_UDEV, /* usb: and udev: identities, resolved to a tty path */
    CRT_TARGET_RFC2217, /* a remote serial port: RFC 2217 over TCP */
} CrtTargetKind;

typedef enum { CRT_PARITY_NONE = 0, CRT_PARITY_EVEN, CRT_PARITY_ODD } CrtParity;
typedef enum { CRT_FLOW_NONE = 0, CRT_FLOW_RTSCTS, CRT_FLOW_XONXOFF } CrtFlow;

/* "path", "unix", "tcp", "exec", "sim", "udev", "rfc2217". */
CRT_API const char *crt_target_kind_to_string(CrtTargetKind kind);

/* The simulator's generators for read requests. */
typedef enum {
    CRT_SIM_GEN_RECORDS = 0, /* text lines "NNNNNNNNNN sim record\n" padded to size */
    CRT_SIM_GEN_COUNTER,     /* little-endian uint64 counters, continuing across reads */
    CRT_SIM_GEN_ZERO,        /* zero bytes */
    CRT_SIM_GEN_ECHO,        /* reads return what writes sent (FIFO), wait when empty */
    CRT_SIM_GEN_UART,        /* a serial line looped back at its baud rate, with modem
                              * lines, break and line errors (sim.h) */
} CrtSimGen;

/* A parsed spec.  Strings are owned by the struct (crt_target_spec_clear). */
typedef struct {
    CrtTargetKind kind;
    char *text;    /* the whole spec as written, trimmed */
    char *path;    /* PATH kind, UNIX socket path */
    char *host;    /* TCP, RFC2217 */
    guint16 port;  /* TCP, RFC2217 */
    char *command; /* EXEC (whom it runs as is the opener's business:
                    * crt_target_open_as) */

    /* tty line settings (PATH kind, ignored for non-tty paths; UDEV: the
     * node it resolves to; RFC2217: what is asked of the remote port, `raw`
     * and `shared` excepted) */
    guint baud; /* 0 = leave as is; a rate outside the B* table is set with
                 * termios2 BOTHER (sim:uart: its line speed, 0 = 115200) */
    gboolean raw;
    guint data_bits; /* 0 = leave, else 5..8 */
    CrtParity parity;
    gboolean parity_set;
    guint stop_bits; /* 0 = leave, else 1 or 2 */
    CrtFlow flow;
    gboolean flow_set;
    gboolean shared; /* do not lock the tty against other programs */
    /* Driver options termios lacks; a tty whose driver has not got them (a
     * pty) fails the open with the errno and words.  Put back on release. */
    gboolean rs485;                /* TIOCSRS485 at open */
    gboolean rs485_rts_on_send;    /* RTS up while sending (default) */
    gboolean rs485_rts_after_send; /* RTS up after sending */
    gboolean rs485_rx_during_tx;   /* receive while sending */
    guint rs485_delay_before;      /* ms, RTS before the first byte */
    guint rs485_delay_after;       /* ms, RTS after the last byte */
    gboolean low_latency;          /* ASYNC_LOW_LATENCY (TIOCSSERIAL) */

    /* PATH, UNIX, TCP, RFC2217: write one byte at a time, this many microseconds
     * apart (0: as fast as the descriptor takes them). */
    guint chardelay_us;

    /* UDEV kind: what the tty must be (all given ones must hold).  The
     * tty options above apply to the node it resolves to. */
    gboolean usb_ids;    /* usb:VID:PID given */
    guint16 usb_vendor;  /* idVendor of the USB device */
    guint16 usb_product; /* idProduct */
    char *usb_serial;    /* serial= : the USB device's serial, or NULL */
    int usb_interface;   /* interface= : bInterfaceNumber, -1 = any */
    char *usb_path;      /* path= : ID_PATH, the tty's DEVPATH or the USB
                          * port (1-1.4), or NULL */
    char **match;        /* match= and udev:'s KEY=VALUE (VALUE a glob),
                          * NULL-terminated, or NULL */

    /* PATH, UDEV, UNIX, TCP, RFC2217: wait for the target when it is absent, and again
     * whenever it is lost (see crt_target_open_full). */
    gboolean wait;

    /* simulator */
    CrtSimGen sim_gen;
    guint sim_rate;      /* records per second, 0 = as fast as requested */
    guint sim_size;      /* record size in bytes (records gen), 0 = default */
    guint sim_delay_min; /* ms, for the zero ioctl without a delay argument */
    guint sim_delay_max;
    guint64 sim_fail_after;  /* 0 = never; else the Nth request fails */
    int sim_fail_errno;      /* positive errno, default EIO */
    gboolean sim_fail_fatal; /* the failure ends the stream (like a dead device) */
    guint64 sim_limit;       /* generate this many records then EOF; 0 = endless */
} CrtTargetSpec;

/* Parse one spec line (trailing newline and blanks ignored).  Returns 0, or
 * -EINVAL with `error` saying what is wrong and where.  An empty line is
 * -EINVAL too (clearing is the caller's business).  `out` is cleared first
 * and must be released with crt_target_spec_clear() after success. */
CRT_API int crt_target_spec_parse(const char *line, CrtTargetSpec *out, GError **error);
CRT_API void crt_target_spec_clear(CrtTargetSpec *spec);
/* A deep copy, to be cleared as well. */
CRT_API void crt_target_spec_copy(CrtTargetSpec *dst, const CrtTargetSpec *src);

typedef struct CrtTarget CrtTarget;

/* Driver counters; fields a kind cannot report stay 0 and `has_icount` says
 * whether the tty error counters are real. */
typedef struct {
    guint64 bytes_read;
    guint64 bytes_written;
    gboolean has_icount;
    guint64 overruns; /* TIOCGICOUNT overrun + buf_overrun */
    guint64 framing;
    guint64 parity;
    guint64 breaks;
    /* Message framing (crt_target_set_split): messages delivered while a
     * split was set, and of those the ones cut short by max_size or by
     * max_wait (delivered all the same, status ok). */
    guint64 messages;
    guint64 messages_cut_size;
    guint64 messages_cut_wait;
    /* A `wait` target (a target that comes and goes, rfc2217 reconnecting
     * included): `comes_and_goes` is TRUE, `losses` counts the times the
     * inner target went away and `returns` the times it came back. */
    gboolean comes_and_goes;
    guint64 losses;
    guint64 returns;
} CrtTargetCounters;

/* Open the target a spec names, on `loop` (NULL = crt_loop_default()).
 * Blocks for connect()/open().  Returns 0 and *out (a new reference) or
 * -errno with `error` naming the target and the reason (for a locked tty,
 * who holds it where known). */
CRT_API int crt_target_open(const CrtTargetSpec *spec, CrtLoop *loop, CrtTarget **out,
                            GError **error);
/* Parse and open in one call. */
CRT_API int crt_target_open_spec(const char *line, CrtLoop *loop, CrtTarget **out,
                                 GError **error);

/* Whom a target is opened for, when that is not the caller (the daemon: the
 * process that wrote the spec).  Not part of the spec: the same spec line
 * opens for anyone. */
typedef struct {
    uid_t uid;
    gid_t gid;
    const gid_t *groups; /* supplementary groups; the caller's array */
    int ngroups;         /* 0: none (the command runs with no groups) */
} CrtTargetCreds;

/* crt_target_open() for someone else: the command of an exec: spec runs as
 * `creds` (real and effective uid and gid, supplementary groups, through
 * setpriv(1)) instead of as the caller; NULL creds is crt_target_open().
 * The other kinds run nothing, and `creds` changes nothing for them: the
 * kernel checks open(2) and connect(2) against the calling thread's
 * credentials, which a caller that opens for someone else switches around
 * the call itself (the daemon switches its file-system ids).  `creds` and
 * its groups are the caller's, read during the call only.  Caller's thread;
 * blocks like crt_target_open(). */
CRT_API int crt_target_open_as(const CrtTargetSpec *spec, CrtLoop *loop,
                               const CrtTargetCreds *creds, CrtTarget **out,
                               GError **error);

/* How crt_target_open_full opens a spec without `wait` (for a `wait` spec:
 * the target it waits for, the same spec with `wait` cleared): the plain
 * kind as crt_target_open() would by default; the daemon passes one that
 * takes the credentials of the spec's writer around crt_target_open().
 * Called on the caller's thread for the first attempt, then on pool
 * threads. */
typedef int (*CrtTargetOpenFn)(const CrtTargetSpec *spec, CrtLoop *loop, CrtTarget **out,
                               GError **error, gpointer data);

/* crt_target_open() through `open_fn` (NULL: the default), which for a spec
 * without `wait` is all it does.  With `wait` (paths, udev specs and
 * sockets), the target returned is there for good: when what it names is
 * absent, or is lost later (end of file, an error, a hang-up, a removed
 * path or tty node), requests wait for it, crt watches for it (inotify on
 * a path's directory, udev's tty events for a udev spec, which is resolved
 * anew at each reopen, and retries with backoff from 0.1 to 5 s) and goes
 * on when it is back.  A
 * loss completes the read that met it with the cause (-ENODATA for end of
 * file), or the first waiting read with -ENOENT for a removed path; the
 * return completes the first waiting read with -EISCONN; these carry no
 * data.  Writes cut by a loss are sent again after the return.  A regular
 * file is never lost: its end of file ends the stream.  Only refusals that
 * are not absence (EACCES, EPERM, EBUSY, EINVAL ...) fail the open.
 * `destroy(data)` runs when the target no longer needs `data` (also on
 * failure). */
CRT_API int crt_target_open_full(const CrtTargetSpec *spec, CrtLoop *loop,
                                 CrtTargetOpenFn open_fn, gpointer data,
                                 GDestroyNotify destroy, CrtTarget **out, GError **error);

typedef enum { CRT_PRESENCE_PRESENT = 0, CRT_PRESENCE_WAITING } CrtPresence;

/* Whether a `wait` target is there now (others always are).  *reason, when
 * asked for and the target waits or has waited, says since when and why,
 * and for a udev spec which node it resolved to ("present (/dev/ttyUSB0,
 * matched usb:0403:6001)", also without `wait`),
 * and how often it was lost and came back; for an exec: target, whether the
 * command runs or how it ended (g_free); NULL otherwise.  Any thread. */
CRT_API CrtPresence crt_target_presence(CrtTarget *target, char **reason);

/* Whether the target's spec names something else now than what is open: a
 * path that was removed or replaced by another file.  Any thread. */
CRT_API gboolean crt_target_is_stale(CrtTarget *target);

/* Whether the target has the file `path` names open now (the same device
 * and inode; a `wait` target's current one).  The daemon asks before it
 * lets a target go that holds the lock a new open of the same tty ran
 * into.  Any thread. */
CRT_API gboolean crt_target_holds_file(CrtTarget *target, const char *path);

/* The file a spec would open now: a path spec's path, the tty node a udev
 * spec (usb:, udev:) resolves to (through libudev, as an open would); 0
 * and *node (g_free), or -errno with words: -ENOENT when nothing matches,
 * -ENOTUNIQ when several do, -EINVAL for the other kinds (they name no
 * file).  Lets the daemon ask crt_target_holds_file() about the tty a new
 * spec names.  Caller's thread; reads sysfs. */
CRT_API int crt_target_spec_node(const CrtTargetSpec *spec, char **node, GError **error);

CRT_API CrtTarget *crt_target_ref(CrtTarget *target);
/* Any thread but the loop thread may drop the last reference; it closes the
 * target (waiting for blocking work still using its descriptors). */
CRT_API void crt_target_unref(CrtTarget *target);

/* The spec text the target was opened with. */
CRT_API const char *crt_target_describe(CrtTarget *target);
CRT_API CrtTargetKind crt_target_kind(CrtTarget *target);
/* The file descriptor reads go to, or -1 (sim).  For tests and ioctls. */
CRT_API int crt_target_fd(CrtTarget *target);
CRT_API void crt_target_get_counters(CrtTarget *target, CrtTargetCounters *counters);

/* ---- message framing (split) ---------------------------------------- */

/* How streaming reads cut the byte stream into messages: one message is one
 * read, so one buffer and one record.  Framing changes where buffers end,
 * never the bytes: a delimiter is kept at the end of its message, and the
 * concatenation of the messages is the stream as split=none reads it. */
typedef enum {
    CRT_SPLIT_NONE = 0, /* a read returns what has arrived (the default) */
    CRT_SPLIT_IDLE,     /* a message ends after a silence */
    CRT_SPLIT_DELIM,    /* a message ends with (and keeps) the delimiter */
    CRT_SPLIT_LENGTH,   /* every message is `length` bytes */
} CrtSplitMode;

#define CRT_SPLIT_DELIM_MAX 16
/* The max_wait used when max_wait_ms is 0: a message never waits forever. */
#define CRT_SPLIT_DEFAULT_WAIT_MS 1000u
/* Idle gaps below this are timed as this: the loop's timers (GLib's poll)
 * are millisecond-granular. */
#define CRT_SPLIT_IDLE_FLOOR_US 1000u

typedef struct {
    CrtSplitMode mode;
    /* IDLE: the silence that ends a message, either in microseconds
     * (idle_us > 0) or in tenths of a character time (idle_tenths > 0, e.g.
     * 35 for Modbus RTU's 3.5 characters), computed from the tty's rate and
     * character size.  Either way at least CRT_SPLIT_IDLE_FLOOR_US. */
    guint idle_us;
    guint idle_tenths;
    guint8 delim[CRT_SPLIT_DELIM_MAX]; /* DELIM */
    guint delim_len;                   /* DELIM: 1..CRT_SPLIT_DELIM_MAX */
    guint length;                      /* LENGTH: bytes per message, >= 1 */
    /* Every mode but NONE: a message that reaches max_size bytes (0: the
     * read's buffer size) or that has waited max_wait_ms since its first
     * byte (0: CRT_SPLIT_DEFAULT_WAIT_MS) ends there; it is counted as cut. */
    guint max_size;
    guint max_wait_ms;
} CrtSplit;

/* Parse the text form of the mode: "none", "idle=20ms" (us, ms or s, from
 * 1ms to 60s), "idle=3.5char" (0.1 to 1000 characters, one decimal),
 * "delim=BYTES" (1 to 16 bytes: text with the escapes \n \r \t \0 \\ and
 * \xHH, or hex as 0x7e / 0x0d0a), "length=N" (1 to 1073741824).  Sets mode,
 * idle, delim and length of `out`; max_size and max_wait_ms are left as
 * they were.  0, or -EINVAL with `error` saying what is wrong.  Pure. */
CRT_API int crt_split_parse(const char *text, CrtSplit *out, GError **error);
/* The text form of the mode (what crt_split_parse reads back to the same
 * mode); newly allocated.  Pure. */
CRT_API char *crt_split_to_string(const CrtSplit *split);

/* Frame the target's streaming reads by `split` (copied; NULL = none).
 * Takes effect from the next message: a message in progress ends by the
 * rules it began with.  It applies to descriptor-based kinds (paths, ttys,
 * FIFOs, sockets, exec:, and sim:uart, whose line is a descriptor too) and a
 * `wait` target passes it to every inner target it opens; the simulator's
 * other generators keep it but their reads stay unframed.  An idle
 * gap given in characters is timed from the tty's rate and character size
 * as opened (start, data, parity and stop bits; a spec without baud= uses
 * the tty's current speed), and for targets that are not ttys from 9600
 * baud and 10-bit characters.  Any thread; never blocks on I/O. */
CRT_API void crt_target_set_split(CrtTarget *target, const CrtSplit *split);
/* The split set now (all zero: none).  Any thread. */
CRT_API void crt_target_get_split(CrtTarget *target, CrtSplit *out);

G_END_DECLS

#endif
