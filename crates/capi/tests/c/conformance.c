/*
 * conformance.c: the shared numeric conformance cases, run through the C library.
 *
 * tests/c_program.rs writes the cases of the conformance manifest (tests/conformance/cases.json,
 * read by every harness), resolved, into a line-based text file, compiles this program
 * against libferroserve.a and libferroserve.so, and runs it:
 *
 *     conformance CASES_FILE [MAX_CASES]
 *
 * For each case it loads the model through the C API, predicts, compares every expected value
 * with its tolerance and prints one line. It also checks the error paths (statuses and
 * messages), and predictions from several threads on one shared model. It exits with 1 if
 * anything did not match. C99 and POSIX threads; no other library.
 *
 * The cases file, one directive a line (tokens separated by single spaces):
 *
 *     case NAME
 *     model file|bytes FORMAT|- PATH-TO-END-OF-LINE
 *     threads N                      run the case on N threads at once too
 *     errors                         check the input error paths on this case's model
 *     input NAME|@INDEX DATATYPE RANK DIMS... COUNT VALUES...
 *     outputs N                      the number of outputs
 *     expect INDEX NAME num|str ABS REL STRIDE OFFSET RANK|-1 DIMS... COUNT VALUES...
 *     end
 *
 * An input named @INDEX takes the name of the model's input INDEX (read with
 * ferroserve_model_input). An expectation compares element INDEX*STRIDE+OFFSET of the output
 * with value INDEX, |got - want| <= ABS + REL * |want| (NaN matches NaN only); `str` values
 * are BYTES elements, hex-encoded after an `x`.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferroserve.h"

#define MAX_INPUTS 8
#define MAX_EXPECTS 8
#define MAX_RANK 8
#define MAX_CASES 512
#define THREAD_ITERATIONS 10

typedef struct {
    const char *name; /* NULL: the model's input number `index` */
    size_t index;
    FerroserveDataType datatype;
    size_t rank;
    int64_t shape[MAX_RANK];
    size_t count;
    unsigned char *data;
    size_t byte_size;
} Input;

typedef struct {
    size_t index;
    const char *name;
    int strings;
    double abs_tol, rel_tol;
    size_t stride, offset;
    long rank; /* -1: the shape is not checked */
    int64_t shape[MAX_RANK];
    size_t count;
    double *numbers;
    unsigned char **texts;
    size_t *text_lengths;
} Expect;

typedef struct {
    const char *name;
    int from_bytes;
    const char *format; /* NULL: the library decides */
    const char *path;
    int threads;
    int errors;
    long outputs; /* -1: not checked */
    size_t n_inputs;
    Input inputs[MAX_INPUTS];
    size_t n_expects;
    Expect expects[MAX_EXPECTS];
} Case;

static int failures = 0;
static int checks = 0;

/* Records a failure of `what` and prints why. */
static void fail(const char *what, const char *format, ...) {
    va_list args;
    failures++;
    printf("FAIL %s: ", what);
    va_start(args, format);
    vprintf(format, args);
    va_end(args);
    printf("\n");
    fflush(stdout);
}

static void *checked_malloc(size_t size) {
    void *p = malloc(size == 0 ? 1 : size);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- reading the cases file ------------------------------------------------------------- */

static void die(size_t line, const char *message) {
    fprintf(stderr, "cases file, line %lu: %s\n", (unsigned long)line, message);
    exit(2);
}

/* The next space-separated token of the line at *cursor, NUL-terminated in place. */
static char *token(char **cursor, size_t line) {
    char *start = *cursor;
    char *end;
    while (*start == ' ') start++;
    if (*start == '\0') die(line, "a token is missing");
    end = start;
    while (*end != ' ' && *end != '\0') end++;
    if (*end == ' ') *end++ = '\0';
    *cursor = end;
    return start;
}

static double number_token(char **cursor, size_t line) {
    char *t = token(cursor, line);
    char *end;
    double v = strtod(t, &end);
    if (*end != '\0') die(line, "not a number");
    return v;
}

static long integer_token(char **cursor, size_t line) {
    char *t = token(cursor, line);
    char *end;
    long v = strtol(t, &end, 10);
    if (*end != '\0') die(line, "not an integer");
    return v;
}

static size_t size_token(char **cursor, size_t line) {
    long v = integer_token(cursor, line);
    if (v < 0) die(line, "a negative count");
    return (size_t)v;
}

static FerroserveDataType datatype_named(const char *name, size_t line) {
    static const char *names[] = {"BOOL",  "UINT8", "UINT16", "UINT32", "UINT64",
                                  "INT8",  "INT16", "INT32",  "INT64",  "FP16",
                                  "BF16",  "FP32",  "FP64",   "BYTES"};
    int i;
    for (i = 0; i < 14; i++) {
        if (strcmp(names[i], name) == 0) return (FerroserveDataType)i;
    }
    die(line, "unknown datatype");
    return FERROSERVE_DATA_TYPE_BYTES;
}

/* Bytes per element; 0 for BYTES. */
static size_t element_size(FerroserveDataType datatype) {
    switch (datatype) {
    case FERROSERVE_DATA_TYPE_BOOL:
    case FERROSERVE_DATA_TYPE_UINT8:
    case FERROSERVE_DATA_TYPE_INT8:
        return 1;
    case FERROSERVE_DATA_TYPE_UINT16:
    case FERROSERVE_DATA_TYPE_INT16:
    case FERROSERVE_DATA_TYPE_FP16:
    case FERROSERVE_DATA_TYPE_BF16:
        return 2;
    case FERROSERVE_DATA_TYPE_UINT32:
    case FERROSERVE_DATA_TYPE_INT32:
    case FERROSERVE_DATA_TYPE_FP32:
        return 4;
    case FERROSERVE_DATA_TYPE_UINT64:
    case FERROSERVE_DATA_TYPE_INT64:
    case FERROSERVE_DATA_TYPE_FP64:
        return 8;
    default:
        return 0;
    }
}

/* Stores `v` as element `i` of `data`, of `datatype` (the numeric types the cases use). */
static void store(unsigned char *data, size_t i, FerroserveDataType datatype, double v,
                  size_t line) {
    switch (datatype) {
    case FERROSERVE_DATA_TYPE_FP32: {
        float f = (float)v;
        memcpy(data + 4 * i, &f, 4);
        break;
    }
    case FERROSERVE_DATA_TYPE_FP64:
        memcpy(data + 8 * i, &v, 8);
        break;
    case FERROSERVE_DATA_TYPE_INT32: {
        int32_t x = (int32_t)v;
        memcpy(data + 4 * i, &x, 4);
        break;
    }
    case FERROSERVE_DATA_TYPE_INT64: {
        int64_t x = (int64_t)v;
        memcpy(data + 8 * i, &x, 8);
        break;
    }
    default:
        die(line, "inputs of this datatype are not supported by the test program");
    }
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static void parse_shape(char **cursor, size_t line, size_t rank, int64_t *shape) {
    size_t d;
    if (rank > MAX_RANK) die(line, "rank too large");
    for (d = 0; d < rank; d++) shape[d] = (int64_t)integer_token(cursor, line);
}

static void parse_input(Case *c, char *rest, size_t line) {
    Input *in;
    char *name;
    size_t i, size;
    if (c->n_inputs == MAX_INPUTS) die(line, "too many inputs");
    in = &c->inputs[c->n_inputs++];
    name = token(&rest, line);
    if (name[0] == '@') {
        in->name = NULL;
        in->index = (size_t)strtoul(name + 1, NULL, 10);
    } else {
        in->name = name;
    }
    in->datatype = datatype_named(token(&rest, line), line);
    in->rank = size_token(&rest, line);
    parse_shape(&rest, line, in->rank, in->shape);
    in->count = size_token(&rest, line);
    size = element_size(in->datatype);
    in->byte_size = in->count * size;
    in->data = checked_malloc(in->byte_size);
    for (i = 0; i < in->count; i++) store(in->data, i, in->datatype, number_token(&rest, line), line);
}

static void parse_expect(Case *c, char *rest, size_t line) {
    Expect *e;
    const char *kind;
    size_t i;
    if (c->n_expects == MAX_EXPECTS) die(line, "too many expectations");
    e = &c->expects[c->n_expects++];
    e->index = size_token(&rest, line);
    e->name = token(&rest, line);
    kind = token(&rest, line);
    e->strings = strcmp(kind, "str") == 0;
    if (!e->strings && strcmp(kind, "num") != 0) die(line, "expected num or str");
    e->abs_tol = number_token(&rest, line);
    e->rel_tol = number_token(&rest, line);
    e->stride = size_token(&rest, line);
    e->offset = size_token(&rest, line);
    if (e->stride == 0 || e->offset >= e->stride) die(line, "bad stride or offset");
    e->rank = integer_token(&rest, line);
    if (e->rank >= 0) parse_shape(&rest, line, (size_t)e->rank, e->shape);
    e->count = size_token(&rest, line);
    if (e->strings) {
        e->texts = checked_malloc(e->count * sizeof *e->texts);
        e->text_lengths = checked_malloc(e->count * sizeof *e->text_lengths);
        for (i = 0; i < e->count; i++) {
            char *t = token(&rest, line);
            size_t n = strlen(t), j;
            if (t[0] != 'x' || n % 2 != 1) die(line, "a string value is x then hex digits");
            e->text_lengths[i] = (n - 1) / 2;
            e->texts[i] = checked_malloc(e->text_lengths[i]);
            for (j = 0; j < e->text_lengths[i]; j++) {
                int hi = hex_digit(t[1 + 2 * j]), lo = hex_digit(t[2 + 2 * j]);
                if (hi < 0 || lo < 0) die(line, "bad hex digit");
                e->texts[i][j] = (unsigned char)(hi * 16 + lo);
            }
        }
    } else {
        e->numbers = checked_malloc(e->count * sizeof *e->numbers);
        for (i = 0; i < e->count; i++) e->numbers[i] = number_token(&rest, line);
    }
}

/* Reads the whole file at `path` (NUL-terminated); NULL if it cannot. */
static unsigned char *read_file(const char *path, size_t *length) {
    FILE *f = fopen(path, "rb");
    unsigned char *buffer;
    long size;
    if (f == NULL) return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    buffer = checked_malloc((size_t)size + 1);
    if (fread(buffer, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        free(buffer);
        return NULL;
    }
    fclose(f);
    buffer[size] = '\0';
    *length = (size_t)size;
    return buffer;
}

/* Parses the cases file into `cases` (its strings point into the file's buffer). */
static size_t parse_cases(char *text, Case *cases) {
    size_t n = 0, line = 0;
    Case *c = NULL;
    char *next = text;
    while (next != NULL && *next != '\0') {
        char *rest = next, *word;
        char *newline = strchr(next, '\n');
        line++;
        if (newline != NULL) {
            *newline = '\0';
            next = newline + 1;
        } else {
            next = NULL;
        }
        if (*rest == '\0') continue;
        word = token(&rest, line);
        if (strcmp(word, "case") == 0) {
            if (n == MAX_CASES) die(line, "too many cases");
            c = &cases[n++];
            memset(c, 0, sizeof *c);
            c->name = token(&rest, line);
            c->outputs = -1;
            continue;
        }
        if (c == NULL) die(line, "a directive before the first case");
        if (strcmp(word, "model") == 0) {
            const char *loader = token(&rest, line);
            const char *format = token(&rest, line);
            c->from_bytes = strcmp(loader, "bytes") == 0;
            c->format = strcmp(format, "-") == 0 ? NULL : format;
            while (*rest == ' ') rest++;
            c->path = rest;
        } else if (strcmp(word, "threads") == 0) {
            c->threads = (int)integer_token(&rest, line);
        } else if (strcmp(word, "errors") == 0) {
            c->errors = 1;
        } else if (strcmp(word, "input") == 0) {
            parse_input(c, rest, line);
        } else if (strcmp(word, "outputs") == 0) {
            c->outputs = integer_token(&rest, line);
        } else if (strcmp(word, "expect") == 0) {
            parse_expect(c, rest, line);
        } else if (strcmp(word, "end") == 0) {
            c = NULL;
        } else {
            die(line, "unknown directive");
        }
    }
    return n;
}

/* ---- reading outputs -------------------------------------------------------------------- */

static double half_to_double(uint16_t h) {
    int exponent = (h >> 10) & 0x1f;
    int mantissa = h & 0x3ff;
    double sign = (h & 0x8000) ? -1.0 : 1.0;
    if (exponent == 0) return sign * ldexp(mantissa, -24);
    if (exponent == 31) return mantissa ? NAN : sign * INFINITY;
    return sign * ldexp(mantissa + 1024, exponent - 25);
}

/* Element `i` of numeric tensor `t` as a double (memcpy: no assumption about alignment). */
static double element(const FerroserveTensor *t, size_t i) {
    const unsigned char *p = t->data;
    switch (t->datatype) {
    case FERROSERVE_DATA_TYPE_BOOL:
    case FERROSERVE_DATA_TYPE_UINT8:
        return p[i];
    case FERROSERVE_DATA_TYPE_INT8:
        return (int8_t)p[i];
#define READ(type)                                                                           \
    {                                                                                        \
        type v;                                                                              \
        memcpy(&v, p + i * sizeof v, sizeof v);                                              \
        return (double)v;                                                                    \
    }
    case FERROSERVE_DATA_TYPE_UINT16: READ(uint16_t)
    case FERROSERVE_DATA_TYPE_UINT32: READ(uint32_t)
    case FERROSERVE_DATA_TYPE_UINT64: READ(uint64_t)
    case FERROSERVE_DATA_TYPE_INT16: READ(int16_t)
    case FERROSERVE_DATA_TYPE_INT32: READ(int32_t)
    case FERROSERVE_DATA_TYPE_INT64: READ(int64_t)
    case FERROSERVE_DATA_TYPE_FP32: READ(float)
    case FERROSERVE_DATA_TYPE_FP64: READ(double)
#undef READ
    case FERROSERVE_DATA_TYPE_FP16: {
        uint16_t bits;
        memcpy(&bits, p + 2 * i, 2);
        return half_to_double(bits);
    }
    case FERROSERVE_DATA_TYPE_BF16: {
        uint16_t bits;
        uint32_t wide;
        float f;
        memcpy(&bits, p + 2 * i, 2);
        wide = (uint32_t)bits << 16;
        memcpy(&f, &wide, 4);
        return f;
    }
    default:
        return NAN;
    }
}

static size_t element_count(const FerroserveTensor *t) {
    size_t n = 1, d;
    for (d = 0; d < t->rank; d++) n *= (size_t)t->shape[d];
    return n;
}

static uint32_t read_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void shape_text(const int64_t *shape, size_t rank, char *out, size_t size) {
    size_t d, used = 0;
    used += (size_t)snprintf(out, size, "[");
    for (d = 0; d < rank && used < size; d++)
        used += (size_t)snprintf(out + used, size - used, d ? ", %lld" : "%lld",
                                 (long long)shape[d]);
    if (used < size) snprintf(out + used, size - used, "]");
}

/* Compares output `e->index` of `outputs` with expectation `e`; returns the values compared. */
static size_t check_expect(const Case *c, const FerroserveOutputs *outputs, const Expect *e) {
    FerroserveTensor t, found;
    FerroserveStatus status;
    size_t i, n, shown = 0;
    char what[256];
    snprintf(what, sizeof what, "%s output %lu '%s'", c->name, (unsigned long)e->index, e->name);
    status = ferroserve_outputs_get(outputs, e->index, &t);
    if (status != FERROSERVE_STATUS_OK) {
        fail(what, "ferroserve_outputs_get: %s: %s", ferroserve_status_name(status),
             ferroserve_last_error());
        return 0;
    }
    if (strcmp(t.name, e->name) != 0) {
        fail(what, "is called '%s'", t.name);
        return 0;
    }
    status = ferroserve_outputs_find(outputs, e->name, &found);
    if (status != FERROSERVE_STATUS_OK || found.data != t.data || found.rank != t.rank) {
        fail(what, "ferroserve_outputs_find does not find it: %s", ferroserve_last_error());
    }
    if (e->rank >= 0) {
        int same = (size_t)e->rank == t.rank;
        for (i = 0; same && i < t.rank; i++) same = t.shape[i] == e->shape[i];
        if (!same) {
            char got[128], want[128];
            shape_text(t.shape, t.rank, got, sizeof got);
            shape_text(e->shape, (size_t)e->rank, want, sizeof want);
            fail(what, "shape %s, expected %s", got, want);
        }
    }
    n = element_count(&t);
    if (n != e->count * e->stride) {
        fail(what, "%lu elements, expected %lu", (unsigned long)n,
             (unsigned long)(e->count * e->stride));
        return 0;
    }
    if (e->strings) {
        size_t at = 0;
        if (t.datatype != FERROSERVE_DATA_TYPE_BYTES) {
            fail(what, "datatype %d, expected BYTES", (int)t.datatype);
            return 0;
        }
        for (i = 0; i < n; i++) {
            uint32_t length;
            const unsigned char *p = (const unsigned char *)t.data + at;
            if (at + 4 > t.byte_size || at + 4 + read_le32(p) > t.byte_size) {
                fail(what, "the V2 BYTES layout ends early at element %lu", (unsigned long)i);
                return 0;
            }
            length = read_le32(p);
            if (i % e->stride == e->offset) {
                size_t k = i / e->stride;
                if (length != e->text_lengths[k] || memcmp(p + 4, e->texts[k], length) != 0) {
                    if (shown++ < 5)
                        fail(what, "element %lu is '%.*s', expected '%.*s'", (unsigned long)i,
                             (int)length, (const char *)(p + 4), (int)e->text_lengths[k],
                             (const char *)e->texts[k]);
                }
            }
            at += 4 + length;
        }
        if (at != t.byte_size) fail(what, "%lu bytes left after the last element",
                                    (unsigned long)(t.byte_size - at));
        return e->count;
    }
    if (t.datatype == FERROSERVE_DATA_TYPE_BYTES || t.byte_size != n * element_size(t.datatype)) {
        fail(what, "datatype %d with byte_size %lu for %lu elements", (int)t.datatype,
             (unsigned long)t.byte_size, (unsigned long)n);
        return 0;
    }
    for (i = 0; i < e->count; i++) {
        double got = element(&t, i * e->stride + e->offset), want = e->numbers[i];
        int ok = isnan(want) ? isnan(got) : fabs(got - want) <= e->abs_tol + e->rel_tol * fabs(want);
        if (!ok && shown++ < 5)
            fail(what, "[%lu] = %.17g, expected %.17g (tolerance %g + %g relative)",
                 (unsigned long)(i * e->stride + e->offset), got, want, e->abs_tol, e->rel_tol);
    }
    return e->count;
}

/* ---- several threads on one model ------------------------------------------------------- */

typedef struct {
    const FerroserveModel *model;
    const FerroserveTensor *inputs;
    size_t n_inputs;
    const FerroserveOutputs *reference;
    int mismatches;
    char message[512];
} Worker;

/* Predicts THREAD_ITERATIONS times and compares every output with the reference, bit for bit. */
static void *worker_run(void *arg) {
    Worker *w = arg;
    int iteration;
    for (iteration = 0; iteration < THREAD_ITERATIONS; iteration++) {
        FerroserveOutputs *outputs = NULL;
        size_t i, n;
        FerroserveStatus status = ferroserve_model_predict(w->model, w->inputs, w->n_inputs, &outputs);
        if (status != FERROSERVE_STATUS_OK) {
            w->mismatches++;
            snprintf(w->message, sizeof w->message, "predict: %s: %s",
                     ferroserve_status_name(status), ferroserve_last_error());
            return NULL;
        }
        n = ferroserve_outputs_count(outputs);
        if (n != ferroserve_outputs_count(w->reference)) {
            w->mismatches++;
            snprintf(w->message, sizeof w->message, "%lu outputs", (unsigned long)n);
        }
        for (i = 0; i < n; i++) {
            FerroserveTensor got, want;
            if (ferroserve_outputs_get(outputs, i, &got) != FERROSERVE_STATUS_OK ||
                ferroserve_outputs_get(w->reference, i, &want) != FERROSERVE_STATUS_OK ||
                strcmp(got.name, want.name) != 0 || got.rank != want.rank ||
                got.byte_size != want.byte_size ||
                memcmp(got.shape, want.shape, got.rank * sizeof *got.shape) != 0 ||
                memcmp(got.data, want.data, got.byte_size) != 0) {
                w->mismatches++;
                snprintf(w->message, sizeof w->message, "output %lu differs from the reference",
                         (unsigned long)i);
            }
        }
        ferroserve_outputs_free(outputs);
    }
    return NULL;
}

static void check_threads(const Case *c, const FerroserveModel *model,
                          const FerroserveTensor *inputs, const FerroserveOutputs *reference) {
    pthread_t threads[16];
    Worker workers[16];
    int i, n = c->threads > 16 ? 16 : c->threads;
    char what[256];
    snprintf(what, sizeof what, "%s on %d threads", c->name, n);
    for (i = 0; i < n; i++) {
        memset(&workers[i], 0, sizeof workers[i]);
        workers[i].model = model;
        workers[i].inputs = inputs;
        workers[i].n_inputs = c->n_inputs;
        workers[i].reference = reference;
        if (pthread_create(&threads[i], NULL, worker_run, &workers[i]) != 0) {
            fail(what, "pthread_create failed");
            n = i;
            break;
        }
    }
    for (i = 0; i < n; i++) {
        pthread_join(threads[i], NULL);
        checks++;
        if (workers[i].mismatches) fail(what, "thread %d: %s", i, workers[i].message);
    }
}

/* ---- error paths ------------------------------------------------------------------------ */

/* Checks that a call returned `want` and left a last-error message containing `needle`. */
static void expect_status(const char *what, FerroserveStatus got, FerroserveStatus want,
                          const char *needle) {
    const char *message = ferroserve_last_error();
    checks++;
    if (got != want) {
        fail(what, "status %s, expected %s (%s)", ferroserve_status_name(got),
             ferroserve_status_name(want), message ? message : "(NULL)");
    } else if (message == NULL || message[0] == '\0') {
        fail(what, "ferroserve_last_error() is empty after %s", ferroserve_status_name(got));
    } else if (needle != NULL && strstr(message, needle) == NULL) {
        fail(what, "the message does not mention '%s': %s", needle, message);
    }
}

static void check_input_errors(const Case *c, const FerroserveModel *model,
                               const FerroserveTensor *inputs, const FerroserveOutputs *outputs) {
    FerroserveTensor bad[MAX_INPUTS + 1], spec;
    FerroserveOutputs *out = NULL;
    int64_t shape[MAX_RANK];
    const char *name = inputs[0].name;
    size_t n = c->n_inputs, d;
    FerroserveStatus status;
    char what[256];

#define PREDICT(count) (out = NULL, ferroserve_model_predict(model, bad, (count), &out))
#define RESET() memcpy(bad, inputs, n * sizeof *bad)
    snprintf(what, sizeof what, "%s errors", c->name);

    RESET();
    bad[0].name = "no_such_input";
    expect_status("an unknown input name", PREDICT(n), FERROSERVE_STATUS_INVALID_INPUT,
                  "no_such_input");
    if (out != NULL) fail(what, "*out is not NULL after a failed predict");

    RESET();
    bad[0].byte_size -= element_size(bad[0].datatype);
    expect_status("one element short", PREDICT(n), FERROSERVE_STATUS_INVALID_INPUT, name);

    RESET();
    for (d = 0; d < bad[0].rank; d++) shape[d] = bad[0].shape[d];
    shape[0] = -shape[0];
    bad[0].shape = shape;
    expect_status("a negative dimension", PREDICT(n), FERROSERVE_STATUS_INVALID_INPUT, name);

    RESET();
    shape[0] = (int64_t)(bad[0].byte_size / element_size(bad[0].datatype));
    bad[0].shape = shape;
    bad[0].rank = 1;
    expect_status("the wrong rank", PREDICT(n), FERROSERVE_STATUS_INVALID_INPUT, name);

    RESET();
    bad[0].datatype = FERROSERVE_DATA_TYPE_INT32;
    expect_status("the wrong datatype", PREDICT(n), FERROSERVE_STATUS_INVALID_INPUT, name);

    RESET();
    bad[0].datatype = (FerroserveDataType)99;
    expect_status("an unknown datatype code", PREDICT(n), FERROSERVE_STATUS_INVALID_ARGUMENT,
                  "99");

    RESET();
    bad[0].data = NULL;
    expect_status("NULL data", PREDICT(n), FERROSERVE_STATUS_INVALID_ARGUMENT, name);

    RESET();
    bad[0].name = NULL;
    expect_status("a NULL input name", PREDICT(n), FERROSERVE_STATUS_INVALID_ARGUMENT, "name");

    RESET();
    expect_status("no inputs", PREDICT(0), FERROSERVE_STATUS_INVALID_INPUT, name);

    RESET();
    bad[n] = bad[0];
    expect_status("an input given twice", PREDICT(n + 1), FERROSERVE_STATUS_INVALID_INPUT, name);

    RESET();
    expect_status("a NULL model",
                  ferroserve_model_predict(NULL, bad, n, &out), FERROSERVE_STATUS_INVALID_ARGUMENT,
                  "model");
    expect_status("NULL inputs", ferroserve_model_predict(model, NULL, 1, &out),
                  FERROSERVE_STATUS_INVALID_ARGUMENT, "inputs");
    expect_status("a NULL out", ferroserve_model_predict(model, bad, n, NULL),
                  FERROSERVE_STATUS_INVALID_ARGUMENT, "out");
    expect_status("an input index out of range", ferroserve_model_input(model, 99, &spec),
                  FERROSERVE_STATUS_INVALID_ARGUMENT, "99");
    expect_status("a NULL spec out", ferroserve_model_input(model, 0, NULL),
                  FERROSERVE_STATUS_INVALID_ARGUMENT, "out");
    expect_status("an output index out of range",
                  ferroserve_outputs_get(outputs, 99, &spec), FERROSERVE_STATUS_INVALID_ARGUMENT,
                  "99");
    expect_status("an unknown output name", ferroserve_outputs_find(outputs, "nope", &spec),
                  FERROSERVE_STATUS_INVALID_ARGUMENT, "nope");
    expect_status("a NULL output name", ferroserve_outputs_find(outputs, NULL, &spec),
                  FERROSERVE_STATUS_INVALID_ARGUMENT, "name");
    expect_status("NULL outputs", ferroserve_outputs_get(NULL, 0, &spec),
                  FERROSERVE_STATUS_INVALID_ARGUMENT, "outputs");

    /* The model still works after all that. */
    RESET();
    status = PREDICT(n);
    checks++;
    if (status != FERROSERVE_STATUS_OK) fail(what, "predict after the errors: %s", ferroserve_last_error());
    ferroserve_outputs_free(out);
#undef PREDICT
#undef RESET
}

/* Copies this thread's last-error message (at most 255 bytes) into `arg`. */
static void *read_last_error(void *arg) {
    const char *message = ferroserve_last_error();
    snprintf(arg, 256, "%s", message != NULL ? message : "");
    return NULL;
}

/* The error paths that need no case: loading garbage, NULL arguments, thread-local messages. */
static void check_general_errors(const char *some_model_path) {
    /* Not NULL, so that a failed load is seen to reset it (it is never dereferenced). */
    FerroserveModel *model = (FerroserveModel *)&model;
    static const char garbage[] = "this is not a model";
    const uint8_t *bytes = (const uint8_t *)garbage;
    size_t length = 0;
    unsigned char *real;
    pthread_t thread;
    char other[256] = "unset";

    checks++;
    if (ferroserve_version() == NULL || ferroserve_version()[0] == '\0') fail("version", "empty");
    if (strcmp(ferroserve_status_name(FERROSERVE_STATUS_INVALID_INPUT), "INVALID_INPUT") != 0)
        fail("status names", "%s", ferroserve_status_name(FERROSERVE_STATUS_INVALID_INPUT));

    expect_status("garbage bytes", ferroserve_model_load(bytes, sizeof garbage, NULL, &model),
                  FERROSERVE_STATUS_LOAD_FAILED, "format");
    if (model != NULL) fail("garbage bytes", "*out is not NULL after a failed load");
    expect_status("garbage read as ONNX",
                  ferroserve_model_load(bytes, sizeof garbage, "onnx", &model),
                  FERROSERVE_STATUS_LOAD_FAILED, "onnx");
    expect_status("garbage read as LightGBM",
                  ferroserve_model_load(bytes, sizeof garbage, "lightgbm", &model),
                  FERROSERVE_STATUS_LOAD_FAILED, "lightgbm");
    real = read_file(some_model_path, &length);
    if (real == NULL) {
        fail("truncated model", "cannot read %s", some_model_path);
    } else {
        expect_status("a truncated model", ferroserve_model_load(real, length / 2, NULL, &model),
                      FERROSERVE_STATUS_LOAD_FAILED, NULL);
        free(real);
    }
    expect_status("an unknown format", ferroserve_model_load(bytes, sizeof garbage, "pickle", &model),
                  FERROSERVE_STATUS_INVALID_ARGUMENT, "pickle");
    expect_status("a format that is not UTF-8",
                  ferroserve_model_load(bytes, sizeof garbage, "\xff\xfe", &model),
                  FERROSERVE_STATUS_INVALID_ARGUMENT, "UTF-8");
    expect_status("NULL bytes", ferroserve_model_load(NULL, 10, NULL, &model),
                  FERROSERVE_STATUS_INVALID_ARGUMENT, "bytes");
    expect_status("a NULL out", ferroserve_model_load(bytes, sizeof garbage, NULL, NULL),
                  FERROSERVE_STATUS_INVALID_ARGUMENT, "out");
    expect_status("a NULL path", ferroserve_model_load_file(NULL, NULL, &model),
                  FERROSERVE_STATUS_INVALID_ARGUMENT, "path");
    expect_status("a missing file",
                  ferroserve_model_load_file("/nonexistent/ferroserve/model.onnx", NULL, &model),
                  FERROSERVE_STATUS_LOAD_FAILED, "/nonexistent/ferroserve/model.onnx");

    /* NULL handles: no crash, nothing counted. */
    ferroserve_model_free(NULL);
    ferroserve_outputs_free(NULL);
    checks++;
    if (ferroserve_model_input_count(NULL) != 0 || ferroserve_model_output_count(NULL) != 0 ||
        ferroserve_outputs_count(NULL) != 0 || ferroserve_model_format(NULL) != NULL ||
        ferroserve_model_engine(NULL) != NULL)
        fail("NULL handles", "a count is not 0 or a name not NULL");

    /* The message is per thread: a fresh thread has none. */
    checks++;
    if (pthread_create(&thread, NULL, read_last_error, other) != 0) {
        fail("thread-local last error", "pthread_create failed");
    } else {
        pthread_join(thread, NULL);
        if (other[0] != '\0')
            fail("thread-local last error", "another thread sees '%s'", other);
        if (ferroserve_last_error()[0] == '\0')
            fail("thread-local last error", "this thread's message is gone");
    }
}

/* ---- one case --------------------------------------------------------------------------- */

static void run_case(const Case *c) {
    FerroserveModel *model = NULL;
    FerroserveOutputs *outputs = NULL;
    FerroserveTensor inputs[MAX_INPUTS + 1];
    FerroserveStatus status;
    size_t i, values = 0, n_outputs;
    int failures_before = failures;

    checks++;
    if (c->from_bytes) {
        size_t length = 0;
        unsigned char *bytes = read_file(c->path, &length);
        if (bytes == NULL) {
            fail(c->name, "cannot read %s", c->path);
            return;
        }
        status = ferroserve_model_load(bytes, length, c->format, &model);
        free(bytes); /* the model keeps no reference to the bytes */
    } else {
        status = ferroserve_model_load_file(c->path, c->format, &model);
    }
    if (status != FERROSERVE_STATUS_OK) {
        fail(c->name, "load: %s: %s", ferroserve_status_name(status), ferroserve_last_error());
        return;
    }
    if (ferroserve_model_engine(model) == NULL || ferroserve_model_format(model) == NULL)
        fail(c->name, "no engine or format");

    for (i = 0; i < c->n_inputs; i++) {
        const Input *in = &c->inputs[i];
        FerroserveTensor spec;
        size_t d;
        inputs[i].name = in->name;
        if (in->name == NULL) {
            status = ferroserve_model_input(model, in->index, &spec);
            if (status != FERROSERVE_STATUS_OK) {
                fail(c->name, "ferroserve_model_input(%lu): %s", (unsigned long)in->index,
                     ferroserve_last_error());
                ferroserve_model_free(model);
                return;
            }
            inputs[i].name = spec.name;
            if (spec.datatype != in->datatype || spec.rank != in->rank || spec.data != NULL)
                fail(c->name, "input '%s' is described as datatype %d rank %lu", spec.name,
                     (int)spec.datatype, (unsigned long)spec.rank);
            for (d = 0; d < spec.rank && d < in->rank; d++)
                if (spec.shape[d] != -1 && spec.shape[d] != in->shape[d])
                    fail(c->name, "input '%s' dimension %lu is %lld", spec.name, (unsigned long)d,
                         (long long)spec.shape[d]);
        }
        inputs[i].datatype = in->datatype;
        inputs[i].shape = in->shape;
        inputs[i].rank = in->rank;
        inputs[i].data = in->data;
        inputs[i].byte_size = in->byte_size;
    }

    status = ferroserve_model_predict(model, inputs, c->n_inputs, &outputs);
    if (status != FERROSERVE_STATUS_OK) {
        fail(c->name, "predict: %s: %s", ferroserve_status_name(status), ferroserve_last_error());
        ferroserve_model_free(model);
        return;
    }
    n_outputs = ferroserve_outputs_count(outputs);
    if (n_outputs != ferroserve_model_output_count(model))
        fail(c->name, "%lu outputs, the model describes %lu", (unsigned long)n_outputs,
             (unsigned long)ferroserve_model_output_count(model));
    if (c->outputs >= 0 && n_outputs != (size_t)c->outputs)
        fail(c->name, "%lu outputs, expected %ld", (unsigned long)n_outputs, c->outputs);
    for (i = 0; i < n_outputs; i++) {
        FerroserveTensor described, got;
        if (ferroserve_model_output(model, i, &described) != FERROSERVE_STATUS_OK ||
            ferroserve_outputs_get(outputs, i, &got) != FERROSERVE_STATUS_OK ||
            strcmp(described.name, got.name) != 0 || described.datatype != got.datatype ||
            described.rank != got.rank)
            fail(c->name, "output %lu does not match its description", (unsigned long)i);
    }
    for (i = 0; i < c->n_expects; i++) values += check_expect(c, outputs, &c->expects[i]);

    if (c->threads > 0) check_threads(c, model, inputs, outputs);
    if (c->errors) check_input_errors(c, model, inputs, outputs);

    /* Outputs stay valid after their model is freed. */
    ferroserve_model_free(model);
    if (c->n_expects > 0) {
        FerroserveTensor t;
        if (ferroserve_outputs_get(outputs, c->expects[0].index, &t) != FERROSERVE_STATUS_OK ||
            strcmp(t.name, c->expects[0].name) != 0)
            fail(c->name, "the outputs did not outlive the model");
    }
    ferroserve_outputs_free(outputs);
    if (failures == failures_before)
        printf("ok   %-48s %lu values%s%s\n", c->name, (unsigned long)values,
               c->threads > 0 ? ", threads" : "", c->errors ? ", errors" : "");
    fflush(stdout);
}

int main(int argc, char **argv) {
    static Case cases[MAX_CASES];
    size_t n, i, limit, length = 0;
    char *text;
    if (argc < 2) {
        fprintf(stderr, "usage: %s CASES_FILE [MAX_CASES]\n", argv[0]);
        return 2;
    }
    text = (char *)read_file(argv[1], &length);
    if (text == NULL) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 2;
    }
    n = parse_cases(text, cases);
    limit = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : n;
    if (limit > n) limit = n;
    if (n == 0) {
        fprintf(stderr, "no cases in %s\n", argv[1]);
        return 2;
    }
    printf("ferroserve %s: %lu of %lu cases\n", ferroserve_version(), (unsigned long)limit,
           (unsigned long)n);
    check_general_errors(cases[0].path);
    for (i = 0; i < limit; i++) run_case(&cases[i]);
    printf("%lu cases, %d checks, %d failures\n", (unsigned long)limit, checks, failures);
    return failures == 0 ? 0 : 1;
}
