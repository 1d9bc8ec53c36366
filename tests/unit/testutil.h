/* crtfs tests - helpers shared by the unit test programs.
 *
 * Everything here is thread-based (no child processes, so tests can check
 * for zombies) and uses no fixed port or path: servers bind port 0 or a
 * socket in a private temporary directory.
 */
#ifndef CRTFS_TESTUTIL_H
#define CRTFS_TESTUTIL_H

#include <glib.h>

#include <crtfs/crtfs.h>

G_BEGIN_DECLS

/* A fresh private directory (g_dir_make_tmp); free with g_free after
 * tu_rmrf. */
char *tu_tmpdir(void);
/* Remove `dir` and everything below it; symlinks are removed, not
 * followed. */
void tu_rmrf(const char *dir);

typedef struct TuServer TuServer;

/* An echo server on a unix socket at `path`: one thread accepts, one thread
 * per connection sends back every byte it receives.  NULL on failure (with
 * a test message). */
TuServer *tu_echo_server_unix(const char *path);
/* The same on 127.0.0.1, on a port the kernel picks (*port_out). */
TuServer *tu_echo_server_tcp(guint16 *port_out);
/* How many connections the server has accepted so far.  Any thread. */
guint tu_server_connections(TuServer *server);
/* How many connections are open now: a connection closes when its client
 * goes away.  Any thread. */
guint tu_server_active(TuServer *server);
/* Close the listener and every connection, join the threads, unlink a unix
 * socket, free. */
void tu_server_stop(TuServer *server);

/* Open a pty pair: *master is the master descriptor (O_RDWR, O_NOCTTY,
 * close-on-exec) and *slave_path the slave's name (g_free).  0 or -errno. */
int tu_openpty(int *master, char **slave_path);

/* ---- waiting ---------------------------------------------------------
 *
 * The one way the unit tests wait for something another thread does: poll
 * every millisecond up to a bound.  TU_WAIT_FOR(expr) fails the test when
 * `expr` does not come true; tu_wait_until() says whether `cond` did, for a
 * caller that reports the failure itself or must not fail. */

/* Upper bound for "eventually": generous, the machine is noisy. */
#define TU_EVENTUALLY_MS 10000

/* Call cond(data) every millisecond until it returns TRUE (then TRUE) or
 * `timeout_ms` have passed (then FALSE). */
gboolean tu_wait_until(gboolean (*cond)(gpointer data), gpointer data, guint timeout_ms);

/* Evaluate `expr` every millisecond until it holds; if it still does not
 * after TU_EVENTUALLY_MS, fail the test with the condition's text and
 * file:line (an assertion: fatal unless g_test_set_nonfatal_assertions). */
#define TU_WAIT_FOR(expr)                                                                \
    G_STMT_START                                                                         \
    {                                                                                    \
        gint64 tu_wait_deadline_ = 0;                                                    \
        while (!(expr) && tu_wait_tick(&tu_wait_deadline_, TU_EVENTUALLY_MS, #expr,      \
                                       __FILE__, __LINE__, G_STRFUNC))                   \
            ;                                                                            \
    }                                                                                    \
    G_STMT_END

/* One step of a wait (TU_WAIT_FOR, tu_wait_until): *deadline 0 starts the
 * clock.  Before the deadline, sleep a millisecond and return TRUE (try
 * again); after it, return FALSE, and if `expr` is not NULL first fail the
 * test as an assertion at file:line would. */
gboolean tu_wait_tick(gint64 *deadline, guint timeout_ms, const char *expr,
                      const char *file, int line, const char *func);

/* ---- failures seen on other threads ------------------------------------
 *
 * Engine callbacks run on the loop thread or on pool workers, where a
 * failed g_assert would take the whole program down without saying much;
 * they record failures with CHECK() instead, and the test asserts at its end
 * (tu_engine_teardown) that none were recorded: the message names the first
 * one with its file and line.  Any thread. */

void tu_check_fail(const char *file, int line, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
/* Forget what was recorded (tu_engine_setup does). */
void tu_checks_reset(void);
/* Fail the test if anything was recorded since the last reset. */
void tu_checks_assert_clean(void);

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (G_UNLIKELY(!(cond)))                                                         \
            tu_check_fail(__FILE__, __LINE__, "%s", #cond);                              \
    } while (0)
#define CHECKF(cond, ...)                                                                \
    do {                                                                                 \
        if (G_UNLIKELY(!(cond)))                                                         \
            tu_check_fail(__FILE__, __LINE__, __VA_ARGS__);                              \
    } while (0)

/* ---- the engine fixture --------------------------------------------------
 *
 * What a test that drives engines sets up and tears down: a private loop, so
 * one test's leftovers cannot reach the next, and a clean CHECK record.
 * Use it with g_test_add (TU_TEST_ADD_ENGINE) or call setup and teardown
 * directly.  `cfg` is a default configuration on that loop and `engine` the
 * one tu_engine_open made from it; a test may as well make its own engines
 * (tu_engine_new) and free them itself. */
typedef struct {
    CrtLoop *loop;
    CrtEngineConfig cfg;
    CrtEngine *engine; /* NULL until tu_engine_open; freed by the teardown */
} TuEngine;

void tu_engine_setup(TuEngine *f, gconstpointer data);
/* Free f->engine, drop the loop, then assert that no CHECK failed. */
void tu_engine_teardown(TuEngine *f, gconstpointer data);
/* f->engine = tu_engine_new(&f->cfg, spec), after the test edited f->cfg. */
CrtEngine *tu_engine_open(TuEngine *f, const char *spec);

#define TU_TEST_ADD_ENGINE(path, fn)                                                     \
    g_test_add((path), TuEngine, NULL, tu_engine_setup, (fn), tu_engine_teardown)

/* An engine for `cfg`, or the test fails; with `spec` not NULL, that target
 * opened on cfg->loop is set (in automatic mode that starts the stream). */
CrtEngine *tu_engine_new(const CrtEngineConfig *cfg, const char *spec);
/* Open `spec` on `loop`, or the test fails. */
CrtTarget *tu_target_open(const char *spec, CrtLoop *loop);
/* Open `spec` on the engine's loop and hand it to the engine. */
void tu_engine_set_spec(CrtEngine *e, const char *spec);
/* Nothing in flight, stopped, every buffer back in its pool. */
void tu_engine_assert_drained(CrtEngine *e);
/* Wait until the engine is in `state`; fail naming both states if not. */
void tu_engine_wait_state(CrtEngine *e, CrtEngineState state);

#define TU_ASSERT_ENGINE_STATE(e, st)                                                    \
    g_assert_cmpstr(crt_engine_state_to_string(crt_engine_get_state(e)), ==,             \
                    crt_engine_state_to_string(st))

/* A counter other threads bump and a test waits on (callback counts). */
typedef struct {
    GMutex lock;
    GCond cond;
    guint n; /* lock */
} TuCounter;

void tu_counter_init(TuCounter *c);
void tu_counter_clear(TuCounter *c);
void tu_counter_bump(TuCounter *c);
guint tu_counter_get(TuCounter *c);
/* Wait up to `ms` for the count to move past `seen`. */
void tu_counter_wait(TuCounter *c, guint seen, guint ms);

/* A test case run in a child process of its own (the same program,
 * re-executed by g_test_trap_subprocess): a failed assertion, a sanitizer
 * report or a hang fails that case only and the next ones still run. */
typedef struct {
    const char *path;
    void (*fn)(void);
} TuCase;

int tu_run_isolated(int *argc, char ***argv, const TuCase *cases, size_t n,
                    guint timeout_s);
/* The usual timeout_s: a case that runs longer than this has hung. */
#define TU_CASE_TIMEOUT_S 120

/* ---- line events as a watcher saw them (crtfs/lines.h) ------------------
 * tu_line_events_record is a CrtLineEventFn and tu_line_events_destroy its
 * GDestroyNotify; `data` is the TuLineEvents.  Any thread. */
typedef struct {
    GMutex lock;
    GArray *events;  /* CrtLineEvent, in the order they came */
    GThread *thread; /* the thread the last one came from */
    gint destroyed;  /* atomic: destroy calls */
} TuLineEvents;

void tu_line_events_init(TuLineEvents *e);
void tu_line_events_clear(TuLineEvents *e);
void tu_line_events_record(CrtTarget *t, const CrtLineEvent *ev, gpointer data);
void tu_line_events_destroy(gpointer data);
guint tu_line_events_count(TuLineEvents *e);
/* The i-th event (the test fails when there are not that many). */
CrtLineEvent tu_line_events_at(TuLineEvents *e, guint i);

G_END_DECLS

#endif
