/* crtfs tests - what the target test programs share (target-fixture.h). */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>

#include "target-fixture.h"

/* One private loop for the whole program, so a leak of a target's loop
 * reference shows up when main drops it. */
CrtLoop *test_loop;

/* ---- helpers ---------------------------------------------------------- */

CrtTarget *open_ok(const char *spec)
{
    return tu_target_open(spec, test_loop);
}

/* Open `spec`, expect -err, and return the message (g_free). */
char *open_fails(const char *spec, int err)
{
    GError *error = NULL;
    CrtTarget *t = (CrtTarget *)&error; /* must be overwritten with NULL */
    int r = crt_target_open_spec(spec, test_loop, &t, &error);

    g_test_message("%s -> %d %s", spec, r, error ? error->message : "(no error)");
    g_assert_cmpint(r, ==, -err);
    g_assert_null(t);
    g_assert_error(error, G_IO_ERROR, (int)g_io_error_from_errno(err));
    g_assert_cmpstr(error->message, !=, "");
    char *msg = g_strdup(error->message);
    g_error_free(error);
    return msg;
}

void assert_contains(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle) == NULL)
        g_error("\"%s\" does not contain \"%s\"", haystack, needle);
}

/* Wait until `fd` is readable and read what is there, NUL-terminated. */
char *read_some(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    char buf[256];

    g_assert_cmpint(poll(&pfd, 1, TU_EVENTUALLY_MS), ==, 1);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    g_assert_cmpint(n, >, 0);
    return g_strndup(buf, (gsize)n);
}

void assert_no_children(void)
{
    int status;

    g_assert_cmpint(waitpid(-1, &status, WNOHANG), ==, -1);
    g_assert_cmpint(errno, ==, ECHILD);
}

/* ---- ptys ------------------------------------------------------------- */

void pty_open(Pty *pty)
{
    g_assert_cmpint(tu_openpty(&pty->master, &pty->slave), ==, 0);
}

void pty_close(Pty *pty)
{
    close(pty->master);
    g_free(pty->slave);
}

/* ---- main ------------------------------------------------------------- */

void target_tests_init(int *argc, char ***argv)
{
    g_test_init(argc, argv, NULL);
    /* Writes to a socket or pipe whose peer has gone must fail, not kill
     * the test program. */
    signal(SIGPIPE, SIG_IGN);
    test_loop = crt_loop_new();
}

int target_tests_run(void)
{
    int r = g_test_run();

    crt_loop_unref(test_loop);
    return r;
}
