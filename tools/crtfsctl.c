/* crtfsctl: the admin's command line for a crtfs mount.  It speaks only
 * the filesystem (state, stats, ctl, send, records): no private protocol,
 * so whatever it does a shell script can do too.
 *
 *   crtfsctl [-m MOUNT] status [--json] [NAME...]
 *   crtfsctl [-m MOUNT] start|stop|restart NAME
 *   crtfsctl [-m MOUNT] send NAME HEADER [PAYLOAD|-]
 *   crtfsctl [-m MOUNT] follow NAME
 *   crtfsctl check CONFIG
 *
 * Without -m (or $CRTFS_MOUNT) the first crtfs mount in /proc/self/mounts.
 * Exit status: 0, 1 when the operation failed (the reason from `state` on
 * standard error), 2 for a usage error. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#define RATE_SAMPLE_US (G_USEC_PER_SEC / 2)

static const char *prog = "crtfsctl";

static int usage(void)
{
    fprintf(stderr,
            "usage: %s [-m MOUNT] status [--json] [NAME...]\n"
            "       %s [-m MOUNT] start|stop|restart NAME\n"
            "       %s [-m MOUNT] send NAME HEADER [PAYLOAD|-]\n"
            "       %s [-m MOUNT] follow NAME\n"
            "       %s check CONFIG\n",
            prog, prog, prog, prog, prog);
    return 2;
}

/* ---- the mount -------------------------------------------------------- */

/* The mount point of the first fuse.crtfs file system, or NULL. */
static char *find_mount(void)
{
    char *text = NULL, *found = NULL;
    char **lines;

    if (!g_file_get_contents("/proc/self/mounts", &text, NULL, NULL))
        return NULL;
    lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i] && !found; i++) {
        char **f = g_strsplit(lines[i], " ", 4);

        if (f[0] && f[1] && f[2] && strcmp(f[2], "fuse.crtfs") == 0)
            found = g_strcompress(f[1]); /* \040 for a blank */
        g_strfreev(f);
    }
    g_strfreev(lines);
    g_free(text);
    return found;
}

static char *file_of(const char *mount, const char *name, const char *file)
{
    return g_build_filename(mount, name, file, NULL);
}

/* A generated file's text, or NULL (with the reason on stderr). */
static char *read_text(const char *path)
{
    GError *error = NULL;
    char *text = NULL;

    if (!g_file_get_contents(path, &text, NULL, &error)) {
        fprintf(stderr, "%s: %s\n", prog, error->message);
        g_error_free(error);
    }
    return text;
}

/* The value of `key: value` in `text`, or "" (newly allocated). */
static char *field(const char *text, const char *key)
{
    char *prefix = g_strconcat("\n", key, ": ", NULL);
    const char *p = text ? strstr(text, prefix) : NULL;
    char *value = p ? g_strndup(p + strlen(prefix), strcspn(p + strlen(prefix), "\n"))
                    : g_strdup("");

    g_free(prefix);
    return value;
}

/* A figure of `stats` (`key value` lines). */
static guint64 stat_value(const char *stats, const char *key)
{
    char *prefix = g_strconcat(key, " ", NULL);
    guint64 v = 0;

    for (const char *p = stats; p && *p;) {
        if (g_str_has_prefix(p, prefix)) {
            v = g_ascii_strtoull(p + strlen(prefix), NULL, 10);
            break;
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    g_free(prefix);
    return v;
}

/* Write `text` to a control file in one write; on failure print the
 * directory's error line. */
static int control(const char *mount, const char *name, const char *file,
                   const char *text)
{
    char *path = file_of(mount, name, file);
    int fd = open(path, O_WRONLY), r = 0;

    if (fd < 0 || write(fd, text, strlen(text)) < 0) {
        char *state_path = file_of(mount, name, "state");
        char *state = NULL;
        int err = errno;

        g_file_get_contents(state_path, &state, NULL, NULL);
        char *why = field(state, "error");
        fprintf(stderr, "%s: %s %s: %s%s%s\n", prog, name, text, g_strerror(err),
                why[0] ? ": " : "", why);
        g_free(why);
        g_free(state);
        g_free(state_path);
        r = 1;
    }
    if (fd >= 0)
        close(fd);
    g_free(path);
    return r;
}

/* ---- status ------------------------------------------------------------- */

typedef struct {
    char *name, *state, *word, *stats;
    guint64 bytes0;
} Row;

static GPtrArray *target_names(const char *mount, char **only)
{
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    GDir *dir;
    const char *n;

    if (only && only[0]) {
        for (int i = 0; only[i]; i++)
            g_ptr_array_add(names, g_strdup(only[i]));
        return names;
    }
    dir = g_dir_open(mount, 0, NULL);
    while (dir && (n = g_dir_read_name(dir))) {
        char *p = g_build_filename(mount, n, NULL);

        if (g_file_test(p, G_FILE_TEST_IS_DIR))
            g_ptr_array_add(names, g_strdup(n));
        g_free(p);
    }
    if (dir)
        g_dir_close(dir);
    g_ptr_array_sort(names, (GCompareFunc)g_strcmp0);
    return names;
}

static void json_string(GString *s, const char *v)
{
    g_string_append_c(s, '"');
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\')
            g_string_append_printf(s, "\\%c", *p);
        else if ((guchar)*p < 0x20)
            g_string_append_printf(s, "\\u%04x", (guchar)*p);
        else
            g_string_append_c(s, *p);
    }
    g_string_append_c(s, '"');
}

static void print_row(GString *out, Row *r, double secs, gboolean json)
{
    char *state = r->state;
    char *target = field(state, "target"), *presence = field(state, "presence");
    char *error = field(state, "error"), *error_at = field(state, "error_at");
    guint64 readers = stat_value(r->stats, "readers");
    guint64 bytes = stat_value(r->stats, "bytes_read");
    double rate = secs > 0 && bytes >= r->bytes0 ? (double)(bytes - r->bytes0) / secs : 0;

    if (json) {
        g_string_append(out, out->len > 1 ? ",\n {" : "\n {");
        const char *keys[] = {"name", "state", "target", "presence", "error", "error_at"};
        const char *vals[] = {r->name, r->word, target, presence, error, error_at};
        for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
            g_string_append_printf(out, "%s\"%s\": ", i ? ", " : "", keys[i]);
            json_string(out, vals[i]);
        }
        g_string_append_printf(out,
                               ", \"readers\": %" G_GUINT64_FORMAT
                               ", \"bytes_read\": %" G_GUINT64_FORMAT
                               ", \"bytes_per_second\": %.0f}",
                               readers, bytes, rate);
    } else {
        g_string_append_printf(out,
                               "%-16s %-10s %-10.10s %7" G_GUINT64_FORMAT " %10.0f  %s\n",
                               r->name, r->word,
                               g_str_has_prefix(presence, "present") ? "present"
                               : g_str_has_prefix(presence, "none")  ? "none"
                                                                     : "absent",
                               readers, rate, error);
    }
    g_free(target);
    g_free(presence);
    g_free(error);
    g_free(error_at);
}

static void load_row(const char *mount, Row *r)
{
    char *sp = file_of(mount, r->name, "state"), *tp = file_of(mount, r->name, "stats");

    r->state = read_text(sp);
    r->stats = read_text(tp);
    r->word = r->state ? g_strndup(r->state, strcspn(r->state, "\n")) : g_strdup("?");
    g_free(sp);
    g_free(tp);
}

static int cmd_status(const char *mount, int argc, char **argv)
{
    gboolean json = argc > 0 && strcmp(argv[0], "--json") == 0;
    GPtrArray *names = target_names(mount, argv + json);
    Row *rows = g_new0(Row, MAX(names->len, 1));
    GString *out = g_string_new(json ? "[" : "");
    gint64 t0 = g_get_monotonic_time();
    int r = 0;

    for (guint i = 0; i < names->len; i++) {
        char *tp = file_of(mount, g_ptr_array_index(names, i), "stats");
        char *stats = read_text(tp);

        rows[i].name = g_ptr_array_index(names, i);
        rows[i].bytes0 = stat_value(stats, "bytes_read");
        g_free(stats);
        g_free(tp);
    }
    /* Rates: the bytes read over half a second. */
    g_usleep(RATE_SAMPLE_US);
    if (!json)
        g_string_append_printf(out, "%-16s %-10s %-10s %7s %10s  %s\n", "NAME", "STATE",
                               "PRESENCE", "READERS", "BYTES/S", "ERROR");
    for (guint i = 0; i < names->len; i++) {
        load_row(mount, &rows[i]);
        r |= rows[i].state == NULL;
        if (rows[i].state)
            print_row(out, &rows[i],
                      (double)(g_get_monotonic_time() - t0) / G_USEC_PER_SEC, json);
        g_free(rows[i].state);
        g_free(rows[i].stats);
        g_free(rows[i].word);
    }
    if (json)
        g_string_append(out, "\n]\n");
    fputs(out->str, stdout);
    g_string_free(out, TRUE);
    g_free(rows);
    g_ptr_array_free(names, TRUE);
    return r ? 1 : 0;
}

/* ---- send ---------------------------------------------------------------- */

static char *read_all_stdin(gsize *len)
{
    GString *s = g_string_new(NULL);
    char buf[65536];
    ssize_t n;

    while ((n = read(STDIN_FILENO, buf, sizeof buf)) > 0)
        g_string_append_len(s, buf, n);
    *len = s->len;
    return g_string_free(s, FALSE);
}

/* A header whose type is write: its reply carries no bytes. */
static gboolean has_no_output(const char *header)
{
    size_t n = strspn(header, " \t");

    return strncmp(header + n, "write", 5) == 0 && strchr(" \t", header[n + 5]) != NULL;
}

/* One request: the header (payload= added) and payload in one write, then the
 * reply: `ok N` and N bytes to stdout (exit 0), or `ERRNAME 0` (exit 1). */
static int cmd_send(const char *mount, int argc, char **argv)
{
    char *path, *payload, *req, reply[65536];
    gsize plen = 0;
    ssize_t n, got = 0;
    int fd, r = 1;

    if (argc < 2 || argc > 3)
        return usage();
    payload = argc == 3 && strcmp(argv[2], "-") == 0 ? read_all_stdin(&plen)
                                                     : g_strdup(argc == 3 ? argv[2] : "");
    if (argc == 3 && strcmp(argv[2], "-") != 0)
        plen = strlen(payload);
    path = file_of(mount, argv[0], "send");
    fd = open(path, O_RDWR);
    req = g_strdup_printf("%s payload=%zu\n", argv[1], (size_t)plen);
    if (fd < 0 || write(fd, req, strlen(req)) < 0 ||
        (plen && write(fd, payload, plen) < 0)) {
        fprintf(stderr, "%s: send %s: %s\n", prog, argv[0], g_strerror(errno));
        goto out;
    }
    while ((n = read(fd, reply + got, sizeof reply - 1 - (size_t)got)) > 0) {
        got += n;
        reply[got] = '\0';
        char *nl = strchr(reply, '\n');
        guint64 want;

        if (!nl)
            continue;
        /* `ok N`: N bytes follow for the types with output, none for write
         * (N is what was written). */
        want = g_str_has_prefix(reply, "ok ") && !has_no_output(argv[1])
                   ? g_ascii_strtoull(reply + 3, NULL, 10)
                   : 0;
        if ((size_t)(got - (nl + 1 - reply)) < want)
            continue;
        if (!g_str_has_prefix(reply, "ok ")) {
            fprintf(stderr, "%s: send %s: %.*s\n", prog, argv[0], (int)(nl - reply),
                    reply);
        } else {
            fwrite(nl + 1, 1, (size_t)want, stdout);
            r = 0;
        }
        break;
    }
out:
    if (fd >= 0)
        close(fd);
    g_free(req);
    g_free(path);
    g_free(payload);
    return r;
}

/* ---- follow --------------------------------------------------------------- */

/* records: "SEQ SEC.NSEC STATUS LENGTH\n" then LENGTH bytes; printed as
 * "TIME SEQ STATUS LENGTH: text" with control bytes escaped.  Opened again
 * at each end of file, so it follows every stream. */
static void print_record(const char *head, const char *data, gsize len)
{
    char **f = g_strsplit(head, " ", 4);
    gint64 sec = f[1] ? g_ascii_strtoll(f[1], NULL, 10) : 0;
    const char *ns = f[1] && strchr(f[1], '.') ? strchr(f[1], '.') + 1 : "0";
    GDateTime *t = g_date_time_new_from_unix_local(sec);
    char *when = g_date_time_format(t, "%F %T");

    printf("%s.%.3s %s %s %s: ", when, ns, f[0], f[2] ? f[2] : "?", f[3] ? f[3] : "0");
    for (gsize i = 0; i < len; i++) {
        guchar c = (guchar)data[i];

        if (c == '\n' && i + 1 == len)
            break;
        if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('\n');
    fflush(stdout);
    g_free(when);
    g_date_time_unref(t);
    g_strfreev(f);
}

static int cmd_follow(const char *mount, int argc, char **argv)
{
    char *path;
    GString *buf = g_string_new(NULL);

    if (argc != 1)
        return usage();
    path = file_of(mount, argv[0], "records");
    for (;;) {
        int fd = open(path, O_RDONLY);
        char chunk[65536];
        ssize_t n;

        if (fd < 0) {
            fprintf(stderr, "%s: %s: %s\n", prog, path, g_strerror(errno));
            return 1;
        }
        while ((n = read(fd, chunk, sizeof chunk)) > 0) {
            char *nl;

            g_string_append_len(buf, chunk, n);
            while ((nl = memchr(buf->str, '\n', buf->len))) {
                char *head = g_strndup(buf->str, (gsize)(nl - buf->str));
                char **f = g_strsplit(head, " ", 4);
                gsize len = f[3] ? g_ascii_strtoull(f[3], NULL, 10) : 0;
                gsize hl = (gsize)(nl - buf->str) + 1;

                g_strfreev(f);
                if (buf->len < hl + len) {
                    g_free(head);
                    break;
                }
                print_record(head, buf->str + hl, len);
                g_string_erase(buf, 0, (gssize)(hl + len));
                g_free(head);
            }
        }
        close(fd);
        if (n < 0) {
            fprintf(stderr, "%s: %s: %s\n", prog, path, g_strerror(errno));
            return 1;
        }
        g_string_truncate(buf, 0); /* end of a stream: wait for the next */
    }
}

/* ---- main ------------------------------------------------------------------ */

/* crtfs --check, from beside this program or from PATH. */
static int cmd_check(int argc, char **argv, const char *self)
{
    char *dir = g_path_get_dirname(self);
    char *beside = g_build_filename(dir, "crtfs", NULL);
    const char *crtfs = g_file_test(beside, G_FILE_TEST_IS_EXECUTABLE) ? beside : "crtfs";

    if (argc != 1)
        return usage();
    execlp(crtfs, crtfs, "--check", argv[0], (char *)NULL);
    fprintf(stderr, "%s: cannot run %s: %s\n", prog, crtfs, g_strerror(errno));
    g_free(beside);
    g_free(dir);
    return 1;
}

int main(int argc, char **argv)
{
    const char *mount = getenv("CRTFS_MOUNT");
    char *found = NULL;
    int i = 1, r;

    if (argc > 2 && strcmp(argv[1], "-m") == 0) {
        mount = argv[2];
        i = 3;
    }
    if (i >= argc)
        return usage();
    if (strcmp(argv[i], "check") == 0)
        return cmd_check(argc - i - 1, argv + i + 1, argv[0]);
    if (!mount || !*mount)
        mount = found = find_mount();
    if (!mount) {
        fprintf(stderr, "%s: no crtfs mount found (give one with -m MOUNT)\n", prog);
        return 1;
    }
    const char *cmd = argv[i];
    int n = argc - i - 1;
    char **args = argv + i + 1;

    if (strcmp(cmd, "status") == 0)
        r = cmd_status(mount, n, args);
    else if (strcmp(cmd, "start") == 0 && n == 1)
        r = control(mount, args[0], "ctl", "start");
    else if (strcmp(cmd, "stop") == 0 && n == 1)
        r = control(mount, args[0], "ctl", "stop-wait");
    else if (strcmp(cmd, "restart") == 0 && n == 1)
        r = control(mount, args[0], "ctl", "stop-wait") ||
            control(mount, args[0], "ctl", "start");
    else if (strcmp(cmd, "send") == 0)
        r = cmd_send(mount, n, args);
    else if (strcmp(cmd, "follow") == 0)
        r = cmd_follow(mount, n, args);
    else
        r = usage();
    g_free(found);
    return r;
}
