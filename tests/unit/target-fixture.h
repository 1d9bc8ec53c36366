/* crtfs tests - what the target test programs share: one loop for the
 * whole program, opening a spec that must work or must fail, ptys, and a
 * main that sets them up.
 */
#ifndef CRTFS_TARGET_FIXTURE_H
#define CRTFS_TARGET_FIXTURE_H

#include <crtfs/crtfs.h>

#include "testutil.h"

G_BEGIN_DECLS

/* One private loop for the whole program, so a leak of a target's loop
 * reference shows up when target_tests_run drops it. */
extern CrtLoop *test_loop;

/* Open `spec` on test_loop, or the test fails. */
CrtTarget *open_ok(const char *spec);
/* Open `spec`, expect -err, and return the message (g_free). */
char *open_fails(const char *spec, int err);
/* Fail unless `needle` is in `haystack`. */
void assert_contains(const char *haystack, const char *needle);
/* Wait until `fd` is readable and read what is there, NUL-terminated
 * (g_free). */
char *read_some(int fd);
/* Every child this program started has been reaped. */
void assert_no_children(void);

typedef struct {
    int master;
    char *slave;
} Pty;

void pty_open(Pty *pty);
void pty_close(Pty *pty);

/* g_test_init, SIGPIPE ignored, test_loop created. */
void target_tests_init(int *argc, char ***argv);
/* g_test_run, then test_loop dropped. */
int target_tests_run(void);

G_END_DECLS

#endif
