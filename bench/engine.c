/* crtfs bench/engine: streaming throughput of the engine against a plain
 * read() loop on the same kind of source, and the engine's heap allocations
 * per buffer once it is warm.
 *
 * For every cell (source x buffer size x request count) the benchmark runs
 * the plain loop and the engine `repeat` times each, interleaved and in
 * alternating order so slow drift (frequency scaling, a neighbour) hits both
 * alike, and keeps each side's best run.  A run warms up first and then
 * measures one window: bytes delivered over the window's real duration.
 * Allocations are counted over the same windows of every engine run of the
 * cell and divided by the buffers delivered in them.
 *
 * Sources:
 *   zero   /dev/zero; the engine opens it as the path target `/dev/zero`.
 *   pipe   a pipe fed by a child process writing a fixed pattern in large
 *          writes as fast as it can; the engine opens the read end as the
 *          path target `/proc/self/fd/N`.  A fresh writer serves each run
 *          and is killed and reaped after it.
 *
 * Both sides touch each buffer the same minimal way (they add its first
 * byte to a sink) and count bytes and buffers.  The engine's consumer is a
 * default-completion output callback (on the loop thread) that returns
 * CRT_DISPOSITION_ENGINE_CONTINUE; its pool holds 2 x requests buffers.
 *
 * Fairness and noise:
 *   - The engine's loop thread is started before the first run, so the
 *     plain loop, too, always runs in a multi-threaded process (the kernel
 *     takes a slower path to look up a descriptor once the table is shared).
 *   - With two or more CPUs the process (plain loop and loop thread alike)
 *     is pinned to one CPU and the pipe's writer to another (--no-pin to
 *     leave it to the scheduler): unpinned pipe runs swing several-fold with
 *     where the two land.  Pipe numbers stay noisier than /dev/zero's.
 *   - Allocation counts come from malloc-count.c.  The benchmark re-runs
 *     itself with G_SLICE=always-malloc unless G_SLICE is set, so GLib's
 *     slice allocations, which its magazines would otherwise hide, reach
 *     malloc and are counted; run with G_SLICE= to count only what reaches
 *     malloc with the magazines on.
 *
 * Exit status: 0 whatever the numbers say, 1 when a source or the engine
 * cannot be set up, 2 for bad options.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <crtfs/crtfs.h>

#include "malloc-count.h"

#define GOAL_RATIO 0.95
#define GOAL_MIN_SIZE ((size_t)64 * 1024)
/* The writer child's write size: large, as a producer that is not the
 * bottleneck would write. */
#define WRITER_CHUNK ((size_t)1 << 20)

typedef enum { SOURCE_ZERO, SOURCE_PIPE } Source;

typedef struct {
    double seconds; /* measured window per run */
    double warmup;  /* before the window */
    int repeat;     /* runs per side per cell; the best counts */
    gboolean quick;
    gboolean verbose; /* every run on stderr */
    GArray *sizes;    /* size_t */
    GArray *requests; /* guint */
    gboolean zero, pipe;
    int pipe_size;   /* F_SETPIPE_SZ, 0 = the kernel's default */
    gboolean no_pin; /* leave placement to the scheduler */
} Options;

/* One measured window. */
typedef struct {
    guint64 bytes;
    guint64 buffers;
    guint64 allocs;
    double secs;
} Sample;

typedef struct {
    Source source;
    size_t size;
    guint requests;
    double plain_bps; /* best of the runs */
    double engine_bps;
    guint64 allocs; /* engine windows, summed over the runs */
    guint64 buffers;
} Cell;

/* The engine's consumer.  Only the output callback writes it (callbacks of
 * one stream run one at a time); the main thread reads the counters. */
typedef struct {
    atomic_uint_fast64_t bytes;
    atomic_uint_fast64_t buffers;
    atomic_int error; /* first failure status, 0 if none */
    unsigned sink;
} Consumer;

/* The pattern the writer child sends; filled before any fork. */
static char *pattern;
/* Where the writer child runs when pinning; empty when not pinning. */
static cpu_set_t writer_cpus;
static int reader_cpu = -1, writer_cpu = -1;
/* Keeps the baseline's touches of the data from being optimised away. */
static volatile unsigned plain_sink;

static const char *source_name(Source source)
{
    return source == SOURCE_ZERO ? "zero" : "pipe";
}

static gint64 seconds_to_us(double s)
{
    return (gint64)(s * G_USEC_PER_SEC);
}

static int errno_error(GError **error, int err, const char *what)
{
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err), "%s: %s", what,
                g_strerror(err));
    return -err;
}

/* --- the writer child ------------------------------------------------- */

typedef struct {
    int rfd;   /* the pipe's read end, ours */
    pid_t pid; /* the writer */
} Feeder;

/* The child of a multi-threaded process may only make async-signal-safe
 * calls: it writes until killed and never returns. */
G_GNUC_NORETURN static void writer_main(int rfd, int wfd, pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (CPU_COUNT(&writer_cpus) > 0)
        sched_setaffinity(0, sizeof writer_cpus, &writer_cpus);
    if (getppid() != parent)
        _exit(0);
    close(rfd);
    for (;;) {
        if (write(wfd, pattern, WRITER_CHUNK) < 0 && errno != EINTR)
            _exit(0);
    }
}

static int feeder_start(Feeder *f, const Options *o, GError **error)
{
    pid_t parent = getpid();
    int fds[2];

    if (pipe2(fds, O_CLOEXEC) < 0)
        return errno_error(error, errno, "pipe");
    if (o->pipe_size > 0 && fcntl(fds[1], F_SETPIPE_SZ, o->pipe_size) < 0) {
        int err = errno;

        close(fds[0]);
        close(fds[1]);
        return errno_error(error, err, "F_SETPIPE_SZ");
    }
    f->pid = fork();
    if (f->pid < 0) {
        int err = errno;

        close(fds[0]);
        close(fds[1]);
        return errno_error(error, err, "fork");
    }
    if (f->pid == 0)
        writer_main(fds[0], fds[1], parent);
    close(fds[1]);
    f->rfd = fds[0];
    return 0;
}

static void feeder_stop(Feeder *f)
{
    if (f->rfd >= 0)
        close(f->rfd);
    f->rfd = -1;
    kill(f->pid, SIGKILL);
    while (waitpid(f->pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* --- the plain read() loop ------------------------------------------- */

/* Read until `deadline` (monotonic us), touching and counting like the
 * engine's consumer.  0, or -errno (-ENODATA at end of file). */
static int read_until(int fd, unsigned char *buf, size_t size, gint64 deadline, Sample *s)
{
    unsigned sink = 0;

    while (g_get_monotonic_time() < deadline) {
        ssize_t n = read(fd, buf, size);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ENODATA;
        sink += buf[0];
        s->bytes += (guint64)n;
        s->buffers++;
    }
    plain_sink += sink;
    return 0;
}

static int plain_measure(int fd, size_t size, const Options *o, Sample *out)
{
    unsigned char *buf = g_malloc(size);
    Sample warm = {0}, win = {0};
    gint64 t0, t1;
    guint64 a0;
    int r;

    r = read_until(fd, buf, size, g_get_monotonic_time() + seconds_to_us(o->warmup),
                   &warm);
    t0 = g_get_monotonic_time();
    a0 = malloc_count_allocs();
    if (r == 0)
        r = read_until(fd, buf, size, t0 + seconds_to_us(o->seconds), &win);
    win.allocs = malloc_count_allocs() - a0;
    t1 = g_get_monotonic_time();
    win.secs = (double)(t1 - t0) / G_USEC_PER_SEC;
    g_free(buf);
    *out = win;
    return r;
}

static int plain_run(Source source, size_t size, const Options *o, Sample *out,
                     GError **error)
{
    Feeder f = {.rfd = -1};
    int fd, r;

    if (source == SOURCE_ZERO) {
        fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return errno_error(error, errno, "open /dev/zero");
        r = plain_measure(fd, size, o, out);
        close(fd);
    } else {
        r = feeder_start(&f, o, error);
        if (r < 0)
            return r;
        r = plain_measure(f.rfd, size, o, out);
        feeder_stop(&f);
    }
    if (r < 0)
        return errno_error(error, -r, "plain read loop");
    return 0;
}

/* --- the engine ------------------------------------------------------ */

static CrtDisposition on_output(CrtEngine *engine, const CrtOutput *out, gpointer data)
{
    Consumer *c = data;
    int none = 0;

    if (out->status == 0 && out->length > 0) {
        c->sink += ((const unsigned char *)out->buffer)[0];
        atomic_store_explicit(&c->bytes,
                              atomic_load_explicit(&c->bytes, memory_order_relaxed) +
                                  out->length,
                              memory_order_relaxed);
        atomic_store_explicit(&c->buffers,
                              atomic_load_explicit(&c->buffers, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    } else if (out->status != 0 && out->status != -ECANCELED) {
        atomic_compare_exchange_strong(&c->error, &none, out->status);
    }
    return CRT_DISPOSITION_ENGINE_CONTINUE;
}

static void consumer_snapshot(Consumer *c, Sample *s, gint64 *t)
{
    *t = g_get_monotonic_time();
    s->bytes = atomic_load_explicit(&c->bytes, memory_order_relaxed);
    s->buffers = atomic_load_explicit(&c->buffers, memory_order_relaxed);
    s->allocs = malloc_count_allocs();
}

/* An engine streaming from `target` (which it takes) into `c`. */
static int engine_open(size_t size, guint requests, CrtTarget *target, Consumer *c,
                       CrtEngine **out, GError **error)
{
    CrtEngineConfig cfg;
    int r;

    crt_engine_config_init(&cfg);
    cfg.type = CRT_REQUEST_READ;
    cfg.request_count = requests;
    cfg.out_count = 2 * requests;
    cfg.out_size = size;
    cfg.buffer_output = on_output;
    cfg.user_data = c;
    cfg.mode = CRT_MODE_MANUAL;
    cfg.completion = CRT_COMPLETION_DEFAULT;
    r = crt_engine_new(&cfg, out, error);
    if (r < 0) {
        crt_target_unref(target);
        return r;
    }
    r = crt_engine_io_target_set(*out, target);
    if (r == 0)
        r = crt_engine_start(*out);
    if (r < 0) {
        errno_error(error, -r, "cannot start the engine");
        crt_engine_free(*out);
        *out = NULL;
    }
    return r;
}

static int engine_measure(const char *spec, size_t size, guint requests, const Options *o,
                          Sample *out, GError **error)
{
    Consumer c = {0};
    CrtEngine *engine = NULL;
    CrtTarget *target = NULL;
    Sample a, b;
    gint64 t0, t1;
    int r = crt_target_open_spec(spec, NULL, &target, error);

    if (r < 0)
        return r;
    r = engine_open(size, requests, target, &c, &engine, error);
    if (r < 0)
        return r;
    g_usleep((gulong)seconds_to_us(o->warmup));
    consumer_snapshot(&c, &a, &t0);
    g_usleep((gulong)seconds_to_us(o->seconds));
    consumer_snapshot(&c, &b, &t1);
    crt_engine_stop_and_wait(engine);
    crt_engine_free(engine);
    out->bytes = b.bytes - a.bytes;
    out->buffers = b.buffers - a.buffers;
    out->allocs = b.allocs - a.allocs;
    out->secs = (double)(t1 - t0) / G_USEC_PER_SEC;
    r = atomic_load(&c.error);
    if (r < 0)
        return errno_error(error, -r, spec);
    if (out->buffers == 0)
        return errno_error(error, ETIMEDOUT, spec);
    return 0;
}

static int engine_run(Source source, size_t size, guint requests, const Options *o,
                      Sample *out, GError **error)
{
    Feeder f = {.rfd = -1};
    char *spec;
    int r;

    if (source == SOURCE_ZERO)
        return engine_measure("/dev/zero", size, requests, o, out, error);
    r = feeder_start(&f, o, error);
    if (r < 0)
        return r;
    /* The path target opens its own description of the pipe; ours goes
     * when the writer does. */
    spec = g_strdup_printf("/proc/self/fd/%d", f.rfd);
    r = engine_measure(spec, size, requests, o, out, error);
    g_free(spec);
    feeder_stop(&f);
    return r;
}

/* --- cells and the table --------------------------------------------- */

static double rate(const Sample *s)
{
    return s->secs > 0 ? (double)s->bytes / s->secs : 0;
}

static int run_cell(Cell *cell, const Options *o, GError **error)
{
    for (int i = 0; i < 2 * o->repeat; i++) {
        /* plain, engine, engine, plain, plain, engine ... */
        gboolean engine_turn = (i % 2) ^ ((i / 2) % 2);
        Sample s = {0};
        int r;

        if (engine_turn)
            r = engine_run(cell->source, cell->size, cell->requests, o, &s, error);
        else
            r = plain_run(cell->source, cell->size, o, &s, error);
        if (r < 0)
            return r;
        if (o->verbose)
            g_printerr("  %s %zu x%u %-6s %10.1f MB/s %9" G_GUINT64_FORMAT
                       " buffers %7" G_GUINT64_FORMAT " allocs\n",
                       source_name(cell->source), cell->size, cell->requests,
                       engine_turn ? "engine" : "plain", rate(&s) / 1e6, s.buffers,
                       s.allocs);
        if (engine_turn) {
            cell->engine_bps = MAX(cell->engine_bps, rate(&s));
            cell->allocs += s.allocs;
            cell->buffers += s.buffers;
        } else {
            cell->plain_bps = MAX(cell->plain_bps, rate(&s));
        }
    }
    return 0;
}

static char *size_label(size_t size)
{
    if (size >= ((size_t)1 << 20) && size % ((size_t)1 << 20) == 0)
        return g_strdup_printf("%zu MiB", size >> 20);
    if (size >= 1024 && size % 1024 == 0)
        return g_strdup_printf("%zu KiB", size >> 10);
    return g_strdup_printf("%zu B", size);
}

static double cell_ratio(const Cell *c)
{
    return c->plain_bps > 0 ? c->engine_bps / c->plain_bps : 0;
}

static double cell_allocs_per_buffer(const Cell *c)
{
    return c->buffers ? (double)c->allocs / (double)c->buffers : 0;
}

static void print_row(FILE *f, const Cell *c)
{
    char *size = size_label(c->size);

    fprintf(f,
            "| %-6s | %7s | %8u | %10.1f | %11.1f | %5.3f | %13.3f | %6" G_GUINT64_FORMAT
            " | %10" G_GUINT64_FORMAT " |\n",
            source_name(c->source), size, c->requests, c->plain_bps / 1e6,
            c->engine_bps / 1e6, cell_ratio(c), cell_allocs_per_buffer(c), c->allocs,
            c->buffers);
    g_free(size);
}

static void print_header(FILE *f)
{
    fprintf(f, "| source | size    | requests | plain MB/s | engine MB/s | ratio "
               "| allocs/buffer | allocs | buffers    |\n");
    fprintf(f, "|--------|---------|----------|------------|-------------|-------"
               "|---------------|--------|------------|\n");
}

static void print_table(const Cell *cells, guint n, double elapsed)
{
    guint ratio_met = 0, ratio_cells = 0, alloc_met = 0;

    printf("\n");
    print_header(stdout);
    for (guint i = 0; i < n; i++) {
        print_row(stdout, &cells[i]);
        if (cells[i].size >= GOAL_MIN_SIZE) {
            ratio_cells++;
            ratio_met += cell_ratio(&cells[i]) >= GOAL_RATIO;
        }
        alloc_met += cells[i].allocs == 0;
    }
    printf("\nrun took %.1f s\n", elapsed);
    printf("goal: ratio >= %.2f at >= 64 KiB: %u of %u cells met; "
           "allocs/buffer == 0: %u of %u\n",
           GOAL_RATIO, ratio_met, ratio_cells, alloc_met, n);
}

/* --- options --------------------------------------------------------- */

static gboolean parse_size(const char *s, size_t *out)
{
    char *end;
    guint64 v = g_ascii_strtoull(s, &end, 10);
    guint64 mult = 1;

    if (end == s)
        return FALSE;
    if (g_ascii_strcasecmp(end, "k") == 0 || g_ascii_strcasecmp(end, "kib") == 0)
        mult = 1024;
    else if (g_ascii_strcasecmp(end, "m") == 0 || g_ascii_strcasecmp(end, "mib") == 0)
        mult = 1024 * 1024;
    else if (*end != '\0' && g_ascii_strcasecmp(end, "b") != 0)
        return FALSE;
    if (v == 0 || v > CRT_BUFPOOL_MAX_SIZE / mult)
        return FALSE;
    *out = (size_t)(v * mult);
    return TRUE;
}

static gboolean parse_request_count(const char *s, guint *out)
{
    guint64 v;

    if (!g_ascii_string_to_unsigned(s, 10, 1, 4096, &v, NULL))
        return FALSE;
    *out = (guint)v;
    return TRUE;
}

/* A comma-separated list into `array` (of size_t or guint). */
static gboolean parse_list(const char *text, GArray *array, gboolean sizes,
                           GError **error)
{
    char **items = g_strsplit(text, ",", -1);
    gboolean ok = items[0] != NULL;

    for (char **p = items; ok && *p; p++) {
        size_t size;
        guint count;

        g_strstrip(*p);
        if (sizes && (ok = parse_size(*p, &size)))
            g_array_append_val(array, size);
        else if (!sizes && (ok = parse_request_count(*p, &count)))
            g_array_append_val(array, count);
        if (!ok)
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "bad %s \"%s\"",
                        sizes ? "size" : "request count", *p);
    }
    if (items[0] == NULL)
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "empty list");
    g_strfreev(items);
    return ok;
}

static gboolean parse_source(const char *s, Options *o, GError **error)
{
    o->zero = g_strcmp0(s, "zero") == 0 || g_strcmp0(s, "all") == 0;
    o->pipe = g_strcmp0(s, "pipe") == 0 || g_strcmp0(s, "all") == 0;
    if (!o->zero && !o->pipe)
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "--source must be zero, pipe or all, not \"%s\"", s);
    return o->zero || o->pipe;
}

/* Fill in what --quick and the defaults decide, then check ranges. */
static gboolean options_finish(Options *o, GError **error)
{
    if (o->seconds < 0)
        o->seconds = o->quick ? 0.2 : 0.5;
    if (o->warmup < 0)
        o->warmup = o->quick ? 0.05 : 0.2;
    if (o->repeat < 0)
        o->repeat = o->quick ? 1 : 3;
    if (o->seconds < 0.01 || o->seconds > 600 || o->warmup > 60 || o->repeat < 1 ||
        o->repeat > 100 || o->pipe_size < 0) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "--seconds must be 0.01..600, --warmup 0..60, --repeat 1..100, "
                    "--pipe-size >= 0");
        return FALSE;
    }
    return TRUE;
}

static gboolean options_parse(int *argc, char ***argv, Options *o, GError **error)
{
    char *sizes = NULL, *requests = NULL, *source = NULL;
    GOptionEntry entries[] = {
        {"seconds", 't', 0, G_OPTION_ARG_DOUBLE, &o->seconds,
         "measured window per run (default 0.5, quick 0.2)", "S"},
        {"warmup", 'w', 0, G_OPTION_ARG_DOUBLE, &o->warmup,
         "warm-up before each window (default 0.2, quick 0.05)", "S"},
        {"repeat", 'n', 0, G_OPTION_ARG_INT, &o->repeat,
         "runs per side per cell, best kept (default 3, quick 1)", "N"},
        {"sizes", 's', 0, G_OPTION_ARG_STRING, &sizes, "buffer sizes (default 4K,64K,1M)",
         "LIST"},
        {"requests", 'r', 0, G_OPTION_ARG_STRING, &requests,
         "request counts (default 1,4,16)", "LIST"},
        {"source", 0, 0, G_OPTION_ARG_STRING, &source, "zero, pipe or all (default)",
         "SRC"},
        {"no-pin", 0, 0, G_OPTION_ARG_NONE, &o->no_pin,
         "do not pin the pipe's writer and the reader to separate CPUs", NULL},
        {"pipe-size", 0, 0, G_OPTION_ARG_INT, &o->pipe_size,
         "pipe capacity in bytes (default: the kernel's)", "BYTES"},
        {"quick", 'q', 0, G_OPTION_ARG_NONE, &o->quick, "short windows, one run each",
         NULL},
        {"verbose", 'v', 0, G_OPTION_ARG_NONE, &o->verbose, "print every run on stderr",
         NULL},
        {NULL}};
    GOptionContext *ctx = g_option_context_new("- engine against plain read()");
    gboolean ok;

    g_option_context_add_main_entries(ctx, entries, NULL);
    ok = g_option_context_parse(ctx, argc, argv, error) &&
         parse_list(sizes ? sizes : "4K,64K,1M", o->sizes, TRUE, error) &&
         parse_list(requests ? requests : "1,4,16", o->requests, FALSE, error) &&
         parse_source(source ? source : "all", o, error) && options_finish(o, error);
    g_option_context_free(ctx);
    g_free(sizes);
    g_free(requests);
    g_free(source);
    return ok;
}

/* --- main ------------------------------------------------------------ */

static GArray *make_cells(const Options *o)
{
    GArray *cells = g_array_new(FALSE, TRUE, sizeof(Cell));

    for (int src = SOURCE_ZERO; src <= SOURCE_PIPE; src++) {
        if ((src == SOURCE_ZERO && !o->zero) || (src == SOURCE_PIPE && !o->pipe))
            continue;
        for (guint i = 0; i < o->sizes->len; i++) {
            for (guint j = 0; j < o->requests->len; j++) {
                Cell c = {.source = (Source)src,
                          .size = g_array_index(o->sizes, size_t, i),
                          .requests = g_array_index(o->requests, guint, j)};

                g_array_append_val(cells, c);
            }
        }
    }
    return cells;
}

static void print_settings(const Options *o, guint ncells)
{
    printf("crtfs bench/engine: %u cells, %d run(s) per side per cell, best kept;\n"
           "window %.2f s after %.2f s warm-up; MB = 10^6 bytes; allocations counted\n"
           "in the windows of every engine run of a cell (whole process, G_SLICE=%s)\n",
           ncells, o->repeat, o->seconds, o->warmup, g_getenv("G_SLICE"));
    if (writer_cpu >= 0)
        printf("pinned: this process (plain loop, engine loop thread) to CPU %d, "
               "pipe writer to CPU %d\n",
               reader_cpu, writer_cpu);
    else
        printf("not pinned\n");
    fflush(stdout);
}

/* GLib reads G_SLICE while it initialises, before main(): so that the
 * counters see its small allocations too, set it and run ourselves again. */
static void use_malloc_for_slices(char **argv)
{
    if (g_getenv("G_SLICE") != NULL)
        return; /* the caller's choice, e.g. G_SLICE= for the magazines */
    setenv("G_SLICE", "always-malloc", 1);
    execv("/proc/self/exe", argv);
    g_printerr("bench/engine: cannot re-run with G_SLICE=always-malloc: %s\n",
               g_strerror(errno));
}

/* Pipe throughput on a small machine swings several-fold with where the
 * scheduler puts the writer and the reader (same CPU or not, migrations).
 * Pinning the writer to one CPU and this process, whose threads inherit it,
 * to another makes runs comparable.  Called before any thread starts. */
static void pin_cpus(const Options *o)
{
    cpu_set_t allowed, reader;
    int first = -1, second = -1;

    CPU_ZERO(&writer_cpus);
    if (o->no_pin || sched_getaffinity(0, sizeof allowed, &allowed) < 0)
        return;
    for (int cpu = 0; cpu < CPU_SETSIZE && second < 0; cpu++) {
        if (!CPU_ISSET(cpu, &allowed))
            continue;
        if (first < 0)
            first = cpu;
        else
            second = cpu;
    }
    if (second < 0)
        return;
    CPU_ZERO(&reader);
    CPU_SET(first, &reader);
    CPU_SET(second, &writer_cpus);
    if (sched_setaffinity(0, sizeof reader, &reader) < 0) {
        CPU_ZERO(&writer_cpus);
        return;
    }
    reader_cpu = first;
    writer_cpu = second;
}

/* A quick self-check that GLib's slice allocations reach malloc, or the
 * allocation column could miss them. */
static void check_counting(void)
{
    guint64 before = malloc_count_allocs();

    g_slice_free1(40, g_slice_alloc(40));
    if (malloc_count_allocs() == before)
        g_printerr("bench/engine: warning: g_slice allocations are not counted\n");
}

static int run_all(GArray *cells, const Options *o)
{
    GError *error = NULL;

    for (guint i = 0; i < cells->len; i++) {
        Cell *c = &g_array_index(cells, Cell, i);

        if (run_cell(c, o, &error) < 0) {
            g_printerr("bench/engine: %s, %zu bytes, %u requests: %s\n",
                       source_name(c->source), c->size, c->requests, error->message);
            g_error_free(error);
            return 1;
        }
        print_row(stderr, c);
    }
    return 0;
}

int main(int argc, char **argv)
{
    Options o = {.seconds = -1, .warmup = -1, .repeat = -1};
    GError *error = NULL;
    GArray *cells;
    CrtLoop *loop;
    gint64 start;
    int status;

    use_malloc_for_slices(argv);
    o.sizes = g_array_new(FALSE, FALSE, sizeof(size_t));
    o.requests = g_array_new(FALSE, FALSE, sizeof(guint));
    if (!options_parse(&argc, &argv, &o, &error)) {
        g_printerr("bench/engine: %s\n", error->message);
        return 2;
    }
    if (!malloc_count_active()) {
        g_printerr("bench/engine: malloc interposition is not in effect "
                   "(a sanitizer build?)\n");
        return 1;
    }
    check_counting();
    pattern = g_malloc(WRITER_CHUNK);
    for (size_t i = 0; i < WRITER_CHUNK; i++)
        pattern[i] = (char)('A' + i % 26);
    /* The engine's loop thread exists from here on, so the plain loop runs
     * in a multi-threaded process too (the kernel's fdget() takes its
     * slower, reference-counting path once the descriptor table is shared:
     * the first plain runs would otherwise have an edge). */
    pin_cpus(&o);
    loop = crt_loop_default();
    cells = make_cells(&o);
    print_settings(&o, cells->len);
    start = g_get_monotonic_time();
    status = run_all(cells, &o);
    if (status == 0)
        print_table((const Cell *)cells->data, cells->len,
                    (double)(g_get_monotonic_time() - start) / G_USEC_PER_SEC);
    g_array_free(cells, TRUE);
    crt_loop_unref(loop);
    g_array_free(o.sizes, TRUE);
    g_array_free(o.requests, TRUE);
    g_free(pattern);
    return status;
}
