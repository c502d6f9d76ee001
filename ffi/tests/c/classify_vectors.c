/*
 * Runs every case of tests/vectors/classify*.json through llmr_classify and compares the
 * result per the schema in tests/vectors/README.md, then runs abuse cases (NULL pointers,
 * invalid UTF-8, absurd sizes, double free). Everything it allocates is freed, so that
 * AddressSanitizer and valgrind can report any leak or bad access in the library.
 *
 * Usage: classify_vectors <vectors-dir>
 * Prints "[c] classify vectors: N passed, M failed" and exits 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <cjson/cJSON.h>
#include <glob.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_resilience.h"
#include "vectors_common.h"

/* Declared here, not in the header: the version-named link check symbol (see the header). */
extern const char *llmr_version_0_1_0(void);

/* The name this surface uses in a case's "skip" object. */
#define SURFACE "c"

static int failed_checks; /* failures inside the current case */

__attribute__((format(printf, 3, 4))) static void failf(const char *file, const char *name, const char *fmt, ...) {
    va_list ap;
    fprintf(stdout, "[c] FAIL %s: %s: ", file, name);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    failed_checks++;
}

/* A JSON number that is a whole, non-negative integer below 2^53 (exact in a double). */
static int as_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (d < 0 || d > 9007199254740992.0 || d != (double)(uint64_t)d) return 0;
    *out = (uint64_t)d;
    return 1;
}

/* Compares an optional number: expect null = absent, a number = present and equal. */
static void check_opt_u64(const char *file, const char *name, const cJSON *expect,
                          const char *field, bool has, uint64_t got) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(expect, field);
    if (!e) return; /* not asserted */
    if (cJSON_IsNull(e)) {
        if (has) failf(file, name, "%s: expected absent, got %" PRIu64, field, got);
        return;
    }
    uint64_t want;
    if (!as_u64(e, &want)) {
        failf(file, name, "%s: expectation is not a whole number", field);
    } else if (!has) {
        failf(file, name, "%s: expected %" PRIu64 ", got absent", field, want);
    } else if (got != want) {
        failf(file, name, "%s: expected %" PRIu64 ", got %" PRIu64, field, want, got);
    }
}

/* Compares an optional string: expect null = NULL, a string = equal text. */
static void check_opt_str(const char *file, const char *name, const cJSON *expect,
                          const char *field, const char *got) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(expect, field);
    if (!e) return;
    if (cJSON_IsNull(e)) {
        if (got) failf(file, name, "%s: expected absent, got \"%s\"", field, got);
        return;
    }
    if (!cJSON_IsString(e)) {
        failf(file, name, "%s: expectation is not a string or null", field);
    } else if (!got) {
        failf(file, name, "%s: expected \"%s\", got absent", field, e->valuestring);
    } else if (strcmp(got, e->valuestring) != 0) {
        failf(file, name, "%s: expected \"%s\", got \"%s\"", field, e->valuestring, got);
    }
}

static void check_substrings(const char *file, const char *name, const cJSON *expect,
                             const char *field, const char *message, int must_contain) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(expect, field);
    if (!list) return;
    if (!cJSON_IsArray(list)) {
        failf(file, name, "%s: expectation is not an array", field);
        return;
    }
    const cJSON *s;
    cJSON_ArrayForEach(s, list) {
        if (!cJSON_IsString(s)) {
            failf(file, name, "%s: entry is not a string", field);
        } else if ((strstr(message, s->valuestring) != NULL) != must_contain) {
            failf(file, name, "message %s \"%s\": \"%s\"",
                  must_contain ? "lacks" : "contains", s->valuestring, message);
        }
    }
}

/* Counts the headers of an input ("headers": {name: value or [values]}). */
static size_t count_headers(const cJSON *headers) {
    size_t n = 0;
    const cJSON *h;
    cJSON_ArrayForEach(h, headers) { n += cJSON_IsArray(h) ? (size_t)cJSON_GetArraySize(h) : 1; }
    return n;
}

static void set_header(LlmrHeader *slot, const char *name, const char *value) {
    slot->name = name;
    slot->name_len = strlen(name);
    slot->value = value;
    slot->value_len = strlen(value);
}

/* Runs one case; returns 1 when it passed. */
static int run_case(const char *file, const cJSON *c) {
    const cJSON *name_j = cJSON_GetObjectItemCaseSensitive(c, "name");
    const char *name = cJSON_IsString(name_j) ? name_j->valuestring : "(unnamed)";
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(c, "input");
    const cJSON *expect = cJSON_GetObjectItemCaseSensitive(c, "expect");
    failed_checks = 0;
    if (!cJSON_IsObject(expect)) {
        failf(file, name, "no \"expect\" object");
        return 0;
    }

    LlmrClassifyInput in;
    memset(&in, 0, sizeof in);
    LlmrHeader *headers = NULL;

    const cJSON *status = cJSON_GetObjectItemCaseSensitive(input, "status");
    uint64_t status_value;
    if (status && !cJSON_IsNull(status)) {
        if (!as_u64(status, &status_value) || status_value > 65535) {
            failf(file, name, "input.status is not an HTTP status");
            return 0;
        }
        in.has_status = true;
        in.status = (uint16_t)status_value;
    }

    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(input, "headers");
    if (hs && !cJSON_IsNull(hs)) {
        if (!cJSON_IsObject(hs)) {
            failf(file, name, "input.headers is not an object");
            return 0;
        }
        size_t n = count_headers(hs);
        headers = calloc(n ? n : 1, sizeof *headers);
        if (!headers) {
            failf(file, name, "out of memory");
            return 0;
        }
        size_t i = 0;
        const cJSON *h;
        cJSON_ArrayForEach(h, hs) {
            if (cJSON_IsString(h)) {
                set_header(&headers[i++], h->string, h->valuestring);
                continue;
            }
            const cJSON *v;
            int ok = cJSON_IsArray(h);
            cJSON_ArrayForEach(v, h) {
                if (!cJSON_IsString(v)) ok = 0;
                else set_header(&headers[i++], h->string, v->valuestring);
            }
            if (!ok) {
                failf(file, name, "input.headers[\"%s\"] is not a string", h->string);
                free(headers);
                return 0;
            }
        }
        in.headers = headers;
        in.headers_len = i;
    }

    const cJSON *body = cJSON_GetObjectItemCaseSensitive(input, "body");
    if (cJSON_IsString(body)) {
        in.body = (const uint8_t *)body->valuestring;
        in.body_len = strlen(body->valuestring);
    }
    const cJSON *transport = cJSON_GetObjectItemCaseSensitive(input, "transport");
    if (cJSON_IsString(transport)) {
        in.transport = transport->valuestring;
        in.transport_len = strlen(transport->valuestring);
    }
    const cJSON *wall = cJSON_GetObjectItemCaseSensitive(input, "wall_clock_ms");
    if (wall && !cJSON_IsNull(wall)) {
        if (!as_u64(wall, &in.wall_clock_ms)) {
            failf(file, name, "input.wall_clock_ms is not a whole number");
            free(headers);
            return 0;
        }
        in.has_wall_clock_ms = true;
    }

    LlmrClassification out;
    LlmrResult r = llmr_classify(&in, &out);
    free(headers);
    if (r != LLMR_OK) {
        failf(file, name, "llmr_classify returned %s", llmr_result_name(r));
        return 0;
    }

    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(expect, "kind");
    const char *got_kind = llmr_error_kind_name(out.kind);
    if (!cJSON_IsString(kind)) failf(file, name, "expect.kind is missing");
    else if (strcmp(kind->valuestring, got_kind) != 0)
        failf(file, name, "kind: expected %s, got %s", kind->valuestring, got_kind);
    const cJSON *retryable = cJSON_GetObjectItemCaseSensitive(expect, "retryable");
    if (!cJSON_IsBool(retryable)) failf(file, name, "expect.retryable is missing");
    else if (cJSON_IsTrue(retryable) != out.retryable)
        failf(file, name, "retryable: expected %s, got %s",
              cJSON_IsTrue(retryable) ? "true" : "false", out.retryable ? "true" : "false");
    check_opt_u64(file, name, expect, "retry_after_ms", out.has_retry_after_ms, out.retry_after_ms);
    check_opt_u64(file, name, expect, "limit_tokens", out.has_limit_tokens, out.limit_tokens);
    check_opt_u64(file, name, expect, "requested_tokens", out.has_requested_tokens,
                  out.requested_tokens);
    check_opt_str(file, name, expect, "provider", out.provider);
    check_opt_str(file, name, expect, "code", out.code);
    check_opt_str(file, name, expect, "error_type", out.error_type);
    if (!out.message) {
        failf(file, name, "message is NULL after LLMR_OK");
    } else {
        check_substrings(file, name, expect, "message_contains", out.message, 1);
        check_substrings(file, name, expect, "message_excludes", out.message, 0);
    }
    llmr_classification_free(&out);
    return failed_checks == 0;
}

/* ---- abuse cases: the library's own contract, independent of the classifier ---- */

static int abuse_passed, abuse_failed;

#define EXPECT(cond, what)                                         \
    do {                                                           \
        if (cond) {                                                \
            abuse_passed++;                                        \
        } else {                                                   \
            abuse_failed++;                                        \
            printf("[c] FAIL abuse: %s (line %d)\n", what, __LINE__); \
        }                                                          \
    } while (0)

static int is_zeroed(const LlmrClassification *c) {
    return c->kind == 0 && !c->retryable && !c->has_retry_after_ms && c->retry_after_ms == 0 &&
           !c->has_limit_tokens && c->limit_tokens == 0 && !c->has_requested_tokens &&
           c->requested_tokens == 0 && !c->provider && !c->code && !c->error_type && !c->message;
}

/* Fills `out` with garbage (as uninitialised stack memory would be) and classifies. */
static LlmrResult classify_dirty(const LlmrClassifyInput *in, LlmrClassification *out) {
    memset(out, 0xA5, sizeof *out);
    return llmr_classify(in, out);
}

static void run_abuse(void) {
    LlmrClassification out;
    LlmrClassifyInput in;
    memset(&in, 0, sizeof in);

    EXPECT(classify_dirty(NULL, &out) == LLMR_NULL_PARAMETER, "NULL input is LLMR_NULL_PARAMETER");
    EXPECT(is_zeroed(&out), "NULL input leaves out zeroed");
    EXPECT(llmr_classify(&in, NULL) == LLMR_NULL_PARAMETER, "NULL out is LLMR_NULL_PARAMETER");
    EXPECT(llmr_classify(NULL, NULL) == LLMR_NULL_PARAMETER, "NULL both is LLMR_NULL_PARAMETER");

    /* A NULL pointer with a length. */
    in.body_len = 10;
    EXPECT(classify_dirty(&in, &out) == LLMR_NULL_PARAMETER, "NULL body with length");
    EXPECT(is_zeroed(&out), "NULL body leaves out zeroed");
    in.body_len = 0;

    /* Invalid UTF-8 in a header name, a header value, the transport message. */
    LlmrHeader bad = {"x-bad\xff", 6, "1", 1};
    in.headers = &bad;
    in.headers_len = 1;
    EXPECT(classify_dirty(&in, &out) == LLMR_INVALID_UTF8, "invalid UTF-8 header name");
    EXPECT(is_zeroed(&out), "invalid UTF-8 leaves out zeroed");
    LlmrHeader bad_value = {"retry-after", 11, "\xc3\x28", 2};
    in.headers = &bad_value;
    EXPECT(classify_dirty(&in, &out) == LLMR_INVALID_UTF8, "invalid UTF-8 header value");
    in.headers = NULL;
    in.headers_len = 0;
    in.transport = "connection reset \xfe";
    in.transport_len = strlen(in.transport);
    EXPECT(classify_dirty(&in, &out) == LLMR_INVALID_UTF8, "invalid UTF-8 transport");
    EXPECT(is_zeroed(&out), "invalid transport leaves out zeroed");
    in.transport = NULL;
    in.transport_len = 0;

    /* Absurd sizes: one header too many (a real array), a body length of SIZE_MAX. */
    size_t too_many = LLMR_LIMIT_HEADERS + 1;
    LlmrHeader *many = calloc(too_many, sizeof *many);
    if (many) {
        for (size_t i = 0; i < too_many; i++) set_header(&many[i], "x-filler", "1");
        in.headers = many;
        in.headers_len = too_many;
        EXPECT(classify_dirty(&in, &out) == LLMR_INPUT_TOO_LARGE, "too many headers");
        EXPECT(is_zeroed(&out), "too many headers leaves out zeroed");
        in.headers_len = LLMR_LIMIT_HEADERS;
        EXPECT(classify_dirty(&in, &out) == LLMR_OK, "exactly LLMR_LIMIT_HEADERS headers is fine");
        llmr_classification_free(&out);
        free(many);
    } else {
        EXPECT(0, "calloc for the header array");
    }
    in.headers = NULL;
    in.headers_len = 0;
    in.body = (const uint8_t *)"x";
    in.body_len = SIZE_MAX;
    EXPECT(classify_dirty(&in, &out) == LLMR_INPUT_TOO_LARGE, "body length SIZE_MAX");
    EXPECT(is_zeroed(&out), "huge body leaves out zeroed");

    /* A binary body (NUL, invalid UTF-8) is fine; free twice, free zeroed, free NULL. */
    static const uint8_t binary[] = {0x00, 0xff, 0xfe, '{', 0x00, '}'};
    in.has_status = true;
    in.status = 500;
    in.body = binary;
    in.body_len = sizeof binary;
    EXPECT(classify_dirty(&in, &out) == LLMR_OK, "binary body is LLMR_OK");
    EXPECT(out.message != NULL, "message is never NULL after LLMR_OK");
    EXPECT(out.kind <= LLMR_ERROR_KIND_UNKNOWN, "kind is a valid LlmrErrorKind");
    llmr_classification_free(&out);
    EXPECT(!out.provider && !out.code && !out.error_type && !out.message, "free nulls the strings");
    llmr_classification_free(&out); /* second free: must do nothing */
    LlmrClassification zero;
    memset(&zero, 0, sizeof zero);
    llmr_classification_free(&zero);
    llmr_classification_free(NULL);
    EXPECT(1, "free twice, free zeroed, free NULL");

    /* An empty transport message is present, not absent; no input at all is fine too. */
    memset(&in, 0, sizeof in);
    in.transport = "";
    EXPECT(classify_dirty(&in, &out) == LLMR_OK, "empty transport message");
    llmr_classification_free(&out);
    memset(&in, 0, sizeof in);
    EXPECT(classify_dirty(&in, &out) == LLMR_OK, "empty input");
    llmr_classification_free(&out);

    /* Names and versions. */
    static const char *const kinds[] = {"auth", "quota-exhausted", "moderation", "rate-limited",
                                        "timeout", "context-overflow", "invalid-request",
                                        "not-found", "overloaded", "unavailable", "server-error",
                                        "network", "unknown"};
    int names_ok = 1;
    for (uint32_t k = 0; k < 13; k++) names_ok &= strcmp(llmr_error_kind_name(k), kinds[k]) == 0;
    EXPECT(names_ok, "llmr_error_kind_name for every kind");
    EXPECT(LLMR_ERROR_KIND_UNKNOWN == 12, "LLMR_ERROR_KIND_UNKNOWN is 12");
    EXPECT(strcmp(llmr_error_kind_name(13), "invalid") == 0, "out-of-range kind is \"invalid\"");
    EXPECT(strcmp(llmr_result_name(LLMR_OK), "ok") == 0, "llmr_result_name(LLMR_OK)");
    EXPECT(strcmp(llmr_result_name(LLMR_INVALID_UTF8), "invalid-utf8") == 0,
           "llmr_result_name(LLMR_INVALID_UTF8)");
    EXPECT(strcmp(llmr_result_name(4000), "invalid-result") == 0, "out-of-range result name");
    EXPECT(strcmp(llmr_version(), "0.1.0") == 0, "llmr_version is 0.1.0");
    EXPECT(llmr_version_0_1_0() == llmr_version(), "llmr_version_0_1_0 is llmr_version");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <vectors-dir>\n", argv[0]);
        return 2;
    }
    char pattern[4096];
    snprintf(pattern, sizeof pattern, "%s/classify*.json", argv[1]);
    glob_t files;
    int g = glob(pattern, 0, NULL, &files);
    size_t nfiles = g == 0 ? files.gl_pathc : 0;

    int passed = 0, failed = 0, skipped = 0;
    for (size_t f = 0; f < nfiles; f++) {
        const char *path = files.gl_pathv[f];
        const char *file = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        char *text = read_file(path);
        cJSON *doc = text ? cJSON_Parse(text) : NULL;
        free(text);
        const cJSON *cases = cJSON_GetObjectItemCaseSensitive(doc, "cases");
        if (!cJSON_IsArray(cases)) {
            printf("[c] FAIL %s: not a vector file (no \"cases\" array)\n", file);
            failed++;
            cJSON_Delete(doc);
            continue;
        }
        const cJSON *c;
        cJSON_ArrayForEach(c, cases) {
            const cJSON *skip = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(c, "skip"), SURFACE);
            if (skip) {
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(c, "name");
                printf("[c] skip %s: %s: %s\n", file, cJSON_IsString(n) ? n->valuestring : "?",
                       cJSON_IsString(skip) ? skip->valuestring : "(no reason)");
                skipped++;
                continue;
            }
            if (run_case(file, c)) passed++;
            else failed++;
        }
        cJSON_Delete(doc);
    }
    if (g == 0) globfree(&files);

    run_abuse();
    printf("[c] abuse cases: %d passed, %d failed\n", abuse_passed, abuse_failed);
    if (skipped) printf("[c] classify vectors: %d skipped by the vector files\n", skipped);
    printf("[c] classify vectors: %d passed, %d failed\n", passed, failed);
    if (passed + failed == 0) {
        printf("[c] FAIL no classify vectors found in %s\n", argv[1]);
        return 1;
    }
    return failed || abuse_failed ? 1 : 0;
}
