/* libnghttp2's own cost as an HTTP/2 server, sans I/O (bench/h2_libraries.py
 * drives it): the client's bytes come in batches from a file, each batch fed
 * to nghttp2_session_mem_recv; every request (HEADERS with END_STREAM) is
 * answered with a 200, a Content-Length and a 19-byte body, and what the
 * session writes is drained with nghttp2_session_mem_send after each batch
 * and written to the output file. The CPU time of the receive/answer/send
 * loop alone is printed (CLOCK_PROCESS_CPUTIME_ID), in nanoseconds.
 *
 * Input: a sequence of [u32 length][bytes] batches (little-endian).
 * Usage: h2_nghttp2 IN OUT ROUNDS  (the batches fed ROUNDS times, each round
 * a new session, so the figure is per request over ROUNDS x requests).
 */
#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char BODY[] = "0123456789abcdefghi"; /* 19 bytes, as bench/compare.py's backend */

typedef struct {
    long answered;
} server;

static ssize_t body_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user_data) {
    (void)session; (void)stream_id; (void)source; (void)user_data;
    size_t n = sizeof(BODY) - 1;
    if (length < n) n = length;
    memcpy(buf, BODY, n);
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
    server *s = user_data;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        static const nghttp2_nv headers[] = {
            {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)"content-length", (uint8_t *)"19", 14, 2, NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)"content-type", (uint8_t *)"text/plain", 12, 10, NGHTTP2_NV_FLAG_NONE},
        };
        nghttp2_data_provider provider = {.source = {.ptr = NULL}, .read_callback = body_read};
        if (nghttp2_submit_response(session, frame->hd.stream_id, headers, 3, &provider) != 0) return -1;
        s->answered++;
    }
    return 0;
}

/* Every header reaches the application, as a proxy needs them (the figure includes handing them over). */
static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
    (void)session; (void)frame; (void)name; (void)value; (void)flags; (void)user_data;
    volatile size_t seen = namelen + valuelen;
    (void)seen;
    return 0;
}

static uint8_t *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc(*size ? *size : 1);
    if (fread(data, 1, *size, f) != *size) { fclose(f); free(data); return NULL; }
    fclose(f);
    return data;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: h2_nghttp2 IN OUT ROUNDS\n"); return 2; }
    size_t size;
    uint8_t *input = read_all(argv[1], &size);
    if (!input) { fprintf(stderr, "h2_nghttp2: cannot read %s\n", argv[1]); return 1; }
    FILE *out = fopen(argv[2], "wb");
    if (!out) { fprintf(stderr, "h2_nghttp2: cannot write %s\n", argv[2]); return 1; }
    long rounds = strtol(argv[3], NULL, 10);
    nghttp2_session_callbacks *callbacks;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    long answered = 0;
    struct timespec start, end;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &start);
    for (long round = 0; round < rounds; round++) {
        server s = {0};
        nghttp2_session *session;
        nghttp2_session_server_new(&session, callbacks, &s);
        nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
        nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, 1);
        size_t at = 0;
        while (at + 4 <= size) {
            uint32_t length;
            memcpy(&length, input + at, 4);
            at += 4;
            if (nghttp2_session_mem_recv(session, input + at, length) != (ssize_t)length) {
                fprintf(stderr, "h2_nghttp2: the session refused the client's bytes\n");
                return 1;
            }
            at += length;
            for (;;) {
                const uint8_t *data;
                ssize_t n = nghttp2_session_mem_send(session, &data);
                if (n < 0) { fprintf(stderr, "h2_nghttp2: send failed\n"); return 1; }
                if (n == 0) break;
                if (round == 0) fwrite(data, 1, (size_t)n, out);
            }
        }
        answered += s.answered;
        nghttp2_session_del(session);
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &end);
    long long ns = (long long)(end.tv_sec - start.tv_sec) * 1000000000LL + (end.tv_nsec - start.tv_nsec);
    printf("%ld %lld\n", answered, ns);
    nghttp2_session_callbacks_del(callbacks);
    fclose(out);
    free(input);
    return 0;
}
