/* crtfs - a Telnet codec (RFC 854, 855, 856, 858, 1143): decoding what the
 * network sends into data bytes, option negotiations and subnegotiations;
 * encoding data for it (IAC doubled, CR NUL in non-binary mode); and the
 * answers to option negotiations as a state machine (RFC 1143's Q method
 * without the queue bit), so that no option is answered twice and no
 * negotiation loops.
 *
 * Pure: no I/O, no clock, no threads.  Input may be split anywhere (inside
 * IAC IAC, inside a subnegotiation); the codec keeps what it needs between
 * calls.  One CrtTelnet per connection, used by one thread at a time.
 */
#ifndef CRTFS_TELNET_H
#define CRTFS_TELNET_H

#include <glib.h>

G_BEGIN_DECLS

enum {
    CRT_TN_SE = 240,
    CRT_TN_NOP = 241,
    CRT_TN_SB = 250,
    CRT_TN_WILL = 251,
    CRT_TN_WONT = 252,
    CRT_TN_DO = 253,
    CRT_TN_DONT = 254,
    CRT_TN_IAC = 255,
};

enum {
    CRT_TNOPT_BINARY = 0,
    CRT_TNOPT_ECHO = 1,
    CRT_TNOPT_SGA = 3,
    CRT_TNOPT_COM_PORT = 44,
};

/* The longest subnegotiation payload kept; longer ones are consumed and
 * reported truncated (the COM-PORT-OPTION ones are a few bytes). */
#define CRT_TN_SB_MAX 256

/* A complete subnegotiation IAC SB `option` payload IAC SE, IAC IAC in the
 * payload already undoubled; `truncated` when it was longer than
 * CRT_TN_SB_MAX.  Called from crt_telnet_decode. */
typedef void (*CrtTelnetSubnegFn)(guint8 option, const guint8 *payload, size_t len,
                                  gboolean truncated, gpointer data);

typedef struct CrtTelnet CrtTelnet;

/* A codec that wants the options in `local` enabled on our side (we WILL
 * them) and those in `remote` on the peer's (it WILL), each a list of
 * option codes ended by -1 (NULL: none); every other option is refused.
 * Returns a new codec; crt_telnet_free. */
CrtTelnet *crt_telnet_new(const int *local, const int *remote, CrtTelnetSubnegFn subneg,
                          gpointer data);
void crt_telnet_free(CrtTelnet *tn);

/* Ask for every wanted option (WILL for local ones, DO for remote ones),
 * once; the requests are appended to the pending output. */
void crt_telnet_start(CrtTelnet *tn);

/* Decode `len` bytes from the network.  Data bytes go to `data` (which may
 * be `in` itself: the output never overtakes the input), the count is
 * returned; commands are consumed, negotiation answers appended to the
 * pending output, subnegotiations reported through the callback. */
size_t crt_telnet_decode(CrtTelnet *tn, const guint8 *in, size_t len, guint8 *data);

/* Append `len` data bytes to `out`, encoded for the network (0xFF doubled;
 * a CR followed by NUL while our BINARY option is off). */
void crt_telnet_encode(CrtTelnet *tn, const guint8 *in, size_t len, GByteArray *out);

/* Append IAC SB `option` payload IAC SE to `out`, with IAC in the payload
 * doubled. */
void crt_telnet_subneg(guint8 option, const guint8 *payload, size_t len, GByteArray *out);

/* Protocol bytes the codec wants sent (answers, requests); the caller
 * sends them before data encoded later and removes what it sent. */
GByteArray *crt_telnet_pending(CrtTelnet *tn);

/* Whether an option is enabled now on our side / on the peer's, and
 * whether it has been settled (enabled or refused: no request of ours is
 * waiting for an answer). */
gboolean crt_telnet_local_enabled(CrtTelnet *tn, guint8 option);
gboolean crt_telnet_remote_enabled(CrtTelnet *tn, guint8 option);
gboolean crt_telnet_settled(CrtTelnet *tn);
/* Whether the peer refused an option we asked for on our side. */
gboolean crt_telnet_local_refused(CrtTelnet *tn, guint8 option);

G_END_DECLS

#endif
