// librdkafka from Debian's librdkafka-dev (2.0.2 on bookworm): flusher_kafka_v2's producer, and
// the mock cluster the tests inject broker faults with.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

// rd_kafka_producev is variadic, which Swift cannot call: one message to `rkt` (its partitioner
// picks the partition), the value by reference (the caller keeps it alive until the delivery
// report), the key copied, `headers` (may be NULL) owned by the message on success.
static inline rd_kafka_resp_err_t sluice_rdk_produce(rd_kafka_t *rk, rd_kafka_topic_t *rkt,
                                                     const void *value, size_t len,
                                                     const void *key, size_t keylen,
                                                     rd_kafka_headers_t *headers, void *opaque) {
    if (headers)
        return rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_VALUE((void *)value, len),
                                 RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_HEADERS(headers),
                                 RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    return rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_VALUE((void *)value, len),
                             RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
}
