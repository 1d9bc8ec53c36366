/* crtfs - the Telnet codec (telnet.h): a byte-at-a-time decoder, so that
 * any split of the input is the same as none, and RFC 1143's option
 * states.  Each side of each option is NO, YES, WANTNO or WANTYES; an
 * answer is sent only when it changes a state, and an option we do not
 * want is refused once per side and connection, so that neither a
 * confused peer nor one that asks again gets us into a loop.
 */
#include "config.h"

#include <string.h>

#include "telnet.h"

enum { Q_NO = 0, Q_YES, Q_WANTNO, Q_WANTYES };

/* Per-option flags beside the two states. */
enum {
    OPT_WANT_US = 1 << 0,     /* we want to WILL it */
    OPT_WANT_HIM = 1 << 1,    /* we want the peer to WILL it */
    OPT_REFUSED_US = 1 << 2,  /* we have answered WONT to its DO once */
    OPT_REFUSED_HIM = 1 << 3, /* we have answered DONT to its WILL once */
    OPT_DENIED_US = 1 << 4,   /* the peer refused what we asked for */
    OPT_DENIED_HIM = 1 << 5,
};

enum { S_DATA, S_IAC, S_VERB, S_SB_OPT, S_SB, S_SB_IAC };

struct CrtTelnet {
    guint8 us[256], him[256];
    guint8 flags[256];
    int state;
    guint8 verb;
    gboolean cr; /* the last data byte was CR, the peer not in BINARY */
    guint8 sb_opt;
    guint8 sb[CRT_TN_SB_MAX];
    size_t sb_len;
    gboolean sb_truncated;
    GByteArray *pending;
    CrtTelnetSubnegFn subneg;
    gpointer data;
};

CrtTelnet *crt_telnet_new(const int *local, const int *remote, CrtTelnetSubnegFn subneg,
                          gpointer data)
{
    CrtTelnet *tn = g_new0(CrtTelnet, 1);

    for (; local && *local >= 0; local++)
        tn->flags[*local & 0xff] |= OPT_WANT_US;
    for (; remote && *remote >= 0; remote++)
        tn->flags[*remote & 0xff] |= OPT_WANT_HIM;
    tn->pending = g_byte_array_new();
    tn->subneg = subneg;
    tn->data = data;
    return tn;
}

void crt_telnet_free(CrtTelnet *tn)
{
    if (!tn)
        return;
    g_byte_array_unref(tn->pending);
    g_free(tn);
}

GByteArray *crt_telnet_pending(CrtTelnet *tn)
{
    return tn->pending;
}

static void send_verb(CrtTelnet *tn, guint8 verb, guint8 option)
{
    guint8 b[3] = {CRT_TN_IAC, verb, option};

    g_byte_array_append(tn->pending, b, 3);
}

void crt_telnet_start(CrtTelnet *tn)
{
    for (int o = 0; o < 256; o++) {
        if ((tn->flags[o] & OPT_WANT_US) && tn->us[o] == Q_NO) {
            tn->us[o] = Q_WANTYES;
            send_verb(tn, CRT_TN_WILL, (guint8)o);
        }
        if ((tn->flags[o] & OPT_WANT_HIM) && tn->him[o] == Q_NO) {
            tn->him[o] = Q_WANTYES;
            send_verb(tn, CRT_TN_DO, (guint8)o);
        }
    }
}

/* WILL/WONT from the peer: about its side (`him`); DO/DONT: about ours.
 * The same table serves both, with the verbs and flags of that side. */
typedef struct {
    guint8 *state;
    guint8 want, refused, denied;
    guint8 yes, no; /* what we answer: DO/DONT or WILL/WONT */
} Side;

static void offered(CrtTelnet *tn, const Side *s, guint8 o)
{
    switch (s->state[o]) {
    case Q_NO:
        if (tn->flags[o] & s->want) {
            s->state[o] = Q_YES;
            send_verb(tn, s->yes, o);
        } else if (!(tn->flags[o] & s->refused)) {
            tn->flags[o] |= s->refused;
            send_verb(tn, s->no, o);
        }
        break;
    case Q_WANTNO: /* a refusal answered by an offer: RFC 1143 says NO */
        s->state[o] = Q_NO;
        break;
    case Q_WANTYES:
        s->state[o] = Q_YES;
        break;
    default: /* YES: already so, nothing to say */
        break;
    }
}

static void withdrawn(CrtTelnet *tn, const Side *s, guint8 o)
{
    switch (s->state[o]) {
    case Q_YES:
        s->state[o] = Q_NO;
        send_verb(tn, s->no, o);
        break;
    case Q_WANTYES:
        tn->flags[o] |= s->denied;
        s->state[o] = Q_NO;
        break;
    case Q_WANTNO:
        s->state[o] = Q_NO;
        break;
    default: /* NO: already so */
        break;
    }
}

static void negotiate(CrtTelnet *tn, guint8 verb, guint8 o)
{
    const Side him = {tn->him,        OPT_WANT_HIM, OPT_REFUSED_HIM,
                      OPT_DENIED_HIM, CRT_TN_DO,    CRT_TN_DONT};
    const Side us = {tn->us,        OPT_WANT_US, OPT_REFUSED_US,
                     OPT_DENIED_US, CRT_TN_WILL, CRT_TN_WONT};

    switch (verb) {
    case CRT_TN_WILL:
        offered(tn, &him, o);
        break;
    case CRT_TN_WONT:
        withdrawn(tn, &him, o);
        break;
    case CRT_TN_DO:
        offered(tn, &us, o);
        break;
    default:
        withdrawn(tn, &us, o);
        break;
    }
}

static void sb_byte(CrtTelnet *tn, guint8 b)
{
    if (tn->sb_len < sizeof tn->sb)
        tn->sb[tn->sb_len++] = b;
    else
        tn->sb_truncated = TRUE;
}

/* A data byte from the peer; returns whether it is kept.  Outside BINARY a
 * CR comes as CR NUL or CR LF (RFC 854): the NUL is padding. */
static gboolean data_byte(CrtTelnet *tn, guint8 b)
{
    gboolean keep = !(tn->cr && b == 0);

    tn->cr = b == '\r' && tn->him[CRT_TNOPT_BINARY] != Q_YES;
    return keep;
}

/* The byte after IAC. */
static int after_iac(CrtTelnet *tn, guint8 b)
{
    if (b >= CRT_TN_WILL && b <= CRT_TN_DONT) {
        tn->verb = b;
        return S_VERB;
    }
    if (b == CRT_TN_SB)
        return S_SB_OPT;
    /* NOP, DM, BRK, IP, AO, AYT, EC, EL, GA, a stray SE: nothing a byte
     * stream can act on. */
    return S_DATA;
}

size_t crt_telnet_decode(CrtTelnet *tn, const guint8 *in, size_t len, guint8 *data)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        guint8 b = in[i];

        switch (tn->state) {
        case S_DATA:
            if (b == CRT_TN_IAC)
                tn->state = S_IAC;
            else if (data_byte(tn, b))
                data[n++] = b;
            break;
        case S_IAC:
            if (b == CRT_TN_IAC) {
                tn->cr = FALSE;
                data[n++] = b;
                tn->state = S_DATA;
            } else {
                tn->state = after_iac(tn, b);
            }
            break;
        case S_VERB:
            negotiate(tn, tn->verb, b);
            tn->state = S_DATA;
            break;
        case S_SB_OPT:
            tn->sb_opt = b;
            tn->sb_len = 0;
            tn->sb_truncated = FALSE;
            tn->state = S_SB;
            break;
        case S_SB:
            if (b == CRT_TN_IAC)
                tn->state = S_SB_IAC;
            else
                sb_byte(tn, b);
            break;
        case S_SB_IAC:
            if (b == CRT_TN_IAC) {
                sb_byte(tn, b);
                tn->state = S_SB;
            } else if (b == CRT_TN_SE) {
                tn->state = S_DATA;
                if (tn->subneg)
                    tn->subneg(tn->sb_opt, tn->sb, tn->sb_len, tn->sb_truncated,
                               tn->data);
            } else {
                /* IAC and a command inside a subnegotiation: the peer broke
                 * it off; drop it and take the command (RFC 855 leaves this
                 * to us). */
                tn->state = after_iac(tn, b);
            }
            break;
        }
    }
    return n;
}

void crt_telnet_encode(CrtTelnet *tn, const guint8 *in, size_t len, GByteArray *out)
{
    gboolean binary = tn->us[CRT_TNOPT_BINARY] == Q_YES;
    size_t from = 0;

    for (size_t i = 0; i < len; i++) {
        gboolean cr_nul = !binary && in[i] == '\r' && !(i + 1 < len && in[i + 1] == '\n');

        if (in[i] != CRT_TN_IAC && !cr_nul)
            continue;
        /* Copy the run up to and including this byte, then its escape. */
        g_byte_array_append(out, in + from, (guint)(i + 1 - from));
        from = i + 1;
        g_byte_array_append(out, cr_nul ? (const guint8 *)"" : &in[i], 1);
    }
    g_byte_array_append(out, in + from, (guint)(len - from));
}

void crt_telnet_subneg(guint8 option, const guint8 *payload, size_t len, GByteArray *out)
{
    guint8 head[3] = {CRT_TN_IAC, CRT_TN_SB, option};
    guint8 tail[2] = {CRT_TN_IAC, CRT_TN_SE};

    g_byte_array_append(out, head, 3);
    for (size_t i = 0; i < len; i++) {
        g_byte_array_append(out, &payload[i], 1);
        if (payload[i] == CRT_TN_IAC)
            g_byte_array_append(out, &payload[i], 1);
    }
    g_byte_array_append(out, tail, 2);
}

gboolean crt_telnet_local_enabled(CrtTelnet *tn, guint8 option)
{
    return tn->us[option] == Q_YES;
}

gboolean crt_telnet_remote_enabled(CrtTelnet *tn, guint8 option)
{
    return tn->him[option] == Q_YES;
}

gboolean crt_telnet_local_refused(CrtTelnet *tn, guint8 option)
{
    return (tn->flags[option] & OPT_DENIED_US) != 0;
}

gboolean crt_telnet_settled(CrtTelnet *tn)
{
    for (int o = 0; o < 256; o++) {
        if (tn->us[o] >= Q_WANTNO || tn->him[o] >= Q_WANTNO)
            return FALSE;
    }
    return TRUE;
}
