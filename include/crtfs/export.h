/* crtfs - what the engine library exports.
 *
 * The library is built with -fvisibility=hidden: only the declarations of
 * the installed headers marked CRT_API are visible from outside; functions
 * that cross files inside the library stay internal
 * (tests/lib/exports.sh checks the two lists agree). */
#ifndef CRTFS_EXPORT_H
#define CRTFS_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define CRT_API __attribute__((visibility("default")))
#else
#define CRT_API
#endif

#endif
