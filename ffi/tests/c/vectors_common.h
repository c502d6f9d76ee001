/*
 * Helpers shared by the C vector runners: reading a vector file, and the one matching rule
 * every surface uses (an expected object matches when every field it names has the same value
 * in the result, recursively; any other value must be equal).
 */
#ifndef LLMR_VECTORS_COMMON_H
#define LLMR_VECTORS_COMMON_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The whole file at `path`, NUL-terminated and owned by the caller; NULL on any error. */
static inline char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 65536) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *nbuf = realloc(buf, ncap + 1);
            if (!nbuf) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* `expect` matches `got` when every field `expect` names has the same value in `got`
 * (recursively for objects); other values must be equal. */
static inline int matches(const cJSON *expect, const cJSON *got) {
    if (cJSON_IsObject(expect)) {
        if (!cJSON_IsObject(got)) return 0;
        const cJSON *field;
        cJSON_ArrayForEach(field, expect) {
            if (!matches(field, cJSON_GetObjectItemCaseSensitive(got, field->string))) return 0;
        }
        return 1;
    }
    return got != NULL && cJSON_Compare(expect, got, 1);
}

/* A JSON number field as an unsigned integer (vectors stay below 2^53, exact in a double);
 * 0 when absent, negative or not a number. */
static inline uint64_t u64_of(const cJSON *obj, const char *field) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
    return cJSON_IsNumber(v) && v->valuedouble >= 0 ? (uint64_t)v->valuedouble : 0;
}

/* A JSON string field; "" when absent or not a string. */
static inline const char *str_of(const cJSON *obj, const char *field) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
    return cJSON_IsString(v) ? v->valuestring : "";
}

#endif
