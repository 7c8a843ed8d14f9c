/* HMAC-SHA256 over a whole Arrow string/binary array in one call, with the GIL released.
 *
 * hmac_sha256(ipad, opad, offsets, data, start, count, wide) -> bytes (32 * count)
 *
 * Message i is data[offsets[start + i]:offsets[start + i + 1]], offsets int32 (wide=False) or
 * int64 (wide=True). ipad/opad are the 64-byte key blocks (key ^ 0x36, key ^ 0x5c). The two
 * midstates are computed once per call; each message then costs its own blocks plus one outer
 * block. SHA-NI is used when CPUID reports it (x86-64 with GCC/Clang), portable C otherwise.
 *
 * Every offset value is checked (0 <= begin <= end <= len(data)) as read, before it is used, so
 * a malformed or concurrently mutated buffer raises ValueError and is never read out of bounds.
 * Pairs of short messages (the usual E.164 case) go through SHA-NI interleaved.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HB_HAVE_SHANI 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define HB_HAVE_SHANI 0
#endif

#define HB_INLINE static inline __attribute__((always_inline))

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

static const uint32_t H256[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

HB_INLINE uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

HB_INLINE void store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

HB_INLINE void store_be64(uint8_t *p, uint64_t v) {
    store_be32(p, (uint32_t)(v >> 32));
    store_be32(p + 4, (uint32_t)v);
}

/* ---- portable compression ------------------------------------------------------------------ */

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_portable(uint32_t state[8], const uint8_t *data, size_t nblocks) {
    uint32_t w[64];
    while (nblocks--) {
        for (int t = 0; t < 16; t++) w[t] = load_be32(data + 4 * t);
        for (int t = 16; t < 64; t++) {
            uint32_t s0 = ROTR(w[t - 15], 7) ^ ROTR(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t s1 = ROTR(w[t - 2], 17) ^ ROTR(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        for (int t = 0; t < 64; t++) {
            uint32_t S1 = ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25);
            uint32_t ch = (e & f) ^ (~e & g);
            uint32_t t1 = h + S1 + ch + K256[t] + w[t];
            uint32_t S0 = ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22);
            uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
            uint32_t t2 = S0 + maj;
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += h;
        data += 64;
    }
}

/* ---- SHA-NI compression -------------------------------------------------------------------- */

#if HB_HAVE_SHANI
#define HB_SHANI_TARGET __attribute__((target("sha,sse4.1,ssse3")))

/* state[0..3] = A B C D, state[4..7] = E F G H (lowest lane first); the instructions want
   ABEF and CDGH with A/C in the highest lane. */
HB_SHANI_TARGET HB_INLINE void shani_load(const uint32_t state[8], __m128i *abef,
                                          __m128i *cdgh) {
    __m128i cdab = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&state[0]), 0xB1);
    __m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&state[4]), 0x1B);
    *abef = _mm_alignr_epi8(cdab, efgh, 8);
    *cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
}

HB_SHANI_TARGET HB_INLINE void shani_store(uint32_t state[8], __m128i abef, __m128i cdgh) {
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(feba, dchg, 0xF0)); /* DCBA */
    _mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(dchg, feba, 8));   /* HGFE */
}

HB_SHANI_TARGET HB_INLINE void shani_msgload(__m128i w[4], const uint8_t *data) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    for (int j = 0; j < 4; j++)
        w[j] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * j)), bswap);
}

/* Message words j*4 .. j*4+3 plus their round constants; w is the rolling schedule. */
HB_SHANI_TARGET HB_INLINE __m128i shani_schedule(__m128i w[4], int j) {
    __m128i wj;
    if (j < 4) {
        wj = w[j];
    } else {
        /* W[t] = W[t-16] + s0(W[t-15]) + W[t-7] + s1(W[t-2]) for four t at once. */
        wj = _mm_sha256msg1_epu32(w[j & 3], w[(j + 1) & 3]);
        wj = _mm_add_epi32(wj, _mm_alignr_epi8(w[(j + 3) & 3], w[(j + 2) & 3], 4));
        wj = _mm_sha256msg2_epu32(wj, w[(j + 3) & 3]);
        w[j & 3] = wj;
    }
    return _mm_add_epi32(wj, _mm_loadu_si128((const __m128i *)&K256[4 * j]));
}

/* Four rounds. After the first pair the old ABEF is the CDGH and cdgh holds the ABEF; after
   the second, abef is the ABEF and cdgh (the ABEF of two rounds on) the CDGH. */
HB_SHANI_TARGET HB_INLINE void shani_rounds4(__m128i *abef, __m128i *cdgh, __m128i msg) {
    *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, msg);
    *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32(msg, 0x0E));
}

HB_SHANI_TARGET static inline void sha256_shani(uint32_t state[8], const uint8_t *data,
                                                size_t nblocks) {
    __m128i abef, cdgh;
    shani_load(state, &abef, &cdgh);
    while (nblocks--) {
        const __m128i abef_in = abef, cdgh_in = cdgh;
        __m128i w[4];
        shani_msgload(w, data);
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) shani_rounds4(&abef, &cdgh, shani_schedule(w, j));
        abef = _mm_add_epi32(abef, abef_in);
        cdgh = _mm_add_epi32(cdgh, cdgh_in);
        data += 64;
    }
    shani_store(state, abef, cdgh);
}

/* One block each for two independent states, interleaved: a single chain of sha256rnds2 is
   latency bound, two chains keep the unit busy. */
HB_SHANI_TARGET static inline void sha256_shani_x2(uint32_t sa[8], const uint8_t *da,
                                                   uint32_t sb[8], const uint8_t *db) {
    __m128i abef_a, cdgh_a, abef_b, cdgh_b, wa[4], wb[4];
    shani_load(sa, &abef_a, &cdgh_a);
    shani_load(sb, &abef_b, &cdgh_b);
    const __m128i abef_a_in = abef_a, cdgh_a_in = cdgh_a, abef_b_in = abef_b, cdgh_b_in = cdgh_b;
    shani_msgload(wa, da);
    shani_msgload(wb, db);
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++) {
        __m128i ma = shani_schedule(wa, j);
        __m128i mb = shani_schedule(wb, j);
        shani_rounds4(&abef_a, &cdgh_a, ma);
        shani_rounds4(&abef_b, &cdgh_b, mb);
    }
    shani_store(sa, _mm_add_epi32(abef_a, abef_a_in), _mm_add_epi32(cdgh_a, cdgh_a_in));
    shani_store(sb, _mm_add_epi32(abef_b, abef_b_in), _mm_add_epi32(cdgh_b, cdgh_b_in));
}
#endif

/* ---- HMAC over many messages --------------------------------------------------------------- */

typedef void (*compress_fn)(uint32_t state[8], const uint8_t *data, size_t nblocks);
typedef void (*compress2_fn)(uint32_t sa[8], const uint8_t *da, uint32_t sb[8],
                             const uint8_t *db);

HB_INLINE int64_t read_offset(const uint8_t *offsets, Py_ssize_t i, int wide) {
    if (wide) {
        int64_t v;
        memcpy(&v, offsets + 8 * i, 8);
        return v;
    }
    int32_t v;
    memcpy(&v, offsets + 4 * i, 4);
    return v;
}

/* The final inner block(s) of a message whose first `full` blocks are hashed: the rest of the
   message, 0x80, zeros and the bit length of ipad + message. Returns the number of blocks. */
HB_INLINE size_t inner_tail(uint8_t block[128], const uint8_t *rest, size_t rem, uint64_t len) {
    size_t padded = rem < 56 ? 64 : 128;
    if (rem) memcpy(block, rest, rem);
    block[rem] = 0x80;
    memset(block + rem + 1, 0, padded - rem - 1 - 8);
    store_be64(block + padded - 8, (64 + len) * 8);
    return padded / 64;
}

/* The outer block: inner digest (32) | 0x80 | zeros | bit length of opad + digest (768). */
HB_INLINE void outer_init(uint8_t oblock[64]) {
    memset(oblock, 0, 64);
    oblock[32] = 0x80;
    store_be64(oblock + 56, (uint64_t)(64 + 32) * 8);
}

HB_INLINE void digest_out(uint8_t *out, const uint32_t st[8]) {
    for (int k = 0; k < 8; k++) store_be32(out + 4 * k, st[k]);
}

/* Hashes messages [0, count) (offsets indexed from `start`). Each offset value read is checked
   (0 <= begin <= end <= data_len) before it is used. Returns the index of the first bad
   message, or -1 when all were hashed. With compress2, pairs of short messages (one inner
   block each, the usual E.164 case) go through it interleaved. */
HB_INLINE Py_ssize_t hmac_many(compress_fn compress, compress2_fn compress2,
                               const uint32_t mid_i[8], const uint32_t mid_o[8],
                               const uint8_t *offsets, int wide, const uint8_t *data,
                               int64_t data_len, Py_ssize_t start, Py_ssize_t count,
                               uint8_t *out) {
    uint8_t block[128], block_b[128];
    uint8_t oblock[64], oblock_b[64];
    uint32_t st[8], st_b[8];

    outer_init(oblock);
    outer_init(oblock_b);

    int64_t begin = read_offset(offsets, start, wide);
    Py_ssize_t i = 0;
    while (i < count) {
        if (compress2 && i + 1 < count) {
            int64_t mid = read_offset(offsets, start + i + 1, wide);
            int64_t end = read_offset(offsets, start + i + 2, wide);
            if (begin >= 0 && mid >= begin && end >= mid && end <= data_len &&
                mid - begin < 56 && end - mid < 56) {
                size_t la = (size_t)(mid - begin), lb = (size_t)(end - mid);
                inner_tail(block, data + begin, la, la);
                inner_tail(block_b, data + mid, lb, lb);
                memcpy(st, mid_i, sizeof st);
                memcpy(st_b, mid_i, sizeof st_b);
                compress2(st, block, st_b, block_b);
                digest_out(oblock, st);
                digest_out(oblock_b, st_b);
                memcpy(st, mid_o, sizeof st);
                memcpy(st_b, mid_o, sizeof st_b);
                compress2(st, oblock, st_b, oblock_b);
                digest_out(out + 32 * i, st);
                digest_out(out + 32 * (i + 1), st_b);
                begin = end;
                i += 2;
                continue;
            }
        }
        int64_t end = read_offset(offsets, start + i + 1, wide);
        if (begin < 0 || end < begin || end > data_len) return i;
        const uint8_t *msg = data + begin;
        uint64_t len = (uint64_t)(end - begin);
        begin = end;

        memcpy(st, mid_i, sizeof st);
        uint64_t full = len / 64;
        if (full) compress(st, msg, (size_t)full);
        size_t rem = (size_t)(len - full * 64);
        compress(st, block, inner_tail(block, msg + full * 64, rem, len));
        digest_out(oblock, st);
        memcpy(st, mid_o, sizeof st);
        compress(st, oblock, 1);
        digest_out(out + 32 * i, st);
        i++;
    }
    return -1;
}

static Py_ssize_t hmac_many_portable(const uint32_t mid_i[8], const uint32_t mid_o[8],
                                     const uint8_t *offsets, int wide, const uint8_t *data,
                                     int64_t data_len, Py_ssize_t start, Py_ssize_t count,
                                     uint8_t *out) {
    return hmac_many(sha256_portable, NULL, mid_i, mid_o, offsets, wide, data, data_len, start,
                     count, out);
}

#if HB_HAVE_SHANI
HB_SHANI_TARGET static Py_ssize_t hmac_many_shani(const uint32_t mid_i[8],
                                                  const uint32_t mid_o[8],
                                                  const uint8_t *offsets, int wide,
                                                  const uint8_t *data, int64_t data_len,
                                                  Py_ssize_t start, Py_ssize_t count,
                                                  uint8_t *out) {
    return hmac_many(sha256_shani, sha256_shani_x2, mid_i, mid_o, offsets, wide, data, data_len,
                     start, count, out);
}

static int cpu_has_shani(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 19)) || !(c & (1u << 9))) return 0; /* SSE4.1, SSSE3 */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b & (1u << 29)) != 0; /* SHA */
}
#endif

static int have_shani = 0;
static int force_portable = 0;

static int use_shani(void) { return have_shani && !force_portable; }

/* ---- Python surface ------------------------------------------------------------------------ */

PyDoc_STRVAR(hmac_sha256_doc,
             "hmac_sha256(ipad, opad, offsets, data, start, count, wide) -> bytes\n\n"
             "HMAC-SHA256 of each data[offsets[start+i]:offsets[start+i+1]] for i < count, "
             "concatenated (32 bytes each). offsets are int32, or int64 when wide. "
             "Raises ValueError on any inconsistent input.");

static PyObject *hmac_sha256(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"ipad", "opad", "offsets", "data", "start", "count", "wide", NULL};
    Py_buffer ipad = {0}, opad = {0}, offsets = {0}, data = {0};
    Py_ssize_t start, count;
    int wide;
    PyObject *result = NULL;
    (void)self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*y*y*y*nnp:hmac_sha256", kwlist, &ipad,
                                     &opad, &offsets, &data, &start, &count, &wide))
        return NULL;

    if (ipad.len != 64 || opad.len != 64) {
        PyErr_SetString(PyExc_ValueError, "ipad and opad must be 64 bytes each");
        goto done;
    }
    if (start < 0 || count < 0) {
        PyErr_SetString(PyExc_ValueError, "start and count must be non-negative");
        goto done;
    }
    if (count > PY_SSIZE_T_MAX / 32) {
        PyErr_SetString(PyExc_ValueError, "count too large");
        goto done;
    }
    Py_ssize_t width = wide ? 8 : 4;
    if (offsets.len % width != 0) {
        PyErr_Format(PyExc_ValueError, "offsets buffer length %zd is not a multiple of %zd",
                     offsets.len, width);
        goto done;
    }
    Py_ssize_t n_offsets = offsets.len / width;
    if (count > 0 && (n_offsets < 1 || start > n_offsets - 1 || count > n_offsets - 1 - start)) {
        PyErr_Format(PyExc_ValueError,
                     "offsets hold %zd entries; start=%zd count=%zd needs %zd", n_offsets, start,
                     count, start + count + 1);
        goto done;
    }

    result = PyBytes_FromStringAndSize(NULL, 32 * count);
    if (result == NULL || count == 0) goto done;

    uint32_t mid_i[8], mid_o[8];
    memcpy(mid_i, H256, sizeof mid_i);
    memcpy(mid_o, H256, sizeof mid_o);
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result);
    const uint8_t *off = (const uint8_t *)offsets.buf;
    const uint8_t *dat = (const uint8_t *)data.buf;
    int64_t data_len = (int64_t)data.len;
    Py_ssize_t bad;
    int shani = use_shani();

    Py_BEGIN_ALLOW_THREADS
#if HB_HAVE_SHANI
    if (shani) {
        sha256_shani(mid_i, (const uint8_t *)ipad.buf, 1);
        sha256_shani(mid_o, (const uint8_t *)opad.buf, 1);
        bad = hmac_many_shani(mid_i, mid_o, off, wide, dat, data_len, start, count, out);
    } else
#endif
    {
        (void)shani;
        sha256_portable(mid_i, (const uint8_t *)ipad.buf, 1);
        sha256_portable(mid_o, (const uint8_t *)opad.buf, 1);
        bad = hmac_many_portable(mid_i, mid_o, off, wide, dat, data_len, start, count, out);
    }
    Py_END_ALLOW_THREADS

    /* The midstates are as good as the key: do not leave them on the stack. */
    memset(mid_i, 0, sizeof mid_i);
    memset(mid_o, 0, sizeof mid_o);
    __asm__ __volatile__("" : : "r"(mid_i), "r"(mid_o) : "memory");

    if (bad >= 0) {
        Py_CLEAR(result);
        PyErr_Format(PyExc_ValueError,
                     "offsets of message %zd are out of order or outside data (%zd bytes)", bad,
                     data.len);
    }

done:
    PyBuffer_Release(&ipad);
    PyBuffer_Release(&opad);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return result;
}

PyDoc_STRVAR(prefixes_doc,
             "prefixes(digests, count) -> bytes\n\n"
             "The first 4 bytes of each of count 32-byte digests as big-endian unsigned "
             "integers, returned as native-endian uint32 values (4 bytes each).");

static PyObject *prefixes(PyObject *self, PyObject *args) {
    Py_buffer digests = {0};
    Py_ssize_t count;
    PyObject *result = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*n:prefixes", &digests, &count)) return NULL;
    if (count < 0 || count > PY_SSIZE_T_MAX / 32 || digests.len < 32 * count) {
        PyErr_SetString(PyExc_ValueError, "digests must hold count 32-byte values");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, 4 * count);
    if (result == NULL) goto done;
    const uint8_t *in = (const uint8_t *)digests.buf;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        const uint8_t *d = in + 32 * i;
        uint32_t v = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
        memcpy(out + 4 * i, &v, 4);
    }
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&digests);
    return result;
}

static PyObject *implementation(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyUnicode_FromString(use_shani() ? "sha-ni" : "portable");
}

static PyObject *force_portable_fn(PyObject *self, PyObject *arg) {
    (void)self;
    int flag = PyObject_IsTrue(arg);
    if (flag < 0) return NULL;
    force_portable = flag;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"hmac_sha256", (PyCFunction)(void (*)(void))hmac_sha256, METH_VARARGS | METH_KEYWORDS,
     hmac_sha256_doc},
    {"prefixes", prefixes, METH_VARARGS, prefixes_doc},
    {"implementation", implementation, METH_NOARGS,
     "implementation() -> 'sha-ni' or 'portable': the SHA-256 code in use."},
    {"_force_portable", force_portable_fn, METH_O,
     "_force_portable(flag): use the portable code even when SHA-NI is available (tests)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "breach_notify.crypto._hmacbatch",
    "Batch HMAC-SHA256 over Arrow string/binary buffers, GIL released.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__hmacbatch(void) {
#if HB_HAVE_SHANI
    have_shani = cpu_has_shani();
#endif
    return PyModule_Create(&module);
}
