/* scan.c: LogNormalizer.feed_chunk in C: line/binary/too_long counting, the candidate finder,
 * and the native line (its prefix and time are prefix.c's).
 *
 * The finder is one pass over the chunk: 64 bytes at a time it counts newlines, looks for NULs and
 * runs a "teddy" filter (nibble tables looked up with pshufb) that flags every offset where a
 * 3-byte fingerprint of one of the phrases may start; flagged offsets are verified with memcmp.
 * A verified line is handled and the scan resumes after it. Where AVX2 is missing (or
 * SIPGUARD_FASTLOG_SCALAR=1 is set, for the tests) a plain line-by-line loop does the same.
 *
 * Anything the native prefix parser is unsure of goes to ctx_fallback (the Python parser).
 */
#include "fast.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SCAN_HAVE_AVX2 1
#endif

/* normalizer.PHRASES and normalizer.NO_PHRASES (tables.h). fp is the offset of the 3-byte
 * fingerprint the filter looks for, bucket its teddy bucket (hatch_build.PHRASE_TUNING). Both
 * were chosen by a search for the fewest filter hits on 20 MB of the generated bench logs, with
 * windows without spaces (word-boundary windows such as "n f" are rare there but common in other
 * English text): 4x fewer hits than the rarest window per phrase with naive buckets. */
typedef struct {
    const char *text;
    int len;
    int fp;
    int bucket;
} phrase;

#define P(s, fp, b) {s, (int)sizeof(s) - 1, fp, b},
static const phrase PHRASES[] = {FASTLOG_PHRASES(P)};
#undef P
#define NPHRASES ((int)(sizeof(PHRASES) / sizeof(PHRASES[0])))
#define FP_LEN 3
#define NBUCKETS 8

/* ---- per-normalizer state -------------------------------------------------------------------- */
typedef struct {
    int simd;                       /* use the AVX2 finder */
    uint8_t lo[FP_LEN][16];         /* teddy tables: bucket bits by low / high nibble */
    uint8_t hi[FP_LEN][16];
    int8_t members[NBUCKETS][NPHRASES + 1]; /* phrase indices per bucket, -1 terminated */
    uint64_t pairs[65536 / 64];     /* plain loop: the first two fingerprint bytes, as bits */
    prefix_dates dates;             /* prefix.c's date cache */
} scan_state;

static scan_state *state_new(void) {
    scan_state *s = calloc(1, sizeof(*s));
    if (s == NULL) return NULL;
    int count[NBUCKETS] = {0};
    for (int k = 0; k < NPHRASES; k++) {
        const phrase *p = &PHRASES[k];
        for (int i = 0; i < FP_LEN; i++) {
            uint8_t c = (uint8_t)p->text[p->fp + i];
            s->lo[i][c & 15] |= (uint8_t)(1u << p->bucket);
            s->hi[i][c >> 4] |= (uint8_t)(1u << p->bucket);
        }
        s->members[p->bucket][count[p->bucket]++] = (int8_t)k;
        unsigned pair = (unsigned)(uint8_t)p->text[p->fp] << 8 | (uint8_t)p->text[p->fp + 1];
        s->pairs[pair >> 6] |= 1ull << (pair & 63);
    }
    for (int b = 0; b < NBUCKETS; b++) s->members[b][count[b]] = -1;
#ifdef SCAN_HAVE_AVX2
    const char *env = getenv("SIPGUARD_FASTLOG_SCALAR");
    s->simd = __builtin_cpu_supports("avx2") && !(env != NULL && strcmp(env, "1") == 0);
#endif
    return s;
}

void scan_state_free(void *state) { free(state); }

/* \s on the native path's characters (printable ASCII and tab) */
static inline int is_space(char c) { return c == ' ' || c == '\t'; }

/* Printable ASCII and tab only: anything else (UTF-8, latin-1, ANSI, control characters) is the
 * Python parser's. Eight bytes at a time: "some byte < 0x20 or > 0x7e" is exact word-wise. */
static int plain_text(const char *s, Py_ssize_t n) {
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        uint64_t less = (x - ones * 0x20) & ~x & high;
        uint64_t more = ((x + ones * (127 - 0x7e)) | x) & high;
        if (less | more) {
            for (int k = 0; k < 8; k++) {
                unsigned char c = (unsigned char)s[i + k];
                if ((c < 0x20 && c != '\t') || c > 0x7e) return 0;
            }
        }
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c > 0x7e) return 0;
    }
    return 1;
}

/* ---- one candidate line -------------------------------------------------------------------------- */
/* raw: the line truncated at MAX_LINE, trailing \r removed (what Python decodes). */
static int native_line(fast_ctx *ctx, scan_state *st, const char *raw, Py_ssize_t n,
                       Py_ssize_t line_no) {
    if (!plain_text(raw, n)) return ctx_fallback(ctx, raw, n, line_no);
    fast_prefix p;
    Py_ssize_t at = 0;
    int rc = raw[0] == '[' ? prefix_parse(&st->dates, raw, n, &p, &at) : PFX_UNSURE;
    if (rc == PFX_UNSURE) return ctx_fallback(ctx, raw, n, line_no);
    if (rc == PFX_EXT) { /* split_prefix returns None: a malformed candidate */
        ctx->st.candidates++;
        ctx->st.malformed++;
        return 0;
    }
    Py_ssize_t end = n;
    while (at < end && is_space(raw[at])) at++;
    while (end > at && is_space(raw[end - 1])) end--;
    /* the line is known to be ASCII: a compact ASCII str filled directly, no decoder pass */
    Py_ssize_t keep = n < FAST_ORIGIN_TEXT ? n : FAST_ORIGIN_TEXT;
    PyObject *text = PyUnicode_New(keep, 127);
    if (text == NULL) return -1;
    memcpy(PyUnicode_1BYTE_DATA(text), raw, (size_t)keep);
    PyObject *origin = origin_new(ctx->source, line_no, text);
    Py_DECREF(text);
    if (origin == NULL) return -1;
    ctx->st.candidates++;
    fast_cand cand;
    memset(&cand, 0, sizeof(cand));
    rc = grammar_parse(ctx, &p, raw + at, end - at, origin, &cand);
    Py_DECREF(origin);
    switch (rc) {
    case GRAM_OK:
        ctx->last_time = p.time;
        return ctx_run(ctx, &cand);
    case GRAM_NONE:
        cand_clear(&cand); /* nothing should be there; never leak what a grammar left */
        return 0;
    case GRAM_MALFORMED:
        cand_clear(&cand);
        ctx->st.malformed++;
        return 0;
    case GRAM_FALLBACK:
        cand_clear(&cand);
        ctx->st.candidates--;
        return ctx_fallback(ctx, raw, n, line_no);
    default:
        cand_clear(&cand);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_SystemError, "grammar_parse failed");
        return -1;
    }
}

/* ---- the chunk ---------------------------------------------------------------------------------- */
typedef struct {
    fast_ctx *ctx;
    scan_state *st;
    const char *d;
    Py_ssize_t n;
    Py_ssize_t first;   /* line number of the chunk's first line */
    Py_ssize_t nl;      /* newlines counted before the current position */
    Py_ssize_t last_nl; /* offset of the last newline counted, -1 before the first */
    int saw_nul;
} scan_run;

/* A candidate line [ls, e): ls is a line start, e its newline (or n). Counts the newline and a
 * too-long line. */
static int candidate_line(scan_run *r, Py_ssize_t ls, Py_ssize_t e) {
    const char *line = r->d + ls;
    Py_ssize_t len = e - ls, line_no = r->first + r->nl;
    if (len > FAST_MAX_LINE) r->ctx->st.too_long++;
    r->last_nl = e;
    if (e < r->n) r->nl++;
    if (memchr(line, 0, (size_t)len) != NULL) {
        r->saw_nul = 1; /* a binary line: counted with the others at the end, never parsed */
        return 0;
    }
    if (len > FAST_MAX_LINE) len = FAST_MAX_LINE;
    while (len > 0 && line[len - 1] == '\r') len--;
    if (!r->ctx->native || len == 0) return ctx_fallback(r->ctx, line, len, line_no);
    return native_line(r->ctx, r->st, line, len, line_no);
}

/* Does s[0..n) hold a phrase whose fingerprint starts at or after `from`? Byte pairs looked up
 * in a 64 Kbit table, hits verified. */
static int has_phrase(const scan_state *st, const char *s, Py_ssize_t n, Py_ssize_t from) {
    for (Py_ssize_t i = from; i + 1 < n; i++) {
        unsigned pair = (unsigned)(uint8_t)s[i] << 8 | (uint8_t)s[i + 1];
        if (!(st->pairs[pair >> 6] >> (pair & 63) & 1)) continue;
        for (int k = 0; k < NPHRASES; k++) {
            const phrase *p = &PHRASES[k];
            Py_ssize_t at = i - p->fp;
            if (s[i] == p->text[p->fp] && s[i + 1] == p->text[p->fp + 1] && at >= 0 &&
                at + p->len <= n && memcmp(s + at, p->text, (size_t)p->len) == 0)
                return 1;
        }
    }
    return 0;
}

/* The plain loop, line by line from the line start ls to the end of the chunk. Fingerprints
 * before `seen` were looked at already (by the AVX2 finder): the first line is searched, and
 * checked for NUL, from there on. */
static int scan_lines(scan_run *r, Py_ssize_t ls, Py_ssize_t seen) {
    const char *d = r->d;
    while (ls < r->n) {
        const char *nlp = memchr(d + ls, '\n', (size_t)(r->n - ls));
        Py_ssize_t e = nlp != NULL ? nlp - d : r->n;
        Py_ssize_t from = seen > ls ? seen - ls : 0;
        if (has_phrase(r->st, d + ls, e - ls, from)) {
            if (candidate_line(r, ls, e) < 0) return -1;
        } else {
            if (e - ls > FAST_MAX_LINE) r->ctx->st.too_long++;
            if (!r->saw_nul && e > ls + from && memchr(d + ls + from, 0, (size_t)(e - ls - from)))
                r->saw_nul = 1;
            r->last_nl = e;
            if (nlp != NULL) r->nl++;
        }
        ls = e + 1;
    }
    return 0;
}

/* Does a phrase of one of the buckets in `buckets` have its fingerprint at offset at? */
static int verify(const scan_run *r, Py_ssize_t at, unsigned buckets) {
    while (buckets) {
        int b = __builtin_ctz(buckets);
        buckets &= buckets - 1;
        for (const int8_t *k = r->st->members[b]; *k >= 0; k++) {
            const phrase *p = &PHRASES[*k];
            Py_ssize_t s = at - p->fp;
            if (s >= 0 && s + p->len <= r->n && memcmp(r->d + s, p->text, (size_t)p->len) == 0)
                return 1;
        }
    }
    return 0;
}

/* the newlines of a block (bit i: offset pos + i): counts them and a too-long line ending at the
 * first one (lines inside one 64-byte block are short) */
static inline void block_newlines(scan_run *r, Py_ssize_t pos, uint64_t mask) {
    if (mask == 0) return;
    Py_ssize_t first = pos + __builtin_ctzll(mask);
    if (first - (r->last_nl + 1) > FAST_MAX_LINE) r->ctx->st.too_long++;
    r->last_nl = pos + 63 - __builtin_clzll(mask);
    r->nl += __builtin_popcountll(mask);
}

#ifdef SCAN_HAVE_AVX2
/* Bucket bits of the phrases whose fingerprint may start at each of the 32 offsets from p. */
__attribute__((target("avx2"))) static inline __m256i teddy(const char *p, const __m256i *lo,
                                                            const __m256i *hi, __m256i nib) {
    __m256i m = _mm256_set1_epi8(-1);
    for (int i = 0; i < FP_LEN; i++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(p + i));
        __m256i l = _mm256_shuffle_epi8(lo[i], _mm256_and_si256(v, nib));
        __m256i h = _mm256_shuffle_epi8(hi[i], _mm256_and_si256(_mm256_srli_epi16(v, 4), nib));
        m = _mm256_and_si256(m, _mm256_and_si256(l, h));
    }
    return m;
}

/* 64 bytes a round (two 32-byte halves keep the pipeline busy and share one branch) */
__attribute__((target("avx2"))) static int scan_simd(scan_run *r) {
    const char *d = r->d;
    const Py_ssize_t n = r->n;
    __m256i lo[FP_LEN], hi[FP_LEN];
    for (int i = 0; i < FP_LEN; i++) {
        lo[i] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)r->st->lo[i]));
        hi[i] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)r->st->hi[i]));
    }
    const __m256i nib = _mm256_set1_epi8(0x0f), newline = _mm256_set1_epi8('\n');
    const __m256i zero = _mm256_setzero_si256();
    __m256i low = _mm256_set1_epi8(-1); /* the smallest byte seen at each lane: 0 after a NUL */
    Py_ssize_t pos = 0;
    /* a round reads 64 + FP_LEN - 1 bytes */
    while (pos + 64 + FP_LEN - 1 <= n) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(d + pos));
        __m256i b = _mm256_loadu_si256((const __m256i *)(d + pos + 32));
        __m256i ma = teddy(d + pos, lo, hi, nib), mb = teddy(d + pos + 32, lo, hi, nib);
        uint64_t nlm = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(a, newline)) |
                       (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(b, newline))
                           << 32;
        low = _mm256_min_epu8(low, _mm256_min_epu8(a, b));
        __m256i any = _mm256_or_si256(ma, mb);
        if (!_mm256_testz_si256(any, any)) {
            uint8_t bytes[64];
            _mm256_storeu_si256((__m256i *)bytes, ma);
            _mm256_storeu_si256((__m256i *)(bytes + 32), mb);
            uint64_t hits =
                ~((uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(ma, zero)) |
                  (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(mb, zero)) << 32);
            int found = -1;
            while (hits) {
                int j = __builtin_ctzll(hits);
                hits &= hits - 1;
                if (verify(r, pos + j, bytes[j])) {
                    found = j;
                    break;
                }
            }
            if (found >= 0) {
                block_newlines(r, pos, nlm & ((1ull << found) - 1));
                Py_ssize_t at = pos + found;
                const char *nlp = memchr(d + at, '\n', (size_t)(n - at));
                Py_ssize_t e = nlp != NULL ? nlp - d : n;
                if (candidate_line(r, r->last_nl + 1, e) < 0) return -1;
                pos = e + 1;
                continue;
            }
        }
        block_newlines(r, pos, nlm);
        pos += 64;
    }
    if (_mm256_movemask_epi8(_mm256_cmpeq_epi8(low, zero)) != 0) r->saw_nul = 1;
    return scan_lines(r, r->last_nl + 1, pos);
}
#endif

/* NormalizerStats.binary as _count_binary counts it: lines holding a NUL, each once. */
static long long count_binary(const char *d, Py_ssize_t n) {
    long long count = 0;
    const char *p = memchr(d, 0, (size_t)n);
    while (p != NULL) {
        count++;
        const char *nlp = memchr(p, '\n', (size_t)(d + n - p));
        if (nlp == NULL) break;
        p = memchr(nlp, 0, (size_t)(d + n - nlp));
    }
    return count;
}

int scan_chunk(fast_ctx *ctx, const char *data, Py_ssize_t n, Py_ssize_t first_line_no) {
    if (ctx->scan_state == NULL) {
        ctx->scan_state = state_new();
        if (ctx->scan_state == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    scan_run r = {ctx, ctx->scan_state, data, n, first_line_no, 0, -1, 0};
    int rc;
#ifdef SCAN_HAVE_AVX2
    if (r.st->simd)
        rc = scan_simd(&r);
    else
#endif
        rc = scan_lines(&r, 0, 0);
    if (rc < 0) return -1;
    ctx->st.lines += r.nl + (n > 0 && data[n - 1] != '\n');
    if (r.saw_nul) ctx->st.binary += count_binary(data, n);
    return 0;
}
