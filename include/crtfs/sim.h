/* crtfs - the built-in `sim` target (DESIGN section 6).
 *
 * Spec: `sim:[GEN] [rate=N] [size=N] [delay=MIN-MAX] [fail=N] [errno=NAME]
 *        [fatal] [limit=N]`, GEN one of records (default), counter, zero,
 *        echo.
 *
 * Requests it serves:
 *   read            the generator's next chunk (records: whole records of
 *                   `size` bytes at `rate` per second; counter: uint64 LE
 *                   counters; zero: zeros; echo: bytes written earlier)
 *   write           accepted at once (echo: kept for later reads)
 *   ioctl / internal-ioctl with one of the codes below; internal-ioctl with
 *                   any other code echoes the input back (a transaction).
 *   `fail=N`        the Nth request (counting from 1) completes with `errno`
 *                   (default EIO); with `fatal` it also ends the stream.
 *   `limit=N`       after N read requests the reads complete with EOF.
 *
 * Everything runs on the loop's timers: no thread, cancelable at any time.
 */
#ifndef CRTFS_SIM_H
#define CRTFS_SIM_H

#include <stdint.h>

/* Sleep for the uint32 milliseconds at the start of the input buffer, then
 * succeed; the output (if any) receives a copy of the input.  Cancelable. */
#define CRT_SIM_IOCTL_SLEEP 0x53494d01u
/* Zero the whole output buffer after a delay: the uint32 ms in the input
 * buffer if there is one, else a random delay in the spec's `delay=` range. */
#define CRT_SIM_IOCTL_ZERO 0x53494d02u
/* Complete at once with success and zero bytes. */
#define CRT_SIM_IOCTL_ZERO_BYTES 0x53494d03u

#endif
