/*
 * The HTTP Retry-After header (RFC 9110, section 10.2.3) of APNs, FCM and webhook
 * answers: parsed once here, so that a huge or malformed value cannot overflow the
 * delivery layer's arithmetic. Any thread.
 */
#ifndef PUSHRELAY_RETRY_AFTER_H
#define PUSHRELAY_RETRY_AFTER_H

#include <stdint.h>

/* The longest wait a Retry-After can ask for (24 h); longer asks are cut to it. */
#define RETRY_AFTER_MAX_MS ((int64_t)24 * 3600 * 1000)

/*
 * The wait value asks for, in ms from now_ms (ms since the epoch): delay-seconds
 * ("120") or an HTTP-date ("Wed, 21 Oct 2026 07:28:00 GMT"; one in the past is 0),
 * cut to RETRY_AFTER_MAX_MS. Returns -1 for NULL, an empty value or anything else
 * (a sign, a fraction, trailing text): the caller treats it as absent.
 */
int64_t retry_after_parse_ms(const char *value, int64_t now_ms);

#endif
