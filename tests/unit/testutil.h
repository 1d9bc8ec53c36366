/* crtfs tests - helpers shared by the unit test programs.
 *
 * Everything here is thread-based (no child processes, so tests can check
 * for zombies) and uses no fixed port or path: servers bind port 0 or a
 * socket in a private temporary directory.
 */
#ifndef CRTFS_TESTUTIL_H
#define CRTFS_TESTUTIL_H

#include <glib.h>

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

G_END_DECLS

#endif
