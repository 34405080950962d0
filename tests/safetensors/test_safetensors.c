/* safetensors: round trips, files written by PyTorch, every kind of corruption (each a clear
 * error, never a crash: the sanitized run checks the reads) and a seeded corruption fuzz. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"

static char dir[64];
static char err[512];

static const char *tmp_path(const char *name) {
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return path;
}

static void write_bytes(const char *path, const void *buf, size_t len) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static unsigned char *read_bytes(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *len = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc(*len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, *len, fp), *len);
    fclose(fp);
    return buf;
}

/* A file with header length hlen (normally strlen(header)), the header, and dlen data bytes. */
static const char *raw_file(uint64_t hlen, const char *header, size_t dlen) {
    size_t len = strlen(header);
    unsigned char *buf = calloc(8 + len + dlen + 1, 1);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + 8, header, len);
    for (size_t i = 0; i < dlen; i++)
        buf[8 + len + i] = (unsigned char)i;
    const char *path = tmp_path("raw.safetensors");
    write_bytes(path, buf, 8 + len + dlen);
    free(buf);
    return path;
}

/* Opens a corrupt file: must fail, with an error containing `want` and naming the file. */
static void expect_error(const char *path, const char *want) {
    err[0] = '\0';
    qpo_st_file *f = qpo_st_open(path, err, sizeof(err));
    if (f || !strstr(err, want) || !strstr(err, path))
        fail_msg("expected an error containing '%s', got %s: '%s'", want, f ? "success" : "error",
                 err);
}

static void expect_header_error(const char *header, size_t dlen, const char *want) {
    expect_error(raw_file(strlen(header), header, dlen), want);
}

static int setup(void **state) {
    snprintf(dir, sizeof(dir), "/tmp/qpo_st_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.')
            unlink(tmp_path(e->d_name));
    if (d)
        closedir(d);
    return rmdir(dir);
}

/* ---- round trip ---- */

static qpo_st_writer *sample_writer(void) {
    static const float f32[6] = {1.5f, -2.0f, 0.0f, 3.25f, 1e-30f, -1e30f};
    static const uint16_t f16[3] = {0x3c00, 0xc000, 0x0001};  /* 1, -2, smallest subnormal */
    static const uint16_t bf16[3] = {0x3f80, 0xc040, 0x7f80}; /* 1, -3, +inf */
    static const int32_t i32[2] = {-5, 50256};
    static const int64_t i64[2] = {INT64_C(1) << 40, -1};
    static const uint8_t u8[3] = {0, 7, 255};
    const int64_t s23[2] = {2, 3}, s3[1] = {3}, s2[1] = {2}, s0[2] = {0, 5};
    qpo_st_writer *w = qpo_st_writer_new();
    assert_non_null(w);
    /* u8 first: the writer must still align the larger dtypes. */
    assert_int_equal(qpo_st_writer_add(w, "u8", QPO_ST_U8, 1, s3, u8), 0);
    assert_int_equal(qpo_st_writer_add(w, "h.f16", QPO_ST_F16, 1, s3, f16), 0);
    assert_int_equal(qpo_st_writer_add(w, "h.f32", QPO_ST_F32, 2, s23, f32), 0);
    assert_int_equal(qpo_st_writer_add_ref(w, "h.bf16", QPO_ST_BF16, 1, s3, bf16), 0);
    assert_int_equal(qpo_st_writer_add(w, "ids32", QPO_ST_I32, 1, s2, i32), 0);
    assert_int_equal(qpo_st_writer_add(w, "ids64", QPO_ST_I64, 1, s2, i64), 0);
    assert_int_equal(qpo_st_writer_add(w, "empty", QPO_ST_F32, 2, s0, NULL), 0);
    assert_int_equal(qpo_st_writer_add(w, "scalar", QPO_ST_F32, 0, NULL, &f32[3]), 0);
    assert_int_equal(qpo_st_writer_metadata(w, "config", "{\"n_layer\": 2}"), 0);
    assert_int_equal(qpo_st_writer_metadata(w, "note", "ünïcode"), 0);
    return w;
}

static void test_round_trip(void **state) {
    qpo_st_writer *w = sample_writer();
    const char *path = tmp_path("rt.safetensors");
    assert_int_equal(qpo_st_writer_write(w, path, err, sizeof(err)), 0);
    qpo_st_writer_free(w);

    qpo_st_file *f = qpo_st_open(path, err, sizeof(err));
    if (!f)
        fail_msg("%s", err);
    assert_int_equal(qpo_st_count(f), 8);
    for (size_t i = 0; i < qpo_st_count(f); i++) {
        const qpo_st_tensor *t = qpo_st_at(f, i);
        assert_ptr_equal(qpo_st_find(f, t->name), t);
        assert_int_equal((uintptr_t)t->data % qpo_st_dtype_size(t->dtype), 0);
    }
    assert_null(qpo_st_at(f, 8));
    assert_null(qpo_st_find(f, "missing"));
    assert_string_equal(qpo_st_metadata(f, "config"), "{\"n_layer\": 2}");
    assert_string_equal(qpo_st_metadata(f, "note"), "ünïcode");
    assert_null(qpo_st_metadata(f, "absent"));

    const qpo_st_tensor *t = qpo_st_find(f, "h.f32");
    assert_non_null(t);
    assert_int_equal(t->dtype, QPO_ST_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    float v[6];
    assert_int_equal(qpo_st_read_f32(t, v, 6, err, sizeof(err)), 0);
    assert_true(v[0] == 1.5f && v[4] == 1e-30f && v[5] == -1e30f);
    assert_int_equal(qpo_st_read_f32(t, v, 5, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "h.f32"));

    assert_int_equal(qpo_st_read_f32(qpo_st_find(f, "h.f16"), v, 3, err, sizeof(err)), 0);
    assert_true(v[0] == 1.0f && v[1] == -2.0f && v[2] == ldexpf(1.0f, -24));
    assert_int_equal(qpo_st_read_f32(qpo_st_find(f, "h.bf16"), v, 3, err, sizeof(err)), 0);
    assert_true(v[0] == 1.0f && v[1] == -3.0f && isinf(v[2]) && v[2] > 0);
    assert_int_equal(qpo_st_read_f32(qpo_st_find(f, "ids32"), v, 2, err, sizeof(err)), 0);
    assert_true(v[0] == -5.0f && v[1] == 50256.0f);
    assert_int_equal(qpo_st_read_f32(qpo_st_find(f, "ids64"), v, 2, err, sizeof(err)), 0);
    assert_true(v[0] == ldexpf(1.0f, 40) && v[1] == -1.0f);
    assert_int_equal(qpo_st_read_f32(qpo_st_find(f, "u8"), v, 3, err, sizeof(err)), 0);
    assert_true(v[2] == 255.0f);
    const qpo_st_tensor *s = qpo_st_find(f, "scalar");
    assert_int_equal(s->ndim, 0);
    assert_int_equal(qpo_st_numel(s), 1);
    assert_int_equal(qpo_st_read_f32(s, v, 1, err, sizeof(err)), 0);
    assert_true(v[0] == 3.25f);
    assert_int_equal(qpo_st_numel(qpo_st_find(f, "empty")), 0);
    assert_int_equal(qpo_st_find(f, "empty")->nbytes, 0);
    qpo_st_close(f);
}

static void test_write_replaces_atomically(void **state) {
    const char *path = tmp_path("atomic.safetensors");
    const int64_t s1[1] = {1};
    for (int round = 0; round < 2; round++) {
        float x = (float)round;
        qpo_st_writer *w = qpo_st_writer_new();
        assert_int_equal(qpo_st_writer_add(w, "x", QPO_ST_F32, 1, s1, &x), 0);
        assert_int_equal(qpo_st_writer_write(w, path, err, sizeof(err)), 0);
        qpo_st_writer_free(w);
    }
    qpo_st_file *f = qpo_st_open(path, err, sizeof(err));
    assert_non_null(f);
    float x;
    assert_int_equal(qpo_st_read_f32(qpo_st_find(f, "x"), &x, 1, err, sizeof(err)), 0);
    assert_true(x == 1.0f);
    qpo_st_close(f);
    /* No temporary file is left beside it. */
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)))
        assert_null(strstr(e->d_name, ".tmp"));
    closedir(d);
}

static void test_writer_rejects_bad_tensors(void **state) {
    const int64_t s1[1] = {1}, neg[1] = {-1};
    float x = 1.0f;
    const char *path = tmp_path("never.safetensors");
    const char *cases[][2] = {{"dup", "added twice"},
                              {"__metadata__", "not allowed"},
                              {"neg", "negative"},
                              {"", "not allowed"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        qpo_st_writer *w = qpo_st_writer_new();
        assert_int_equal(qpo_st_writer_add(w, "dup", QPO_ST_F32, 1, s1, &x), 0);
        int rc = strcmp(cases[i][0], "neg") == 0
                     ? qpo_st_writer_add(w, "neg", QPO_ST_F32, 1, neg, &x)
                     : qpo_st_writer_add(w, cases[i][0], QPO_ST_F32, 1, s1, &x);
        assert_int_equal(rc, -1);
        /* Later good adds do not clear the first error. */
        assert_int_equal(qpo_st_writer_add(w, "later", QPO_ST_F32, 1, s1, &x), 0);
        assert_int_equal(qpo_st_writer_write(w, path, err, sizeof(err)), -1);
        assert_non_null(strstr(err, cases[i][1]));
        qpo_st_writer_free(w);
        assert_int_equal(access(path, F_OK), -1);
    }
    qpo_st_writer *w = qpo_st_writer_new();
    assert_int_equal(qpo_st_writer_add(w, "ok", QPO_ST_F32, 1, s1, &x), 0);
    assert_int_equal(qpo_st_writer_add(w, "deep", QPO_ST_F32, QPO_ST_MAX_DIMS + 1, s1, &x), -1);
    qpo_st_writer_free(w);
    w = qpo_st_writer_new();
    assert_int_equal(qpo_st_writer_write(w, "/nonexistent-dir/x.safetensors", err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "/nonexistent-dir/x.safetensors"));
    qpo_st_writer_free(w);
}

/* ---- PyTorch fixtures ---- */

static void test_reads_pytorch_files(void **state) {
    qpo_st_file *f = qpo_st_open(QPO_ST_FIXTURES "/torch_mixed.safetensors", err, sizeof(err));
    if (!f)
        fail_msg("%s", err);
    assert_int_equal(qpo_st_count(f), 7);
    assert_non_null(strstr(qpo_st_metadata(f, "config"), "\"n_layer\": 2"));
    assert_string_equal(qpo_st_metadata(f, "format"), "pt");
    float m[12];
    assert_int_equal(qpo_st_read_f32(qpo_st_find(f, "f32.matrix"), m, 12, err, sizeof(err)), 0);
    for (int i = 0; i < 12; i++)
        assert_true(m[i] == (float)i * 0.25f - 1.0f);
    float bf[15], want[15];
    assert_int_equal(qpo_st_read_f32(qpo_st_find(f, "bf16.random"), bf, 15, err, sizeof(err)), 0);
    assert_int_equal(
        qpo_st_read_f32(qpo_st_find(f, "bf16.random.as_f32"), want, 15, err, sizeof(err)), 0);
    assert_memory_equal(bf, want, sizeof(bf));
    const qpo_st_tensor *ids = qpo_st_find(f, "i32.ids");
    assert_int_equal(ids->dtype, QPO_ST_I32);
    int32_t i32[6];
    memcpy(i32, ids->data, sizeof(i32));
    assert_int_equal(i32[2], 50256);
    assert_int_equal(i32[3], -7);
    assert_int_equal(i32[5], INT32_MAX);
    const qpo_st_tensor *i64 = qpo_st_find(f, "i64.ids");
    int64_t v64[3];
    memcpy(v64, i64->data, sizeof(v64));
    assert_true(v64[2] == (INT64_C(1) << 40) && v64[1] == -2);
    assert_int_equal(qpo_st_find(f, "f32.scalar")->ndim, 0);
    assert_int_equal(qpo_st_find(f, "f32.empty")->shape[0], 0);
    qpo_st_close(f);

    f = qpo_st_open(QPO_ST_FIXTURES "/torch_f16.safetensors", err, sizeof(err));
    if (!f)
        fail_msg("%s", err);
    float h[11], hw[11];
    assert_int_equal(qpo_st_read_f32(qpo_st_find(f, "f16.values"), h, 11, err, sizeof(err)), 0);
    assert_int_equal(qpo_st_read_f32(qpo_st_find(f, "f16.values.as_f32"), hw, 11, err, sizeof(err)),
                     0);
    assert_memory_equal(h, hw, sizeof(h));
    qpo_st_close(f);
}

static void test_f16_conversion_exhaustive(void **state) {
#ifdef __FLT16_MAX__
    for (uint32_t u = 0; u < 65536; u++) {
        uint16_t bits = (uint16_t)u;
        _Float16 h;
        memcpy(&h, &bits, 2);
        float want = (float)h, got = qpo_st_f16_to_f32(bits);
        if (isnan(want))
            assert_true(isnan(got));
        else
            assert_memory_equal(&got, &want, sizeof(float));
    }
#else
    skip();
#endif
}

/* ---- corruption: each a clear error ---- */

static void test_truncated_and_missing_files(void **state) {
    write_bytes(tmp_path("short"), "\x10\x00\x00", 3);
    expect_error(tmp_path("short"), "too short");
    write_bytes(tmp_path("empty"), "", 0);
    expect_error(tmp_path("empty"), "too short");
    expect_error(tmp_path("does-not-exist"), "cannot open");
    expect_error(dir, "not a regular file");

    /* A valid file cut inside its header, then inside its data. */
    qpo_st_writer *w = sample_writer();
    const char *path = tmp_path("full.safetensors");
    assert_int_equal(qpo_st_writer_write(w, path, err, sizeof(err)), 0);
    qpo_st_writer_free(w);
    size_t len;
    unsigned char *buf = read_bytes(path, &len);
    write_bytes(tmp_path("cut"), buf, 40);
    expect_error(tmp_path("cut"), "runs past the end of the file");
    write_bytes(tmp_path("cut"), buf, len - 1);
    expect_error(tmp_path("cut"), "past the end of the data section");
    free(buf);
}

static void test_bad_header_lengths(void **state) {
    expect_error(raw_file(1000, "{}", 0), "runs past the end of the file");
    expect_error(raw_file(UINT64_MAX, "{}", 0), "exceeds");
    expect_error(raw_file(UINT64_C(1) << 62, "{}", 0), "exceeds");
    expect_error(raw_file(0, "", 0), "too short");
    expect_error(raw_file(1, "{", 0), "too short");
    /* A length that stops short of the JSON's end cuts the JSON. */
    expect_error(raw_file(5, "{\"a\":1}", 0), "not valid JSON");
}

static void test_bad_json(void **state) {
    expect_header_error("{\"x\": {\"dtype\": \"F32\",", 0, "not valid JSON");
    expect_header_error("not json", 0, "not valid JSON");
    expect_header_error("{\"a\":{},\"a\":{}}", 0, "not valid JSON"); /* duplicate key */
    expect_header_error("[1, 2, 3]", 0, "not a JSON object");
    expect_header_error("\"string\"", 0, "not a JSON object");
    expect_header_error("{\"x\": 5}", 0, "'x': entry is not a JSON object");
}

static void test_bad_entries(void **state) {
    struct {
        const char *header;
        size_t dlen;
        const char *want;
    } cases[] = {
        {"{\"x\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", 16,
         "unknown or unsupported dtype 'F128'"},
        {"{\"x\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype missing"},
        {"{\"x\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype missing"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20,
         "needs 24 bytes but data_offsets span 20"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
         "shape[0] is not a non-negative integer"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
         "shape[0] is not a non-negative integer"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4,
         "shape is not an array"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         "9 dimensions"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],"
         "\"data_offsets\":[0,4]}}",
         4, "too large"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets is not an array"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
         "data_offsets is not an array"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
         "not non-negative integers"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4,
         "end before they begin"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 2,
         "past the end of the data section"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[9223372036854775800,"
         "9223372036854775804]}}",
         4, "past the end of the data section"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
         8, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         12, "gap of 4 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "gap of 4 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 6, "trailing bytes"},
        {"{}", 3, "trailing bytes"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ key 'k' is not a string"},
        {"{\"__metadata__\":[\"k\"]}", 0, "__metadata__ is not a JSON object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_header_error(cases[i].header, cases[i].dlen, cases[i].want);
}

static void test_header_padding_and_empty_file(void **state) {
    const char *path = raw_file(10, "{}        ", 0); /* padded with spaces, no tensors */
    qpo_st_file *f = qpo_st_open(path, err, sizeof(err));
    if (!f)
        fail_msg("%s", err);
    assert_int_equal(qpo_st_count(f), 0);
    qpo_st_close(f);
}

/* ---- seeded corruption fuzz ---- */

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t next_rand(void) { /* xorshift64: fixed seed, same cases every run */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void check_opened(qpo_st_file *f) {
    /* Whatever opened must be readable end to end. */
    for (size_t i = 0; i < qpo_st_count(f); i++) {
        const qpo_st_tensor *t = qpo_st_at(f, i);
        size_t n = qpo_st_numel(t);
        float *dst = malloc((n ? n : 1) * sizeof(float));
        assert_non_null(dst);
        assert_int_equal(qpo_st_read_f32(t, dst, n, err, sizeof(err)), 0);
        free(dst);
    }
}

static void test_corruption_fuzz(void **state) {
    qpo_st_writer *w = sample_writer();
    const char *path = tmp_path("fuzz.safetensors");
    assert_int_equal(qpo_st_writer_write(w, path, err, sizeof(err)), 0);
    qpo_st_writer_free(w);
    size_t len;
    unsigned char *good = read_bytes(path, &len);
    unsigned char *buf = malloc(len);
    int opened = 0, failed = 0;
    for (int iter = 0; iter < 4000; iter++) {
        memcpy(buf, good, len);
        size_t n = len;
        int kind = (int)(next_rand() % 4);
        if (kind == 0) {
            n = (size_t)(next_rand() % len);
        } else {
            int flips = 1 + (int)(next_rand() % 4);
            for (int k = 0; k < flips; k++) {
                /* Mostly the length prefix and header, where structure lives. */
                size_t at = kind == 1 ? next_rand() % 8 : next_rand() % len;
                buf[at] =
                    kind == 3 ? (unsigned char)next_rand() : buf[at] ^ (1u << (next_rand() % 8));
            }
        }
        /* The buffer reader gets an exact-size copy so ASan sees any overread. */
        unsigned char *exact = malloc(n ? n : 1);
        memcpy(exact, buf, n);
        err[0] = '\0';
        qpo_st_file *f = qpo_st_open_buffer(exact, n, "fuzz", err, sizeof(err));
        free(exact);
        if (f) {
            opened++;
            check_opened(f);
            qpo_st_close(f);
        } else {
            failed++;
            assert_true(strncmp(err, "fuzz: ", 6) == 0 && strlen(err) > 8);
        }
        if (iter % 50 == 0) { /* and through a real file now and then */
            write_bytes(tmp_path("fuzzed"), buf, n);
            f = qpo_st_open(tmp_path("fuzzed"), err, sizeof(err));
            if (f) {
                check_opened(f);
                qpo_st_close(f);
            }
        }
    }
    print_message("fuzz: %d opened, %d refused\n", opened, failed);
    assert_true(failed > 0);
    free(buf);
    free(good);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_write_replaces_atomically),
        cmocka_unit_test(test_writer_rejects_bad_tensors),
        cmocka_unit_test(test_reads_pytorch_files),
        cmocka_unit_test(test_f16_conversion_exhaustive),
        cmocka_unit_test(test_truncated_and_missing_files),
        cmocka_unit_test(test_bad_header_lengths),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_bad_entries),
        cmocka_unit_test(test_header_padding_and_empty_file),
        cmocka_unit_test(test_corruption_fuzz),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
