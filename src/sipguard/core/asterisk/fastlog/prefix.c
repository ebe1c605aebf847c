/* prefix.c: Asterisk's own `[YYYY-MM-DD HH:MM:SS[.f]] LEVEL[lwp][C-tag]: file: ` prefix
 * (prefix.split_prefix, digit date form only) and its time (TimeParser.asterisk with tz None),
 * with a one-entry cache of the last date's midnight: a log's lines share a date for hours.
 *
 * Used by scan.c for every native candidate line; whatever this parser is unsure of it says so
 * (PFX_UNSURE) and the line goes to the Python parser.
 */
#include "fast.h"

#include <string.h>

/* ---- time -------------------------------------------------------------------------------------- */
/* Days from 1970-01-01 to y-m-d (proleptic Gregorian, as datetime.date.toordinal). */
static long long days_from_civil(long long y, int m, int d) {
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
    return v;
}

static const double POW10[7] = {1, 10, 100, 1000, 10000, 100000, 1000000};

/* TimeParser.asterisk with tz None for `YYYY-MM-DD HH:MM:SS` (19 chars) plus the digits of an
 * optional fraction. calendar.timegm is (date(y, m, 1).toordinal() - epoch + d - 1) * 86400 +
 * h * 3600 + mi * 60 + s, linear in d/h/mi/s, so any two digits are exact; a month outside 1..12
 * or year 0 makes Python raise (time None): those go to the fallback. The fraction is
 * float("0.ddd"): k / 10**m of two exact doubles is correctly rounded, as float() is. */
static int asterisk_time(prefix_dates *dates, const char *t, const char *frac, int nfrac,
                         double *out) {
    int y = digits(t, 4), mo = digits(t + 5, 2), d = digits(t + 8, 2);
    if (y < 1 || mo < 1 || mo > 12) return -1;
    long long midnight;
    if (dates->valid && memcmp(dates->key, t, 10) == 0) {
        midnight = dates->midnight;
    } else {
        midnight = (days_from_civil(y, mo, 1) + d - 1) * 86400LL;
        memcpy(dates->key, t, 10);
        dates->midnight = midnight;
        dates->valid = 1;
    }
    long long secs = digits(t + 11, 2) * 3600LL + digits(t + 14, 2) * 60 + digits(t + 17, 2);
    double base = (double)(midnight + secs);
    if (nfrac > 0) base += (double)digits(frac, nfrac) / POW10[nfrac];
    *out = base;
    return 0;
}

/* ---- the prefix --------------------------------------------------------------------------------- */
static inline int is_digit(char c) { return c >= '0' && c <= '9'; }
static inline int is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static inline int is_hex(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
/* \s on the native path's characters (printable ASCII and tab) */
static inline int is_space(char c) { return c == ' ' || c == '\t'; }

/* length of the run of [^\s:] at t[i..n) */
static Py_ssize_t word_run(const char *t, Py_ssize_t i, Py_ssize_t n) {
    Py_ssize_t j = i;
    while (j < n && !is_space(t[j]) && t[j] != ':') j++;
    return j - i;
}

/* _PLAIN_LOC at i: `file.c:LINE function: ` / `file.c:LINE in function: `. Returns the end, or -1. */
static Py_ssize_t plain_loc(const char *t, Py_ssize_t i, Py_ssize_t n, Py_ssize_t *file_len) {
    Py_ssize_t f = word_run(t, i, n);
    if (f < 1 || f > 128 || i + f >= n || t[i + f] != ':') return -1;
    Py_ssize_t j = i + f + 1, d = 0;
    while (j + d < n && is_digit(t[j + d])) d++;
    if (d < 1 || d > 7 || j + d >= n || t[j + d] != ' ') return -1;
    j += d + 1;
    /* `(?:in )?` then `[^\s:]{0,128}: `: without "in " the function would be "in" followed by a
     * space, which cannot match, so taking "in " whenever it is there is what the regex does */
    if (n - j >= 3 && memcmp(t + j, "in ", 3) == 0) j += 3;
    Py_ssize_t fn = word_run(t, j, n);
    if (fn > 128 || j + fn + 1 >= n || t[j + fn] != ':' || t[j + fn + 1] != ' ') return -1;
    *file_len = f;
    return j + fn + 2;
}

/* _DEFAULT_LOC at i: `file: `. Returns the end, or -1. */
static Py_ssize_t default_loc(const char *t, Py_ssize_t i, Py_ssize_t n, Py_ssize_t *file_len) {
    Py_ssize_t f = word_run(t, i, n);
    if (f < 1 || f > 128 || i + f + 1 >= n || t[i + f] != ':' || t[i + f + 1] != ' ') return -1;
    *file_len = f;
    return i + f + 2;
}

/* _DATE_LEVEL (digit date form only), the "Ext. " rule and the location, as split_prefix does
 * them. *msg_at is where the message starts (not yet stripped). */
int prefix_parse(prefix_dates *dates, const char *t, Py_ssize_t n, fast_prefix *p,
                 Py_ssize_t *msg_at) {
    /* `[YYYY-MM-DD HH:MM:SS` */
    static const char shape[] = "[dddd-dd-dd dd:dd:dd";
    if (n < 21) return PFX_UNSURE;
    for (int i = 0; i < 20; i++) {
        if (shape[i] == 'd' ? !is_digit(t[i]) : t[i] != shape[i]) return PFX_UNSURE;
    }
    Py_ssize_t i = 20;
    const char *frac = NULL;
    int nfrac = 0;
    if (t[i] == '.') {
        while (i + 1 + nfrac < n && is_digit(t[i + 1 + nfrac]) && nfrac < 7) nfrac++;
        if (nfrac < 1 || nfrac > 6) return PFX_UNSURE;
        frac = t + i + 1;
        i += 1 + nfrac;
    }
    if (i >= n || t[i] != ']') return PFX_UNSURE;
    i++;
    if (i < n && t[i] == ' ') i++;
    /* LEVEL[lwp] */
    if (i >= n || !is_upper(t[i])) return PFX_UNSURE;
    Py_ssize_t level_at = i, r = 0;
    i++;
    while (i + r < n && (is_upper(t[i + r]) || is_digit(t[i + r]) || t[i + r] == '_')) r++;
    if (r < 1 || r > 15) return PFX_UNSURE;
    i += r;
    p->level = t + level_at;
    p->level_len = i - level_at;
    if (i >= n || t[i] != '[') return PFX_UNSURE;
    i++;
    Py_ssize_t d = 0;
    while (i + d < n && is_digit(t[i + d])) d++;
    if (d < 1 || d > 10 || i + d >= n || t[i + d] != ']') return PFX_UNSURE;
    i += d + 1;
    /* optional [C-hex] */
    p->tag = NULL;
    p->tag_len = 0;
    if (n - i >= 3 && t[i] == '[' && t[i + 1] == 'C' && t[i + 2] == '-') {
        Py_ssize_t h = 0;
        while (i + 3 + h < n && is_hex(t[i + 3 + h])) h++;
        if (h >= 1 && h <= 16 && i + 3 + h < n && t[i + 3 + h] == ']') {
            p->tag = t + i + 1;
            p->tag_len = h + 2;
            i += h + 4;
        }
    }
    int colon = 0;
    if (i < n && t[i] == ':') {
        colon = 1;
        i++;
    }
    if (i >= n || t[i] != ' ') return PFX_UNSURE;
    i++;
    if (asterisk_time(dates, t + 1, frac, nfrac, &p->time) < 0) return PFX_UNSURE;
    /* `clock.asterisk(...) or None`: a time of 0.0 becomes None (then the last line's time) */
    if (p->time == 0.0) return PFX_UNSURE;
    if (n - i >= 5 && memcmp(t + i, "Ext. ", 5) == 0) return PFX_EXT;
    Py_ssize_t end = -1, file_len = 0;
    if (colon) end = plain_loc(t, i, n, &file_len);
    if (end < 0) end = default_loc(t, i, n, &file_len);
    if (end >= 0) {
        p->file = t + i;
        p->file_len = file_len;
        i = end;
    } else {
        p->file = t + i; /* "" */
        p->file_len = 0;
    }
    *msg_at = i;
    return PFX_OK;
}
