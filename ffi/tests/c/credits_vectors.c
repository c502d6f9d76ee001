/*
 * Runs every case of tests/vectors/credits.json through the C ABI: a credit monitor
 * (llmr_credit_monitor_*) fed with bodies parsed by llmr_credits_parse_key / _parse_credits,
 * snapshot and restore, the parsers alone, and llmr_credits_suggest_max_tokens. Steps are
 * compared as the core runner does: numbers within a relative 1e-9, objects by the fields the
 * expectation names (message_contains / message_excludes test "message"), arrays element by
 * element. Then a few abuse cases and a redaction check (a FAKE key fed as a label and as an
 * error message never comes back). Everything it allocates is freed, so that AddressSanitizer
 * and valgrind can report any leak or bad access in the library.
 *
 * Usage: credits_vectors <vectors-dir>
 * Prints "[c] credits vectors: N passed, M failed" and exits 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_resilience.h"
#include "vectors_common.h"

#define FAKE_KEY "sk-or-v1-FAKE-not-a-real-key-0123456789abcdef-0123456789abcdef"

/* The credits matching rule (see the file comment); an absent field is null. */
static int credits_match(const cJSON *expect, const cJSON *got) {
    if (cJSON_IsNumber(expect)) {
        if (!cJSON_IsNumber(got)) return 0;
        double e = expect->valuedouble, g = got->valuedouble;
        return fabs(e - g) <= 1e-9 * fmax(fabs(e), 1.0);
    }
    if (cJSON_IsObject(expect)) {
        if (!cJSON_IsObject(got)) return 0;
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(got, "message");
        const char *message = cJSON_IsString(m) ? m->valuestring : "";
        const cJSON *field;
        cJSON_ArrayForEach(field, expect) {
            int contains = strcmp(field->string, "message_contains") == 0;
            if (contains || strcmp(field->string, "message_excludes") == 0) {
                const cJSON *s;
                cJSON_ArrayForEach(s, field) {
                    if (cJSON_IsString(s) && (strstr(message, s->valuestring) != NULL) != contains)
                        return 0;
                }
                continue;
            }
            const cJSON *g = cJSON_GetObjectItemCaseSensitive(got, field->string);
            if (!g && cJSON_IsNull(field)) continue;
            if (!credits_match(field, g)) return 0;
        }
        return 1;
    }
    if (cJSON_IsArray(expect)) {
        if (!cJSON_IsArray(got) || cJSON_GetArraySize(expect) != cJSON_GetArraySize(got)) return 0;
        const cJSON *g = got->child;
        const cJSON *e;
        cJSON_ArrayForEach(e, expect) {
            if (!credits_match(e, g)) return 0;
            g = g->next;
        }
        return 1;
    }
    if (cJSON_IsNull(expect) && got == NULL) return 1;
    return got != NULL && cJSON_Compare(expect, got, 1);
}

/* Parses `body` with `parser`: the parsed JSON, or the error JSON, as a new cJSON. */
static cJSON *parse_body(LlmrResult (*parser)(const char *, size_t, char **, char **),
                         const char *body, LlmrResult *r) {
    char *out = NULL, *error = NULL;
    *r = parser(body, strlen(body), &out, &error);
    cJSON *got = cJSON_Parse(*r == LLMR_OK ? out : (error ? error : "null"));
    llmr_string_free(out);
    llmr_string_free(error);
    return got;
}

/* Runs one case; returns 1 when every step matched (a failure is printed). */
static int run_case(const cJSON *c) {
    const char *name = str_of(c, "name");
    char *config = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "config"));
    LlmrCreditMonitor *m = NULL;
    char *error = NULL;
    LlmrResult r = llmr_credit_monitor_new(config, strlen(config), &m, &error);
    cJSON_free(config);
    if (r != LLMR_OK) {
        printf("[c] FAIL credits: %s: new: %s: %s\n", name, llmr_result_name(r), error ? error : "");
        llmr_string_free(error);
        return 0;
    }
    int ok = 1;
    int i = -1;
    const cJSON *step;
    cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(c, "steps")) {
        i++;
        const char *op = str_of(step, "op");
        cJSON *got = NULL;
        r = LLMR_OK;
        if (strcmp(op, "observe") == 0) {
            cJSON *snapshot = cJSON_CreateObject();
            const char *parts[2] = {"key", "credits"};
            for (int p = 0; p < 2 && r == LLMR_OK; p++) {
                const cJSON *body = cJSON_GetObjectItemCaseSensitive(step, parts[p]);
                if (!body || cJSON_IsNull(body)) continue;
                char *text = cJSON_PrintUnformatted(body);
                cJSON *parsed = parse_body(p == 0 ? llmr_credits_parse_key : llmr_credits_parse_credits,
                                           text, &r);
                cJSON_free(text);
                cJSON_AddItemToObject(snapshot, parts[p], parsed ? parsed : cJSON_CreateNull());
            }
            char *text = cJSON_PrintUnformatted(snapshot);
            cJSON_Delete(snapshot);
            const cJSON *wall = cJSON_GetObjectItemCaseSensitive(step, "wall_clock_ms");
            char *alerts = NULL, *status = NULL;
            if (r == LLMR_OK) {
                r = llmr_credit_monitor_observe(m, text, strlen(text), u64_of(step, "now_ms"),
                                                cJSON_IsNumber(wall), u64_of(step, "wall_clock_ms"),
                                                &alerts, NULL);
            }
            if (r == LLMR_OK) r = llmr_credit_monitor_status(m, &status);
            cJSON_free(text);
            if (r == LLMR_OK) {
                got = cJSON_CreateObject();
                cJSON_AddItemToObject(got, "alerts", cJSON_Parse(alerts));
                cJSON_AddItemToObject(got, "status", cJSON_Parse(status));
            }
            llmr_string_free(alerts);
            llmr_string_free(status);
        } else if (strcmp(op, "snapshot_restore") == 0) {
            char *json = NULL;
            LlmrCreditMonitor *again = NULL;
            r = llmr_credit_monitor_snapshot(m, &json);
            if (r == LLMR_OK) r = llmr_credit_monitor_restore(json, strlen(json), &again, NULL);
            llmr_string_free(json);
            if (r == LLMR_OK) {
                llmr_credit_monitor_free(m);
                m = again;
                continue;
            }
        } else if (strcmp(op, "parse_key") == 0 || strcmp(op, "parse_credits") == 0) {
            LlmrResult pr;
            got = parse_body(op[6] == 'k' ? llmr_credits_parse_key : llmr_credits_parse_credits,
                             str_of(step, "body"), &pr);
            if (pr != LLMR_OK && pr != LLMR_INVALID_RESPONSE) r = pr;
        } else if (strcmp(op, "afford") == 0) {
            const char *text = str_of(step, "text");
            LlmrAffordable a;
            r = llmr_credits_suggest_max_tokens(text, strlen(text), &a);
            if (r == LLMR_OK && !a.found) {
                got = cJSON_CreateNull();
            } else if (r == LLMR_OK) {
                got = cJSON_CreateObject();
                if (a.has_requested_tokens)
                    cJSON_AddNumberToObject(got, "requested_tokens", (double)a.requested_tokens);
                else
                    cJSON_AddNullToObject(got, "requested_tokens");
                cJSON_AddNumberToObject(got, "affordable_tokens", (double)a.affordable_tokens);
                if (a.has_suggested_max_tokens)
                    cJSON_AddNumberToObject(got, "suggested_max_tokens", (double)a.suggested_max_tokens);
                else
                    cJSON_AddNullToObject(got, "suggested_max_tokens");
            }
        } else if (strcmp(op, "new") == 0) {
            char *cfg = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(step, "config"));
            LlmrCreditMonitor *made = NULL;
            char *problems = NULL;
            LlmrResult nr = llmr_credit_monitor_new(cfg, strlen(cfg), &made, &problems);
            cJSON_free(cfg);
            got = cJSON_CreateObject();
            if (nr == LLMR_OK) {
                cJSON_AddTrueToObject(got, "ok");
            } else if (nr == LLMR_INVALID_CONFIG) {
                /* The library joins the problems with "; ". */
                int n = problems ? 1 : 0;
                for (const char *p = problems; p && (p = strstr(p, "; ")) != NULL; p += 2) n++;
                cJSON_AddStringToObject(got, "error", "config");
                cJSON_AddNumberToObject(got, "problems", n);
            } else {
                r = nr;
            }
            llmr_credit_monitor_free(made);
            llmr_string_free(problems);
        } else {
            printf("[c] FAIL credits: %s: step %d: unknown op %s\n", name, i, op);
            ok = 0;
            break;
        }
        const cJSON *expect = cJSON_GetObjectItemCaseSensitive(step, "expect");
        if (r != LLMR_OK || !credits_match(expect, got)) {
            char *text = got ? cJSON_PrintUnformatted(got) : NULL;
            printf("[c] FAIL credits: %s: step %d (%s): %s: %s\n", name, i, op, llmr_result_name(r),
                   text ? text : "(nothing)");
            cJSON_free(text);
            cJSON_Delete(got);
            ok = 0;
            break;
        }
        cJSON_Delete(got);
    }
    llmr_credit_monitor_free(m);
    return ok;
}

static int abuse_passed, abuse_failed;
#define ABUSE(cond, what)                                                   \
    do {                                                                    \
        if (cond) {                                                         \
            abuse_passed++;                                                 \
        } else {                                                            \
            abuse_failed++;                                                 \
            printf("[c] FAIL credits abuse: %s (line %d)\n", what, __LINE__); \
        }                                                                   \
    } while (0)

static void run_abuse(void) {
    LlmrCreditMonitor *m = NULL;
    char *error = NULL, *out = NULL;
    ABUSE(llmr_credit_monitor_new(NULL, 0, &m, &error) == LLMR_NULL_PARAMETER && !m && !error,
          "NULL config");
    ABUSE(llmr_credit_monitor_new("{", 1, &m, &error) == LLMR_INVALID_CONFIG && !m && error,
          "bad JSON config");
    llmr_string_free(error);
    error = NULL;
    ABUSE(llmr_credit_monitor_new("{\"x\":\xff}", 6, &m, &error) == LLMR_INVALID_CONFIG && error &&
              strstr(error, "UTF-8"),
          "bad UTF-8 config");
    llmr_string_free(error);
    error = NULL;
    ABUSE(llmr_credit_monitor_new("{}", 2, &m, NULL) == LLMR_OK && m, "default config");
    ABUSE(llmr_credit_monitor_observe(NULL, "{}", 2, 0, false, 0, &out, NULL) == LLMR_NULL_PARAMETER,
          "observe NULL monitor");
    ABUSE(llmr_credit_monitor_observe(m, "{}", 2, 0, false, 0, NULL, NULL) == LLMR_NULL_PARAMETER,
          "observe NULL out");
    ABUSE(llmr_credit_monitor_observe(m, "[", 1, 0, false, 0, &out, &error) == LLMR_INVALID_CONFIG &&
              !out && error,
          "observe bad JSON");
    llmr_string_free(error);
    error = NULL;
    const char *snap = "{\"credits\":{\"total_credits\":10,\"total_usage\":9.5},"
                       "\"key\":{\"label\":\"" FAKE_KEY "\",\"limit_remaining\":100}}";
    ABUSE(llmr_credit_monitor_observe(m, snap, strlen(snap), 0, false, 0, &out, NULL) == LLMR_OK &&
              out && strstr(out, "balance-critical") && !strstr(out, FAKE_KEY),
          "alert with a FAKE key label is redacted");
    llmr_string_free(out);
    out = NULL;
    ABUSE(llmr_credit_monitor_snapshot(m, &out) == LLMR_OK && out && !strstr(out, FAKE_KEY),
          "snapshot holds no key");
    llmr_string_free(out);
    out = NULL;
    ABUSE(llmr_credit_monitor_status(m, NULL) == LLMR_NULL_PARAMETER, "status NULL out");
    const char *api = "{\"error\":{\"code\":401,\"message\":\"No auth: Bearer " FAKE_KEY "\"}}";
    ABUSE(llmr_credits_parse_key(api, strlen(api), &out, &error) == LLMR_INVALID_RESPONSE && !out &&
              error && strstr(error, "\"api\"") && !strstr(error, FAKE_KEY),
          "API error redacted");
    llmr_string_free(error);
    error = NULL;
    const char *label = "{\"data\":{\"label\":\"" FAKE_KEY "\"}}";
    ABUSE(llmr_credits_parse_key(label, strlen(label), &out, &error) == LLMR_OK && out &&
              !strstr(out, FAKE_KEY),
          "label redacted");
    llmr_string_free(out);
    out = NULL;
    ABUSE(llmr_credits_parse_key("{\xff}", 3, &out, &error) == LLMR_INVALID_UTF8 && !out && !error,
          "bad UTF-8 body");
    ABUSE(llmr_credits_parse_credits(NULL, 5, &out, &error) == LLMR_NULL_PARAMETER, "NULL body");
    ABUSE(llmr_credits_parse_credits("{}", (size_t)-1, &out, &error) == LLMR_INPUT_TOO_LARGE,
          "negative length");
    LlmrAffordable a;
    ABUSE(llmr_credits_suggest_max_tokens(NULL, 0, &a) == LLMR_OK && !a.found, "empty text");
    ABUSE(llmr_credits_suggest_max_tokens("x", 1, NULL) == LLMR_NULL_PARAMETER, "NULL out");
    llmr_credit_monitor_free(m);
    llmr_credit_monitor_free(NULL);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <vectors-dir>\n", argv[0]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/credits.json", argv[1]);
    char *text = read_file(path);
    cJSON *file = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(file, "cases");
    if (!cJSON_IsArray(cases) || cJSON_GetArraySize(cases) == 0) {
        printf("[c] FAIL cannot read the cases of %s\n", path);
        cJSON_Delete(file);
        return 1;
    }
    int passed = 0, failed = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        if (run_case(c)) passed++;
        else failed++;
    }
    cJSON_Delete(file);
    run_abuse();
    printf("[c] credits abuse cases: %d passed, %d failed\n", abuse_passed, abuse_failed);
    printf("[c] credits vectors: %d passed, %d failed\n", passed, failed);
    return failed || abuse_failed ? 1 : 0;
}
