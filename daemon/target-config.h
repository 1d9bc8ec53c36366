/* crtfs daemon - a target directory's configuration (daemon policy, not
 * part of the engine library): the `config/` files and the
 * keys of the mount-time config file share this one parser.
 *
 * Keys (file names under config/, and GKeyFile keys of a target's group):
 *   type              read | write | ioctl | internal-ioctl
 *   requests          1..4096
 *   out_count         0..65536 (0 only with lookaside=1)
 *   out_size          0..1073741824 bytes
 *   in_count          0..65536
 *   in_size           0..1073741824 bytes
 *   ioctl             a number: decimal, 0x hex or 0 octal, up to 0xffffffff
 *   mode              automatic | manual
 *   lookaside         0 | 1
 *   in_memory         normal | locked
 *   out_memory        normal | locked
 *   completion        default | passive
 *   purge_on_suspend  0 | 1
 *   overflow          block | drop-oldest
 *   payload           bytes (text) the default input callback sends when nothing
 *                     was written to `input`; empty = nothing (write streams wait
 *                     for `input`)
 *   framing           record | stream
 *   keep              what is kept for the next reader while nobody reads:
 *                     auto | all | none | last:N (1..1000000) |
 *                     age:DURATION (e.g. 500ms, 30s, 5min, 2h; up to 7 days)
 *   split             how reads cut the stream into messages: none |
 *                     idle=DURATION | idle=Nchar | delim=BYTES | length=N
 *                     (crt_split_parse)
 *   split_max         a message's maximum size in bytes, 0 = out_size; at most
 *                     out_size
 *   split_wait        how long a message may wait from its first byte
 *                     (DURATION, 1ms to 1h; default 1s)
 *   on_open, on_close a modem-line sequence (crt_line_seq_parse: dtr=, rts=,
 *                     break=, wait=, send=) run when a stream starts (after
 *                     the target opened, before the first request) and
 *                     before it ends (stop, a new target, rmdir); empty =
 *                     none.  May change while streaming (the next start or
 *                     stop uses the new one).
 *   history           what the hub keeps for replays (`data@N`, hub.h): 0
 *                     (none) | N, the newest N entries (1..1000000) |
 *                     DURATION, the entries younger than that (as keep's)
 *   history_bytes     the most bytes the history holds (4096..1073741824;
 *                     default 1048576); counted in max_target_memory while
 *                     history is on
 * The config file also has `target` (a spec) and `autostart` (0|1|true|false),
 * handled by the caller.
 *
 * Values are trimmed of surrounding blanks and one trailing newline; numbers
 * must be whole numbers in range (no sign, no junk).  Threads: pure functions
 * on a caller-owned struct; no locking.
 */
#ifndef CRTFS_TARGET_CONFIG_H
#define CRTFS_TARGET_CONFIG_H

#include <glib.h>

#include <crtfs/engine.h>

G_BEGIN_DECLS

typedef enum { CRT_OVERFLOW_BLOCK = 0, CRT_OVERFLOW_DROP_OLDEST } CrtOverflow;
typedef enum { CRT_FRAMING_RECORD = 0, CRT_FRAMING_STREAM } CrtFraming;

/* The `keep` policy.  auto is `none` for live sources (character devices
 * such as ttys, and sockets) and `all` for the others (FIFOs, files,
 * commands, the simulator): see crt_keep_resolve. */
typedef enum {
    CRT_KEEP_AUTO = 0,
    CRT_KEEP_ALL,
    CRT_KEEP_NONE,
    CRT_KEEP_LAST, /* the newest `last` buffers */
    CRT_KEEP_AGE,  /* buffers younger than `age_ms` */
} CrtKeepMode;

typedef struct {
    CrtKeepMode mode;
    guint64 last;   /* CRT_KEEP_LAST */
    guint64 age_ms; /* CRT_KEEP_AGE */
} CrtKeep;

#define CRT_KEEP_MAX_LAST 1000000
#define CRT_KEEP_MAX_AGE_MS ((guint64)7 * 24 * 3600 * 1000)

/* The `history` and `history_bytes` keys: at most one of `last` and
 * `age_ms` is set; both 0 is no history. */
typedef struct {
    guint64 last;   /* the newest `last` entries */
    guint64 age_ms; /* the entries younger than this */
    guint64 bytes;  /* the most bytes held (entries and their bookkeeping) */
} CrtHistoryLimits;

#define CRT_HISTORY_MAX_LAST 1000000
#define CRT_HISTORY_DEFAULT_BYTES (1024 * 1024)
#define CRT_HISTORY_MIN_BYTES 4096

typedef struct {
    CrtRequestType type;
    guint requests;
    guint out_count;
    guint64 out_size;
    guint in_count;
    guint64 in_size;
    guint32 ioctl;
    CrtMode mode;
    gboolean lookaside;
    CrtMemory in_memory;
    CrtMemory out_memory;
    CrtCompletion completion;
    gboolean purge_on_suspend;
    CrtOverflow overflow;
    char *payload; /* owned; NULL or "" = none */
    CrtFraming framing;
    CrtKeep keep;
    CrtSplit split; /* split, split_max (max_size), split_wait (max_wait_ms) */
    char *on_open;  /* owned; NULL = none: a modem-line sequence (crtfs/lines.h) */
    char *on_close; /* owned; NULL = none */
    CrtHistoryLimits history;
} CrtConfig;

/* Defaults: type read, requests 4, out_count 16, out_size 4096, in_count 4,
 * in_size 4096, ioctl 0, mode manual, lookaside 0, memory normal, completion
 * default, purge_on_suspend 0, overflow block, payload none, framing record, keep auto,
 * split none, split_max 0, split_wait 1s, history 0, history_bytes 1 MiB.
 */
void crt_config_init(CrtConfig *cfg);
void crt_config_clear(CrtConfig *cfg);
void crt_config_copy(CrtConfig *dst, const CrtConfig *src);

/* The keys in file order (NULL-terminated). */
const char *const *crt_config_keys(void);
gboolean crt_config_has_key(const char *key);

/* Whether a key may change while the target streams (overflow, framing,
 * payload, keep, split, split_max, split_wait, on_open, on_close, history,
 * history_bytes); the others need a
 * stopped target (the caller answers EBUSY). */
gboolean crt_config_key_is_live(const char *key);

/* Parse `value` for `key` into `cfg`.  0, -ENOENT for an unknown key, or
 * -EINVAL with `error` saying what was expected ("out_size: \"12x\" is not a
 * whole number from 0 to 1073741824").  On error `cfg` is unchanged. */
int crt_config_set(CrtConfig *cfg, const char *key, const char *value, GError **error);

/* The current value as the file shows it, with a trailing newline.  Newly
 * allocated. */
char *crt_config_get(const CrtConfig *cfg, const char *key);

/* Check the combination (what crt_engine_config_validate checks, in the
 * config's words) and fill an engine config; the callbacks, user data and
 * loop are left for the caller.  0 or -EINVAL with `error`. */
int crt_config_to_engine(const CrtConfig *cfg, CrtEngineConfig *out, GError **error);

/* The configuration file's keys for a target directory's files: `owner` (a
 * user name or uid), `group` (a group name or gid) and `mode` (octal, at
 * most 0777).  0, or -EINVAL with `error` saying why. */
int crt_config_parse_owner(const char *value, uid_t *out, GError **error);
int crt_config_parse_group(const char *value, gid_t *out, GError **error);
int crt_config_parse_mode(const char *value, guint *out, GError **error);
/* `mode` is two keys in a file: a number (0640) is the files' mode, a word
 * (automatic, manual) the engine's mode. */
gboolean crt_config_is_file_mode(const char *value);
/* `key` (with `value`, which may be NULL) is owner, group or a file mode. */
gboolean crt_config_is_access_key(const char *key, const char *value);

/* Who owns a target directory's files and the mode of its streams. */
typedef struct {
    uid_t uid;
    gid_t gid;
    guint mode;
} CrtFileAccess;

/* One key that crt_config_is_access_key() accepts, into its member of
 * `access`.  0, or -EINVAL with `error`. */
int crt_config_parse_access(const char *key, const char *value, CrtFileAccess *access,
                            GError **error);

/* One target group of a GKeyFile: every key above plus `target`,
 * `autostart`, `owner`, `group` and `mode` (checked here, applied by the
 * filesystem).  Applies keys to `cfg` in file order; *target_spec (newly
 * allocated or NULL) and *autostart receive those keys.  Unknown keys and bad
 * values fail with -EINVAL and `error` naming group and key; `cfg` may be
 * partly updated then (the caller discards it). */
int crt_config_load_group(CrtConfig *cfg, GKeyFile *kf, const char *group,
                          char **target_spec, gboolean *autostart, GError **error);

/* Whether the history keeps anything. */
gboolean crt_history_limits_on(const CrtHistoryLimits *h);

/* "500ms", "30s", "5min", "2h" (a whole number from 1 and a unit) into
 * milliseconds, at most max_ms.  The words keep, history and the replay
 * suffixes share. */
gboolean crt_duration_parse_ms(const char *s, guint64 max_ms, guint64 *out);

const char *crt_overflow_to_string(CrtOverflow o);
const char *crt_framing_to_string(CrtFraming f);
/* `keep` as the file shows it ("auto", "last:5", "age:30s"); newly allocated. */
char *crt_keep_to_string(const CrtKeep *keep);
/* What `keep` means for a target that is a live source or not: never
 * CRT_KEEP_AUTO. */
CrtKeep crt_keep_resolve(const CrtKeep *keep, gboolean live_source);

G_END_DECLS

#endif
